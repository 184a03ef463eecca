"""Which repayment schedule a loan follows: annuity or equal principal.

``annuity`` is ``schedule.annuity_schedule`` (equal instalments). With
``equal_principal`` every instalment repays ``amount // term`` of principal
(the last one also the remainder ``amount % term``) plus that month's
interest on what is outstanding, rounded down as in ``schedule`` — so
instalments fall over time and the debt is exactly amortized in ``term``
periods. Both give ``schedule.Instalment`` rows, so allocation and servicing
work the same on either. Integers only.

A partial prepayment (``servicing``) records ``[settled, principal]`` in the
loan's ``reschedules``: the first ``settled`` instalments stay as they were,
and the remaining ``principal`` is amortized again, by the same kind and rate
and the same rounding rules, over the periods left of the original term
(numbered ``settled + 1`` … ``term``). The term is kept and the instalments
fall: the borrower's due dates do not move, only what is due on them.

A restructuring (``restructuring``, rules 5) appends ``[kept, principal,
rate_bps, instalments]`` to the same list: the first ``kept`` instalments
stay, and ``principal`` is amortized by the same kind at the new rate over
``instalments`` more, numbered ``kept + 1`` …; the loan's ``rate_bps`` and
``term_months`` (its number of instalments) become those, and a later
partial prepayment amortizes again at them. So the schedule is rebuilt from
the terms the loan had before its first restructuring (kept there as
``old``) by applying every entry in order.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from lendchain.ledger.schedule import Instalment, annuity_rows, annuity_schedule, period_interest

SCHEDULE_KINDS = ("annuity", "equal_principal")


def equal_principal_schedule(amount: int, rate_bps: int, term: int) -> list[Instalment]:
    if amount <= 0 or term <= 0 or rate_bps < 0:
        raise ValueError("a schedule needs a positive amount and term and a non-negative rate")
    return list(_equal_principal(amount, rate_bps, term))


@lru_cache(maxsize=4096)
def _equal_principal(amount: int, rate_bps: int, term: int) -> tuple[Instalment, ...]:
    share = amount // term
    outstanding = amount
    rows = []
    for number in range(1, term + 1):
        interest = period_interest(outstanding, rate_bps)
        principal = outstanding if number == term else share
        outstanding -= principal
        rows.append(Instalment(number, principal + interest, interest, principal, outstanding))
    return tuple(rows)


def build_schedule(kind: str, amount: int, rate_bps: int, term: int) -> list[Instalment]:
    if kind == "equal_principal":
        return equal_principal_schedule(amount, rate_bps, term)
    if kind == "annuity":
        return annuity_schedule(amount, rate_bps, term)
    raise ValueError(f"unknown schedule kind {kind!r}; known: {', '.join(SCHEDULE_KINDS)}")


_CACHED_ROWS = {"annuity": annuity_rows, "equal_principal": _equal_principal}


def schedule_rows(loan: dict[str, Any]) -> tuple[Instalment, ...] | list[Instalment]:
    """``loan_schedule`` for a reader that never changes it: a loan never rescheduled nor
    restructured (the usual one) gets the cached rows themselves, without the list copy and the
    three calls that build it. Checked like ``build_schedule`` would (a kind, amount, rate or
    term it refuses takes the same path and is refused the same way)."""
    if "reschedules" in loan or "restructurings" in loan:
        return loan_schedule(loan)
    rows = _CACHED_ROWS.get(loan.get("schedule_kind", "annuity"))
    amount, rate, term = loan["amount"], loan["rate_bps"], loan["term_months"]
    if rows is None or amount <= 0 or term <= 0 or rate < 0:
        return loan_schedule(loan)
    return rows(amount, rate, term)


def loan_schedule(loan: dict[str, Any]) -> list[Instalment]:
    """The schedule of a loan whose offer was accepted, after its partial prepayments and
    restructurings (if any)."""
    kind = loan.get("schedule_kind", "annuity")  # loans from before schedule kinds are annuities
    restructurings = loan.get("restructurings")
    first = restructurings[0]["old"] if restructurings else loan
    rate, term = first["rate_bps"], first["term_months"]
    rows = build_schedule(kind, loan["amount"], rate, term)
    for entry in loan.get("reschedules", []):
        settled, principal = entry[0], entry[1]
        if len(entry) == 4:  # a restructuring: its rate and number of instalments from here on
            rate, term = entry[2], settled + entry[3]
        rest = build_schedule(kind, principal, rate, term - settled)
        rows = rows[:settled] + [row._replace(number=settled + row.number) for row in rest]
    return rows
