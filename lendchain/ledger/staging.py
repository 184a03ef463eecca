"""Days past due and IFRS 9 credit-risk stages: how late a loan is, and which stage that puts it in.

Banks report their loans by IFRS 9 stage and supervisors read arrears as
days past due (DPD). This module says both for a loan, at a time. It is a
view: nothing here is stored, no handler calls it, and a block executes the
same with or without it; the views (``queries.get_loan``, ``exposure``)
compute it when they are read, from the loan's record and its forbearance
status (``forbearance``), without a read of their own.

Days past due (``days_past_due``). The whole days (rounded down) from the
due time of the loan's oldest instalment not fully paid to ``as_of_ms``,
and 0 when that instalment is not past due yet, or every instalment is
paid. An instalment is *paid* when its whole payment (its interest and its
principal, as the schedule in force says) has been received: payments go to
the oldest instalment first (``servicing``), so the loan's ``progress``
counts the instalments fully paid and the next one is the oldest unpaid. A
partly paid instalment is unpaid: its DPD counts from its own due time, as
the chain's overdue rule counts it, with no materiality threshold (the
default definition, CRR Art. 178 and the EBA's guidelines on it, lets a bank
ignore arrears below one; the chain ignores none). Unpaid penalty interest
has no due time and is not counted. Due times are ``servicing.due_ms``'s:
a restructured loan's instalments fall due under its new schedule, so its
capitalised arrears no longer count and a payment holiday has nothing due.
DPD counts from the due time itself, not from the end of the chain's
``grace_days`` (grace decides when the ledger marks a loan ``overdue``;
supervisors count arrears from the due date).

Stages (``credit_stage``), from what the chain knows, after IFRS 9's
rebuttable presumptions and the EBA forbearance rules ``forbearance``
applies. Every rule that holds is listed in ``stage_reasons`` (the rule,
the stage it gives, its value, a sentence and its source, as the credit
score lists its factors; the value is the days past due for the past-due
rules, the time of default for ``defaulted`` and None for the forborne
ones), and the stage is the highest of them:

- stage 3, credit-impaired (lifetime expected losses, interest on the net
  amount): the loan is ``defaulted`` (the chain's default: unpaid
  ``default_days`` past due; IFRS 9 Appendix A, a credit-impaired asset
  shows "a breach of contract, such as a default or past due event"); or it
  is more than ``DEFAULT_DAYS_PAST_DUE`` (90) days past due (IFRS 9
  B5.5.37: default does not occur later than 90 days past due, a
  presumption the chain does not rebut), which also covers a loan the
  due-loan pass has not yet evaluated or a chain whose ``default_days`` is
  longer; or it is a non-performing forborne exposure (EBA FINREP Annex V;
  IFRS 9 Appendix A: a concession granted for the borrower's financial
  difficulty);
- stage 2, significant increase in credit risk (lifetime expected losses):
  more than ``SICR_DAYS_PAST_DUE`` (30) days past due (IFRS 9 5.5.11, the
  rebuttable presumption, not rebutted); or a performing forborne exposure
  on probation (IFRS 9 B5.5.17 counts concessions such as payment holidays
  among the indicators of a significant increase, and a loan under EBA's
  probation has not yet shown it is sound again; where a bank judges this
  case by case, the chain makes it the rule);
- stage 1 otherwise (IFRS 9 5.5.5: 12-month expected losses). Being past
  due 30 days or less, ``overdue`` included, is *not* stage 2 here: IFRS 9
  5.5.11 sets 30 days as the latest point at which the increase is
  presumed, and the chain holds no forward-looking information that
  would put a loan there earlier. A bank's own model may; the reason
  ``past_due`` lists such a loan's DPD so a reader sees it.

Which loans. Only a drawn exposure has a stage: a loan ``disbursed``,
``repaying``, ``overdue`` or ``defaulted`` (``STAGED_STATES``). A loan
written off or closed has no exposure left on chain; one applied for,
offered, accepted, funding or funded is not disbursed (IFRS 9 also stages
loan commitments; the views report them as ``committed`` apart, unstaged);
one cancelled or unfunded lent nothing. Such a loan's ``stage`` and
``days_past_due`` are None and its one reason says why.

Time. Everything is integer milliseconds of block time, judged at
``as_of_ms``: the node passes its head block's time, so the figures are
those as of the chain's latest block, computed from due times and not from
the loan's state, which the due-loan pass updates block by block. A reader
without a head (a bare state, as in the ledger's tests) judges as of the
latest time the loan's record shows (``judged_at``: its disbursement,
last restructuring, last penalty accrual or default), so DPD never runs
ahead of the chain.

``add_staged`` adds a loan (or a funder's pro-rata share of it) to the
per-currency ``stages`` totals (count and principal outstanding per stage,
``STAGE_TOTALS``) and the arrears ageing ``ageing`` (count and principal per
DPD bucket, ``AGEING_BUCKETS``) that the exposure, portfolio and positions
views report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.forbearance import NON_PERFORMING, PERFORMING
from lendchain.ledger.servicing import DAY_MS, due_ms

SICR_DAYS_PAST_DUE = 30  # IFRS 9 5.5.11: more than this, credit risk increased significantly (stage 2)
DEFAULT_DAYS_PAST_DUE = 90  # IFRS 9 B5.5.37: more than this, in default (stage 3)
STAGES = (1, 2, 3)
STAGED_STATES = (lc.DISBURSED, lc.REPAYING, lc.OVERDUE, lc.DEFAULTED)
# (bucket, fewest days, most days or None): the arrears ageing, as supervisors' templates band it
AGEING_BUCKETS = (
    ("dpd_0", 0, 0),
    ("dpd_1_30", 1, 30),
    ("dpd_31_60", 31, 60),
    ("dpd_61_90", 61, 90),
    ("dpd_over_90", 91, None),
)
STAGE_TOTALS = tuple(f"stage_{stage}_{what}" for stage in STAGES for what in ("loans", "outstanding"))
AGEING_TOTALS = tuple(
    f"{bucket}_{what}" for bucket, _, _ in AGEING_BUCKETS for what in ("loans", "outstanding")
)

_SOURCES = {
    "defaulted": "IFRS 9 Appendix A (credit-impaired: a default or past due event); CRR Art. 178",
    "past_due_over_90": "IFRS 9 B5.5.37 (default no later than 90 days past due, rebuttable)",
    "forborne_non_performing": "EBA FINREP Annex V (non-performing forborne); IFRS 9 Appendix A (a concession)",
    "past_due_over_30": "IFRS 9 5.5.11 (significant increase when more than 30 days past due, rebuttable)",
    "forborne_performing": "EBA FINREP Annex V (forborne, on probation); IFRS 9 B5.5.17 (concessions)",
    "past_due": "IFRS 9 5.5.11 (30 days or less past due: no presumed significant increase)",
    "current": "IFRS 9 5.5.5 (12-month expected credit losses)",
    "not_staged": "IFRS 9 5.5.1; the chain stages drawn loans only (disbursed, repaying, overdue, defaulted)",
}
_NOT_STAGED = {
    lc.WRITTEN_OFF: "written off: no exposure is left on chain; the views report it under written_off",
    lc.CLOSED: "closed: repaid in full, no exposure is left",
    lc.CANCELLED: "cancelled before disbursement: nothing was lent",
    lc.UNFUNDED: "unfunded: its funders' commitments were released, nothing was lent",
}


@dataclass(frozen=True)
class Reason:
    """One rule that holds for the loan: the stage it gives (None: no stage), its input, why, and whose rule."""

    rule: str
    stage: int | None
    value: int | None
    why: str

    def to_value(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "stage": self.stage,
            "value": self.value,
            "why": self.why,
            "source": _SOURCES[self.rule],
        }


def judged_at(loan: dict[str, Any], as_of_ms: int | None) -> int | None:
    """``as_of_ms``, or without it the latest time the loan's record shows (None before disbursement)."""
    if as_of_ms is not None or loan.get("disbursed_ms") is None:
        return as_of_ms
    shown = [loan["disbursed_ms"], loan.get("penalty_as_of_ms"), loan.get("defaulted_ms")]
    shown += [record["time_ms"] for record in loan.get("restructurings", ())[-1:]]
    return max(time_ms for time_ms in shown if time_ms is not None)


def days_past_due(loan: dict[str, Any], as_of_ms: int) -> int:
    """Whole days the loan's oldest instalment not fully paid is past due at ``as_of_ms`` (0 if none is).

    The loan is disbursed (it has due times); see the module docstring for what counts as paid.
    """
    first_unpaid = loan["progress"][0] + 1
    if first_unpaid > loan["term_months"]:
        return 0
    late_ms = as_of_ms - due_ms(loan, first_unpaid)
    return late_ms // DAY_MS if late_ms > 0 else 0


def credit_stage(
    loan: dict[str, Any], forbearance_status: dict[str, Any] | None, as_of_ms: int | None
) -> dict[str, Any]:
    """``{days_past_due, stage, stage_reasons, stage_as_of_ms}`` of the loan at ``as_of_ms`` (the
    module docstring's rules); ``forbearance_status`` is ``forbearance.forbearance``'s answer for it."""
    state = loan["state"]
    if state not in STAGED_STATES:
        why = _NOT_STAGED.get(
            state, "not disbursed: no drawn exposure (a commitment is reported as committed)"
        )
        reason = Reason("not_staged", None, None, why)
        return {
            "days_past_due": None,
            "stage": None,
            "stage_reasons": [reason.to_value()],
            "stage_as_of_ms": None,
        }
    at = judged_at(loan, as_of_ms)
    dpd = days_past_due(loan, at)
    reasons = _reasons(loan, forbearance_status and forbearance_status["status"], dpd)
    return {
        "days_past_due": dpd,
        "stage": max(reason.stage for reason in reasons if reason.stage is not None),
        "stage_reasons": [reason.to_value() for reason in reasons],
        "stage_as_of_ms": at,
    }


def _reasons(loan: dict[str, Any], forborne: str | None, dpd: int) -> list[Reason]:
    """Every rule that holds for a staged loan ``dpd`` days past due, forborne as ``forborne`` says."""
    reasons = []
    if loan["state"] == lc.DEFAULTED:
        reasons.append(
            Reason(
                "defaulted",
                3,
                loan.get("defaulted_ms"),
                f"in default since {loan.get('defaulted_ms')} ms (unpaid past the chain's default_days)",
            )
        )
    if dpd > DEFAULT_DAYS_PAST_DUE:
        why = f"{dpd} days past due, more than {DEFAULT_DAYS_PAST_DUE}: presumed in default"
        reasons.append(Reason("past_due_over_90", 3, dpd, why))
    if forborne == NON_PERFORMING:
        why = "a non-performing forborne exposure: restructured in difficulty, not cured yet"
        reasons.append(Reason("forborne_non_performing", 3, None, why))
    if SICR_DAYS_PAST_DUE < dpd <= DEFAULT_DAYS_PAST_DUE:
        why = f"{dpd} days past due, more than {SICR_DAYS_PAST_DUE}: credit risk presumed increased significantly"
        reasons.append(Reason("past_due_over_30", 2, dpd, why))
    if forborne == PERFORMING:
        why = "a performing forborne exposure on probation: restructured, not yet shown sound again"
        reasons.append(Reason("forborne_performing", 2, None, why))
    if 0 < dpd <= SICR_DAYS_PAST_DUE:
        why = f"{dpd} days past due, not more than {SICR_DAYS_PAST_DUE}: no presumed increase in credit risk"
        reasons.append(Reason("past_due", 1, dpd, why))
    if not reasons:
        reasons.append(Reason("current", 1, 0, "nothing past due, not in default, not a forborne exposure"))
    return reasons


def ageing_bucket(dpd: int) -> str:
    """The arrears ageing bucket of ``dpd`` days past due (``AGEING_BUCKETS``)."""
    return next(bucket for bucket, _, most in AGEING_BUCKETS if most is None or dpd <= most)


def add_staged(
    stages: dict[str, dict[str, int]],
    ageing: dict[str, dict[str, int]],
    currency: str,
    staged: dict[str, Any],
    outstanding: int,
) -> None:
    """Add a staged loan (``credit_stage``), or a funder's share of it (``outstanding``), to the
    ``currency``'s stage totals and arrears ageing; nothing for a loan without a stage."""
    if staged["stage"] is None:
        return
    by_stage = stages.setdefault(currency, dict.fromkeys(STAGE_TOTALS, 0))
    by_stage[f"stage_{staged['stage']}_loans"] += 1
    by_stage[f"stage_{staged['stage']}_outstanding"] += outstanding
    by_age = ageing.setdefault(currency, dict.fromkeys(AGEING_TOTALS, 0))
    bucket = ageing_bucket(staged["days_past_due"])
    by_age[f"{bucket}_loans"] += 1
    by_age[f"{bucket}_outstanding"] += outstanding
