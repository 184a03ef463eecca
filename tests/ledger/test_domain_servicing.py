"""Servicing by block time: on-time closure, late payment with penalty, default (issue 6, item 6)."""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.servicing import DAY_MS, MONTH_MS, YEAR_MS
from tests.ledger.chain import Chain, domain_events, make_genesis, seeded_key

APPLY = {"amount": 120_000, "currency": "EUR", "term_months": 12, "purpose": "a kitchen"}


@pytest.fixture
def world():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    lender = members[0]
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    offer_id = chain.run_one(
        chain.tx(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 1200})
    ).tx_id.hex()
    assert chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})).ok
    assert chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id})).ok
    return chain, borrower, members, loan_id


def loan(chain, loan_id):
    return queries.lookup(chain.state, "loan", loan_id)


def at(chain, ms: int) -> None:
    """Make the next block's timestamp ``ms`` (the test chain adds 1000 ms to its head)."""
    chain.head_ms = ms - 1000


def history(chain, did):
    return queries.lookup(chain.state, "party", did)["repayment_history"]


def test_on_time_repayment_to_closure_counts_in_history_and_score(world):
    chain, borrower, members, loan_id = world
    view = loan(chain, loan_id)
    for row in view["schedule"]:
        at(chain, view["disbursed_ms"] + row["number"] * MONTH_MS - DAY_MS)
        result = chain.run_one(
            chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": row["payment"]})
        )
        assert result.ok and domain_events(result.events)[-1]["penalty"] == 0
    assert loan(chain, loan_id)["state"] == "closed"
    assert history(chain, borrower.did) == {
        "on_time": 12,
        "late": 0,
        "defaults": 0,
        "closed": 1,
        "written_off": 0,
        "recovered": {},
        "restructurings": 0,
    }
    factors = {
        f["factor"]: f["points"] for f in queries.lookup(chain.state, "score", borrower.did)["factors"]
    }
    assert factors["on_time"] == 60


def test_late_payment_accrues_penalty_goes_overdue_and_is_cured(world):
    chain, borrower, members, loan_id = world
    view = loan(chain, loan_id)
    first = view["schedule"][0]["payment"]
    due = view["disbursed_ms"] + MONTH_MS
    # Within grace (5 days): nothing happens.
    at(chain, due + 4 * DAY_MS)
    assert chain.run_one(chain.tx(members[1], "loan.service", {"loan_id": loan_id})).ok
    assert loan(chain, loan_id)["state"] == "disbursed"
    at(chain, due + 15 * DAY_MS)
    serviced = chain.run_one(chain.tx(members[1], "loan.service", {"loan_id": loan_id}))
    # The block's due-loan pass ran first: the tx finds the loan overdue already.
    assert [e["event"] for e in chain.ledger_events] == ["loan.overdue", "loan.history"]
    assert [e["event"] for e in serviced.events] == ["loan.serviced"]
    penalty = first * (10 * DAY_MS) * 1000 // (YEAR_MS * 10_000)
    view = loan(chain, loan_id)
    assert view["state"] == "overdue" and view["penalty_owed"] == penalty > 0
    assert view["history"][-1]["event"] == "loan.overdue"
    # Penalty first, then the instalment: the loan is back within grace.
    paid = chain.run_one(chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": penalty + first}))
    prepaid = domain_events(paid.events)[-1]
    assert paid.ok and prepaid["penalty"] == penalty and prepaid["state"] == "repaying"
    assert loan(chain, loan_id)["penalty_paid"] == penalty
    assert history(chain, borrower.did)["late"] == 1


def test_penalty_accrues_per_unpaid_instalment_from_its_own_due_date(world):
    chain, _, members, loan_id = world
    view = loan(chain, loan_id)
    payment = view["schedule"][0]["payment"]
    due1 = view["disbursed_ms"] + MONTH_MS
    at(chain, due1 + 40 * DAY_MS)  # instalment 1 late 35 days past grace, instalment 2 late 5
    chain.run_one(chain.tx(members[1], "loan.service", {"loan_id": loan_id}))
    expected = (payment * 35 * DAY_MS + payment * 5 * DAY_MS) * 1000 // (YEAR_MS * 10_000)
    assert loan(chain, loan_id)["penalty_owed"] == expected


def test_default_past_threshold_is_recorded_and_lowers_the_score(world):
    chain, borrower, members, loan_id = world
    before = queries.lookup(chain.state, "score", borrower.did)["score"]
    at(chain, loan(chain, loan_id)["disbursed_ms"] + MONTH_MS + 91 * DAY_MS)
    chain.run()  # an empty block: the due-loan pass alone finds the loan 91 days late
    assert [e["event"] for e in chain.ledger_events] == ["loan.overdue", "loan.defaulted", "loan.history"]
    assert loan(chain, loan_id)["state"] == "defaulted"
    assert history(chain, borrower.did)["defaults"] == 1
    assert queries.lookup(chain.state, "score", borrower.did)["score"] == before - 200
    # Servicing stops; recoveries are still recorded.
    refused = chain.run_one(chain.tx(members[2], "loan.service", {"loan_id": loan_id}))
    assert refused.code == "invalid_state" and "'defaulted'" in refused.message
    assert chain.run_one(chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": 100})).ok
    assert loan(chain, loan_id)["state"] == "defaulted"


def test_overpayment_is_refused_naming_the_amount_owed_with_penalty(world):
    chain, _, members, loan_id = world
    view = loan(chain, loan_id)
    at(chain, view["disbursed_ms"] + MONTH_MS + 10 * DAY_MS)
    refused = chain.run_one(chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": 10**9}))
    assert refused.code == "bad_payload" and "'amount'" in refused.message
    owed = int(refused.message.split("than the ")[1].split(" ")[0])
    assert owed > view["amount_owed"]  # the penalty is part of what is owed
    closed = chain.run_one(chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": owed}))
    assert closed.ok and domain_events(closed.events)[-1]["state"] == "closed"


@pytest.mark.parametrize(
    ("signer", "code"),
    [("borrower", "forbidden"), ("stranger", "forbidden"), ("member", "ok")],
)
def test_who_may_trigger_servicing(world, signer, code):
    chain, borrower, members, loan_id = world
    key = {"borrower": borrower, "stranger": seeded_key(9), "member": members[3]}[signer]
    assert chain.run_one(chain.tx(key, "loan.service", {"loan_id": loan_id})).code == code


def test_servicing_a_loan_that_is_not_disbursed_is_refused(world):
    chain, borrower, members, _ = world
    applied = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    refused = chain.run_one(chain.tx(members[0], "loan.service", {"loan_id": applied}))
    assert refused.code == "invalid_state" and "'applied'" in refused.message


def test_reminders_list_the_next_instalments_for_borrower_and_servicer(world):
    chain, borrower, members, loan_id = world
    view = loan(chain, loan_id)
    first = view["schedule"][0]["payment"]
    chain.run_one(chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": first - 10}))
    for did, role in ((borrower.did, "borrower"), (members[0].did, "servicer")):
        reminders = queries.lookup(chain.state, "reminders", did)
        assert [(r["loan_id"], r["role"]) for r in reminders["loans"]] == [(loan_id, role)]
        instalments = reminders["loans"][0]["instalments"]
        assert instalments[0] == {"number": 1, "due_ms": view["disbursed_ms"] + MONTH_MS, "amount": 10}
        assert [i["number"] for i in instalments] == [1, 2, 3]
    assert queries.lookup(chain.state, "reminders", members[2].did) == {"did": members[2].did, "loans": []}
    assert queries.lookup(chain.state, "reminders", seeded_key(9).did) is None
    assert queries.lookup(chain.state, "party", borrower.did)["reminders"][0]["loan_id"] == loan_id


def test_prepayment_settles_principal_and_begun_interest_and_waives_the_rest(world):
    chain, borrower, members, loan_id = world
    view = loan(chain, loan_id)
    schedule = view["schedule"]
    first = schedule[0]
    at(chain, view["disbursed_ms"] + MONTH_MS - DAY_MS)
    assert chain.run_one(
        chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": first["payment"]})
    ).ok
    # In the second period: its interest is owed, the ten later periods' interest is waived.
    at(chain, view["disbursed_ms"] + MONTH_MS + 3 * DAY_MS)
    owed = first["outstanding_after"] + schedule[1]["interest"]
    refused = chain.run_one(chain.tx(members[0], "loan.prepay", {"loan_id": loan_id, "amount": owed + 1}))
    assert refused.code == "bad_payload" and f"more than the {owed} that settles" in refused.message
    assert (
        chain.run_one(chain.tx(borrower, "loan.prepay", {"loan_id": loan_id, "amount": owed})).code
        == "forbidden"
    )
    result = chain.run_one(chain.tx(members[0], "loan.prepay", {"loan_id": loan_id, "amount": owed}))
    assert result.ok and domain_events(result.events)[-1]["state"] == "closed"
    view = loan(chain, loan_id)
    assert view["principal_paid"] == APPLY["amount"] and view["amount_owed"] == 0
    assert view["interest_paid"] == first["interest"] + schedule[1]["interest"]
    assert view["interest_paid"] < sum(row["interest"] for row in schedule)
    assert history(chain, borrower.did) == {
        "on_time": 1,
        "late": 0,
        "defaults": 0,
        "closed": 1,
        "written_off": 0,
        "recovered": {},
        "restructurings": 0,
    }


def test_equal_principal_loan_runs_to_closure(world):
    chain, borrower, members, _ = world
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    offer = {"loan_id": loan_id, "rate_bps": 1200, "schedule": "equal_principal"}
    offer_id = chain.run_one(chain.tx(members[1], "loan.offer", offer)).tx_id.hex()
    chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id}))
    chain.run_one(chain.tx(members[1], "loan.disburse", {"loan_id": loan_id}))
    view = loan(chain, loan_id)
    assert view["schedule_kind"] == "equal_principal"
    assert {row["principal"] for row in view["schedule"]} == {10_000}
    payments = [row["payment"] for row in view["schedule"]]
    assert payments == sorted(payments, reverse=True) and payments[0] == 10_000 + 1200
    for payment in payments:
        assert chain.run_one(chain.tx(members[1], "loan.repay", {"loan_id": loan_id, "amount": payment})).ok
    assert loan(chain, loan_id)["state"] == "closed"
