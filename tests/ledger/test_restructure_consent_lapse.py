"""Funders' consents belong to the proposal they were given to: a withdrawal, a lapse or a transfer
takes them with it; a removed member's commitment is left out of the count; and before rules 5 the
kind does not exist (``loan.restructure_consent``; see ``ledger.funder_consent``).

The world and the syndicated loans are ``test_restructure_consent``'s; ``syndicated`` is bank1's
loan funded by alice (30,000), bank1 itself (40,000) and bob (50,000).
"""

from __future__ import annotations

import json

import pytest

from lendchain import codec
from lendchain.ledger import queries
from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.state import loan_key, read_value
from tests.ledger.chain import seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import accept, loan, ok, open_loan, transfer
from tests.ledger.test_membership import vote_through
from tests.ledger.test_removal import demote
from tests.ledger.test_restructure import accept_terms, overdue, propose, withdraw
from tests.ledger.test_restructure_consent import (
    ALICE,
    BOB,
    NOT_A_FUNDER,
    consent,
    consents,
    funders_world,
    syndicate,
)
from tests.ledger.test_write_off import default

SHARES = [(ALICE, 30_000), ("servicer", 40_000), (BOB, 50_000)]


@pytest.fixture
def world():
    return funders_world()


def syndicated(chain, borrower, bank1):
    return syndicate(chain, borrower, bank1, [(bank1 if f == "servicer" else f, a) for f, a in SHARES])


def test_no_consent_is_taken_without_a_pending_proposal(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicated(chain, borrower, bank1)
    none_yet = consent(chain, ALICE, loan_id)
    assert none_yet.code == "invalid_state"
    assert (
        f"loan.restructure_consent on loan {loan_id[:16]}: no restructuring is pending (the loan's servicer "
        "proposes one with loan.restructure)"
    ) in none_yet.message
    assert "restructuring" not in loan(chain, loan_id)


def test_a_withdrawal_takes_the_consents_with_it(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicated(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok and consent(chain, ALICE, loan_id).ok
    assert withdraw(chain, bank1, loan_id).ok
    refused = consent(chain, BOB, loan_id)
    assert refused.code == "invalid_state" and "no restructuring is pending" in refused.message

    assert propose(chain, bank1, loan_id, rate_bps=700, term_months=18).ok
    assert consents(chain, loan_id) == [(bank1.did, 40_000, True)]  # alice's went with the first
    assert "consented so far 40000 (33.33 %)" in accept_terms(chain, borrower, loan_id).message
    assert consent(chain, ALICE, loan_id).ok  # to the new terms, once more
    assert accept_terms(chain, borrower, loan_id).ok
    assert loan(chain, loan_id)["rate_bps"] == 700


def test_a_lapsed_proposal_keeps_its_consents_as_a_record_and_counts_them_for_nothing(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicated(chain, borrower, bank1)
    overdue(chain, loan_id)
    assert propose(chain, bank1, loan_id).ok and consent(chain, ALICE, loan_id).ok
    offered_at = chain.height - 1
    default(chain, loan_id)
    lapsed = loan(chain, loan_id)["restructuring"]
    assert lapsed["status"] == "lapsed" and [c["funder"] for c in lapsed["consents"]] == [
        bank1.did,
        ALICE.did,
    ]
    assert "consent" not in lapsed  # nothing can accept it: no tally of what is missing
    refused = consent(chain, BOB, loan_id)
    assert refused.code == "invalid_state"
    assert (
        f"its restructuring offered at height {offered_at} lapsed: the loan defaulted after it was offered"
    ) in refused.message
    refused = accept_terms(chain, borrower, loan_id)
    assert refused.code == "invalid_state" and "lapsed" in refused.message

    assert propose(chain, bank1, loan_id).ok  # a workout of the defaulted loan: consents start anew
    assert consents(chain, loan_id) == [(bank1.did, 40_000, True)]
    assert not accept_terms(chain, borrower, loan_id).ok
    assert consent(chain, ALICE, loan_id).ok
    assert accept_terms(chain, borrower, loan_id).ok
    assert loan(chain, loan_id)["state"] == "repaying"


def test_a_closed_loan_takes_no_consent(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicated(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    ok(chain, bank1, "loan.repay", {"loan_id": loan_id, "amount": loan(chain, loan_id)["amount_owed"]})
    refused = consent(chain, ALICE, loan_id)
    assert refused.code == "invalid_state"
    assert (
        "in state 'closed' is refused: loan.restructure_consent is only allowed in state defaulted, "
        "disbursed, overdue, repaying"
    ) in refused.message


def test_a_new_servicer_proposes_without_a_commitment_and_the_old_one_consents_as_a_funder(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = syndicated(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok and consent(chain, ALICE, loan_id).ok
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert "restructuring" not in loan(chain, loan_id)  # dropped with its consents

    assert propose(chain, bank2, loan_id).ok
    assert consents(chain, loan_id) == []  # bank2 services the loan but funds none of it
    assert "consented so far 0 (0.00 %) by none" in accept_terms(chain, borrower, loan_id).message
    assert consent(chain, bank1, loan_id).ok  # the old servicer keeps its 40,000 in the loan
    assert consent(chain, ALICE, loan_id).ok
    assert consents(chain, loan_id) == [(bank1.did, 40_000, False), (ALICE.did, 30_000, False)]
    assert accept_terms(chain, borrower, loan_id).ok


def remove(chain, members, member):
    """Demote ``member``, then remove it from the consortium (three voters left: the proposal is the quorum)."""
    demote(chain, members, member)
    vote_through(chain, members[0], [], "member.remove", member.did, "sold its book and left")


def test_a_removed_members_commitment_is_left_out_of_the_count(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    halves = syndicate(chain, borrower, bank1, [(bank2, 60_000), (ALICE, 60_000)])
    whole = syndicate(chain, borrower, bank1, [(bank2, 120_000)])
    for loan_id in (halves, whole):
        assert propose(chain, bank1, loan_id).ok
    assert consent(chain, ALICE, halves).ok
    assert "consented so far 60000 (50.00 %)" in accept_terms(chain, borrower, halves).message
    assert "consented so far 0 (0.00 %) by none" in accept_terms(chain, borrower, whole).message

    remove(chain, members, bank2)
    counted = loan(chain, halves)["restructuring"]["consent"]
    assert (counted["committed"], counted["consented"], counted["consented_bps"], counted["majority"]) == (
        60_000,
        60_000,
        10_000,
        True,
    )
    assert loan(chain, whole)["restructuring"]["consent"] == {
        "committed": 0,
        "consented": 0,
        "consented_bps": 0,
        "needed": 0,
        "missing": 0,
        "missing_bps": 0,
        "majority": True,  # nobody is left to ask
    }
    for loan_id in (halves, whole):
        accepted = accept_terms(chain, borrower, loan_id)
        assert accepted.ok, accepted.message
    assert [c["amount"] for c in loan(chain, halves)["funding"]["commitments"]] == [60_000, 60_000]


def test_a_released_commitment_consents_to_nothing(world):
    """No kind releases a commitment on a running loan today (``loan.fund_expire`` releases them only on
    a loan that went unfunded, which never runs a schedule); the check guards the rule for the day one
    does, and the count leaves a released commitment out as well."""
    chain, members, borrower = world
    bank1 = members[0]
    unfunded = open_loan(chain, borrower, bank1, disburse=False, funding_window_ms=5_000)
    ok(chain, ALICE, "loan.fund", {"loan_id": unfunded, "amount": 30_000})
    chain.head_ms += 5_000
    ok(chain, members[2], "loan.fund_expire", {"loan_id": unfunded})
    refused = consent(chain, ALICE, unfunded)
    assert refused.code == "invalid_state"
    assert (
        "in state 'unfunded' is refused: loan.restructure_consent is only allowed in state" in refused.message
    )

    loan_id = syndicated(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    key = loan_key(bytes.fromhex(loan_id))
    stored = read_value(chain.state, key)
    commitments = [
        {**c, "status": "released"} if c["funder"] == BOB.did else c for c in stored["funding"]["commitments"]
    ]
    chain.state.values[key] = codec.pack(
        {**stored, "funding": {**stored["funding"], "commitments": commitments}}
    )
    refused = consent(chain, BOB, loan_id)
    assert refused.code == "forbidden" and NOT_A_FUNDER in refused.message
    counted = loan(chain, loan_id)["restructuring"]["consent"]
    assert (counted["committed"], counted["consented"], counted["majority"]) == (70_000, 40_000, True)


def test_under_rules_4_the_kind_is_unknown():
    chain, members = rules_world(version=4)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, members[0])
    tx = chain.tx(members[0], "loan.restructure_consent", {"loan_id": loan_id})
    block, execution = chain.cut([tx])
    assert not block.txs
    assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id)]
    assert (
        "field 'kind': loan.restructure_consent exists from rules version 5; block"
        in execution.dropped[0].message
    )


def test_an_audit_export_verifies_each_consent_with_its_funders_signature(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicated(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    assert consent(chain, BOB, loan_id).ok and accept_terms(chain, borrower, loan_id).ok
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    assert [(e["kind"], e["signer"]) for e in document["entries"]][-3:] == [
        ("loan.restructure", bank1.did),
        ("loan.restructure_consent", BOB.did),
        ("loan.restructure_accept", borrower.did),
    ]
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id


def test_a_funders_positions_name_the_proposals_waiting_for_its_consent(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicated(chain, borrower, bank1)

    def requested(key):
        view = queries.lookup(chain.state, "positions", key.did)
        [position] = [p for p in view["positions"] if p["loan_id"] == loan_id]
        assert view["consents_requested"] == ([loan_id] if position["consent_requested"] else [])
        return position["consent_requested"]

    assert requested(ALICE) is None  # nothing proposed yet
    assert propose(chain, bank1, loan_id, rate_bps=600, term_months=24, holiday_months=2).ok
    asked = {"height": chain.height, "rate_bps": 600, "term_months": 24, "holiday_months": 2}
    assert requested(ALICE) == requested(BOB) == asked
    assert requested(bank1) is None  # its proposal was its consent
    assert consent(chain, ALICE, loan_id).ok
    assert requested(ALICE) is None and requested(BOB) == asked
    assert withdraw(chain, bank1, loan_id).ok
    assert requested(BOB) is None  # nothing pending any more
