"""What ``lendchain party show`` prints of a party's view (``GET /parties/{did}``), and the names it
uses for members: the view's own (``attester_name``, ``reporter_name``), or from an older node,
which answers without them, ``GET /members/*``'s.

Three kinds of DID answer: a registered ``party`` (a borrower or investor: its
registration, KYC attestation, consents, latest credit report, repayment
history, score, disputes, the loans it applied for and its live ones), a
consortium ``member`` (its roles, vote, address, admission or removal) and a
``member_key`` (a key a member rotated to, and the heights it signs in). A
node of an older release answers without the newer parts, and the text
leaves them out. Text only: ``--json`` prints the view as the node answers it.
"""

from __future__ import annotations

from typing import Any

from lendchain.cli._common import member_text
from lendchain.cli.reports import position_stage_text
from lendchain.ledger.dispute_records import time_text

LABEL = 12  # the width of the label column


def names_needed(view: dict[str, Any]) -> bool:
    """Whether ``party_text`` needs ``_common.roster_names`` for ``view``: a node of an older release answers
    a party's KYC attestation and credit report without their members' names (``attester_name``,
    ``reporter_name``)."""
    kyc, report = view.get("kyc"), view.get("credit_report")
    return view.get("kind") == "party" and (
        (kyc is not None and "attester_name" not in kyc)
        or (report is not None and "reporter_name" not in report)
    )


def party_member_names(view: dict[str, Any]) -> dict[str, str]:
    """The members a party's view names, by DID: its KYC attester, its credit report's reporter and
    the furnishers of the reports it disputed (each view part's ``*_name``; none from an older node)."""
    named = [
        (view.get("kyc"), "attester"),
        (view.get("credit_report"), "reporter"),
        *((dispute, "furnisher") for dispute in (view.get("disputes") or {}).get("shown", [])),
    ]
    return {
        record[field]: record[f"{field}_name"]
        for record, field in named
        if record is not None and record.get(f"{field}_name")
    }


def party_text(view: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """The view as lines an operator reads; ``names`` gives the members' names by DID where the view
    has none (``names_needed``)."""
    names = names or {}
    if view["kind"] == "member":
        lines = _member_lines(view)
    elif view["kind"] == "member_key":
        lines = _member_key_lines(view)
    else:
        lines = _party_lines(view, names)
    return "\n".join(lines)


def _row(label: str, text: str) -> str:
    return f"{label:<{LABEL}}{text}"


def _more(text: str) -> str:
    return " " * LABEL + text


def _party_lines(view: dict[str, Any], names: dict[str, str]) -> list[str]:
    did = view["did"]
    registered = f"{view['role']}, registered at block {view['registered_height']}"
    lines = [_row("party", did), _row("role", registered)]
    if view.get("attestation"):
        lines.append(_row("attestation", view["attestation"]))
    lines.append(_row("next nonce", str(view["nonce"])))
    lines += _kyc_lines(view.get("kyc"), names)
    lines += _consent_lines(view.get("consents"))
    lines += _report_lines(view.get("credit_report"), names)
    lines += _history_lines(view.get("repayment_history"))
    lines += _score_lines(view.get("credit_score"))
    lines += _dispute_lines(view.get("disputes"))
    lines += _loan_lines(view)
    lines += _index_lines(view)
    return lines


def _kyc_lines(kyc: dict[str, Any] | None, names: dict[str, str]) -> list[str]:
    if kyc is None:
        return [_row("KYC", "none")]
    attester = member_text(kyc["attester"], kyc.get("attester_name"), names)
    return [
        _row("KYC", f"level {kyc['level']}, attested by {attester} at block {kyc['height']}"),
        _more(f"expires {time_text(kyc['expires_ms'])}, evidence sha256 {kyc['evidence_hash']}"),
    ]


def _consent_lines(consents: list[dict[str, Any]] | None) -> list[str]:
    if consents is None:  # an older node
        return []
    if not consents:
        return [_row("consents", "none")]
    lines = []
    for n, consent in enumerate(consents):
        who = consent["name"] or consent["member"]
        state = "" if consent["in_force"] else " (expired)"
        lines.append(
            (_row("consents", "") if n == 0 else _more(""))
            + f"{who}: {', '.join(consent['scopes'])} until {time_text(consent['until_ms'])}{state},"
            f" given at block {consent['height']}"
        )
    return lines


def _report_lines(report: dict[str, Any] | None, names: dict[str, str]) -> list[str]:
    if report is None:
        return [_row("credit", "no credit report")]
    reporter = member_text(report["reporter"], report.get("reporter_name"), names)
    return [
        _row("credit", f"reported by {reporter} at block {report['height']}"),
        _more(
            f"income band {report['income_band']}, debt-to-income {report['dti_bps']} bps, "
            f"{report['history_months']} months of credit history, {report['obligations']} obligations"
        ),
        _more(f"evidence sha256 {report['evidence_hash']}"),
    ]


def _history_lines(history: dict[str, Any] | None) -> list[str]:
    if history is None:
        return []
    text = (
        f"{history['on_time']} on time, {history['late']} late, {history['defaults']} defaults "
        f"({history.get('written_off', 0)} written off), {history['closed']} closed, "
        f"{history.get('restructurings', 0)} restructured"
    )
    lines = [_row("repayments", text)]
    recovered = history.get("recovered") or {}
    if recovered:
        amounts = ", ".join(f"{currency} {amount}" for currency, amount in recovered.items())
        lines.append(_more(f"recovered after write-offs: {amounts}"))
    return lines


def _score_lines(score: dict[str, Any] | None) -> list[str]:
    if score is None:
        return []
    counted = [f"{f['factor']} {f['points']:+d}" for f in score["factors"] if f["points"]]
    return [
        _row("score", f"{score['score']}" + (f" ({', '.join(counted)})" if counted else "")),
        _more("`lendchain score explain DID` gives each factor's value and source"),
    ]


def _dispute_lines(disputes: dict[str, Any] | None) -> list[str]:
    if not disputes:  # none before rules 7, or an older node
        return []
    if not disputes["count"]:
        return [_row("disputes", "none of its credit reports")]
    return [
        _row(
            "disputes",
            f"{disputes['count']} of its credit reports: {disputes['open']} open, {disputes['overdue']} overdue, "
            f"{disputes['answered_on_time']} answered on time, {disputes['answered_late']} late",
        ),
        _more("`lendchain credit disputes DID` lists them"),
    ]


def _loan_lines(view: dict[str, Any]) -> list[str]:
    live = view.get("reminders", [])  # the loans being repaid: disbursed, repaying or overdue
    applied = view.get("borrower_loans")  # an older node does not count them
    summary = (
        f"{applied} applied for, " if applied is not None else ""
    ) + f"{len(live) or 'none'} being repaid"
    lines = [_row("loans", summary)]
    for row in live:
        due = row["instalments"][:1]
        next_due = (
            f"; next #{due[0]['number']} due {time_text(due[0]['due_ms'])}: {due[0]['amount']}" if due else ""
        )
        lines.append(
            _more(
                f"{row['loan_id']} {row['state']}{position_stage_text(row)}, penalty due {row['penalty_due']}"
                f"{next_due}"
            )
        )
    return lines


def _index_lines(view: dict[str, Any]) -> list[str]:
    lines = []
    if view.get("funder_loans"):
        lines.append(
            _row("funds", f"{view['funder_loans']} syndicated loans (`lendchain fund positions DID`)")
        )
    if view.get("guarantees_proposed_to"):
        lines.append(
            _row(
                "guarantees",
                f"{view['guarantees_proposed_to']} proposed to it (`lendchain party exposure DID`)",
            )
        )
    return lines


def _member_lines(view: dict[str, Any]) -> list[str]:
    did = view["did"]
    lines = [
        _row("member", f"{view['name']}  {did}"),
        _row("roles", ", ".join(view["roles"]) or "none"),
        _row("voting", _voting_text(view)),
        _row("public key", view["public_key"]),
    ]
    if view.get("address"):
        lines.append(_row("address", view["address"]))
    if "admitted_height" in view:
        lines.append(_row("admitted", f"at block {view['admitted_height']}"))
    if "removed_height" in view:
        lines.append(_row("removed", f"at block {view['removed_height']}: {view['removal_reason']}"))
    lines.append(_row("next nonce", str(view["nonce"])))
    lines += _index_lines(view)
    return lines


def _voting_text(view: dict[str, Any]) -> str:
    text = "votes" if view["voting"] else "observer (does not vote)"
    changes = view.get("voting_changes", [])
    if not changes:
        return text
    later = "; ".join(
        f"{'votes' if change['voting'] else 'stops voting'} from block {change['effective_height']}"
        for change in changes
    )
    return f"{text} when it joined; {later}"


def _member_key_lines(view: dict[str, Any]) -> list[str]:
    until = view["signs_until_height"]
    heights = f"from block {view['signs_from_height']}" + (
        f", replaced by its next key at block {until}" if until is not None else " on"
    )
    return [
        _row("member key", view["did"]),
        _row("signs for", f"{view['member']} ({view['member_did']}) {heights}"),
        _row("next nonce", str(view["nonce"])),
    ]
