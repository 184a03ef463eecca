"""Forborne exposures: a restructured loan's forbearance status, judged from its record at a time.

Supervisors report restructured loans apart, as *forborne exposures*
(EBA ITS on supervisory reporting, FINREP Annex V: forbearance; IFRS 9
staging reads the same flags), split into performing and non-performing,
and a loan stays forborne until it has repaid regularly through a
probation period. This module says which a loan is. It is a view: nothing
here is stored, no handler calls it, and a block executes the same with or
without it (``loan.restructure_accept`` records all it reads, under rules
5: ``restructuring``).

``forbearance(reader, loan_id, loan, as_of_ms)`` is ``None`` for a loan never
restructured, and otherwise ``{status, since_ms, restructurings,
cure_ends_ms, probation_ends_ms, as_of_ms, why}``:

- ``non_performing``: the last restructuring was of a non-performing loan,
  or the loan has been past due since, and it has not been cured yet;
- ``performing``: under probation, performing;
- ``ended``: no longer a forborne exposure: its probation passed, or the
  loan was closed (repaid: no exposure is left) or written off (reported
  under ``written_off`` by the exposure views, not as forborne);

``since_ms`` is when the loan entered that status (None where the record
does not say: a loan closed by a repayment), ``restructurings`` how many
it had, ``cure_ends_ms`` (non-performing only) the earliest time its cure
period can end, ``probation_ends_ms`` (while forborne) the earliest time
its forbearance can end, ``as_of_ms`` the time it was judged at, and
``why`` one sentence saying which rule gave the status and what ends it.

The rules, after EBA's (FINREP Annex V on forbearance; the EBA guidelines on
the default definition, which count one year for cure):

1. A restructuring accepted while the loan was ``overdue`` or ``defaulted``
   makes it non-performing; so does one accepted while an earlier
   restructuring's forbearance had not ended (re-forbearance: EBA makes
   an exposure under probation that came out of non-performing status
   non-performing again when it is forborne again; we do so for every
   exposure under probation, the more prudent reading). Any other
   restructuring leaves the loan performing, under probation.
2. Falling past due after the last restructuring makes the loan
   non-performing, from the time its instalment fell due plus
   ``grace_days`` (the ``loan.overdue`` entry in its history), and a
   defaulted or overdue loan is non-performing for as long as it is.
   EBA does this for arrears of more than 30 days on an exposure under
   probation; the chain's state shows arrears past grace (5 days by
   default), and its record does not say how long an arrear already cured
   lasted (history entries carry heights, not times), so every one counts.
3. Cure: a non-performing forborne loan becomes performing once a year
   (``CURE_MS``, 365 days) has passed since the latest of the restructuring,
   the end of its payment holiday and the last time it fell past due, and it
   is not past due (EBA: one year from the latest of the measure, the
   non-performing classification and the end of a grace period in the
   restructuring arrangements, with no past-due amounts).
4. Probation: a performing forborne loan stops being forborne two years
   (``PROBATION_MS``, 730 days) after it became performing (the
   restructuring, or its cure) if it is not past due then; falling past due
   during the probation is rule 2. EBA also asks for regular payments over
   at least half the probation period: a payment holiday lasts at most 12
   chain months (``restructuring.MAX_HOLIDAY_MONTHS``), less than half of
   it, and any instalment unpaid past grace would be rule 2.
5. Once ended, a later arrear no longer makes the loan forborne (it is a
   non-performing exposure like any other, in the exposure views' overdue
   and defaulted counts); a later restructuring starts again from rule 1.

Time. Everything is integer milliseconds of block time, judged at
``as_of_ms``: the node passes its head block's time (``node.views``), so the
status is the one as of the chain's latest block, as the loan's state is
(the due-loan pass moves loans overdue and defaulted at each block's start).
A reader without a head (a bare state, as in the ledger's tests) judges as
of the latest time the loan's forbearance record shows (its last
restructuring or arrear since), so the probation clock never runs ahead of
the chain. The record read is the loan's and its history entries since its
first restructuring (read backwards from the last), and ``grace_days`` from
the chain parameters: a view of a restructured loan costs a read per such
entry, and a loan never restructured none.

``forborne_totals`` adds a loan to the per-currency ``forborne`` totals the
exposure, portfolio and positions views report (``exposure``): the number of
forborne loans and their principal outstanding (or a funder's share of it),
performing and non-performing apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.servicing import DAY_MS, MONTH_MS, YEAR_MS, servicing_param
from lendchain.ledger.state import StateReader, get_params, loan_history_key, read_value

NON_PERFORMING = "non_performing"
PERFORMING = "performing"
ENDED = "ended"
CURE_MS = YEAR_MS  # a non-performing forborne loan's cure period (rule 3)
PROBATION_MS = 2 * YEAR_MS  # a performing forborne loan's probation period (rule 4)
PAST_DUE_STATES = (lc.OVERDUE, lc.DEFAULTED)
FORBORNE_TOTALS = (
    "loans",
    "outstanding",
    "performing_loans",
    "performing_outstanding",
    "non_performing_loans",
    "non_performing_outstanding",
)


@dataclass(frozen=True)
class Spell:
    """The status a live forborne loan is in, since when, and from when its cure counts."""

    status: str
    since_ms: int
    cure_from_ms: int  # the latest of the restructuring, its holiday's end and the last arrear since
    why: str

    def at(self, time_ms: int) -> Spell:
        """This spell, or what it became by ``time_ms`` with nothing past due meanwhile (rules 3 and 4)."""
        spell = self
        if spell.status == NON_PERFORMING and spell.cure_from_ms + CURE_MS <= time_ms:
            spell = replace(
                spell, status=PERFORMING, since_ms=spell.cure_from_ms + CURE_MS, why=f"cured: {spell.why}"
            )
        if spell.status == PERFORMING and spell.since_ms + PROBATION_MS <= time_ms:
            spell = replace(spell, status=ENDED, since_ms=spell.since_ms + PROBATION_MS)
        return spell


def forbearance(
    reader: StateReader, loan_id: bytes, loan: dict[str, Any], as_of_ms: int | None
) -> dict[str, Any] | None:
    """The loan's forbearance status at ``as_of_ms`` (see the module docstring); None if never restructured."""
    records = loan.get("restructurings")
    if not records:
        return None
    view: dict[str, Any] = {"restructurings": len(records), "cure_ends_ms": None, "probation_ends_ms": None}
    if loan["state"] == lc.WRITTEN_OFF:
        written_off = loan["written_off"]
        why = f"written off at height {written_off['height']}: reported as written off, not as forborne"
        return {"status": ENDED, "since_ms": written_off["time_ms"], **view, "as_of_ms": as_of_ms, "why": why}
    if loan["state"] == lc.CLOSED:  # a repayment in full records no time; a payoff (prepayment) does
        why = "closed: repaid in full, no exposure is left"
        return {"status": ENDED, "since_ms": loan.get("prepaid_ms"), **view, "as_of_ms": as_of_ms, "why": why}
    grace_ms = servicing_param(get_params(reader), "grace_days", loan) * DAY_MS
    arrears = _arrears_since(reader, loan_id, loan, grace_ms)
    if as_of_ms is None:  # no head to judge at: the latest time the record shows
        as_of_ms = max([records[-1]["time_ms"], *(time_ms for time_ms, _ in arrears[-1])])
    spell = judge(records, arrears, loan["state"], as_of_ms)
    if spell.status == NON_PERFORMING:
        view["cure_ends_ms"] = spell.cure_from_ms + CURE_MS
        if loan["state"] in PAST_DUE_STATES and view["cure_ends_ms"] <= as_of_ms:
            view["cure_ends_ms"] = None  # it ends once nothing is past due: no date can be given
        else:
            view["probation_ends_ms"] = view["cure_ends_ms"] + PROBATION_MS
    elif spell.status == PERFORMING:
        view["probation_ends_ms"] = spell.since_ms + PROBATION_MS
    why = _sentence(spell, loan["state"])
    return {"status": spell.status, "since_ms": spell.since_ms, **view, "as_of_ms": as_of_ms, "why": why}


def judge(
    records: list[dict[str, Any]], arrears: list[list[tuple[int, int]]], state: str, as_of_ms: int
) -> Spell:
    """The spell at ``as_of_ms`` of a live loan in ``state``, restructured as ``records`` say.

    ``arrears[k]`` lists ``(time, instalment)`` of each arrear (a ``loan.overdue``
    entry) after restructuring ``k`` and before the next, in order. The status
    just before the last restructuring (rule 1's re-forbearance) is this
    function's answer for the ones before it, at its time.
    """
    last = records[-1]
    at, height = last["time_ms"], last["height"]
    holiday_end = last["first_due_ms"] - MONTH_MS
    cure_from = max(at, holiday_end)
    before = judge(records[:-1], arrears[:-1], last["state"], at) if len(records) > 1 else None
    if last["state"] in PAST_DUE_STATES:
        spell = Spell(NON_PERFORMING, at, cure_from, f"restructured at height {height} while {last['state']}")
    elif before is not None and before.status != ENDED:
        spell = Spell(
            NON_PERFORMING,
            at,
            cure_from,
            f"restructured again at height {height} while still forborne ({before.status})",
        )
    else:
        spell = Spell(PERFORMING, at, cure_from, f"restructured at height {height} while {last['state']}")
    for arrear_ms, instalment in arrears[-1]:
        if arrear_ms > as_of_ms:
            break
        spell = spell.at(arrear_ms)
        if spell.status == ENDED:  # rule 5: forbearance is over, a later arrear is no longer its business
            return spell
        why = f"instalment {instalment} fell past due after the restructuring at height {height}"
        if spell.status == NON_PERFORMING:
            spell = replace(spell, cure_from_ms=max(spell.cure_from_ms, arrear_ms), why=why)
        else:
            spell = Spell(NON_PERFORMING, arrear_ms, max(arrear_ms, holiday_end), why)
    if state in PAST_DUE_STATES:  # nothing cures, nor ends, while something is past due
        return spell
    return spell.at(as_of_ms)


def _arrears_since(
    reader: StateReader, loan_id: bytes, loan: dict[str, Any], grace_ms: int
) -> list[list[tuple[int, int]]]:
    """Per restructuring, ``(due time + grace, instalment)`` of each ``loan.overdue`` entry after it
    (before the next), read backwards from the loan's last history entry to its first restructuring."""
    segments: list[list[tuple[int, int]]] = [[]]
    number = loan["history_len"]
    while len(segments) <= len(loan["restructurings"]) and number > 0:
        number -= 1
        entry = read_value(reader, loan_history_key(loan_id, number))
        if entry["event"] == "loan.restructure_accept":
            segments.append([])
        elif entry["event"] == "loan.overdue":
            segments[-1].append((entry["due_ms"] + grace_ms, entry["instalment"]))
    return [sorted(segment) for segment in reversed(segments[:-1])]


def _sentence(spell: Spell, state: str) -> str:
    """``why``: the rule that gave the status, and what would end it (its times are the view's fields)."""
    if spell.status == ENDED:
        return f"probation passed: two years performing with nothing past due ({spell.why})"
    if spell.status == PERFORMING:
        return (
            f"performing, on probation ({spell.why}): forborne for two years unless it falls past due "
            "or is restructured again"
        )
    if state in PAST_DUE_STATES:
        return (
            f"non-performing: {state} now, after: {spell.why}; cured once nothing is past due and a year "
            "has passed"
        )
    return (
        f"non-performing ({spell.why}): cured after a year with nothing past due, then two years on probation"
    )


def forborne_totals(
    forborne: dict[str, dict[str, int]], currency: str, status: dict[str, Any] | None, outstanding: int
) -> None:
    """Add a loan (or a funder's share of it: ``outstanding``) in ``status`` to ``forborne``'s totals
    for ``currency``; nothing for a loan not forborne (never restructured, or ended)."""
    if status is None or status["status"] == ENDED:
        return
    totals = forborne.setdefault(currency, dict.fromkeys(FORBORNE_TOTALS, 0))
    totals["loans"] += 1
    totals["outstanding"] += outstanding
    totals[f"{status['status']}_loans"] += 1
    totals[f"{status['status']}_outstanding"] += outstanding
