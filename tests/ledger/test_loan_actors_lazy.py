"""``loan_actors`` reads the sender's party record only when it decides something, and finds the
same actors as when it read it always (the code before, kept here as the reference)."""

from __future__ import annotations

import itertools

import pytest

from lendchain import codec
from lendchain.ledger import lifecycle as lc
from lendchain.ledger.context import BlockOverlay, TxContext
from lendchain.ledger.loans import loan_actors
from lendchain.ledger.state import MemoryState, institution_key, party_key

SENDER = "did:key:sender"
OTHER = "did:key:other"


def reference_loan_actors(ctx, did, loan):
    institution = ctx.peek(institution_key(did))
    roles = institution["roles"] if institution else ()
    lender = "lender" in roles
    if institution is None:
        actors = set()
    elif lender:
        actors = {lc.MEMBER, lc.LENDER}
    else:
        actors = {lc.MEMBER}
    if loan is not None:
        party = None if roles else ctx.peek(party_key(did))
        funding = loan.get("funding")
        if loan["borrower"] == did:
            actors.add(lc.BORROWER)
        elif lender or (party is not None and party["role"] == "investor"):
            actors.update((lc.FUNDER, lc.FUNDER_OR_BUYER))
        elif funding is not None and any(o["to"] == did for o in funding.get("share_offers", ())):
            actors.add(lc.FUNDER_OR_BUYER)
        if loan.get("lender") == did:
            actors.add(lc.SERVICER)
        transfer = loan.get("transfer")
        if transfer is not None and transfer["to"] == did:
            actors.add(lc.TRANSFEREE)
        if funding is not None and any(
            c["funder"] == did and c["status"] == "committed" for c in funding["commitments"]
        ):
            actors.add(lc.COMMITTED_FUNDER)
    return frozenset(actors)


INSTITUTIONS = [None, {"roles": []}, {"roles": ["kyc"]}, {"roles": ["lender"]}, {"roles": ["kyc", "lender"]}]
PARTIES = [None, {"role": "borrower"}, {"role": "investor"}]
FUNDINGS = [
    None,
    {"commitments": [], "share_offers": [{"to": SENDER}]},
    {"commitments": [{"funder": SENDER, "status": "committed"}]},
    {"commitments": [{"funder": SENDER, "status": "released"}], "share_offers": [{"to": OTHER}]},
]


def loans():
    yield None
    for borrower, servicer, transfer, funding in itertools.product(
        (SENDER, OTHER), (None, SENDER, OTHER), (None, SENDER, OTHER), FUNDINGS
    ):
        loan = {"borrower": borrower, "lender": servicer}
        if transfer is not None:
            loan["transfer"] = {"to": transfer}
        if funding is not None:
            loan["funding"] = funding
        yield loan


@pytest.mark.parametrize(("institution", "party"), list(itertools.product(INSTITUTIONS, PARTIES)))
def test_the_actors_are_those_the_eager_read_found(institution, party):
    stored = {}
    if institution is not None:
        stored[institution_key(SENDER)] = codec.pack(institution)
    if party is not None:
        stored[party_key(SENDER)] = codec.pack(party)
    for loan in loans():
        context = TxContext(BlockOverlay(MemoryState(stored)), b"\x01" * 32, 5, 0, {})
        assert loan_actors(context, SENDER, loan) == reference_loan_actors(context, SENDER, loan), loan
