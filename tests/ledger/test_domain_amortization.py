"""Equal-principal schedules in integers (issue 6, item 6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain.ledger.amortization import build_schedule, equal_principal_schedule
from lendchain.ledger.schedule import Progress, allocate_payment, amount_owed, period_interest


def test_example_with_a_remainder():
    rows = equal_principal_schedule(1000, 1200, 3)
    assert [(r.principal, r.interest, r.payment, r.outstanding_after) for r in rows] == [
        (333, 10, 343, 667),
        (333, 6, 339, 334),
        (334, 3, 337, 0),
    ]


@given(st.integers(1, 10**12), st.integers(0, 100_000), st.integers(1, 480))
def test_equal_principal_amortizes_exactly(amount, rate, term):
    rows = equal_principal_schedule(amount, rate, term)
    assert len(rows) == term and rows[-1].outstanding_after == 0
    assert sum(r.principal for r in rows) == amount
    outstanding = amount
    for row in rows:
        assert row.interest == period_interest(outstanding, rate)
        assert row.payment == row.principal + row.interest
        outstanding = row.outstanding_after
    assert all(r.principal == amount // term for r in rows[:-1])
    # Paying every instalment settles the loan under the shared allocation rule.
    progress = Progress()
    for row in rows:
        if row.payment:
            progress = allocate_payment(rows, progress, row.payment)[2]
    assert amount_owed(rows, progress) == 0


def test_unknown_schedule_kind_is_refused():
    with pytest.raises(ValueError, match="balloon"):
        build_schedule("balloon", 100, 100, 2)
