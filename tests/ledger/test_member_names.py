"""Members named in the views at read time (``lendchain.ledger.member_names``): a view gives a
member's name beside its DID, a party's DID stays a DID, and nothing about the records changes.

Found after the names pass: ``credit disputes``, ``loan portfolio``'s pending transfers, a loan's
funders, share buyers, guarantors and recovery servicers, and a proposal's voters showed member
DIDs alone, though every member's name is on chain.
"""

from __future__ import annotations

from lendchain.ledger import queries
from lendchain.ledger.member_names import MemberNames, dids_in, member_name
from lendchain.ledger.state import institution_key, read_value
from tests.ledger.chain import seeded_key
from tests.ledger.test_guarantees import GINA, guarantee_world, guaranteed_by
from tests.ledger.test_membership import propose
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, funders_world, syndicate
from tests.ledger.test_share_assignment import offer


def test_a_member_is_named_a_party_is_not_and_each_did_is_read_once():
    chain, members, borrower, _ = guarantee_world()
    reads: list[bytes] = []

    def get(key):
        reads.append(key)
        return read_value(chain.state, key)

    names = MemberNames(get)
    assert [names(members[1].did), names(members[1].did), names(borrower.did), names(None)] == [
        "bank2",
        "bank2",
        None,  # a registered party: parties have no names on chain
        None,
    ]
    assert reads == [institution_key(members[1].did), institution_key(borrower.did)]
    row = {"lender": members[0].did, "to": borrower.did, "height": 7}
    assert names.named(row, "lender", "to", "absent") == {**row, "lender_name": "bank1", "to_name": None}
    assert row == {
        "lender": members[0].did,
        "to": borrower.did,
        "height": 7,
    }  # a copy: the record is left alone
    assert member_name(get, members[3].did) == "bank4"


def test_every_did_in_a_view_is_found_map_keys_and_nested_lists_too():
    a, b, c = (seeded_key(n).did for n in (1, 2, 3))
    view = {"lender": a, "funding": {"commitments": [{"funder": b}, {"funder": a}]}, "by": {c: 1}, "n": 5}
    assert sorted(dids_in(view)) == sorted([a, b, c])  # each once
    assert dids_in(["did:web:example", "not a did", 7, None]) == []


def test_a_loans_view_names_its_member_funders_guarantors_and_lender_but_not_its_investors():
    chain, members, borrower = funders_world(version=7)
    bank1, bank2 = members[0], members[1]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    guaranteed_by(chain, bank1, loan_id, bank2, amount=10_000, kind="bank")
    view = queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
    assert view["member_names"] == {bank1.did: "bank1", bank2.did: "bank2"}
    assert [g["guarantor"] for g in view["guarantees"]] == [bank2.did]  # the record keeps the DID


def test_a_funders_positions_name_the_member_offering_it_a_share():
    chain, members, borrower = funders_world(version=7)
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    assert offer(chain, bank1, loan_id, CAROL, 40_000).ok
    view = queries.lookup(chain.state, "positions", CAROL.did, as_of_ms=chain.head_ms)
    assert [offer["from"] for offer in view["share_offers_to"]] == [bank1.did]
    assert view["member_names"] == {bank1.did: "bank1"}


def test_a_proposal_names_its_proposer_and_voters_and_a_members_disputes_name_it():
    chain, members, *_ = guarantee_world()
    proposal_id = propose(chain, members[1], "scorecard.set", "base", "350").tx_id.hex()
    one = queries.lookup(chain.state, "proposal", proposal_id)
    assert (one["proposer"], one["member_names"]) == (members[1].did, {members[1].did: "bank2"})
    [listed] = queries.lookup(chain.state, "proposal", "open")["proposals"]
    assert listed["member_names"] == {members[1].did: "bank2"}
    furnished = queries.lookup(chain.state, "disputes", members[1].did, as_of_ms=chain.head_ms)
    assert (furnished["kind"], furnished["name"], furnished["count"]) == ("member", "bank2", 0)
    assert GINA.did not in queries.lookup(chain.state, "proposal", proposal_id)["member_names"]
