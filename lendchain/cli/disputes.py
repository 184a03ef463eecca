"""``lendchain credit dispute``, ``credit answer-dispute`` and ``credit disputes``: a borrower disputes
its latest credit report, the member that furnished it answers, and anyone lists a party's or a
member's disputes (rules version 7; see ``lendchain.ledger.disputes``).

A module of its own beside ``domain`` (near its size limit), attached to the ``credit`` group as
``book``'s commands are to ``loan``. The borrower's statement and the furnisher's evidence stay on
this machine: only their sha256 goes on chain. Nothing is sent while the chain runs rules older
than 7.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    client_options,
    emit,
    load_signer,
    member_text,
    require_rules,
    roster_names,
    send_tx,
    signer_options,
    user_errors,
)
from lendchain.client import ref_path
from lendchain.ledger.dispute_records import CORRECTED, OUTCOMES, SINCE_RULES, time_text
from lendchain.ledger.disputes import ANSWER, DISPUTE
from lendchain.ledger.scoring import REPORT_FACTORS

_HEX = re.compile(r"[0-9a-f]{64}")


def file_hash(path: str | None, given: str | None, option: str) -> str:
    """The sha256 of a file kept off chain (``--OPTION``), or one given as hex (``--OPTION-hash``)."""
    if (path is None) == (given is None):
        raise click.UsageError(f"give exactly one of --{option} FILE or --{option}-hash HEX")
    if given is not None:
        if not _HEX.fullmatch(given):
            raise click.BadParameter("must be 64 lowercase hex digits", param_hint=f"--{option}-hash")
        return given
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise click.ClickException(f"cannot read {option} file {path}: {e.strerror}") from None


def _file_options(option: str, what: str) -> Any:
    def decorate(fn: Any) -> Any:
        fn = click.option(f"--{option}-hash", help=f"sha256 (hex) of {what} instead of a file.")(fn)
        return click.option(
            f"--{option}", type=click.Path(exists=True, dir_okay=False), help=f"{what}, hashed locally."
        )(fn)

    return decorate


@click.command("dispute")
@click.option("--member", help="The member that furnished the report (default: your latest report's).")
@click.option("--report-height", type=click.IntRange(1), help="The report's height (default: your latest's).")
@_file_options("reason", "Your statement of what is wrong (kept off chain)")
@signer_options
@click.pass_context
@user_errors
def credit_dispute(ctx: click.Context, member: str | None, report_height: int | None, **kw: Any) -> None:
    """Dispute your latest credit report, as the party it is about (rules 7).

    Signed with your own key (--key). The report is named by the member that
    furnished it and its height: without --member and --report-height, your
    latest report's, read from the node. The member answers by the deadline
    (the chain's dispute_response_ms, 30 days by default); unanswered by then,
    the report stops counting in your score. `credit disputes DID` shows it.
    """
    reason_hash = file_hash(kw.pop("reason"), kw.pop("reason_hash"), "reason")
    with client_from(kw) as client:
        require_rules(client.get("/status"), SINCE_RULES, DISPUTE, "send it")
        subject = load_signer(kw["key_path"], kw["config_path"], kw["passphrase_file"], client).did
        if member is None or report_height is None:
            member, report_height = _latest_report(
                client.get(ref_path("/parties", subject)), member, report_height
            )
    payload = {
        "subject": subject,
        "member": member,
        "report_height": report_height,
        "reason_hash": reason_hash,
    }
    send_tx(ctx, kw, DISPUTE, payload)


def _latest_report(party: dict[str, Any], member: str | None, height: int | None) -> tuple[str, int]:
    """The member and height of ``party``'s latest report, checked against those given."""
    report = party.get("credit_report")
    if report is None:
        raise click.ClickException(f"{party['did']} has no credit report to dispute")
    if member is not None and member != report["reporter"]:
        reporter = member_text(report["reporter"], report.get("reporter_name"))  # an older node: the DID
        raise click.ClickException(
            f"{party['did']}'s latest credit report is by {reporter}, not {member}: "
            "only the latest report can be disputed"
        )
    if height is not None and height != report["height"]:
        raise click.ClickException(
            f"{party['did']}'s latest credit report is at height {report['height']}, not {height}: "
            "only the latest report can be disputed"
        )
    return report["reporter"], report["height"]


@click.command("answer-dispute")
@click.argument("subject")
@click.option("--outcome", type=click.Choice(OUTCOMES), required=True, help="What the investigation found.")
@click.option(
    "--report-height", type=click.IntRange(1), help="The disputed report's height (default: the one open)."
)
@click.option("--income-band", type=click.IntRange(1, 10), help="Corrected: as credit report.")
@click.option("--dti-bps", type=click.IntRange(0, 1_000_000), help="Corrected: debt-to-income, bp.")
@click.option("--history-months", type=click.IntRange(0, 1200), help="Corrected: as credit report.")
@click.option("--obligations", type=click.IntRange(0, 1000), help="Corrected: as credit report.")
@_file_options("evidence", "The evidence of your investigation (kept off chain)")
@signer_options
@click.pass_context
@user_errors
def credit_answer_dispute(
    ctx: click.Context, subject: str, outcome: str, report_height: int | None, **kw: Any
) -> None:
    """Answer SUBJECT's dispute of a credit report you furnished (rules 7).

    confirmed keeps the report; corrected replaces it with the four features
    given (--income-band, --dti-bps, --history-months, --obligations, checked
    as `credit report` checks them); withdrawn deletes it. Without
    --report-height, the one dispute of your reports SUBJECT has open.
    An answer after the deadline still counts, recorded as late.
    """
    features = {name: kw.pop(name) for name in REPORT_FACTORS}
    given = {name: amount for name, amount in features.items() if amount is not None}
    if outcome == CORRECTED and len(given) < len(REPORT_FACTORS):
        missing = [name for name in REPORT_FACTORS if name not in given]
        raise click.UsageError(
            f"--outcome corrected needs the corrected report: give --{missing[0].replace('_', '-')}"
        )
    if outcome != CORRECTED and given:
        raise click.UsageError(f"only --outcome corrected takes features, not {outcome}")
    evidence = file_hash(kw.pop("evidence"), kw.pop("evidence_hash"), "evidence")
    with client_from(kw) as client:
        require_rules(client.get("/status"), SINCE_RULES, ANSWER, "send it")
        if report_height is None:
            key = load_signer(kw["key_path"], kw["config_path"], kw["passphrase_file"], client)
            report_height = _open_dispute(client, client.get(ref_path("/disputes", subject)), key.did)
    payload = {
        "subject": subject,
        "report_height": report_height,
        "outcome": outcome,
        "evidence_hash": evidence,
    }
    send_tx(ctx, kw, ANSWER, {**payload, **given})


def _open_dispute(client: Any, view: dict[str, Any], furnisher: str) -> int:
    """The report height of the one unanswered dispute of ``furnisher``'s reports in ``view``."""
    waiting = [d for d in view.get("shown", []) if d["furnisher"] == furnisher and d["answer"] is None]
    if not waiting:
        signer = member_text(furnisher, names=roster_names(client))  # asked only to refuse
        raise click.ClickException(f"{view['did']} has no unanswered dispute of a report by {signer}")
    if len(waiting) > 1:
        heights = ", ".join(str(d["report_height"]) for d in waiting)
        raise click.ClickException(
            f"{view['did']} disputes {len(waiting)} of your reports (heights {heights}): name one with --report-height"
        )
    return waiting[0]["report_height"]


@click.command("disputes")
@click.argument("did", required=False)
@click.option(
    "--members",
    "all_members",
    is_flag=True,
    help="Every member's record, one line each, instead of one DID's.",
)
@client_options
@click.pass_context
@user_errors
def credit_disputes(ctx: click.Context, did: str | None, all_members: bool, **kw: Any) -> None:
    """List a party's disputes of its credit reports, or those of a member's reports.

    For a member, how many it answered on time and late, and how many are
    overdue now (judged at the head block's time), as a supervisor reads them.
    With --members, that record for every member of the consortium.
    """
    if (did is None) == (not all_members):
        raise click.UsageError("give a DID, or --members for every member's record (not both)")
    with client_from(kw) as client:
        if all_members:
            emit(ctx, member_records(client), describe_member_records)
        else:
            emit(ctx, client.get(ref_path("/disputes", did)), describe_disputes)


RECORD = ("count", "open", "overdue", "answered_on_time", "answered_late")  # a member's counts


def member_records(client: Any) -> dict[str, Any]:
    """``GET /disputes/{did}``'s counts for every member ``GET /members/*`` lists, removed ones too
    (a supervisor still reads what they answered), in the consortium's order."""
    records = []
    for member in client.get("/members/*")["members"]:
        view = client.get(ref_path("/disputes", member["did"]))
        removed = {"removed_height": member["removed_height"]} if "removed_height" in member else {}
        records.append(
            {"name": member["name"], "did": member["did"], **removed, **{k: view[k] for k in RECORD}}
        )
    return {"members": records}


def describe_member_records(value: dict[str, Any]) -> str:
    """One line per member: the disputes of the reports it furnished and where they stand."""
    width = max((len(m["name"]) for m in value["members"]), default=0)
    lines = [f"disputes of the credit reports each member furnished ({len(value['members'])} members)"]
    for m in value["members"]:
        removed = f" (removed at height {m['removed_height']})" if "removed_height" in m else ""
        lines.append(
            f"  {m['name']:<{width}}  {m['count']} dispute{'' if m['count'] == 1 else 's'}: {m['open']} open, {m['overdue']} overdue, "
            f"{m['answered_on_time']} answered on time, {m['answered_late']} late{removed}"
        )
    return "\n".join(lines)


def describe_disputes(view: dict[str, Any]) -> str:
    """``credit disputes DID``: the counts, then the newest disputes one a line; a member by its name
    and DID (the DID alone from an older node, which names none)."""
    whose = "of its credit reports" if view["kind"] == "party" else "of the credit reports it furnished"
    if view["kind"] == "party":
        who = f"{view['did']} (party)"
    else:
        who = f"member {member_text(view['did'], view.get('name'))}"
    lines = [
        f"{who}: {view['count']} dispute{'' if view['count'] == 1 else 's'} {whose}: "
        f"{view['open']} open, {view['overdue']} overdue, {view['answered_on_time']} answered on time, "
        f"{view['answered_late']} answered late"
    ]
    lines += [f"  {dispute_line(d, view['kind'])}" for d in view["shown"]]
    if view["count"] > len(view["shown"]):
        lines.append(f"  (the newest {len(view['shown'])} shown)")
    return "\n".join(lines)


def dispute_line(dispute: dict[str, Any], kind: str) -> str:
    """One dispute: whose report (its furnisher by name and DID), since when, and where it stands."""
    furnisher = member_text(dispute["furnisher"], dispute.get("furnisher_name"))
    who = f"report by {furnisher}" if kind == "party" else f"{dispute['subject']}'s report"
    head = f"{who} at height {dispute['report_height']}, disputed at height {dispute['height']}"
    if dispute["status"] != "answered":
        due = time_text(dispute["deadline_ms"])
        stands = f"open, answer due by {due}" if dispute["status"] == "open" else f"overdue since {due}"
        if not dispute["report_current"]:
            return f"{head}: {stands} (a newer report replaced it)"
        counted = "it counts meanwhile" if dispute["status"] == "open" else "it no longer counts"
        return f"{head}: {stands}; {counted}"
    answer = dispute["answer"]
    when = "on time" if answer["on_time"] else "late"
    return f"{head}: {answer['outcome']} at height {answer['height']} ({when})"
