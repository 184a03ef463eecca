"""Credit disputes as state (rules version 7): each dispute's record, the indexes that find it, how a
dispute stands at a time, what the score makes of a disputed report, and the views.

The kinds that write these records are ``disputes`` (its docstring says what a dispute is for);
this module only reads and shapes them, so that ``identity`` (the score) and ``queries`` (the
views) can use them without importing the handlers, which import ``identity``.

A dispute names its report by the furnishing member and the report's height, which is what
``credit.report`` stores: the record is under
``dispute/<subject>/<furnisher>/<report height, 8 bytes big-endian>``, so a report is disputed at
most once, and a newer report is never mistaken for the disputed one (a member's second report of
the subject in the block of a disputed one, which would take its name, is refused:
``check_report_slot``). A record::

    {"subject", "furnisher", "report_height", "reason_hash", "height", "opened_ms", "deadline_ms",
     "answer": None | {"outcome", "evidence_hash", "height", "answered_ms", "on_time",
                       "report_was_current"}}

``height`` and ``opened_ms`` are the disputing block's; ``deadline_ms`` is ``opened_ms`` plus the
``dispute_response_ms`` in force then. Two paged lists (``pagedlist``) index the records, each item
naming one: the subject's ``disputes/of/<did>`` as ``[furnisher, report height]`` and the
furnisher's ``disputes/to/<did>`` as ``[subject, report height]``.

How a dispute stands is judged lazily, at a time (``status_of``)::

    open ──(block time reaches deadline_ms)──> overdue      the report stops counting
    open ──credit.dispute_answer (on time)───> answered     confirmed / corrected / withdrawn
    overdue ─credit.dispute_answer (late)────> answered     the same, recorded as late

No block hook looks at open disputes; a transaction that reads
the score judges at its block's time (``policies``), a view at the time its caller gives (the node:
its head block's), so a report stops counting exactly when the first block at or after the deadline
is made, and counts again the moment a late answer confirms it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lendchain.ledger import pagedlist
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.member_names import MemberNames
from lendchain.ledger.state import StateReader, credit_key, institution_key, party_key, read_value

SINCE_RULES = 7
OPEN, OVERDUE, ANSWERED = "open", "overdue", "answered"
CONFIRMED, CORRECTED, WITHDRAWN = "confirmed", "corrected", "withdrawn"
OUTCOMES = (CONFIRMED, CORRECTED, WITHDRAWN)
DISPUTES_SHOWN = 100  # the newest a view lists; its counts cover all
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Getter = Callable[[bytes], Any]


def dispute_key(subject: str, furnisher: str, report_height: int) -> bytes:
    return (
        b"dispute/" + subject.encode() + b"/" + furnisher.encode() + b"/" + report_height.to_bytes(8, "big")
    )


def subject_index_key(did: str) -> bytes:
    return b"disputes/of/" + did.encode()


def furnisher_index_key(did: str) -> bytes:
    return b"disputes/to/" + did.encode()


def status_of(dispute: dict[str, Any], as_of_ms: int | None) -> str:
    """``answered``, ``overdue`` (unanswered at or past its deadline) or ``open``.

    Without a time (``as_of_ms`` None) an unanswered dispute is ``open``: as it stood when opened.
    """
    if dispute["answer"] is not None:
        return ANSWERED
    if as_of_ms is not None and as_of_ms >= dispute["deadline_ms"]:
        return OVERDUE
    return OPEN


def time_text(ms: int) -> str:
    """A block time as a reader says it (UTC, to the second), computed without floats."""
    try:
        return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%d %H:%M:%S UTC")
    except OverflowError:  # past year 9999: no real block's time, but say something true
        return f"block time {ms} ms"


def report_name(furnisher: str, height: int) -> str:
    return f"the credit report by {furnisher} at height {height}"


def check_report_slot(ctx: TxContext, subject: str, furnisher: str, where: str) -> None:
    """Refuse a report of ``subject`` by ``furnisher`` in a block where the subject already disputed
    one of its reports made in this same block (rules 7).

    A report is named by its furnisher and height, so the new one would take the disputed one's
    name: its dispute would silently move to it. Reporting again a block later is the way.
    """
    if ctx.get(dispute_key(subject, furnisher, ctx.height)) is not None:
        raise TxRejected(
            "invalid_state",
            f"{where}: {subject} disputed {report_name(furnisher, ctx.height)} in this block, and a "
            f"report is named by its member and height: report {subject} again from the next block",
        )


# What the score counts -------------------------------------------------------------


@dataclass(frozen=True)
class ReportStanding:
    """The report the score counts (None: none) and what its explanation adds ("" for nothing)."""

    report: dict[str, Any] | None
    note: str


def report_standing(
    get: Getter, did: str, report: dict[str, Any] | None, as_of_ms: int | None
) -> ReportStanding:
    """What the score of ``did`` makes of its latest credit report ``report`` at ``as_of_ms``.

    A report under a dispute still open counts, noted as disputed; one whose dispute is overdue
    does not count, and the note says why; a confirmed one counts, noted so. A corrected report
    replaced the disputed one, and says which it corrects. With no report, the note says when the
    last one was withdrawn after a dispute. One get more than before for a report, two at most
    without one; nothing for a chain without disputes but the get of a missing key.
    """
    if report is None:
        return ReportStanding(None, _withdrawn_note(get, did))
    notes = []
    if "corrects_height" in report:
        notes.append(
            f"correcting its report at height {report['corrects_height']} after the subject disputed it"
        )
    dispute = get(dispute_key(did, report["reporter"], report["height"]))
    if dispute is None:
        return ReportStanding(report, "; ".join(notes))
    since = f"disputed by the subject since {time_text(dispute['opened_ms'])} (height {dispute['height']})"
    status = status_of(dispute, as_of_ms)
    if status == OVERDUE:
        return ReportStanding(
            None,
            f"{report_name(report['reporter'], report['height'])} does not count: {since}, and its "
            f"furnisher did not answer by the deadline, {time_text(dispute['deadline_ms'])} "
            "(dispute_response_ms)",
        )
    if status == OPEN:
        notes.append(f"under dispute: {since}; its furnisher answers by {time_text(dispute['deadline_ms'])}")
    elif dispute["answer"]["outcome"] == CONFIRMED:  # a correction or withdrawal left no report so named
        answer = dispute["answer"]
        late = "" if answer["on_time"] else ", after its deadline"
        notes.append(
            f"confirmed by its furnisher at height {answer['height']}{late}, after the subject disputed it"
        )
    return ReportStanding(report, "; ".join(notes))


def _withdrawn_note(get: Getter, did: str) -> str:
    """Why a subject has no report when its furnisher withdrew the last one after a dispute; else "".

    Only a withdrawal deletes a report, and a report made since would be the subject's report:
    so when the subject's newest dispute withdrew the report it named, that is why there is none.
    """
    newest = pagedlist.last(get, subject_index_key(did))
    if newest is None:
        return ""
    dispute = get(dispute_key(did, *newest))
    answer = dispute["answer"]
    if answer is None or answer["outcome"] != WITHDRAWN or not answer["report_was_current"]:
        return ""
    return (
        f"no credit report: {report_name(dispute['furnisher'], dispute['report_height'])} was withdrawn "
        f"by its furnisher at height {answer['height']}, after the subject disputed it"
    )


# Views ------------------------------------------------------------------------------


def dispute_view(
    get: Getter, dispute: dict[str, Any], as_of_ms: int | None, names: MemberNames
) -> dict[str, Any]:
    """One dispute, JSON-ready: its record with its furnisher's name (``furnisher_name``, from
    ``names``), its ``status`` at ``as_of_ms`` and whether the report it names is still the subject's
    latest (``report_current``: a newer report replaced it when not)."""
    report = get(credit_key(dispute["subject"]))
    current = report is not None and (report["reporter"], report["height"]) == (
        dispute["furnisher"],
        dispute["report_height"],
    )
    answer = dispute["answer"]
    return {
        **{key: value for key, value in dispute.items() if key not in ("reason_hash", "answer")},
        "furnisher_name": names(dispute["furnisher"]),
        "reason_hash": dispute["reason_hash"].hex(),
        "status": status_of(dispute, as_of_ms),
        "report_current": current,
        "answer": None if answer is None else {**answer, "evidence_hash": answer["evidence_hash"].hex()},
    }


def disputes_summary(
    get: Getter, index: bytes, subject_of: Callable[[list[Any]], bytes], as_of_ms: int | None
) -> dict[str, Any]:
    """The counts over every dispute under ``index`` (one walk of it) and the newest ``DISPUTES_SHOWN``,
    newest first, each furnisher's name read once; ``subject_of`` turns an index item into its
    dispute's key."""
    counts = {"count": 0, OPEN: 0, OVERDUE: 0, "answered_on_time": 0, "answered_late": 0}
    for item in pagedlist.items(get, index):
        dispute = get(subject_of(item))
        status = status_of(dispute, as_of_ms)
        counts["count"] += 1
        if status == ANSWERED:
            counts["answered_on_time" if dispute["answer"]["on_time"] else "answered_late"] += 1
        else:
            counts[status] += 1
    total = counts["count"]
    newest = pagedlist.window(get, index, max(0, total - DISPUTES_SHOWN), DISPUTES_SHOWN)
    names = MemberNames(get)
    shown = [dispute_view(get, get(subject_of(item)), as_of_ms, names) for item in reversed(newest)]
    return {**counts, "shown": shown}


def subject_disputes(get: Getter, did: str, as_of_ms: int | None) -> dict[str, Any]:
    """A subject's disputes (``disputes_summary``)."""
    return disputes_summary(
        get, subject_index_key(did), lambda item: dispute_key(did, item[0], item[1]), as_of_ms
    )


def furnisher_disputes(get: Getter, did: str, as_of_ms: int | None) -> dict[str, Any]:
    """The disputes of the reports a member furnished (``disputes_summary``)."""
    return disputes_summary(
        get, furnisher_index_key(did), lambda item: dispute_key(item[0], did, item[1]), as_of_ms
    )


def disputes_view(reader: StateReader, did: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """``GET /disputes/{did}``: a registered party's disputes of its credit reports, or the disputes
    of the reports a member furnished (how many it answered on time, late, and how many are
    overdue now, for a supervisor; with the member's ``name``), judged at ``as_of_ms``; None for a
    DID that is neither.

    Counted by one walk of the DID's index: a query, never a handler, reads it whole.
    """

    def get(key: bytes) -> Any:
        return read_value(reader, key)

    if get(party_key(did)) is not None:
        return {"did": did, "kind": "party", **subject_disputes(get, did, as_of_ms)}
    institution = get(institution_key(did))
    if institution is not None:
        return {
            "did": did,
            "kind": "member",
            "name": institution["name"],
            **furnisher_disputes(get, did, as_of_ms),
        }
    return None
