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

Which loans. A drawn exposure has a stage by the rules above: a loan
``disbursed``, ``repaying``, ``overdue`` or ``defaulted`` (``STAGED_STATES``).
A loan written off or closed has no exposure left on chain; one applied for
or offered commits nobody yet; one cancelled or unfunded lent nothing. Such
a loan's ``stage`` and ``days_past_due`` are None and its one reason says why.

Commitments. A loan ``accepted``, ``funding`` or ``funded``
(``COMMITTED_STATES``) is an undisbursed loan commitment, an off-balance
exposure that IFRS 9 stages too: 5.5.6 (its credit risk is assessed from
the date the entity became party to the irrevocable commitment) and B5.5.47
(its expected losses are those on the part expected to be drawn; the chain
takes the whole commitment). Nothing is due on it yet, so it has no days
past due (``days_past_due`` None) and no arrears or forbearance of its own:
what the chain knows of its credit risk is the borrower's record on its
other loans. So ``commitment_stage`` gives it the highest of:

- stage 3 if another loan of the borrower is in stage 3 (defaulted, more
  than 90 days past due or non-performing forborne) or was written off with
  a loss not yet recovered (``writeoff.net_loss``): default is a state of
  the obligor, on any of its material obligations (CRR Art. 178(1); the
  EBA's guidelines on applying it, EBA/GL/2016/07, apply it to the obligor,
  and for retail let a bank apply it per facility, which the chain does
  not), and a commitment to a defaulted obligor is credit-impaired (IFRS 9
  Appendix A);
- stage 2 if another loan of the borrower is in stage 2 (more than 30 days
  past due, or performing forborne): that loan's arrears or concession are
  evidence of a significant increase in the borrower's credit risk, which
  is what IFRS 9 5.5.9 and B5.5.17 judge, not one instrument's;
- stage 1 otherwise (IFRS 9 5.5.5): a new commitment is in stage 1 at
  initial recognition, and nothing since shows an increase.

The borrower's loans judged are its newest ``BORROWER_LOANS_JUDGED`` (32)
in its borrower index, in every view alike, so that staging a commitment
reads a bounded number of loans however long the borrower's history is; an
older loan that is still defaulted is missed, which a borrower with more
than 32 loans on chain is the only one to risk. ``borrower_standing`` counts
them (it is given them, and reads nothing); ``standing_of`` reads them.

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
views report; ``add_commitment`` adds a staged commitment (or a funder's
share of it) to ``commitment_stages`` apart (count and amount committed
per stage, ``COMMITMENT_TOTALS``), so the drawn loans' figures stay those
of the drawn loans.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger import pagedlist
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.forbearance import NON_PERFORMING, PERFORMING, forbearance
from lendchain.ledger.servicing import DAY_MS, due_ms
from lendchain.ledger.state import StateReader, borrower_loans_key, loan_key, read_value
from lendchain.ledger.writeoff import net_loss

SICR_DAYS_PAST_DUE = 30  # IFRS 9 5.5.11: more than this, credit risk increased significantly (stage 2)
DEFAULT_DAYS_PAST_DUE = 90  # IFRS 9 B5.5.37: more than this, in default (stage 3)
STAGES = (1, 2, 3)
STAGED_STATES = (lc.DISBURSED, lc.REPAYING, lc.OVERDUE, lc.DEFAULTED)
COMMITTED_STATES = (lc.ACCEPTED, lc.FUNDING, lc.FUNDED)  # undisbursed commitments (IFRS 9 5.5.6)
BORROWER_LOANS_JUDGED = 32  # a commitment's stage reads at most this many of the borrower's newest loans
# (bucket, fewest days, most days or None): the arrears ageing, as supervisors' templates band it
AGEING_BUCKETS = (
    ("dpd_0", 0, 0),
    ("dpd_1_30", 1, 30),
    ("dpd_31_60", 31, 60),
    ("dpd_61_90", 61, 90),
    ("dpd_over_90", 91, None),
)
STAGE_TOTALS = tuple(f"stage_{stage}_{what}" for stage in STAGES for what in ("loans", "outstanding"))
COMMITMENT_TOTALS = tuple(f"stage_{stage}_{what}" for stage in STAGES for what in ("loans", "committed"))
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
    "not_staged": "IFRS 9 5.5.1; the chain stages drawn loans and commitments (accepted, funding, funded)",
    "borrower_credit_impaired": "CRR Art. 178(1) (default of the obligor); IFRS 9 5.5.6, Appendix A",
    "borrower_written_off": "CRR Art. 178(1) (default of the obligor); IFRS 9 5.4.4, Appendix A",
    "borrower_increased_risk": "IFRS 9 5.5.6, 5.5.9 and B5.5.17 (the borrower's credit risk)",
    "commitment": "IFRS 9 5.5.5 and 5.5.6 (12-month expected losses on the commitment)",
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
    loan: dict[str, Any],
    forbearance_status: dict[str, Any] | None,
    as_of_ms: int | None,
    standing: dict[str, int] | None = None,
) -> dict[str, Any]:
    """``{days_past_due, stage, stage_reasons, stage_as_of_ms}`` of the loan at ``as_of_ms`` (the
    module docstring's rules); ``forbearance_status`` is ``forbearance.forbearance``'s answer for it,
    and ``standing`` ``borrower_standing``'s for its borrower, which a commitment needs."""
    state = loan["state"]
    if state in COMMITTED_STATES:
        if standing is None:
            raise TypeError("a commitment's stage needs its borrower's standing (staging.standing_of)")
        return commitment_stage(standing, as_of_ms)
    if state not in STAGED_STATES:
        why = _NOT_STAGED.get(state, "not accepted yet: nobody is committed to lend")
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
        defaulted_ms = loan.get("defaulted_ms")
        since = "" if defaulted_ms is None else f" since {time_text(defaulted_ms)}"
        why = f"in default{since} (unpaid past the chain's default_days)"
        reasons.append(Reason("defaulted", 3, defaulted_ms, why))
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


def borrower_standing(judged: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, int]:
    """What a borrower's loans say of it, given (loan, its ``credit_stage``) for each of its newest
    ``BORROWER_LOANS_JUDGED``: how many are in stage 3 and in stage 2, and how many were written off
    with a loss not yet recovered. Its commitments, which have no stage of their own, count nowhere."""
    standing = {"stage_3": 0, "stage_2": 0, "written_off": 0}
    for loan, staged in judged:
        if loan["state"] == lc.WRITTEN_OFF:
            standing["written_off"] += net_loss(loan)["total"] > 0
        elif loan["state"] in STAGED_STATES and staged["stage"] > 1:
            standing[f"stage_{staged['stage']}"] += 1
    return standing


def standing_of(reader: StateReader, borrower: str, as_of_ms: int | None) -> dict[str, int]:
    """``borrower_standing`` of ``borrower``'s newest ``BORROWER_LOANS_JUDGED`` loans at ``as_of_ms``,
    read from its borrower index: that many loan reads, and a restructured loan's forbearance."""

    def get(key: bytes) -> Any:
        return read_value(reader, key)

    index = borrower_loans_key(borrower)
    newest = max(pagedlist.length(get, index) - BORROWER_LOANS_JUDGED, 0)
    judged = []
    for loan_id in pagedlist.window(get, index, newest, BORROWER_LOANS_JUDGED):
        loan = get(loan_key(loan_id))
        if loan["state"] in STAGED_STATES:
            judged.append((loan, credit_stage(loan, forbearance(reader, loan_id, loan, as_of_ms), as_of_ms)))
        elif loan["state"] == lc.WRITTEN_OFF:
            judged.append((loan, {"stage": None}))
    return borrower_standing(judged)


def commitment_stage(standing: dict[str, int], as_of_ms: int | None) -> dict[str, Any]:
    """``credit_stage``'s answer for an undisbursed commitment whose borrower's loans say ``standing``
    (``borrower_standing``): no days past due, and the stage the module docstring's rule gives."""
    reasons = []
    if standing["stage_3"]:
        n = standing["stage_3"]
        why = f"{n} of the borrower's other loans {_is(n)} credit-impaired: the obligor is in default"
        reasons.append(Reason("borrower_credit_impaired", 3, standing["stage_3"], why))
    if standing["written_off"]:
        n = standing["written_off"]
        why = f"{n} of the borrower's loans {_is(n)} written off with a loss not recovered"
        reasons.append(Reason("borrower_written_off", 3, standing["written_off"], why))
    if standing["stage_2"]:
        n = standing["stage_2"]
        why = f"{n} of the borrower's other loans {_is(n)} in stage 2: the credit risk increased"
        reasons.append(Reason("borrower_increased_risk", 2, standing["stage_2"], why))
    if not reasons:
        why = "an undisbursed commitment; none of the borrower's loans is in stage 2 or 3 or written off"
        reasons.append(Reason("commitment", 1, None, why))
    return {
        "days_past_due": None,
        "stage": max(reason.stage for reason in reasons if reason.stage is not None),
        "stage_reasons": [reason.to_value() for reason in reasons],
        "stage_as_of_ms": as_of_ms,
    }


def _is(count: int) -> str:
    return "is" if count == 1 else "are"


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
    ``currency``'s stage totals and arrears ageing; nothing for a loan without a stage, nor for a
    commitment (no days past due: ``add_commitment`` counts it)."""
    if staged["stage"] is None or staged["days_past_due"] is None:
        return
    by_stage = stages.setdefault(currency, dict.fromkeys(STAGE_TOTALS, 0))
    by_stage[f"stage_{staged['stage']}_loans"] += 1
    by_stage[f"stage_{staged['stage']}_outstanding"] += outstanding
    by_age = ageing.setdefault(currency, dict.fromkeys(AGEING_TOTALS, 0))
    bucket = ageing_bucket(staged["days_past_due"])
    by_age[f"{bucket}_loans"] += 1
    by_age[f"{bucket}_outstanding"] += outstanding


def add_commitment(
    commitment_stages: dict[str, dict[str, int]], currency: str, staged: dict[str, Any], committed: int
) -> None:
    """Add a staged commitment (``commitment_stage``), or a funder's share of it (``committed``), to the
    ``currency``'s ``commitment_stages`` (``COMMITMENT_TOTALS``), apart from the drawn loans' stages."""
    by_stage = commitment_stages.setdefault(currency, dict.fromkeys(COMMITMENT_TOTALS, 0))
    by_stage[f"stage_{staged['stage']}_loans"] += 1
    by_stage[f"stage_{staged['stage']}_committed"] += committed
