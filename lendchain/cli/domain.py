"""The lending domain from the command line: KYC, consent, credit, score, policies, funding, servicing.

Groups: ``kyc``, ``consent``, ``credit``, ``score``, ``policy``, ``fund``,
``servicing``, ``doc``, ``audit`` (all in ``COMMANDS``; ``gov`` is in ``governance.py``). Transactions are signed
locally (``--key``) and sent to a node
(``--node``/``--config``); reads go through the node's API. Evidence files
stay on this machine: only their sha256 goes on chain.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import click

from lendchain.cli._common import (
    all_member_keys,
    client_from,
    client_options,
    emit,
    load_signer,
    member_text,
    named_in,
    send_tx,
    signer_options,
    user_errors,
)
from lendchain.cli.assignment import funding_share_lines, offered_lines, position_share_lines
from lendchain.cli.collateral import share_coverage_lines
from lendchain.cli.parties import party_member_names
from lendchain.cli.reports import position_stage_text, share_stage_lines
from lendchain.client import ref_path
from lendchain.crypto import (
    CryptoError,
    SigningKey,
    open_sealed,
    public_key_from_did,
    seal_to,
)
from lendchain.ledger.amortization import SCHEDULE_KINDS
from lendchain.ledger.dispute_records import time_text
from lendchain.node.config import load_node_config

DAY_MS = 86_400_000


def evidence_hash(evidence: str | None, given_hash: str | None) -> str:
    """The sha256 of an evidence file kept off chain, or a hash given as hex."""
    if (evidence is None) == (given_hash is None):
        raise click.UsageError("give exactly one of --evidence FILE or --evidence-hash HEX")
    if given_hash is not None:
        if not re.fullmatch(r"[0-9a-f]{64}", given_hash):
            raise click.BadParameter("must be 64 lowercase hex digits", param_hint="--evidence-hash")
        return given_hash
    try:
        return hashlib.sha256(Path(evidence).read_bytes()).hexdigest()
    except OSError as e:
        raise click.ClickException(f"cannot read evidence file {evidence}: {e.strerror}") from None


def days_from_now(days: int) -> int:
    """A time ``days`` ahead of this machine's clock, in ms (the chain compares it to block time)."""
    return int(time.time() * 1000) + days * DAY_MS


def evidence_options(fn: Any) -> Any:
    fn = click.option("--evidence-hash", help="sha256 (hex) of the evidence instead of a file.")(fn)
    fn = click.option(
        "--evidence", type=click.Path(exists=True, dir_okay=False), help="Evidence file, hashed locally."
    )(fn)
    return fn


# kyc ------------------------------------------------------------------------------


@click.group()
def kyc() -> None:
    """KYC attestations by members with the kyc role."""


@kyc.command("attest")
@click.argument("subject")
@click.option("--level", type=click.IntRange(1, 3), required=True, help="KYC level, 1 to 3.")
@click.option("--valid-days", type=click.IntRange(1, 36_500), default=365, show_default=True)
@evidence_options
@signer_options
@click.pass_context
@user_errors
def kyc_attest(ctx: click.Context, subject: str, level: int, valid_days: int, **kw: Any) -> None:
    """Attest the registered party SUBJECT (a did:key) at a KYC level."""
    payload = {
        "subject": subject,
        "level": level,
        "expires_ms": days_from_now(valid_days),
        "evidence_hash": evidence_hash(kw.pop("evidence"), kw.pop("evidence_hash")),
    }
    send_tx(ctx, kw, "kyc.attest", payload)


# consent --------------------------------------------------------------------------


@click.group()
def consent() -> None:
    """A party's consent to a member for data scopes (kyc, credit, documents)."""


@consent.command("grant")
@click.argument("member")
@click.option("--scopes", default="credit", show_default=True, help="Comma-separated: kyc,credit,documents.")
@click.option("--days", type=click.IntRange(1, 36_500), default=365, show_default=True)
@signer_options
@click.pass_context
@user_errors
def consent_grant(ctx: click.Context, member: str, scopes: str, days: int, **kw: Any) -> None:
    """Let MEMBER (a member's did:key) use SCOPES of your data for DAYS."""
    send_tx(ctx, kw, "consent.grant", {"member": member, "scopes": scopes, "until_ms": days_from_now(days)})


@consent.command("revoke")
@click.argument("member")
@signer_options
@click.pass_context
@user_errors
def consent_revoke(ctx: click.Context, member: str, **kw: Any) -> None:
    """End your consent to MEMBER."""
    send_tx(ctx, kw, "consent.revoke", {"member": member})


# credit and score -------------------------------------------------------------------


@click.group()
def credit() -> None:
    """Attested credit features, reported by bureau or lender members with consent."""


@credit.command("report")
@click.argument("subject")
@click.option("--income-band", type=click.IntRange(1, 10), required=True)
@click.option("--dti-bps", type=click.IntRange(0, 1_000_000), required=True, help="Debt-to-income, bp.")
@click.option("--history-months", type=click.IntRange(0, 1200), required=True)
@click.option("--obligations", type=click.IntRange(0, 1000), required=True)
@evidence_options
@signer_options
@click.pass_context
@user_errors
def credit_report(ctx: click.Context, subject: str, **kw: Any) -> None:
    """Report SUBJECT's coarse credit features (needs its consent to scope credit)."""
    payload = {name: kw.pop(name) for name in ("income_band", "dti_bps", "history_months", "obligations")}
    payload["subject"] = subject
    payload["evidence_hash"] = evidence_hash(kw.pop("evidence"), kw.pop("evidence_hash"))
    send_tx(ctx, kw, "credit.report", payload)


@click.group()
def score() -> None:
    """The open credit score."""


def describe_score(view: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """The score and each factor's points, value and source; a member a source names by its DID is
    named by ``names`` too (``parties.party_member_names``)."""
    lines = [f"score {view['score']} for {view['did']}"]
    for factor in view["factors"]:
        value = "-" if factor["value"] is None else str(factor["value"])
        source = named_in(factor["source"], names or {})
        lines.append(f"  {factor['factor']:<15} {factor['points']:>+6}  value {value:<10} {source}")
    return "\n".join(lines)


@score.command("explain")
@click.argument("did")
@client_options
@click.pass_context
@user_errors
def score_explain(ctx: click.Context, did: str, **kw: Any) -> None:
    """Show DID's score, each factor's points and the data it came from."""
    with client_from(kw) as client:
        party = client.get(ref_path("/parties", did))
    if "credit_score" not in party:
        raise click.ClickException(f"{_no_party(party)}; it has no score")
    names = party_member_names(party)
    emit(ctx, {"did": did, **party["credit_score"]}, lambda v: describe_score(v, names))


def _no_party(view: dict[str, Any]) -> str:
    """What a ``GET /parties/{did}`` view that is no registered party's is: a member's DID, by the
    member's name, or a key a member rotated to, naming the member it signs for."""
    if view["kind"] == "member_key":
        return f"{view['did']} is a key consortium member {view['member']} signs with, not a registered party"
    return f"{view['did']} is consortium member {view['name']}, not a registered party"


# policies ------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Lender policies that offer automatically on matching applications."""


@policy.command("publish")
@click.option("--currency", required=True)
@click.option("--min-amount", type=click.IntRange(1), required=True, help="Minor units.")
@click.option("--max-amount", type=click.IntRange(1), required=True, help="Minor units.")
@click.option("--max-term", "max_term_months", type=click.IntRange(1, 1200), required=True, help="Months.")
@click.option("--bands", required=True, help="score:rate_bps pairs, e.g. 700:800,500:1200.")
@click.option("--max-exposure", type=click.IntRange(1), required=True, help="Per borrower, minor units.")
@click.option("--min-kyc-level", type=click.IntRange(0, 3), default=0, show_default=True)
@click.option("--funding-window-ms", type=click.IntRange(1), help="Make syndicated offers with this window.")
@click.option("--schedule", type=click.Choice(SCHEDULE_KINDS), default="annuity", show_default=True)
@signer_options
@click.pass_context
@user_errors
def policy_publish(ctx: click.Context, **kw: Any) -> None:
    """Publish a policy as the signing lender."""
    names = (
        "currency",
        "min_amount",
        "max_amount",
        "max_term_months",
        "bands",
        "max_exposure",
        "min_kyc_level",
        "schedule",
    )
    payload = {name: kw.pop(name) for name in names}
    window = kw.pop("funding_window_ms")
    if window is not None:
        payload["funding_window_ms"] = window
    send_tx(ctx, kw, "policy.publish", payload)


@policy.command("withdraw")
@click.argument("policy_id")
@signer_options
@click.pass_context
@user_errors
def policy_withdraw(ctx: click.Context, policy_id: str, **kw: Any) -> None:
    """Withdraw your policy POLICY_ID."""
    send_tx(ctx, kw, "policy.withdraw", {"policy_id": policy_id})


# funding and servicing -------------------------------------------------------------


@click.group()
def fund() -> None:
    """Fund syndicated loans and see each funder's share."""


@fund.command("commit")
@click.argument("loan_id")
@click.argument("amount", type=click.IntRange(1))
@signer_options
@click.pass_context
@user_errors
def fund_commit(ctx: click.Context, loan_id: str, amount: int, **kw: Any) -> None:
    """Commit AMOUNT minor units to the loan LOAN_ID that is in funding."""
    send_tx(ctx, kw, "loan.fund", {"loan_id": loan_id, "amount": amount})


@fund.command("expire")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def fund_expire(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Close an underfunded loan after its deadline and release its commitments."""
    send_tx(ctx, kw, "loan.fund_expire", {"loan_id": loan_id})


def describe_funding(view: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """``fund show``: the funders and their shares, by name and DID where ``names`` (the loan view's
    ``member_names``) has one (an investor, a party, has none)."""
    funding = view["funding"]
    lines = [
        f"loan {view['loan_id']} {view['state']}: funded {funding['funded']} of {funding['target']}"
        f" by {time_text(funding['deadline_ms'])}"
    ]
    for c in funding["commitments"]:
        funder = member_text(c["funder"], names=names)
        lines.append(f"  {funder}  share {c['amount']}  received {c['received']}  {c['status']}")
    lines += funding_share_lines(funding, names)  # rules 6: shares offered and sold
    return "\n".join(lines)


@fund.command("show")
@click.argument("loan_id")
@client_options
@click.pass_context
@user_errors
def fund_show(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Show a syndicated loan's funders, shares and repayments received."""
    with client_from(kw) as client:
        view = client.get(ref_path("/loans", loan_id))
    if "funding" not in view:
        raise click.ClickException(
            f"loan {loan_id} is not syndicated (its accepted offer had no funding window)"
        )
    funding = {"loan_id": loan_id, "state": view["state"], "funding": view["funding"]}
    emit(ctx, funding, lambda v: describe_funding(v, view.get("member_names")))


@fund.command("positions")
@click.argument("did")
@client_options
@click.pass_context
@user_errors
def fund_positions(ctx: click.Context, did: str, **kw: Any) -> None:
    """Show DID's positions in syndicated loans: commitments, repayments received, share of the principal."""
    with client_from(kw) as client:
        view = client.get(ref_path("/positions", did))
    emit(ctx, view, describe_positions)


def describe_positions(view: dict[str, Any]) -> str:
    lines = [
        f"{currency}: committed {t['committed']} in {t['loans']} loans, received {t['received']}, "
        f"outstanding share {t['outstanding']} ({t['overdue_loans']} overdue, {t['defaulted_loans']} defaulted)"
        for currency, t in view["currencies"].items()
    ]
    lines += [  # an older release's node answers without it, or without what was recovered (rules 5)
        f"{currency}: written off share {t['principal']} in {t['loans']} loans"
        + (
            f", recovered since {t['recovered']}, net principal {t['net_principal']}"
            if "recovered" in t
            else ""
        )
        for currency, t in view.get("written_off", {}).items()
    ]
    lines += [  # its shares of the restructured loans still forborne (rules 5)
        f"{currency}: forborne share {t['outstanding']} in {t['loans']} loans (performing "
        f"{t['performing_outstanding']} in {t['performing_loans']}, non-performing "
        f"{t['non_performing_outstanding']} in {t['non_performing_loans']})"
        for currency, t in view.get("forborne", {}).items()
    ]
    lines += share_stage_lines(view)  # its shares by IFRS 9 stage and days past due (``staging``)
    lines += share_coverage_lines(view)  # rules 6: its shares of what collateral covers
    lines += [  # rules 7: its shares of what the loans' guarantees cover (an older node sends none)
        f"{currency}: guaranteed share {t['guaranteed']} in {t['guaranteed_loans']} loans"
        for currency, t in view.get("guaranteed", {}).items()
    ]
    for p in view["positions"]:
        share = f", share {p['share']} of {p['share_of']}" if p["share_of"] else ""
        share += f", recovered {p['recovered']}" if p.get("recovered") else ""
        share += f", forbearance {p['forbearance']}" if p.get("forbearance") else ""
        # sold whole (rules 6): it carries none of the loan's risk, so no stage (an older node sends one)
        share += ", sold whole: no stage" if p["status"] == "assigned" else position_stage_text(p)
        share += f", secured {p['secured']}" if p.get("secured") else ""
        share += f", guaranteed {p['guaranteed']}" if p.get("guaranteed") else ""
        lines.append(
            f"  {p['loan_id'][:16]}…  {p['state']}  {p['status']} {p['commitment']}, received {p['received']}{share}"
        )
        asked = p.get("consent_requested")  # a restructuring waiting for this funder's consent (rules 5)
        if asked:
            until = f" until {time_text(asked['expires_ms'])}" if "expires_ms" in asked else ""  # rules 6
            lines.append(
                f"    restructuring proposed at height {asked['height']} ({asked['rate_bps']} bps over "
                f"{asked['term_months']} months, {asked['holiday_months']} of holiday) waits for your "
                f"consent{until}: lendchain loan consent-restructure {p['loan_id']}"
            )
        lines += position_share_lines(p, view.get("member_names"))  # rules 6: bought, sold, its pending offer
    lines += offered_lines(view)  # rules 6: shares offered to this funder
    return "\n".join(lines)


@click.group()
def servicing() -> None:
    """Evaluate loans against block time: overdue, default, penalty."""


@servicing.command("check")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def servicing_check(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Send loan.service for LOAN_ID (any member may)."""
    send_tx(ctx, kw, "loan.service", {"loan_id": loan_id})


def describe_reminders(value: dict[str, Any]) -> str:
    lines = [f"reminders for {value['did']}"]
    for row in value["reminders"]:
        stage = position_stage_text(row)  # none from a node of an older release
        lines.append(f"  loan {row['loan_id'][:16]} {row['state']}  penalty due {row['penalty_due']}{stage}")
        for instalment in row["instalments"]:
            lines.append(
                f"    #{instalment['number']} due {time_text(instalment['due_ms'])}: {instalment['amount']}"
            )
    return "\n".join(lines)


@servicing.command("reminders")
@click.argument("did")
@client_options
@click.pass_context
@user_errors
def servicing_reminders(ctx: click.Context, did: str, **kw: Any) -> None:
    """The next unpaid instalments on a borrower's live loans."""
    with client_from(kw) as client:
        party = client.get(ref_path("/parties", did))
    if "reminders" not in party:
        raise click.ClickException(f"{_no_party(party)}; it has no reminders")
    emit(ctx, {"did": did, "reminders": party["reminders"]}, describe_reminders)


# documents -------------------------------------------------------------------------


@click.group()
def doc() -> None:
    """Private documents on a loan, sealed for one consented member."""


@doc.command("attach")
@click.argument("loan_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--to", "recipient", required=True, help="The member's did:key the document is sealed for.")
@click.option("--name", help="Name shown on chain (default: the file's name).")
@signer_options
@click.pass_context
@user_errors
def doc_attach(
    ctx: click.Context, loan_id: str, file: str, recipient: str, name: str | None, **kw: Any
) -> None:
    """Seal FILE for a member and attach it to LOAN_ID (the borrower must consent to 'documents').

    A member that has rotated its node key gets the document sealed for its
    current key (the one valid from the next block), not for its genesis key.
    """
    plaintext = Path(file).read_bytes()
    with client_from(kw) as client:
        height = client.get("/status")["height"]
        current = [m.key_at(height + 1) for m in all_member_keys(client) if m.did == recipient]
    sealed_for = current[0] if current else public_key_from_did(recipient)
    payload = {
        "loan_id": loan_id,
        "recipient": recipient,
        "name": name or Path(file).name,
        "doc_hash": hashlib.sha256(plaintext).hexdigest(),
        "ciphertext": seal_to(sealed_for, plaintext),
    }
    send_tx(ctx, kw, "doc.attach", payload)


@doc.command("open")
@click.argument("loan_id")
@click.argument("document_id")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Where to write the plaintext.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False), help="The recipient's key file.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False))
@client_options
@click.pass_context
@user_errors
def doc_open(ctx: click.Context, loan_id: str, document_id: str, out: str, **kw: Any) -> None:
    """Decrypt a document addressed to your key and check it against its hash on chain.

    With ``--config`` and no ``--key``, the node's key and then its
    ``next_key_file`` are tried: a document attached before a key rotation is
    sealed for the old key, one attached after it for the new one.
    """
    with client_from(kw) as client:
        view = client.get(ref_path("/loans", loan_id))
    found = [d for d in view.get("documents", []) if d["document_id"] == document_id]
    if not found:
        raise click.ClickException(f"loan {loan_id} has no document {document_id}")
    ciphertext = bytes.fromhex(found[0]["ciphertext"])
    keys = [load_signer(kw["key_path"], kw["config_path"], kw["passphrase_file"])]
    if kw["key_path"] is None and kw["config_path"]:
        next_key_file = load_node_config(kw["config_path"]).next_key_file
        if next_key_file is not None:
            keys.append(load_signer(str(next_key_file), None, kw["passphrase_file"]))
    plaintext = _open_with_any(keys, ciphertext)
    if hashlib.sha256(plaintext).hexdigest() != found[0]["doc_hash"]:
        raise click.ClickException(f"document {document_id} does not match its hash on chain")
    Path(out).write_bytes(plaintext)
    emit(
        ctx, {"document_id": document_id, "out": out, "bytes": len(plaintext)}, lambda v: f"wrote {v['out']}"
    )


def _open_with_any(keys: list[SigningKey], ciphertext: bytes) -> bytes:
    """The plaintext, opened with the first of ``keys`` it is sealed for (the last one's error if none)."""
    for key in keys[:-1]:
        try:
            return open_sealed(key, ciphertext)
        except CryptoError:
            continue
    return open_sealed(keys[-1], ciphertext)


# audit ------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """Export a loan's provable history, and verify such an export offline."""


@audit.command("export")
@click.argument("loan_id")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Where to write the JSON export.")
@client_options
@click.pass_context
@user_errors
def audit_export(ctx: click.Context, loan_id: str, out: str, **kw: Any) -> None:
    """Write LOAN_ID's history with inclusion proofs and commit certificates (node route /audit/{id})."""
    with client_from(kw) as client:
        document = client.get(ref_path("/audit", loan_id))
    Path(out).write_text(json.dumps(document, indent=1, sort_keys=True))
    summary = {"loan_id": loan_id, "out": out, "entries": len(document["entries"])}
    emit(ctx, summary, lambda v: f"wrote {v['entries']} entries of loan {loan_id} to {v['out']}")


@audit.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--genesis", "genesis_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.pass_context
@user_errors
def audit_verify(ctx: click.Context, file: str, genesis_path: str) -> None:
    """Check an export against the genesis alone: signatures, proofs, certificates, no entry missing."""
    from lendchain.ledger.audit import AuditError, verify_export
    from lendchain.node.config import load_genesis

    genesis = load_genesis(genesis_path)
    try:
        document = json.loads(Path(file).read_text())
        summary = verify_export(document, genesis)
    except AuditError as e:
        raise click.ClickException(f"{file} does not verify: {e}") from None
    genesis_dids = {member.did for member in (*genesis.members, *genesis.observers)}

    def human(v: dict[str, Any]) -> str:
        admitted = "".join(
            f"; {a['member']} admitted at block {a['admitted_height']} (proven)" for a in v["admissions"]
        )
        admitted_dids = {a["did"] for a in v["admissions"]}
        rotations = "".join(
            f"; {r['member']}'s node key rotated at block {r['effective_height']} (proven)"
            for r in v["key_rotations"]
        )
        voting = "".join(
            f"; {c['member']} {'votes' if c['voting'] else 'stops voting'} "
            f"from block {c['effective_height']} (proven)"
            for c in v.get("voting_changes", [])
        )
        later_signers = "".join(
            f"; {did} signed for {member} "
            f"({'the key it was admitted with' if did in admitted_dids else 'its rotated key'})"
            for did, member in v["member_signers"].items()
            if did not in genesis_dids
        )
        return (
            f"{file} verifies: loan {v['loan_id']}, {v['entries']} txs in blocks {v['heights']}; "
            f"its {v['history_length']} history entries are complete up to block {v['complete_to_height']}"
            f"{admitted}{rotations}{voting}{later_signers}"
        )

    emit(ctx, summary, human)


COMMANDS = (kyc, consent, credit, score, policy, fund, servicing, doc, audit)
