"""The buyer declines a share offered to it (``loan.share_decline``, rules 7; see
``ledger.share_decline``): what it records, who may, and each refusal.

The chains start on rules 7 from the genesis (rules 6 where said). The loan is
``test_share_assignment``'s: 120,000 EUR of bank1's, funded by alice (30,000),
bank1 (40,000) and bob (50,000); carol is an investor holding nothing.
"""

from __future__ import annotations

import json

import pytest

from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.share_decline import KEPT_DECLINES
from lendchain.ledger.writeoff import MAX_NOTE
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import loan, repay
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, funders_world, syndicate
from tests.ledger.test_share_assignment import ASSIGN, WITHDRAW, offer, sell, take, withdraw
from tests.ledger.test_share_assignment_views import position
from tests.ledger.test_write_off import default, write_off

DECLINE = "loan.share_decline"


def decline_world(version=7):
    chain, members, borrower = funders_world(version=version)
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    return chain, members, borrower, loan_id


@pytest.fixture
def world():
    return decline_world()


def decline(chain, buyer, loan_id, **extra):
    return chain.run_one(chain.tx(buyer, DECLINE, {"loan_id": loan_id, **extra}))


def history(chain, loan_id):
    return loan(chain, loan_id)["history"]


def test_the_buyer_declines_an_offer_which_ends_and_the_seller_sees_why(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 10_000, price=9_000).ok
    offered_at = chain.height
    declined = decline(chain, CAROL, loan_id, note="  price too high  ")
    assert declined.ok, declined.message
    expected = {"from": ALICE.did, "to": CAROL.did, "amount": 10_000, "note": "price too high"}
    assert [e for e in declined.events if e["event"] == "loan.share_offer_declined"] == [
        {"event": "loan.share_offer_declined", "loan_id": loan_id, **expected, "offered_height": offered_at}
    ]
    entry = history(chain, loan_id)[-1]
    assert {k: entry[k] for k in ("event", "height", *expected)} == {
        "event": DECLINE,
        "height": chain.height,
        **expected,
    }
    funding = loan(chain, loan_id)["funding"]
    record = {**expected, "height": chain.height, "offered_height": offered_at, "price": 9_000}
    assert (funding["share_offers"], funding["share_declines"]) == ([], [record])
    seller = position(chain, ALICE.did, loan_id)
    assert (seller["share_offer"], seller["offers_declined"]) == (None, [record])
    assert seller["commitment"] == 30_000  # nothing moved
    assert position(chain, BOB.did, loan_id)["offers_declined"] == []
    # The seller may offer again at once, and the buyer may take the new offer.
    assert offer(chain, ALICE, loan_id, CAROL, 12_000).ok
    assert take(chain, CAROL, loan_id).ok
    assert position(chain, ALICE.did, loan_id)["offers_declined"] == [record]  # kept: what happened


def test_the_loan_keeps_its_newest_declines_and_its_history_every_one(world):
    chain, members, borrower, loan_id = world
    for n in range(KEPT_DECLINES + 2):
        assert offer(chain, ALICE, loan_id, CAROL, 1_200 + n).ok
        assert decline(chain, CAROL, loan_id, note=f"no {n}").ok
    kept = loan(chain, loan_id)["funding"]["share_declines"]
    assert [record["amount"] for record in kept] == [1_200 + n for n in range(2, KEPT_DECLINES + 2)]
    declines = [entry for entry in history(chain, loan_id) if entry["event"] == DECLINE]
    assert [entry["note"] for entry in declines] == [f"no {n}" for n in range(KEPT_DECLINES + 2)]


def test_a_decline_without_a_note_records_none(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, BOB, loan_id, CAROL, 50_000).ok
    assert decline(chain, CAROL, loan_id).ok
    [record] = loan(chain, loan_id)["funding"]["share_declines"]
    assert "note" not in record and "price" not in record
    assert "note" not in history(chain, loan_id)[-1]


def test_a_buyer_named_by_two_offers_says_which_it_declines(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 30_000).ok
    assert offer(chain, BOB, loan_id, CAROL, 10_000).ok
    refused = decline(chain, CAROL, loan_id)
    assert (refused.code, refused.message) == (
        "bad_payload",
        f"{DECLINE} field 'from' is missing: 2 offers of a share to {CAROL.did} are pending (from "
        f"{ALICE.did}, {BOB.did}); name the funder whose offer it declines",
    )
    assert decline(chain, CAROL, loan_id, **{"from": BOB.did}).ok
    [left] = loan(chain, loan_id)["funding"]["share_offers"]
    assert left["from"] == ALICE.did
    assert take(chain, CAROL, loan_id).ok  # the one left needs no 'from'


def test_a_buyer_that_sold_its_whole_share_before_declines_an_offer_back(world):
    chain, members, borrower, loan_id = world
    sell(chain, ALICE, CAROL, loan_id, 30_000)
    assert offer(chain, BOB, loan_id, ALICE, 5_000).ok
    assert decline(chain, ALICE, loan_id).ok


def test_an_offer_on_a_written_off_loan_is_declined_as_any(world):
    chain, members, borrower, loan_id = world
    default(chain, loan_id)
    assert write_off(chain, members[0], loan_id).ok
    assert offer(chain, BOB, loan_id, CAROL, 50_000).ok
    assert decline(chain, CAROL, loan_id, note="not at that price").ok
    # Under rules 7 the sentence naming what a written-off loan still takes names the decline too.
    refused = repay(chain, members[0], loan_id, 1_000)
    assert refused.code == "invalid_state"
    assert (
        "by which a funder sells its share of the recoveries, loan.share_decline, by which the buyer an "
        "offer names declines it, and loan.guarantee_release" in refused.message
    )


# Who may ---------------------------------------------------------------------------------------


def test_the_seller_cannot_decline_its_own_offer_it_withdraws_it(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok
    for payload in ({}, {"from": ALICE.did}):
        refused = decline(chain, ALICE, loan_id, **payload)
        assert (refused.code, refused.message) == (
            "forbidden",
            f"{DECLINE} on loan {loan_id[:16]}: the offer of 10000 to {CAROL.did} is {ALICE.did}'s own: only "
            f"the buyer it names declines it, and its seller takes it back with {WITHDRAW}",
        )
    assert [o["to"] for o in loan(chain, loan_id)["funding"]["share_offers"]] == [CAROL.did]


def test_a_third_party_cannot_decline_an_offer_naming_another(world):
    chain, members, borrower, loan_id = world
    bank2 = members[1]
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok
    for outsider in (BOB, bank2):  # a funder of the loan, and a lender that funds nothing
        refused = decline(chain, outsider, loan_id)
        assert (refused.code, refused.message) == (
            "forbidden",
            f"{DECLINE} on loan {loan_id[:16]}: only the buyer an offer names declines it, and no pending "
            f"offer names {outsider.did} (they name {CAROL.did})",
        )
    refused = decline(chain, BOB, loan_id, **{"from": ALICE.did})
    assert refused.code == "forbidden" and "no pending offer names" in refused.message
    # The borrower and a member without the lender role are no buyers at all: the lifecycle says so.
    for outsider in (borrower, members[2]):
        refused = decline(chain, outsider, loan_id)
        assert refused.code == "forbidden"
        assert refused.message.endswith(
            "is refused: only a registered investor or a lender member other than the borrower may do this"
        )
    assert len(loan(chain, loan_id)["funding"]["share_offers"]) == 1


# Nothing to decline -------------------------------------------------------------------------------


def nothing_to_decline(loan_id, buyer, lapsed="", by=""):
    return (
        "invalid_state",
        f"{DECLINE} on loan {loan_id[:16]}: no offer of a share{by} to {buyer} is pending{lapsed}; there is "
        f"nothing to decline (an offer is made with {ASSIGN}, and ends when it is accepted, withdrawn or "
        "declined)",
    )


def test_an_offer_withdrawn_accepted_declined_or_never_made_is_not_declined(world):
    chain, members, borrower, loan_id = world
    refused = decline(chain, CAROL, loan_id)  # never offered
    assert (refused.code, refused.message) == nothing_to_decline(loan_id, CAROL.did)
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok and withdraw(chain, ALICE, loan_id).ok
    refused = decline(chain, CAROL, loan_id)
    assert (refused.code, refused.message) == nothing_to_decline(loan_id, CAROL.did)
    sell(chain, ALICE, CAROL, loan_id, 10_000)
    refused = decline(chain, CAROL, loan_id)
    assert (refused.code, refused.message) == nothing_to_decline(loan_id, CAROL.did)
    assert offer(chain, BOB, loan_id, CAROL, 10_000).ok and decline(chain, CAROL, loan_id).ok
    refused = decline(chain, CAROL, loan_id, **{"from": BOB.did})
    assert (refused.code, refused.message) == nothing_to_decline(loan_id, CAROL.did, by=f" from {BOB.did}")
    unknown = decline(chain, CAROL, "ab" * 32)
    assert (unknown.code, unknown.message) == (
        "not_found",
        f"{DECLINE} field 'loan_id' names no known loan ({'ab' * 32})",
    )


def test_a_lapsed_offer_is_not_declined(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok
    default(chain, loan_id)
    assert write_off(chain, members[0], loan_id).ok
    refused = decline(chain, CAROL, loan_id)
    lapsed = f" (the one from {ALICE.did} lapsed: the loan was written off after it was offered)"
    assert (refused.code, refused.message) == nothing_to_decline(loan_id, CAROL.did, lapsed=lapsed)


def test_on_a_closed_loan_the_lifecycle_refuses_it(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok
    assert repay(chain, members[0], loan_id, loan(chain, loan_id)["amount_owed"]).ok
    refused = decline(chain, CAROL, loan_id)
    assert refused.code == "invalid_state" and "in state 'closed' is refused" in refused.message


@pytest.mark.parametrize(
    ("note", "says"),
    [
        ("   ", f"{DECLINE} field 'note' must say something when given, not only spaces"),
        ("", f"{DECLINE} field 'note'"),
        ("x" * (MAX_NOTE + 1), f"{DECLINE} field 'note'"),
    ],
)
def test_a_note_that_says_nothing_or_too_much_is_refused(world, note, says):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok
    tx = chain.tx(CAROL, DECLINE, {"loan_id": loan_id, "note": note})
    block, execution = chain.cut([tx])
    refusals = [(r.code, r.message) for r in execution.results] + [
        (d.code, d.message) for d in execution.dropped
    ]
    [(code, message)] = refusals
    assert code == "bad_payload" and message.startswith(says), message
    chain.nonces[CAROL.did] -= 1
    assert len(loan(chain, loan_id)["funding"]["share_offers"]) == 1


def test_under_rules_6_the_kind_does_not_exist():
    chain, members, borrower, loan_id = decline_world(version=6)
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok
    before = loan(chain, loan_id)
    block, execution = chain.cut([chain.tx(CAROL, DECLINE, {"loan_id": loan_id})])
    assert execution.results == []
    [dropped] = execution.dropped
    assert (dropped.code, dropped.message) == (
        "unknown_kind",
        f"field 'kind': {DECLINE} exists from rules version 7; block {chain.height + 1} executes under version 6",
    )
    assert loan(chain, loan_id) == before


def test_an_audit_export_verifies_the_decline_with_the_buyers_signature(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, BOB, loan_id, CAROL, 50_000).ok
    assert decline(chain, CAROL, loan_id, note="no").ok
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    rows = [(e["kind"], e["signer"]) for e in document["entries"]][-2:]
    assert rows == [(ASSIGN, BOB.did), (DECLINE, CAROL.did)]
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id
