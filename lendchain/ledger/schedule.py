"""Annuity repayment schedules in integer arithmetic.

A loan of ``amount`` minor units at ``rate_bps`` basis points a year over
``term`` months is repaid in ``term`` monthly instalments. The periodic rate
is ``r = rate_bps / 120_000`` (a year is 12 equal periods). The closed-form
annuity instalment is ``A = P·r·(1+r)^n / ((1+r)^n − 1)`` (``P/n`` at 0%).

Rounding rule, chosen so the borrower is never charged more than the exact
schedule and the debt is always fully amortized in ``term`` periods:

- the regular instalment is ``A`` rounded UP to a whole minor unit;
- each period's interest is ``outstanding · rate_bps / 120_000`` rounded DOWN;
- principal = instalment − interest, never more than what is outstanding;
- the last instalment is whatever is left (outstanding + its interest), so it
  absorbs all rounding; since every earlier period repaid at least the exact
  principal, it is never larger than the regular instalment.

Everything is computed exactly with integers; there are no floats.
"""

from __future__ import annotations

from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple

BPS_PER_UNIT = 10_000
PERIODS_PER_YEAR = 12
_PERIOD_DENOMINATOR = BPS_PER_UNIT * PERIODS_PER_YEAR


class Instalment(NamedTuple):
    """One row of a schedule (a named tuple: a schedule that misses the cache builds a row per
    month, and a frozen dataclass costs four times as much to build)."""

    number: int  # 1-based
    payment: int
    interest: int
    principal: int
    outstanding_after: int

    def to_value(self) -> dict[str, int]:
        return {
            "number": self.number,
            "payment": self.payment,
            "interest": self.interest,
            "principal": self.principal,
            "outstanding_after": self.outstanding_after,
        }


def period_interest(outstanding: int, rate_bps: int) -> int:
    """One month's interest on ``outstanding``, rounded down."""
    return outstanding * rate_bps // _PERIOD_DENOMINATOR


def annuity_instalment(amount: int, rate_bps: int, term: int) -> int:
    """The regular instalment: the closed-form annuity rounded up to a minor unit."""
    if amount <= 0 or term <= 0 or rate_bps < 0:
        raise ValueError("an annuity needs a positive amount and term and a non-negative rate")
    if rate_bps == 0:
        return -(-amount // term)
    # With r = b/D: (1+r)^n = (D+b)^n / D^n, so A = P·b·(D+b)^n / (D·((D+b)^n − D^n)).
    growth = (_PERIOD_DENOMINATOR + rate_bps) ** term
    numerator = amount * rate_bps * growth
    denominator = _PERIOD_DENOMINATOR * (growth - _PERIOD_DENOMINATOR**term)
    return -(-numerator // denominator)


def annuity_schedule(amount: int, rate_bps: int, term: int) -> list[Instalment]:
    """All ``term`` instalments under the rounding rule in the module docstring."""
    return list(_annuity_schedule(amount, rate_bps, term))


@lru_cache(maxsize=4096)
def _annuity_schedule(amount: int, rate_bps: int, term: int) -> tuple[Instalment, ...]:
    regular = annuity_instalment(amount, rate_bps, term)
    outstanding = amount
    rows = []
    for number in range(1, term + 1):
        interest = period_interest(outstanding, rate_bps)
        if number == term:
            principal = outstanding
        else:
            principal = min(regular - interest, outstanding)
        outstanding -= principal
        rows.append(Instalment(number, principal + interest, interest, principal, outstanding))
    return tuple(rows)


# The cached rows themselves (a tuple), for a reader that never changes them (``amortization.schedule_rows``).
annuity_rows = _annuity_schedule


class Progress(NamedTuple):
    """How far repayment has got: whole instalments paid, and what of the current one."""

    instalments_paid: int = 0
    interest_paid: int = 0  # of the current instalment
    principal_paid: int = 0  # of the current instalment


_PAYMENT = itemgetter(1)  # ``Instalment.payment``, read in C rather than by a generator step per row


def amount_owed(schedule: list[Instalment], progress: Progress) -> int:
    """Everything still to pay under the schedule, from ``progress`` on."""
    return owed_from(schedule, *progress)


def owed_from(schedule: list[Instalment], paid: int, on_interest: int, on_principal: int) -> int:
    """``amount_owed`` on the progress's three numbers (a repayment reads them from the loan)."""
    return sum(map(_PAYMENT, schedule[paid:])) - on_interest - on_principal


def allocate_payment(
    schedule: list[Instalment], progress: Progress, amount: int
) -> tuple[int, int, Progress]:
    """Split ``amount`` into (interest, principal) and the new progress.

    Payments go to instalments in order; within one instalment interest is
    paid first, then principal. A payment may cover several instalments.
    Scheduled interest is owed in full even when paid early (first cut: no
    prepayment discount). Raises ValueError for a non-positive amount or one
    above ``amount_owed``.
    """
    interest, principal, paid, on_interest, on_principal = allocate(schedule, *progress, amount)
    return interest, principal, Progress(paid, on_interest, on_principal)


def allocate(
    schedule: list[Instalment], paid: int, on_interest: int, on_principal: int, amount: int
) -> tuple[int, int, int, int, int]:
    """``allocate_payment`` on the progress's three numbers, giving (interest, principal) and the
    new progress's three: for a repayment, which keeps progress as the loan's list of three."""
    if amount <= 0:
        raise ValueError(f"a payment must be positive, got {amount}")
    interest = principal = 0
    left = amount
    rows = len(schedule)
    while left > 0:
        # Too much shows as running past the last row. Every row's payment is its interest
        # plus its principal, so that is exactly amount > amount_owed, found without a
        # second sum over the schedule (a repayment has summed it once already).
        if paid == rows:
            # Every row from the start is paid in full now: what was owed is what was allocated.
            raise ValueError(f"a payment of {amount} is more than the {amount - left} still owed")
        row = schedule[paid]
        # min(left, what the row still wants), twice, written out: a builtin call each costs
        # more than the rest of the step.
        step = row.interest - on_interest
        if left < step:
            step = left
        on_interest += step
        interest += step
        left -= step
        step = row.principal - on_principal
        if left < step:
            step = left
        on_principal += step
        principal += step
        left -= step
        if on_interest == row.interest and on_principal == row.principal:
            paid, on_interest, on_principal = paid + 1, 0, 0
    return interest, principal, paid, on_interest, on_principal
