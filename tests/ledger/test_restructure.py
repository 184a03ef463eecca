"""Restructuring a loan: who proposes, accepts and withdraws, when, and what is refused
(``loan.restructure``, rules 5; see ``ledger.restructuring``).

The chains start on rules 5 from the genesis unless a test says otherwise.
bank1 and bank2 are the lenders (``make_genesis``'s roles), bank3 a
regulator and bank4 the kyc member. ``open_loan`` lends 120,000 EUR over 12
months at 900 bps; a loan falls overdue 5 days (``grace_days``) after an
instalment's due time and defaults 90 days (``default_days``) after it.
The arithmetic of the new schedule is ``test_restructure_schedule``'s.
"""

from __future__ import annotations

import json

import pytest

from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.loans import MAX_AMOUNT
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from lendchain.ledger.state import loan_key, read_value
from tests.ledger.chain import domain_events, seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import (
    APPLY,
    accept,
    loan,
    ok,
    open_loan,
    repay,
    syndicated_loan,
    transfer,
    with_borrower,
)
from tests.ledger.test_write_off import default, write_off

TERMS = {"rate_bps": 600, "term_months": 24, "holiday_months": 3}
ONLY_IN = "is only allowed in state defaulted, disbursed, overdue, repaying"


@pytest.fixture
def world():
    return with_borrower(version=5)


def propose(chain, key, loan_id, **terms):
    return chain.run_one(chain.tx(key, "loan.restructure", {"loan_id": loan_id, **(terms or TERMS)}))


def accept_terms(chain, key, loan_id):
    return chain.run_one(chain.tx(key, "loan.restructure_accept", {"loan_id": loan_id}))


def withdraw(chain, key, loan_id):
    return chain.run_one(chain.tx(key, "loan.restructure_withdraw", {"loan_id": loan_id}))


def overdue(chain, loan_id):
    """Run a block 10 days after the loan's first instalment fell due: it is overdue."""
    chain.head_ms = loan(chain, loan_id)["disbursed_ms"] + MONTH_MS + 10 * DAY_MS
    chain.run()
    assert loan(chain, loan_id)["state"] == "overdue"


def stored(chain, loan_id):
    return read_value(chain.state, loan_key(bytes.fromhex(loan_id)))


def test_the_servicer_proposes_new_terms_and_the_borrower_accepts_them(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)

    offered = propose(chain, bank1, loan_id)
    assert offered.ok, offered.message
    assert domain_events(offered.events) == [
        {"event": "loan.restructure_offered", "loan_id": loan_id, "lender": bank1.did, **TERMS}
    ]
    offered_at = chain.height
    pending = loan(chain, loan_id)
    assert pending["restructuring"] == {
        **TERMS,
        "height": offered_at,
        "state": "overdue",
        "status": "pending",
    }
    assert (pending["state"], pending["rate_bps"], pending["term_months"]) == ("overdue", 900, 12)  # not yet
    entry = pending["history"][-1]
    assert (entry["event"], entry["tx_id"]) == ("loan.restructure", offered.tx_id.hex())
    assert {name: entry[name] for name in TERMS} == TERMS

    accepted = accept_terms(chain, borrower, loan_id)
    assert accepted.ok, accepted.message
    after = loan(chain, loan_id)
    [record] = after["restructurings"]
    assert (after["state"], after["rate_bps"], after["term_months"]) == ("repaying", 600, 21)
    assert "restructuring" not in after
    assert (record["height"], record["time_ms"], record["proposed_height"]) == (
        chain.height,
        chain.head_ms,
        offered_at,
    )
    assert (record["state"], record["old"], record["new"]) == (
        "overdue",
        {"rate_bps": 900, "term_months": 12},
        TERMS,
    )
    amounts = {
        "principal": record["principal"],
        "interest": record["interest"],
        "penalty": record["penalty"],
        "holiday_interest": sum(record["holiday_interest"]),
        "new_principal": record["new_principal"],
    }
    first_due = chain.head_ms + 4 * MONTH_MS
    assert domain_events(accepted.events) == [
        {
            "event": "loan.restructured",
            "loan_id": loan_id,
            **amounts,
            "rate_bps": 600,
            "instalments": 21,
            "first_due_ms": first_due,
            "state": "repaying",
        }
    ]
    entry = after["history"][-1]
    assert (entry["event"], entry["tx_id"]) == ("loan.restructure_accept", accepted.tx_id.hex())
    assert {name: entry[name] for name in amounts} == amounts
    assert (entry["instalments"], entry["first_due_ms"]) == (21, first_due)


def test_the_servicer_withdraws_a_pending_proposal_and_may_propose_again(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    withdrawn = withdraw(chain, bank1, loan_id)
    assert withdrawn.ok, withdrawn.message
    assert domain_events(withdrawn.events) == [
        {"event": "loan.restructure_withdrawn", "loan_id": loan_id, "offered_height": offered_at}
    ]
    view = loan(chain, loan_id)
    assert "restructuring" not in view and view["history"][-1]["event"] == "loan.restructure_withdraw"
    for refused in (accept_terms(chain, borrower, loan_id), withdraw(chain, bank1, loan_id)):
        assert refused.code == "invalid_state"
        assert f"on loan {loan_id[:16]}: no restructuring is pending (the loan's servicer proposes one" in (
            refused.message
        )
    assert propose(chain, bank1, loan_id, rate_bps=700, term_months=11).ok
    assert loan(chain, loan_id)["restructuring"]["rate_bps"] == 700


def test_one_proposal_is_pending_at_a_time(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    second = propose(chain, bank1, loan_id, rate_bps=500, term_months=30)
    assert second.code == "invalid_state"
    assert (
        f"loan.restructure on loan {loan_id[:16]}: its restructuring offered at height {offered_at} is still "
        "pending; the borrower must accept it, or the servicer withdraw it with loan.restructure_withdraw"
    ) in second.message
    assert loan(chain, loan_id)["restructuring"]["rate_bps"] == TERMS["rate_bps"]


def test_a_proposal_survives_the_loan_falling_overdue_and_its_acceptance_cures_the_loan(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok  # while the loan is current
    overdue(chain, loan_id)
    assert loan(chain, loan_id)["restructuring"]["status"] == "pending"
    assert accept_terms(chain, borrower, loan_id).ok
    assert loan(chain, loan_id)["state"] == "repaying"


# Who ---------------------------------------------------------------------------------------


def test_only_the_loans_servicer_proposes_or_withdraws_and_only_its_borrower_accepts(world):
    chain, members, borrower = world
    bank1, bank2, regulator = members[0], members[1], members[2]
    loan_id = open_loan(chain, borrower, bank1)
    servicer_only = "in state 'disbursed' is refused: only the lender whose offer was accepted may do this"
    for sender in (bank2, borrower, regulator):
        refused = propose(chain, sender, loan_id)
        assert refused.code == "forbidden" and servicer_only in refused.message, sender
    assert propose(chain, bank1, loan_id).ok
    for sender in (bank1, bank2, regulator):
        refused = accept_terms(chain, sender, loan_id)
        assert refused.code == "forbidden", sender
        assert "in state 'disbursed' is refused: only the loan's borrower may do this" in refused.message
    for sender in (bank2, borrower):
        refused = withdraw(chain, sender, loan_id)
        assert refused.code == "forbidden" and servicer_only in refused.message, sender
    assert loan(chain, loan_id)["restructuring"]["status"] == "pending"


def test_an_unknown_loan_cannot_be_restructured(world):
    chain, members, _ = world
    refused = propose(chain, members[0], "ab" * 32)
    assert refused.code == "not_found"
    assert "loan.restructure field 'loan_id' names no known loan" in refused.message


# When --------------------------------------------------------------------------------------


def loan_in(chain, borrower, lender, state):
    """A loan of ``lender``'s in ``state``, one in which no schedule is running yet (or any more)."""
    if state == "applied":
        return ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
    if state == "funding":
        return open_loan(chain, borrower, lender, disburse=False, funding_window_ms=60_000)
    if state == "funded":
        return syndicated_loan(chain, borrower, lender)[0]
    loan_id = open_loan(chain, borrower, lender, disburse=state == "closed")
    if state == "closed":
        assert repay(chain, lender, loan_id, loan(chain, loan_id)["amount_owed"]).ok
    return loan_id


@pytest.mark.parametrize("state", ["applied", "accepted", "funding", "funded", "closed"])
def test_a_loan_without_a_running_schedule_cannot_be_restructured(world, state):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = loan_in(chain, borrower, bank1, state)
    assert loan(chain, loan_id)["state"] == state
    refused = propose(chain, bank1, loan_id)
    assert refused.code == "invalid_state", refused
    assert (
        f"(loan.restructure) on loan {loan_id[:16]} in state '{state}' is refused: loan.restructure {ONLY_IN}"
        in (refused.message)
    )
    assert "restructuring" not in loan(chain, loan_id)


def test_a_written_off_loan_is_final_and_a_defaulted_one_may_be_restructured(world):
    chain, members, borrower = world
    bank1 = members[0]
    written = open_loan(chain, borrower, bank1)
    workout = open_loan(chain, borrower, bank1)
    default(chain, written)
    assert loan(chain, workout)["state"] == "defaulted"
    assert write_off(chain, bank1, written).ok
    refused = propose(chain, bank1, written)
    assert refused.code == "invalid_state" and "the loan was written off, which is final" in refused.message
    assert propose(chain, bank1, workout).ok
    assert loan(chain, workout)["restructuring"]["state"] == "defaulted"


# What --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ({"rate_bps": -1, "term_months": 24}, "'rate_bps' must be at least 0"),
        ({"rate_bps": 100_001, "term_months": 24}, "'rate_bps' must be at most 100000"),
        ({"rate_bps": 600, "term_months": 0}, "'term_months' must be at least 1"),
        ({"rate_bps": 600, "term_months": 1201}, "'term_months' must be at most 1200"),
        ({"rate_bps": 600, "term_months": 24, "holiday_months": 13}, "'holiday_months' must be at most 12"),
        ({"rate_bps": 600, "term_months": 24, "holiday_months": -1}, "'holiday_months' must be at least 0"),
        ({"term_months": 24}, "'rate_bps'"),
        ({"rate_bps": 600}, "'term_months'"),
        ({"rate_bps": 600, "term_months": 24, "fee": 5}, "'fee'"),
    ],
)
def test_terms_out_of_bounds_are_malformed_and_left_out_of_the_block(world, terms, expected):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    _, execution = chain.cut([chain.tx(members[0], "loan.restructure", {"loan_id": loan_id, **terms})])
    assert execution.dropped[0].code == "bad_payload"
    assert expected in execution.dropped[0].message


def test_a_term_beyond_the_chains_longest_or_all_holiday_is_refused(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    too_long = propose(chain, bank1, loan_id, rate_bps=600, term_months=481)
    assert too_long.code == "bad_payload"
    assert "loan.restructure field 'term_months' is 481, more than this chain's 480" in too_long.message
    for holiday in (6, 7):
        all_holiday = propose(chain, bank1, loan_id, rate_bps=600, term_months=6, holiday_months=holiday)
        assert all_holiday.code == "bad_payload"
        assert (
            f"loan.restructure field 'holiday_months' is {holiday}: a new schedule of 6 months needs at least "
            "one month with an instalment after its holiday"
        ) in all_holiday.message
    assert "restructuring" not in loan(chain, loan_id)
    assert propose(chain, bank1, loan_id, rate_bps=600, term_months=7, holiday_months=6).ok
    assert propose(chain, bank1, open_loan(chain, borrower, bank1), rate_bps=600, term_months=480).ok


def test_a_proposal_must_change_the_rate_the_term_or_grant_a_holiday(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert repay(chain, bank1, loan_id, loan(chain, loan_id)["schedule"][0]["payment"]).ok
    overdue_later = loan(chain, loan_id)["disbursed_ms"] + 2 * MONTH_MS + 10 * DAY_MS
    chain.head_ms = overdue_later
    chain.run()
    same = propose(chain, bank1, loan_id, rate_bps=900, term_months=11)  # 11 instalments still to pay
    assert same.code == "bad_payload"
    assert (
        f"loan.restructure on loan {loan_id[:16]} changes nothing: 900 bps over 11 instalments without a "
        "holiday are its terms now; change the rate or the term, or grant a holiday (the same terms would "
        "only re-age its arrears)"
    ) in same.message
    for change in (
        {"rate_bps": 899, "term_months": 11},
        {"rate_bps": 900, "term_months": 12},
        {"rate_bps": 900, "term_months": 11, "holiday_months": 1},
    ):
        assert propose(chain, bank1, loan_id, **change).ok, change
        assert withdraw(chain, bank1, loan_id).ok


def test_a_new_principal_above_what_a_loan_may_owe_is_refused(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = ok(chain, borrower, "loan.apply", {**APPLY, "amount": MAX_AMOUNT}).tx_id.hex()
    offer_id = ok(chain, bank1, "loan.offer", {"loan_id": loan_id, "rate_bps": 1200}).tx_id.hex()
    ok(chain, borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
    ok(chain, bank1, "loan.disburse", {"loan_id": loan_id})
    assert propose(chain, bank1, loan_id, rate_bps=100_000, term_months=24, holiday_months=12).ok
    refused = accept_terms(chain, borrower, loan_id)
    assert refused.code == "invalid_state"
    assert (
        f"more than the {MAX_AMOUNT} a loan may owe; the servicer must propose a lower rate"
        in refused.message
    )
    assert loan(chain, loan_id)["restructuring"]["status"] == "pending"


# Lapse ---------------------------------------------------------------------------------------


def test_a_proposal_lapses_when_the_loan_defaults_and_a_new_one_may_be_made(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    default(chain, loan_id)
    view = loan(chain, loan_id)["restructuring"]
    assert (view["status"], view["lapsed_because"]) == (
        "lapsed",
        "the loan defaulted after it was offered (in state overdue)",
    )
    lapsed = (
        f"its restructuring offered at height {offered_at} lapsed: the loan defaulted after it was offered"
    )
    for refused in (accept_terms(chain, borrower, loan_id), withdraw(chain, bank1, loan_id)):
        assert refused.code == "invalid_state" and lapsed in refused.message
    assert propose(chain, bank1, loan_id).ok  # a lapsed proposal does not block a new one
    assert loan(chain, loan_id)["restructuring"]["status"] == "pending"
    assert accept_terms(chain, borrower, loan_id).ok


def test_a_proposal_lapses_when_the_loan_is_closed_or_written_off(world):
    chain, members, borrower = world
    bank1 = members[0]
    closed = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, closed).ok
    assert repay(chain, bank1, closed, loan(chain, closed)["amount_owed"]).ok
    assert loan(chain, closed)["restructuring"] | {"height": None} == {
        **TERMS,
        "height": None,
        "state": "disbursed",
        "status": "lapsed",
        "lapsed_because": "the loan is closed",
    }
    refused = accept_terms(chain, borrower, closed)
    assert (
        refused.code == "invalid_state"
        and f"in state 'closed' is refused: loan.restructure_accept {ONLY_IN}" in (refused.message)
    )
    written = open_loan(chain, borrower, bank1)
    default(chain, written)
    assert propose(chain, bank1, written).ok
    assert write_off(chain, bank1, written).ok
    assert loan(chain, written)["restructuring"]["lapsed_because"] == "the loan is written_off"
    refused = accept_terms(chain, borrower, written)
    assert refused.code == "invalid_state" and "the loan was written off, which is final" in refused.message


def test_a_new_servicer_is_not_bound_by_its_predecessors_proposal(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    assert transfer(chain, bank1, loan_id, bank2).ok
    assert loan(chain, loan_id)["restructuring"]["status"] == "pending"  # an offered transfer changes nothing
    taken = accept(chain, bank2, loan_id)
    assert taken.ok, taken.message
    assert domain_events(taken.events)[-1] == {
        "event": "loan.restructure_lapsed",
        "loan_id": loan_id,
        "offered_height": offered_at,
    }
    view = loan(chain, loan_id)
    assert "restructuring" not in view
    assert view["history"][-1]["restructuring_lapsed"] == offered_at
    refused = accept_terms(chain, borrower, loan_id)
    assert refused.code == "invalid_state" and "no restructuring is pending" in refused.message
    assert propose(chain, bank2, loan_id, rate_bps=700, term_months=18).ok


def test_a_transfer_without_a_pending_proposal_records_what_it_did_before_rules_5(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok and withdraw(chain, bank1, loan_id).ok
    assert transfer(chain, bank1, loan_id, bank2).ok
    taken = accept(chain, bank2, loan_id)
    assert [e["event"] for e in domain_events(taken.events)] == ["loan.transferred"]
    assert "restructuring_lapsed" not in loan(chain, loan_id)["history"][-1]


# Rules versions ------------------------------------------------------------------------------


def test_under_rules_4_the_kinds_are_unknown():
    chain, members = rules_world(version=4)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, members[0])
    for key, kind, payload in (
        (members[0], "loan.restructure", {"loan_id": loan_id, **TERMS}),
        (borrower, "loan.restructure_accept", {"loan_id": loan_id}),
        (members[0], "loan.restructure_withdraw", {"loan_id": loan_id}),
    ):
        tx = chain.tx(key, kind, payload)
        block, execution = chain.cut([tx])
        chain.nonces[key.did] -= 1  # left out, as every kind a later rules version adds: no nonce is used
        assert not block.txs
        assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id)]
        assert f"field 'kind': {kind} exists from rules version 5; block" in execution.dropped[0].message


def test_an_audit_export_of_a_restructured_loan_verifies_with_each_step_and_its_signer(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    assert propose(chain, bank1, loan_id).ok and withdraw(chain, bank1, loan_id).ok
    assert propose(chain, bank1, loan_id).ok and accept_terms(chain, borrower, loan_id).ok
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    assert [(e["kind"], e["signer"]) for e in document["entries"]][-4:] == [
        ("loan.restructure", bank1.did),
        ("loan.restructure_withdraw", bank1.did),
        ("loan.restructure", bank1.did),
        ("loan.restructure_accept", borrower.did),
    ]
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id
