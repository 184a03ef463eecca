"""What a restructuring does to a loan's money and time: the new principal, the new schedule, the
due-loan pass, later payments, default, funders (``restructuring``, rules 5).

``open_loan`` lends 120,000 EUR over 12 months at 900 bps (an annuity of
10,495 a month); ``cured`` restructures it, overdue, into 24 months at
600 bps of which 3 are a payment holiday. A month is 30 days
(``servicing.MONTH_MS``); a loan falls overdue 5 days after an instalment's
due time and defaults 90 days after it; the due-loan pass looks at a loan
in the first block at or after the end of the hour its check falls in
(``due.slot_of``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lendchain.ledger import due, queries
from lendchain.ledger.amortization import build_schedule
from lendchain.ledger.funding import pro_rata
from lendchain.ledger.schedule import period_interest
from lendchain.ledger.servicing import DAY_MS, MONTH_MS, penalty_due
from lendchain.ledger.state import read_value
from tests.ledger.chain import domain_events
from tests.ledger.test_domain_due import at
from tests.ledger.test_loan_transfer import loan, ok, open_loan, repay, syndicated_loan, with_borrower
from tests.ledger.test_recovery import recover
from tests.ledger.test_restructure import accept_terms, propose, stored
from tests.ledger.test_write_off import default, write_off

GRACE_MS = 5 * DAY_MS


@pytest.fixture
def world():
    return with_borrower(version=5)


def overdue_after_one_payment(chain, bank, loan_id):
    """The first instalment paid; a block 10 days after the second fell due: the loan is overdue."""
    assert repay(chain, bank, loan_id, loan(chain, loan_id)["schedule"][0]["payment"]).ok
    chain.head_ms = loan(chain, loan_id)["disbursed_ms"] + 2 * MONTH_MS + 10 * DAY_MS
    chain.run()
    assert loan(chain, loan_id)["state"] == "overdue"


def cured(chain, bank, borrower, loan_id, consenting=(), **terms):
    """Propose ``terms`` (default ``TERMS``), have the funders ``consenting`` consent (a syndicated loan's
    majority, ``funder_consent``) and accept them; the restructuring's record."""
    assert propose(chain, bank, loan_id, **terms).ok
    for funder in consenting:
        ok(chain, funder, "loan.restructure_consent", {"loan_id": loan_id})
    result = accept_terms(chain, borrower, loan_id)
    assert result.ok, result.message
    return loan(chain, loan_id)["restructurings"][-1]


def test_what_was_owed_is_capitalised_with_the_holidays_interest_into_the_new_principal(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue_after_one_payment(chain, bank1, loan_id)
    before = loan(chain, loan_id)
    old_rows = before["schedule"]
    chain.head_ms += 5 * DAY_MS  # penalty accrues meanwhile; the acceptance evaluates the loan first
    record = cured(chain, bank1, borrower, loan_id)
    after = loan(chain, loan_id)
    accepted_at = chain.head_ms

    # What a payoff settles now: the principal, the interest of instalment 2 (in arrears) and of
    # instalment 3 (its period began at the second due time), and all the penalty accrued.
    assert record["principal"] == before["outstanding_principal"] == 120_000 - old_rows[0]["principal"]
    assert record["interest"] == old_rows[1]["interest"] + old_rows[2]["interest"]
    assert record["penalty"] == after["penalty_owed"] > before["penalty_owed"] > 0  # accrued up to now
    assert after["penalty_capitalised"] == record["penalty"]
    assert penalty_due(stored(chain, loan_id)) == 0
    balance = record["principal"] + record["interest"] + record["penalty"]
    months = []
    for _ in range(3):  # the holiday: monthly, at the new rate, on the growing balance
        months.append(balance * 600 // 120_000)
        balance += months[-1]
    assert record["holiday_interest"] == months and all(m > 0 for m in months)
    assert record["new_principal"] == balance
    assert (record["instalments"], record["instalments_kept"], record["late"]) == (21, 1, 1)

    # The paid instalment stays; 21 new ones amortize the new principal at 600 bps after the holiday.
    assert after["schedule"][0] == old_rows[0]
    new_rows = after["schedule"][1:]
    expected = build_schedule("annuity", balance, 600, 21)
    assert [
        (r["number"], r["payment"], r["interest"], r["principal"], r["outstanding_after"]) for r in new_rows
    ] == [
        (1 + row.number, row.payment, row.interest, row.principal, row.outstanding_after) for row in expected
    ]
    assert sum(row["principal"] for row in new_rows) == balance == after["outstanding_principal"]
    assert new_rows[-1]["outstanding_after"] == 0
    assert after["amount_owed"] == sum(row["payment"] for row in new_rows)
    assert [row["due_ms"] for row in new_rows] == [accepted_at + (3 + n) * MONTH_MS for n in range(1, 22)]
    assert record["first_due_ms"] == new_rows[0]["due_ms"]
    assert (after["instalments_paid"], after["progress"]) == (1, [1, 0, 0])
    assert after["capitalised"] == balance - record["principal"]
    assert (after["principal_paid"], after["interest_paid"]) == (
        before["principal_paid"],
        before["interest_paid"],
    )
    # The instalment in arrears counts as late, the paid one stays on time.
    history = queries.lookup(chain.state, "party", borrower.did)["repayment_history"]
    assert (history["on_time"], history["late"], history["restructurings"]) == (1, 1, 1)


@pytest.mark.parametrize("kind", ["annuity", "equal_principal"])
def test_the_new_schedule_keeps_the_loans_schedule_kind_and_adds_up_to_the_new_principal(world, kind):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1, schedule=kind)
    overdue_after_one_payment(chain, bank1, loan_id)
    record = cured(chain, bank1, borrower, loan_id, rate_bps=1500, term_months=7)
    rows = loan(chain, loan_id)["schedule"][1:]
    assert [row["principal"] for row in rows] == [
        row.principal for row in build_schedule(kind, record["new_principal"], 1500, 7)
    ]
    assert sum(row["principal"] for row in rows) == record["new_principal"]
    assert record["holiday_interest"] == [] and record["first_due_ms"] == chain.head_ms + MONTH_MS


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["annuity", "equal_principal"]),
    st.integers(0, 3),  # instalments paid before
    st.integers(0, 200),  # days after the disbursement, then the restructuring
    st.integers(0, 30_000),  # the new rate
    st.integers(1, 60),  # the new term
    st.integers(0, 12),  # the holiday
)
def test_any_restructuring_amortizes_exactly_what_was_owed_over_the_months_after_its_holiday(
    kind, paid, days, rate, term, holiday
):
    chain, members, borrower = with_borrower(version=5)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1, schedule=kind)
    for row in loan(chain, loan_id)["schedule"][:paid]:
        assert repay(chain, bank1, loan_id, row["payment"]).ok
    chain.head_ms += days * DAY_MS
    holiday = min(holiday, term - 1)
    if (rate, term, holiday) == (900, 12 - paid, 0):
        rate += 1  # a proposal must change something
    assert propose(chain, bank1, loan_id, rate_bps=rate, term_months=term, holiday_months=holiday).ok
    before = stored(chain, loan_id)
    assert accept_terms(chain, borrower, loan_id).ok
    view = loan(chain, loan_id)
    record = view["restructurings"][-1]
    assert view["state"] in ("disbursed", "repaying")
    assert record["principal"] == before["amount"] - before["principal_paid"]
    assert record["new_principal"] == (
        record["principal"] + record["interest"] + record["penalty"] + sum(record["holiday_interest"])
    )
    rows = view["schedule"][paid:]
    assert len(rows) == term - holiday and [row["number"] for row in rows] == list(
        range(paid + 1, paid + 1 + len(rows))
    )
    assert sum(row["principal"] for row in rows) == record["new_principal"] == view["outstanding_principal"]
    assert view["amount_owed"] == sum(row["payment"] for row in rows)
    assert [row["due_ms"] for row in rows] == [
        chain.head_ms + (holiday + n) * MONTH_MS for n in range(1, len(rows) + 1)
    ]
    check = stored(chain, loan_id)["next_check_ms"]
    assert check == rows[0]["due_ms"] + GRACE_MS + 1


def test_an_overdue_loan_is_current_again_and_the_due_loan_pass_looks_at_its_first_new_instalment(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue_after_one_payment(chain, bank1, loan_id)
    record = cured(chain, bank1, borrower, loan_id)
    first_due = record["first_due_ms"]
    check = first_due + GRACE_MS + 1
    assert stored(chain, loan_id)["next_check_ms"] == check
    assert due.index_size(lambda key: read_value(chain.state, key)) == 1  # filed once
    old_third_due = loan(chain, loan_id)["disbursed_ms"] + 3 * MONTH_MS
    for moment in (old_third_due + GRACE_MS + DAY_MS, first_due, due.slot_of(check) - 1):
        at(chain, moment)  # not earlier: the old due dates and the holiday pass without a word
        chain.run()
        assert chain.ledger_events == () and loan(chain, loan_id)["state"] == "repaying", moment
    at(chain, due.slot_of(check))  # nor never: the first block after the first new check
    chain.run()
    assert domain_events(chain.ledger_events) == [
        {"event": "loan.overdue", "loan_id": loan_id, "instalment": 2, "due_ms": first_due}
    ]
    assert loan(chain, loan_id)["state"] == "overdue"


def test_later_repayments_follow_the_new_schedule_and_a_missed_one_defaults_it_again(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue_after_one_payment(chain, bank1, loan_id)
    record = cured(chain, bank1, borrower, loan_id)
    rows = loan(chain, loan_id)["schedule"]
    at(chain, record["first_due_ms"])
    paid = repay(chain, bank1, loan_id, rows[1]["payment"])
    assert paid.ok and domain_events(paid.events)[-1]["interest"] == rows[1]["interest"]
    after = loan(chain, loan_id)
    assert (after["state"], after["instalments_paid"], after["on_time"]) == ("repaying", 2, 2)
    assert after["outstanding_principal"] == record["new_principal"] - rows[1]["principal"]
    # Instalment 3 is never paid: the loan defaults 90 days after its due time.
    at(chain, rows[2]["due_ms"] + 90 * DAY_MS + 2 * due.SLOT_MS)
    chain.run()
    defaulted = loan(chain, loan_id)
    assert defaulted["state"] == "defaulted"
    assert [e["event"] for e in domain_events(chain.ledger_events)] == ["loan.overdue", "loan.defaulted"]
    assert defaulted["history"][-1]["due_ms"] == rows[2]["due_ms"]
    assert write_off(chain, bank1, loan_id).ok
    lost = loan(chain, loan_id)["written_off"]
    assert (
        lost["principal"]
        == defaulted["outstanding_principal"]
        == record["new_principal"] - rows[1]["principal"]
    )
    assert lost["interest"] == defaulted["amount_owed"] - lost["principal"]
    # What the restructuring capitalised is recoverable like any written-off amount, and no more.
    everything = lost["principal"] + lost["interest"] + lost["penalty"]
    assert recover(chain, bank1, loan_id, everything + 1).code == "bad_payload"
    assert recover(chain, bank1, loan_id, everything).ok
    recovered = loan(chain, loan_id)
    assert (recovered["state"], recovered["recovered"]["total"], recovered["net_loss"]["total"]) == (
        "written_off",
        everything,
        0,
    )
    refused = propose(chain, bank1, loan_id)  # a written-off loan is not restructured
    assert refused.code == "invalid_state" and "loan.recover" in refused.message


def test_a_defaulted_loan_restructured_is_current_again_and_keeps_its_default_on_record(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    defaulted_ms = loan(chain, loan_id)["defaulted_ms"]
    assert stored(chain, loan_id)["next_check_ms"] is None  # a defaulted loan left the index
    record = cured(chain, bank1, borrower, loan_id, rate_bps=300, term_months=36, holiday_months=6)
    after = loan(chain, loan_id)
    assert (record["state"], after["state"], after["defaulted_ms"]) == ("defaulted", "repaying", defaulted_ms)
    assert record["late"] == 6  # instalments 1..6 were past due plus grace after 200 days
    assert stored(chain, loan_id)["next_check_ms"] == record["first_due_ms"] + GRACE_MS + 1
    history = queries.lookup(chain.state, "party", borrower.did)["repayment_history"]
    assert (history["defaults"], history["late"], history["restructurings"]) == (1, 6, 1)
    factors = {f["factor"]: f for f in queries.lookup(chain.state, "score", borrower.did)["factors"]}
    assert factors["defaults"]["value"] == 1 and factors["defaults"]["points"] == -200
    assert factors["restructurings"] | {"source": None} == {
        "factor": "restructurings",
        "value": 1,
        "points": 0,
        "source": None,
    }
    assert "not weighed" in factors["restructurings"]["source"]


def test_funders_shares_of_the_principal_and_of_later_repayments_stay_pro_rata(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id, commitments = syndicated_loan(chain, borrower, bank1)
    shares = [amount for _, amount in commitments]
    ok(chain, bank1, "loan.disburse", {"loan_id": loan_id})
    overdue_after_one_payment(chain, bank1, loan_id)
    received = [c["received"] for c in loan(chain, loan_id)["funding"]["commitments"]]
    bob = commitments[2][0]
    record = cured(chain, bank1, borrower, loan_id, consenting=[bob])  # with bank1's own share, a majority
    view = loan(chain, loan_id)
    assert [c["received"] for c in view["funding"]["commitments"]] == received  # capitalising pays nobody
    assert [c["amount"] for c in view["funding"]["commitments"]] == shares

    at(chain, record["first_due_ms"])
    payment = view["schedule"][1]["payment"]
    assert repay(chain, bank1, loan_id, payment).ok
    got = [
        c["received"] - before
        for c, before in zip(loan(chain, loan_id)["funding"]["commitments"], received, strict=True)
    ]
    assert got == pro_rata(payment, shares) and sum(got) == payment

    outstanding = loan(chain, loan_id)["outstanding_principal"]
    parts = pro_rata(outstanding, shares)
    exposure = queries.lookup(chain.state, "exposure", borrower.did)
    assert exposure["currencies"]["EUR"]["outstanding"] == outstanding
    assert [(c["did"], c["outstanding"]) for c in exposure["carriers"]] == sorted(
        ((funder.did, part) for (funder, _), part in zip(commitments, parts, strict=True))
    )
    book = queries.lookup(chain.state, "portfolio", bank1.did)["currencies"]["EUR"]
    assert (book["outstanding"], book["funded_by_others"]) == (outstanding, parts[0] + parts[2])
    for (funder, _), part in zip(commitments, parts, strict=True):
        [position] = queries.lookup(chain.state, "positions", funder.did)["positions"]
        assert (position["share"], position["share_of"]) == (part, "outstanding")


def test_a_partial_prepayment_after_the_holiday_lowers_the_new_instalments_on_the_new_due_dates(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue_after_one_payment(chain, bank1, loan_id)
    record = cured(chain, bank1, borrower, loan_id)
    rows = loan(chain, loan_id)["schedule"]
    at(chain, record["first_due_ms"] - 10 * DAY_MS)  # in the first period after the holiday
    prepaid = chain.run_one(chain.tx(bank1, "loan.prepay", {"loan_id": loan_id, "amount": 40_000}))
    assert prepaid.ok, prepaid.message
    rescheduled = domain_events(prepaid.events)[0]
    assert rescheduled["settled_instalments"] == 2  # the first new period had begun
    after = loan(chain, loan_id)
    assert after["reschedules"][-1] == [2, after["outstanding_principal"]]
    assert [row["due_ms"] for row in after["schedule"]] == [row["due_ms"] for row in rows]
    assert after["schedule"][2]["payment"] < rows[2]["payment"]
    assert sum(row["principal"] for row in after["schedule"][2:]) == after["outstanding_principal"]
    assert after["rate_bps"] == 600 and after["schedule"][2]["interest"] == period_interest(
        after["outstanding_principal"], 600
    )


def test_a_payoff_during_the_holiday_settles_the_capitalised_principal_and_closes_the_loan(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue_after_one_payment(chain, bank1, loan_id)
    record = cured(chain, bank1, borrower, loan_id)
    first_new = loan(chain, loan_id)["schedule"][1]
    at(chain, chain.head_ms + MONTH_MS)
    settles = record["new_principal"] + first_new["interest"]  # the first unpaid instalment's interest always
    more = chain.run_one(chain.tx(bank1, "loan.prepay", {"loan_id": loan_id, "amount": settles + 1}))
    assert more.code == "bad_payload"
    assert (
        f"the {settles} that settles loan {loan_id[:16]} now (penalty 0, interest {first_new['interest']}, "
        in more.message
    )
    assert chain.run_one(chain.tx(bank1, "loan.prepay", {"loan_id": loan_id, "amount": settles})).ok
    after = loan(chain, loan_id)
    assert (after["state"], after["outstanding_principal"], after["amount_owed"]) == ("closed", 0, 0)
    assert stored(chain, loan_id)["next_check_ms"] is None


def test_a_second_restructuring_keeps_the_first_ones_rows_and_due_dates_as_history(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue_after_one_payment(chain, bank1, loan_id)
    first = cured(chain, bank1, borrower, loan_id)
    rows = loan(chain, loan_id)["schedule"]
    at(chain, first["first_due_ms"])
    assert repay(chain, bank1, loan_id, rows[1]["payment"]).ok
    at(chain, first["first_due_ms"] + MONTH_MS + 20 * DAY_MS)
    chain.run()
    second = cured(chain, bank1, borrower, loan_id, rate_bps=400, term_months=12)
    after = loan(chain, loan_id)
    assert (second["old"], second["instalments_kept"]) == ({"rate_bps": 600, "term_months": 22}, 2)
    assert after["schedule"][:2] == rows[:2]  # paid under the original terms and the first restructuring
    assert [row["due_ms"] for row in after["schedule"][2:]] == [
        chain.head_ms + n * MONTH_MS for n in range(1, 13)
    ]
    assert after["term_months"] == 14 and after["reschedules"] == [
        [1, first["new_principal"], 600, 21],
        [2, second["new_principal"], 400, 12],
    ]
    assert queries.lookup(chain.state, "party", borrower.did)["repayment_history"]["restructurings"] == 2
