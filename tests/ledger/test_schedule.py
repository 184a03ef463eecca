"""Annuity schedules against the closed form, and payment allocation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain.ledger.schedule import (
    Progress,
    allocate_payment,
    amount_owed,
    annuity_instalment,
    annuity_schedule,
)


def closed_form(amount: int, rate_bps: int, term: int) -> Fraction:
    """A = P·r·(1+r)^n / ((1+r)^n − 1), exactly, with r = rate_bps / 120 000."""
    if rate_bps == 0:
        return Fraction(amount, term)
    r = Fraction(rate_bps, 120_000)
    growth = (1 + r) ** term
    return amount * r * growth / (growth - 1)


LOANS = [
    (100_000, 1200, 12),  # 1 000.00 at 12 % over a year
    (2_500_000, 450, 360),  # 25 000.00 at 4.5 % over 30 years
    (99_999, 1999, 7),
    (1, 2500, 12),  # a single minor unit
    (1_000_000_000_000, 100_000, 480),  # the largest rate over the longest term
    (12_345, 0, 10),  # interest-free
    (10, 0, 3),  # interest-free, amount not divisible by the term
    (700, 36_500, 24),
]


@pytest.mark.parametrize(("amount", "rate_bps", "term"), LOANS)
def test_schedule_matches_closed_form(amount, rate_bps, term):
    rows = annuity_schedule(amount, rate_bps, term)
    regular = math.ceil(closed_form(amount, rate_bps, term))
    assert annuity_instalment(amount, rate_bps, term) == regular
    assert len(rows) == term
    assert sum(row.principal for row in rows) == amount
    assert all(row.payment == regular for row in rows[:-1] if row.outstanding_after > 0)
    assert rows[-1].payment <= regular
    assert rows[-1].outstanding_after == 0
    outstanding = amount
    for row in rows:
        assert row.interest == outstanding * rate_bps // 120_000
        assert row.payment == row.interest + row.principal
        outstanding -= row.principal
        assert row.outstanding_after == outstanding


def test_worked_example():
    rows = annuity_schedule(100_000, 1200, 12)
    assert [r.payment for r in rows] == [8885] * 11 + [8878]
    assert rows[0].interest == 1000 and rows[0].principal == 7885


@pytest.mark.parametrize(("amount", "rate", "term"), [(0, 100, 12), (100, -1, 12), (100, 100, 0)])
def test_bad_parameters_are_refused(amount, rate, term):
    with pytest.raises(ValueError, match="positive amount and term"):
        annuity_schedule(amount, rate, term)


loans = st.tuples(st.integers(1, 10**12), st.integers(0, 100_000), st.integers(1, 480))


@given(loans)
def test_schedule_properties(loan):
    amount, rate_bps, term = loan
    rows = annuity_schedule(amount, rate_bps, term)
    assert sum(row.principal for row in rows) == amount
    assert all(row.payment >= 0 and row.interest >= 0 and row.principal >= 0 for row in rows)
    regular = math.ceil(closed_form(amount, rate_bps, term))
    # Never more than the exact annuity rounded up; all but the last are exactly that.
    assert all(row.payment <= regular for row in rows)
    assert all(row.payment == regular for row in rows[:-1] if row.outstanding_after > 0)
    assert annuity_schedule(amount, rate_bps, term) == rows  # deterministic


@given(loans, st.lists(st.integers(1, 10**12), min_size=1, max_size=30))
def test_allocation_properties(loan, payments):
    rows = annuity_schedule(*loan)
    progress = Progress()
    total_interest = total_principal = 0
    for payment in payments:
        owed = amount_owed(rows, progress)
        if owed == 0:
            break
        payment = min(payment, owed)
        interest, principal, progress = allocate_payment(rows, progress, payment)
        assert interest + principal == payment and interest >= 0 and principal >= 0
        assert amount_owed(rows, progress) == owed - payment
        total_interest += interest
        total_principal += principal
    if amount_owed(rows, progress) == 0:
        assert total_principal == loan[0]
        assert total_interest == sum(row.interest for row in rows)


def test_allocation_is_interest_first_within_an_instalment():
    rows = annuity_schedule(100_000, 1200, 12)
    interest, principal, progress = allocate_payment(rows, Progress(), 600)
    assert (interest, principal) == (600, 0) and progress == Progress(0, 600, 0)
    interest, principal, progress = allocate_payment(rows, progress, 1000)
    assert (interest, principal) == (400, 600) and progress == Progress(0, 1000, 600)
    interest, principal, progress = allocate_payment(rows, progress, 7285 + 50)
    assert (interest, principal) == (50, 7285) and progress == Progress(1, 50, 0)


def test_overpayment_and_non_positive_payments_are_refused():
    rows = annuity_schedule(1_000, 0, 2)
    with pytest.raises(ValueError, match="more than the 1000 still owed"):
        allocate_payment(rows, Progress(), 1_001)
    with pytest.raises(ValueError, match="positive"):
        allocate_payment(rows, Progress(), 0)
