"""The repayment path's cheaper steps give what the steps they replaced gave, on varied inputs.

``allocate``/``owed_from`` (a repayment reads the loan's progress as three numbers),
``due_ms`` without a walk of an empty restructuring list, ``evaluate``/``next_check_ms``
handed the grace period by their caller (and ``next_check_ms`` without min/max calls),
``due.reschedule`` updating its caller's own dict, and ``schedule_rows`` (the cached rows of
a loan never rescheduled): each against the code it replaced (kept here as the reference)
or its other form.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendchain.ledger import due
from lendchain.ledger.amortization import build_schedule, loan_schedule, schedule_rows
from lendchain.ledger.context import BlockOverlay, TxContext
from lendchain.ledger.schedule import Progress, allocate, allocate_payment, amount_owed, owed_from
from lendchain.ledger.servicing import (
    DAY_MS,
    MONTH_MS,
    SERVICED_STATES,
    due_ms,
    evaluate,
    grace_of,
    next_check_ms,
    periods_from,
    servicing_param,
)
from lendchain.ledger.state import MemoryState


def reference_amount_owed(schedule, progress):
    rest = sum(row.payment for row in schedule[progress.instalments_paid :])
    return rest - progress.interest_paid - progress.principal_paid


def reference_allocate_payment(schedule, progress, amount):
    """``schedule.allocate_payment`` before the repayment's fast path."""
    if amount <= 0:
        raise ValueError(f"a payment must be positive, got {amount}")
    interest = principal = 0
    paid, on_interest, on_principal = progress
    left = amount
    while left > 0:
        if paid == len(schedule):
            raise ValueError(
                f"a payment of {amount} is more than the {reference_amount_owed(schedule, progress)} still owed"
            )
        row = schedule[paid]
        step = min(left, row.interest - on_interest)
        on_interest += step
        interest += step
        left -= step
        step = min(left, row.principal - on_principal)
        on_principal += step
        principal += step
        left -= step
        if on_interest == row.interest and on_principal == row.principal:
            paid, on_interest, on_principal = paid + 1, 0, 0
    return interest, principal, Progress(paid, on_interest, on_principal)


def reference_due_ms(loan, number):
    for record in reversed(loan.get("restructurings", ())):
        kept = record["instalments_kept"]
        if number > kept:
            return record["first_due_ms"] + (number - kept - 1) * MONTH_MS
    return loan["disbursed_ms"] + number * MONTH_MS


def outcome(call, *args):
    try:
        return call(*args)
    except ValueError as e:
        return ("refused", str(e))


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["annuity", "equal_principal"]),
    amount=st.integers(1, 10**9),
    rate_bps=st.integers(0, 40_000),
    term=st.integers(1, 60),
    payments=st.lists(st.integers(-5, 3 * 10**8), min_size=1, max_size=12),
)
def test_allocation_and_amount_owed_match_the_reference(kind, amount, rate_bps, term, payments):
    schedule = build_schedule(kind, amount, rate_bps, term)
    progress = Progress()
    for payment in payments:
        assert amount_owed(schedule, progress) == reference_amount_owed(schedule, progress)
        assert owed_from(schedule, *progress) == reference_amount_owed(schedule, progress)
        expected = outcome(reference_allocate_payment, schedule, progress, payment)
        assert outcome(allocate_payment, schedule, progress, payment) == expected
        if expected[0] != "refused":
            interest, principal, after = expected
            assert outcome(allocate, schedule, *progress, payment) == (interest, principal, *after)
            progress = after
        else:
            assert outcome(allocate, schedule, *progress, payment) == expected


def test_a_payment_past_the_end_names_what_was_owed_from_a_part_paid_instalment():
    schedule = build_schedule("annuity", 100_000, 1200, 12)
    progress = reference_allocate_payment(schedule, Progress(), 12_345)[2]
    owed = reference_amount_owed(schedule, progress)
    with pytest.raises(ValueError) as refused:
        allocate_payment(schedule, progress, owed + 1)
    assert str(refused.value) == f"a payment of {owed + 1} is more than the {owed} still owed"


RESTRUCTURINGS = st.lists(
    st.fixed_dictionaries({"instalments_kept": st.integers(0, 30), "first_due_ms": st.integers(0, 10**13)}),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    disbursed_ms=st.integers(0, 10**13),
    number=st.integers(1, 80),
    restructurings=st.one_of(st.none(), RESTRUCTURINGS),
)
def test_due_ms_matches_the_reference(disbursed_ms, number, restructurings):
    loan = {"disbursed_ms": disbursed_ms}
    if restructurings is not None:  # absent, an empty list and a real one
        loan["restructurings"] = restructurings
    assert due_ms(loan, number) == reference_due_ms(loan, number)


def serviced_loan(state, paid, disbursed_ms):
    return {
        "state": state,
        "progress": [paid, 10, 0],
        "term_months": 12,
        "amount": 100_000,
        "rate_bps": 1200,
        "disbursed_ms": disbursed_ms,
        "history_len": 3,
        "principal_paid": 0,
        "interest_paid": 0,
    }


@pytest.mark.parametrize("state", ["disbursed", "repaying", "overdue", "closed"])
@pytest.mark.parametrize("paid", [0, 3, 11, 12])
@pytest.mark.parametrize("months_late", [0, 1, 2, 5])
def test_evaluation_and_next_check_given_the_grace_period_are_the_same(state, paid, months_late):
    params = {"grace_days": 5, "default_days": 90, "penalty_bps": 500}
    disbursed = 1_000 * DAY_MS
    now = disbursed + (paid + 1 + months_late) * MONTH_MS + 7 * DAY_MS
    loan = serviced_loan(state, paid, disbursed)
    grace_ms = grace_of(params, loan)
    assert grace_ms == 5 * DAY_MS
    assert next_check_ms(loan, now, params, grace_ms) == next_check_ms(loan, now, params)

    def run(grace):
        context = TxContext(BlockOverlay(MemoryState()), b"\x01" * 32, 9, now, params)
        if grace is None:
            after = evaluate(context, b"\x02" * 32, loan)
        else:
            after = evaluate(context, b"\x02" * 32, loan, grace)
        return after, context.writes, context.events

    assert run(grace_ms) == run(None)


@pytest.mark.parametrize(
    ("old_ms", "new_ms"),
    [(None, 5 * due.SLOT_MS), (5 * due.SLOT_MS, 9 * due.SLOT_MS), (5 * due.SLOT_MS, None), (None, None)],
)
def test_rescheduling_the_callers_own_loan_gives_the_same_loan_and_index(old_ms, new_ms):
    def run(own):
        context = TxContext(BlockOverlay(MemoryState()), b"\x01" * 32, 9, 0, {})
        loan = {"state": "repaying"}
        if old_ms is not None:
            loan = due.reschedule(context, b"\x02" * 32, loan, old_ms)
        before = dict(loan)
        after = due.reschedule(context, b"\x02" * 32, loan, new_ms, own=own)
        if own:
            assert after is loan
        else:
            assert loan == before  # the copying form leaves its argument alone
        return after, context.writes

    assert run(True) == run(False)


def reference_next_check_ms(loan, now_ms, params):
    """``servicing.next_check_ms`` before its min and max were written out."""
    if loan["state"] not in SERVICED_STATES:
        return None
    first_unpaid = loan["progress"][0] + 1
    term = loan["term_months"]
    if first_unpaid > term:
        return None
    grace_ms = servicing_param(params, "grace_days", loan) * DAY_MS
    kept, start = periods_from(loan)
    number = max(first_unpaid, kept + -(-(now_ms - grace_ms - start) // MONTH_MS))
    checks = []
    if number <= term:
        checks.append(reference_due_ms(loan, number) + grace_ms + 1)
    if loan["state"] == "overdue":
        checks.append(
            reference_due_ms(loan, first_unpaid) + servicing_param(params, "default_days", loan) * DAY_MS + 1
        )
    return max(min(checks), now_ms + 1) if checks else None


@settings(max_examples=300, deadline=None)
@given(
    state=st.sampled_from(["disbursed", "repaying", "overdue", "closed", "defaulted"]),
    paid=st.integers(0, 14),
    term=st.integers(1, 13),
    disbursed_ms=st.integers(0, 10**12),
    elapsed_ms=st.integers(-MONTH_MS, 20 * MONTH_MS),
    grace_days=st.integers(0, 40),
    default_days=st.integers(0, 200),
    restructured=st.booleans(),
)
def test_next_check_matches_the_reference(
    state, paid, term, disbursed_ms, elapsed_ms, grace_days, default_days, restructured
):
    loan = serviced_loan(state, paid, disbursed_ms)
    loan["term_months"] = term
    if restructured:
        loan["restructurings"] = [
            {"instalments_kept": min(paid, 2), "first_due_ms": disbursed_ms + 4 * MONTH_MS}
        ]
    params = {"grace_days": grace_days, "default_days": default_days}
    now = disbursed_ms + elapsed_ms
    expected = reference_next_check_ms(loan, now, params)
    assert next_check_ms(loan, now, params) == expected
    assert next_check_ms(loan, now, params, grace_days * DAY_MS) == expected


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([None, "annuity", "equal_principal", "balloon"]),
    amount=st.integers(-2, 10**9),
    rate_bps=st.integers(-2, 40_000),
    term=st.integers(-1, 60),
    reschedules=st.one_of(st.none(), st.just([]), st.just([[1, 5_000]])),
)
def test_schedule_rows_are_the_loans_schedule(kind, amount, rate_bps, term, reschedules):
    loan = {"amount": amount, "rate_bps": rate_bps, "term_months": term}
    if kind is not None:
        loan["schedule_kind"] = kind
    if reschedules is not None:
        loan["reschedules"] = reschedules
    expected = outcome(loan_schedule, loan)
    got = outcome(schedule_rows, loan)
    assert (list(got) if expected[0] != "refused" else got) == expected
