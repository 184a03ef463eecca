"""A borrower disputes the credit data reported about it, and the furnisher answers (rules version 7).

Credit reporting law (the US Fair Credit Reporting Act, the EU's GDPR right
to rectification, and their like elsewhere) lets a consumer dispute data
furnished about it; the furnisher must investigate and answer within a
deadline (30 days, typically), and data it cannot verify must stop being
used. On this chain the furnisher is the member that sent ``credit.report``,
and the use is the open credit score (``identity.score_of``), which every
member reads and lender policies price with. From rules version
``SINCE_RULES``:

- ``credit.dispute`` {subject, member, report_height, reason_hash}: the
  subject, a registered party, signs it itself (a member cannot dispute on
  its behalf), against its latest credit report, named by the member that
  furnished it and the height it was reported at (what ``credit.report``
  stores), so that the dispute cannot silently move to a newer report.
  ``reason_hash`` is the sha256 of the borrower's statement, which it keeps
  off chain and gives the furnisher. Refused: a sender that is not the
  subject (``forbidden``); a report that is not the subject's latest
  (``not_found``, naming the latest); a report under a dispute still
  unanswered (``duplicate``), or one whose dispute was answered already
  (``invalid_state``: a confirmed report stays; a corrected one is a new
  report, which the subject may dispute in turn). The dispute's deadline is
  its block's time plus ``dispute_response_ms`` (chain parameter, default
  30 days, 1 to 180 days; a ``params.set`` change applies to disputes
  opened from then on).
- ``credit.dispute_answer`` {subject, report_height, outcome, evidence_hash,
  and for ``corrected`` the four features of ``credit.report``}: the member
  that furnished the report answers, once, with the hash of the evidence of
  its investigation. ``confirmed`` keeps the report; ``corrected`` replaces
  it with the corrected features, a new report at the answer's height that
  says which one it corrects (``corrects_height``); ``withdrawn`` deletes it.
  Refused: anyone but the furnisher (``forbidden``, naming it), a dispute
  that does not exist (``not_found``) or was answered already
  (``invalid_state``), features with another outcome or missing with
  ``corrected`` (``bad_payload``). An answer after the deadline still
  resolves the dispute and is recorded as late. A correction is not checked
  for the furnisher's role or the subject's consent again: it amends data
  furnished under consent at the subject's own request, and refusing it
  when the consent has lapsed would leave the wrong data standing. When a
  newer report replaced the disputed one meanwhile, the answer is recorded
  and changes no report (``report_was_current`` false).

What the score makes of it (``dispute_records.report_standing``). While the
dispute is open the report still counts (the furnisher has not had its time
to answer), and the explanation says it is under dispute and since when.
From its deadline, unanswered, the report no longer counts, as if there
were none, and the explanation says why; nothing is written when the
deadline passes (no block hook scans disputes): every reader judges at its
own time, a handler at its block's, a view at the head block's. A late
``confirmed`` makes the report count again from its block; a late
``corrected`` or ``withdrawn`` does what it does on time.

A newer ``credit.report`` of the subject (from any member, the furnisher
too) replaces the disputed one as it replaces any report, and the score
counts it; the dispute stays on the report it named, and the furnisher
still answers it: its record (answered on time, late, overdue) is what a
supervisor reads in ``GET /disputes/{member}``.

State and views: ``dispute_records``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lendchain.ledger import pagedlist
from lendchain.ledger.context import TxContext
from lendchain.ledger.dispute_records import (
    ANSWERED,
    CORRECTED,
    OUTCOMES,
    OVERDUE,
    SINCE_RULES,
    WITHDRAWN,
    check_report_slot,
    dispute_key,
    furnisher_index_key,
    report_name,
    status_of,
    subject_index_key,
    time_text,
)
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.identity import DID_PATTERN, HEX_HASH, REPORT_FIELDS
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.params import value
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.scoring import REPORT_FACTORS
from lendchain.ledger.state import credit_key, party_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

DISPUTE, ANSWER = "credit.dispute", "credit.dispute_answer"


def open_dispute(ctx: TxContext, tx: Transaction) -> None:
    subject, furnisher, height = tx.payload["subject"], tx.payload["member"], tx.payload["report_height"]
    if tx.sender != subject:
        raise TxRejected(
            "forbidden",
            f"{DISPUTE} is signed by the subject of the report itself: {tx.sender} is not {subject}",
        )
    if ctx.get(party_key(subject)) is None:
        raise TxRejected("not_found", f"{DISPUTE} field 'subject' names no registered party ({subject})")
    key = dispute_key(subject, furnisher, height)
    existing = ctx.get(key)
    if existing is not None:
        raise _disputed_already(ctx, existing)
    report = ctx.get(credit_key(subject))
    if report is None or (report["reporter"], report["height"]) != (furnisher, height):
        latest = (
            "it has none"
            if report is None
            else f"its latest is by {report['reporter']} at height {report['height']}"
        )
        raise TxRejected(
            "not_found",
            f"{DISPUTE}: {subject} has no latest credit report by {furnisher} at height {height} ({latest}); "
            "only the latest report counts in the score, and only it can be disputed",
        )
    deadline = ctx.timestamp_ms + value(ctx.params, "dispute_response_ms")
    ctx.put(
        key,
        {
            "subject": subject,
            "furnisher": furnisher,
            "report_height": height,
            "reason_hash": bytes.fromhex(tx.payload["reason_hash"]),
            "height": ctx.height,
            "opened_ms": ctx.timestamp_ms,
            "deadline_ms": deadline,
            "answer": None,
        },
    )
    pagedlist.append(ctx.get, ctx.put, subject_index_key(subject), [furnisher, height])
    pagedlist.append(ctx.get, ctx.put, furnisher_index_key(furnisher), [subject, height])
    ctx.emit("credit.disputed", subject=subject, member=furnisher, report_height=height, deadline_ms=deadline)


def _disputed_already(ctx: TxContext, dispute: dict[str, Any]) -> TxRejected:
    name = report_name(dispute["furnisher"], dispute["report_height"])
    status = status_of(dispute, ctx.timestamp_ms)
    if status == ANSWERED:
        answer = dispute["answer"]
        return TxRejected(
            "invalid_state",
            f"{DISPUTE}: {dispute['subject']} disputed {name} at height {dispute['height']}, and its "
            f"furnisher answered already ({answer['outcome']}, at height {answer['height']}); a report "
            "is disputed once: a newer report may be disputed in turn",
        )
    overdue = ", and its deadline has passed: the report no longer counts" if status == OVERDUE else ""
    return TxRejected(
        "duplicate",
        f"{DISPUTE}: {dispute['subject']} disputed {name} already, at height {dispute['height']}; it awaits "
        f"its furnisher's answer, due by {time_text(dispute['deadline_ms'])}{overdue}",
    )


def answer_dispute(ctx: TxContext, tx: Transaction) -> None:
    subject, height, outcome = tx.payload["subject"], tx.payload["report_height"], tx.payload["outcome"]
    features = _features(tx.payload, outcome)
    key = dispute_key(subject, tx.sender, height)
    dispute = ctx.get(key)
    if dispute is None:
        raise _no_such_dispute(ctx, subject, tx.sender, height)
    if dispute["answer"] is not None:
        answered = dispute["answer"]
        raise TxRejected(
            "invalid_state",
            f"{ANSWER}: {subject}'s dispute of {report_name(tx.sender, height)} was answered already "
            f"({answered['outcome']}, at height {answered['height']}); a dispute is answered once",
        )
    report = ctx.get(credit_key(subject))
    current = report is not None and (report["reporter"], report["height"]) == (tx.sender, height)
    if current and outcome == CORRECTED:
        check_report_slot(ctx, subject, tx.sender, ANSWER)
        corrected = {
            **features,
            "evidence_hash": bytes.fromhex(tx.payload["evidence_hash"]),
            "reporter": tx.sender,
            "height": ctx.height,
            "corrects_height": height,
        }
        ctx.put(credit_key(subject), corrected)
    elif current and outcome == WITHDRAWN:
        ctx.delete(credit_key(subject))
    on_time = ctx.timestamp_ms < dispute["deadline_ms"]
    answer = {
        "outcome": outcome,
        "evidence_hash": bytes.fromhex(tx.payload["evidence_hash"]),
        "height": ctx.height,
        "answered_ms": ctx.timestamp_ms,
        "on_time": on_time,
        "report_was_current": current,
    }
    ctx.put(key, {**dispute, "answer": answer})
    ctx.emit(
        "credit.dispute_answered",
        subject=subject,
        member=tx.sender,
        report_height=height,
        outcome=outcome,
        on_time=on_time,
        report_was_current=current,
    )


def _features(payload: dict[str, Any], outcome: str) -> dict[str, int]:
    """A correction's features: all four with ``corrected``, none with another outcome."""
    given = {name: payload[name] for name in REPORT_FACTORS if name in payload}
    if outcome == CORRECTED:
        missing = [name for name in REPORT_FACTORS if name not in given]
        if missing:
            raise TxRejected(
                "bad_payload",
                f"{ANSWER} with outcome corrected carries the corrected report: field {missing[0]!r} is missing",
            )
    elif given:
        raise TxRejected(
            "bad_payload",
            f"{ANSWER} field {next(iter(given))!r}: only outcome corrected carries features, not {outcome}",
        )
    return given


def _no_such_dispute(ctx: TxContext, subject: str, sender: str, height: int) -> TxRejected:
    """``forbidden`` when the subject disputed a report at ``height`` by another member, else ``not_found``.

    Walks the subject's disputes (a party disputes few reports), only on this refusal's path.
    """
    for furnisher, disputed_height in pagedlist.items(ctx.get, subject_index_key(subject)):
        if disputed_height == height and furnisher != sender:
            return TxRejected(
                "forbidden",
                f"{ANSWER}: only the member that furnished a report answers its dispute: {subject}'s "
                f"dispute of the report at height {height} is for {furnisher}, not {sender}",
            )
    return TxRejected(
        "not_found",
        f"{ANSWER}: {subject} has not disputed {report_name(sender, height)}",
    )


_SUBJECT = Field("subject", "str", pattern=DID_PATTERN)
_HEIGHT = Field("report_height", "int", min=1, max=2**62)

register_kind(
    DISPUTE,
    Schema(
        (
            _SUBJECT,
            Field("member", "str", pattern=DID_PATTERN),
            _HEIGHT,
            Field("reason_hash", "str", pattern=HEX_HASH),
        )
    ),
    open_dispute,
    since=SINCE_RULES,
)
register_kind(
    ANSWER,
    Schema(
        (
            _SUBJECT,
            _HEIGHT,
            Field("outcome", "str", choices=OUTCOMES),
            Field("evidence_hash", "str", pattern=HEX_HASH),
            *(replace(f, required=False) for f in REPORT_FIELDS),
        )
    ),
    answer_dispute,
    since=SINCE_RULES,
)
