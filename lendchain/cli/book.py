"""``lendchain loan transfer-book`` and ``loan accept-transfers``: a whole book changes servicer at once.

A bank that sells its book, or leaves the consortium, may service tens of
thousands of loans; ``loan transfer`` one loan at a time is no way to move
them. ``transfer-book`` reads the member's book from the node a page at a
time (``GET /portfolio/{did}/loans``), signs a ``loan.transfer`` for every
open loan it services that has no transfer pending, with consecutive nonces
from the node's next free one, and sends them in batches on one
``/txs/stream``, several batches in flight. It waits for the last tx, then
reads the book again: a loan whose transfer now names ``--to`` was offered;
for any other the node's tx status says why not. ``accept-transfers`` does
the same with ``loan.transfer_accept`` for the transfers pending to the member.

Written-off loans. From rules version 6 a written-off loan's recovery changes
servicer with the same kinds (``ledger.transfers``), and a member servicing
one with money left to recover cannot leave (``ledger.removal``). So both
commands take those loans with the open ones once the chain runs rules 6
(``--loans all``, the default: the book ``member.remove`` waits for), and
``--loans open`` or ``--loans written-off`` picks one kind: a bank that sells
its live book to one lender and hands its charge-offs to a collector runs
each once. Under older rules ``all`` means the open loans, and
``written-off`` is refused, naming the upgrade.

Running either again after an interruption is safe: the book read first says
what is done. A loan already pending to ``--to`` is counted and not sent
again, one pending to another lender is reported and left alone, and an
accepted transfer is no longer pending. The summary always says what was
sent, what took effect, what was refused and why, and what was not sent; the
exit code is 1 unless every tx sent took effect.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    client_options,
    emit,
    key_options,
    load_signer,
    member_text,
    next_rules,
    require_rules,
    user_errors,
)
from lendchain.client import NodeError, ref_path
from lendchain.crypto import SigningKey
from lendchain.ledger.exposure import BOOK_PAGE_MAX
from lendchain.ledger.transactions import Transaction
from lendchain.ledger.transfers import SINCE_RULES as TRANSFER_SINCE
from lendchain.ledger.transfers import WRITTEN_OFF_SINCE

BATCH_TXS = 500  # per stream message: far under the API's 10,000 and 16 MiB, few messages per book
_SHOWN = ("loan_id", "currency", "amount", "state", "lender")  # of each loan a dry run lists
_RETRIED_ERRORS = (429, 503)  # rate limited, mempool full: the same batch goes again after retry_after_s
LOAN_CHOICES = ("all", "open", "written-off")  # ``--loans``: see the module


@dataclass
class Outcome:
    """What became of the txs one command sent, loan by loan."""

    done: list[str] = field(default_factory=list)  # took effect (offered, or accepted)
    refused: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # committed, failed
    dropped: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # never included
    pending: list[str] = field(default_factory=list)  # still in the node's mempool
    not_sent: list[str] = field(default_factory=list)  # the node never got them

    def complete(self) -> bool:
        return not (self.refused or self.dropped or self.pending or self.not_sent)


def _upper(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return value.upper() if value else value


def book_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--dry-run", is_flag=True, help="List what would be sent; send nothing.")(fn)
    fn = click.option(
        "--loans",
        type=click.Choice(LOAN_CHOICES),
        default="all",
        show_default=True,
        help="Open loans, written-off loans whose recovery moves (rules 6), or all (written-off from rules 6).",
    )(fn)
    fn = click.option("--limit", type=click.IntRange(1), help="Send for at most this many loans.")(fn)
    fn = click.option(
        "--currency", callback=_upper, help="Only loans in this currency (ISO 4217 code, e.g. EUR)."
    )(fn)
    fn = click.option(
        "--timeout", default=300.0, show_default=True, help="Seconds to wait for the last tx to commit."
    )(fn)
    return client_options(key_options(fn))


@click.command("transfer-book")
@click.option("--to", required=True, help="did:key of the lender member that is to service the loans.")
@book_options
@click.pass_context
@user_errors
def transfer_book(ctx: click.Context, to: str, **kw: Any) -> None:
    """Offer every open loan the --key's member services to the lender member --to.

    From rules version 6 also every written-off loan whose recovery it
    services with money left to recover (--loans picks one kind). Loans with
    a transfer pending are not sent: one pending to --to already counts as
    offered, one pending to another lender is reported. Safe to run again;
    --to accepts them all with `loan accept-transfers`.
    """
    with client_from(kw) as client:
        status = client.get("/status")
        require_rules(status, TRANSFER_SINCE, "loan.transfer", "hand the book over")
        written_off = _with_written_off(status, kw["loans"], "loan.transfer", "hand their recovery over")
        key = load_signer(kw["key_path"], kw["config_path"], kw["passphrase_file"], client)
        me = _lender_member(client, key.did, "the key's member")
        target = _lender_member(client, to, "--to")
        if target["did"] == me["did"]:
            raise click.ClickException(f"--to {to} is the key's own member {me['name']}: name another lender")
        rows = _chosen(_read_book(client, me["did"], written_off), kw)
        mine = [row for row in rows if row["lender"] == me["did"]]
        free = [row for row in mine if row["transfer"] is None]
        summary: dict[str, Any] = {
            "command": "transfer-book",
            "member": _who(me),
            "to": _who(target),
            "already_offered": [row["loan_id"] for row in mine if _to(row) == to],
            "pending_elsewhere": [
                {"loan_id": row["loan_id"], "to": _to(row), "to_name": row["transfer"].get("to_name")}
                for row in mine
                if _to(row) not in (None, to)
            ],
        }
        payloads = [{"loan_id": row["loan_id"], "to": to} for row in free]
        _run(
            ctx,
            client,
            key,
            kw,
            summary,
            "loan.transfer",
            payloads,
            free,
            "offered",
            lambda row: _to(row) == to,
            written_off,
        )


@click.command("accept-transfers")
@click.option("--from", "from_did", help="Only the transfers offered by this lender member (its did:key).")
@book_options
@click.pass_context
@user_errors
def accept_transfers(ctx: click.Context, from_did: str | None, **kw: Any) -> None:
    """Take over every loan whose pending transfer names the --key's member.

    Safe to run again: an accepted transfer is no longer pending.
    """
    with client_from(kw) as client:
        status = client.get("/status")
        require_rules(status, TRANSFER_SINCE, "loan.transfer_accept", "accept them")
        written_off = _with_written_off(
            status, kw["loans"], "loan.transfer_accept", "take their recovery over"
        )
        key = load_signer(kw["key_path"], kw["config_path"], kw["passphrase_file"], client)
        me = _lender_member(client, key.did, "the key's member")
        offering = _member(client, from_did) if from_did is not None else None
        if from_did is not None and offering is None:
            raise click.ClickException(f"--from {from_did} is no consortium member: give a lender's did:key")
        rows = _chosen(_read_book(client, me["did"], written_off), kw)
        offered = [row for row in rows if _to(row) == me["did"] and from_did in (None, row["lender"])]
        summary: dict[str, Any] = {
            "command": "accept-transfers",
            "member": _who(me),
            "from": from_did,
            "from_name": offering["name"] if offering is not None else None,
        }
        payloads = [{"loan_id": row["loan_id"]} for row in offered]

        def accepted(row: dict[str, Any]) -> bool:
            return row["lender"] == me["did"]

        _run(
            ctx,
            client,
            key,
            kw,
            summary,
            "loan.transfer_accept",
            payloads,
            offered,
            "accepted",
            accepted,
            written_off,
        )


def _run(
    ctx: click.Context,
    client: Any,
    key: SigningKey,
    kw: dict[str, Any],
    summary: dict[str, Any],
    kind: str,
    payloads: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    done_name: str,
    took_effect: Callable[[dict[str, Any]], bool],
    written_off: bool,
) -> None:
    """Send ``payloads`` (one per loan of ``rows``), see what took effect, print the summary.

    ``written_off``: the book read includes the written-off loans whose recovery moves (rules 6).
    """
    limit = kw["limit"] if kw["limit"] is not None else len(payloads)
    summary.update(
        currency=kw["currency"],
        loans=kw["loans"],
        kind=kind,
        eligible=len(payloads),
        left_by_limit=len(payloads[limit:]),
    )
    payloads, rows = payloads[:limit], rows[:limit]
    if kw["dry_run"]:
        summary["dry_run"] = True
        summary["would_send"] = [
            {**{name: row[name] for name in _SHOWN}, "lender_name": row.get("lender_name")} for row in rows
        ]
        emit(ctx, summary, _dry_run_text)
        return
    sent = _send(client, key, kind, payloads, kw["timeout"])
    try:
        outcome = _outcome(client, summary["member"]["did"], sent, kw["timeout"], took_effect, written_off)
    except NodeError as e:
        raise click.ClickException(
            f"sent {len(sent.txs)} {kind} txs but cannot see what became of them ({e}); "
            "run the command again once the node answers: a loan whose tx took effect is not sent again"
        ) from None
    summary.update(
        dry_run=False,
        sent=len(sent.txs) - len(outcome.not_sent),
        stream_error=sent.stream_error,
        **{done_name: outcome.done},
        refused=_groups(outcome.refused),
        not_included=_groups(outcome.dropped),
        still_pending=outcome.pending,
        not_sent=outcome.not_sent,
    )
    emit(ctx, summary, lambda s: _summary_text(s, done_name))
    if not outcome.complete():
        ctx.exit(1)


def _member(client: Any, did: str) -> dict[str, Any] | None:
    """The consortium member ``did`` is, or signs for with a rotated key (its party view); None if none."""
    try:
        party = client.get(ref_path("/parties", did))
    except NodeError as e:
        if e.status == 404:
            return None
        raise
    if party is not None and party["kind"] == "member_key":
        party = client.get(ref_path("/parties", party["member_did"]))
    return party if party is not None and party["kind"] == "member" else None


def _lender_member(client: Any, did: str, who: str) -> dict[str, Any]:
    """The member ``did`` names, refused in one sentence unless it is a lender not removed."""
    member = _member(client, did)
    if member is None:
        raise click.ClickException(
            f"{who} {did} is no consortium member: only a lender member services loans "
            "(`lendchain gov members` lists them)"
        )
    if "removed_height" in member:
        raise click.ClickException(
            f"{who} {member['name']} was removed from the consortium at height {member['removed_height']}: "
            "it services no loan"
        )
    if "lender" not in member["roles"]:
        raise click.ClickException(
            f"{who} {member['name']} ({member['did']}) does not hold the lender role: only a lender services loans"
        )
    return member


def _who(member: dict[str, Any]) -> dict[str, str]:
    return {"did": member["did"], "name": member["name"]}


def _with_written_off(status: dict[str, Any], loans: str, kind: str, action: str) -> bool:
    """Whether ``--loans`` takes written-off loans on this chain; ``written-off`` refused before rules 6."""
    if loans == "written-off":
        require_rules(status, WRITTEN_OFF_SINCE, f"{kind} on a written-off loan", action)
    return loans != "open" and next_rules(status) >= WRITTEN_OFF_SINCE


def _read_book(client: Any, did: str, written_off: bool) -> list[dict[str, Any]]:
    """Every live loan of ``did``'s book, a page of its lender index per request, and with
    ``written_off`` the written-off loans whose recovery it services or is offered."""
    rows: list[dict[str, Any]] = []
    start: int | None = 0
    extra = {"written_off": 1} if written_off else {}  # an older node ignores it, and lists none
    while start is not None:
        page = client.get(
            ref_path("/portfolio", did, "loans"), **{"from": start, "limit": BOOK_PAGE_MAX, **extra}
        )
        rows += page["loans"]
        start = page["next"]
    return rows


def _chosen(rows: list[dict[str, Any]], kw: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the book that ``--currency`` and ``--loans`` pick."""
    if kw["currency"] is not None:
        rows = [row for row in rows if row["currency"] == kw["currency"]]
    if kw["loans"] == "open":
        return [row for row in rows if row["state"] != "written_off"]
    if kw["loans"] == "written-off":
        return [row for row in rows if row["state"] == "written_off"]
    return rows


def _to(row: dict[str, Any]) -> str | None:
    return row["transfer"]["to"] if row["transfer"] is not None else None


@dataclass(frozen=True)
class Sent:
    """The txs one command signed, a (loan id, tx) each in nonce order, and how far the node took them."""

    txs: list[tuple[str, Transaction]]
    unbroken: int  # how many from the first the node took (accepted, or knew) with no nonce missing
    stream_error: str | None  # why the stream failed, if it did


def _send(client: Any, key: SigningKey, kind: str, payloads: list[dict[str, Any]], timeout_s: float) -> Sent:
    """Sign one tx per payload with consecutive nonces and submit them in batches on one stream.

    Several batches are in flight at once. A batch the node refuses for now
    (mempool full, rate limit) goes again after the wait the node names, until
    ``timeout_s``: the later batches hold the nonces after it and commit only
    once it is in. What the node never got is found out afterwards.
    """
    if not payloads:
        return Sent([], 0, None)
    nonce = client.next_nonce(key.did)
    txs = [client.build(key, kind, payload, nonce=nonce + n) for n, payload in enumerate(payloads)]
    batches = [[tx.encode().hex() for tx in txs[i : i + BATCH_TXS]] for i in range(0, len(txs), BATCH_TXS)]
    answers: list[list[dict[str, Any]] | None] = [None] * len(batches)
    deadline = time.monotonic() + timeout_s
    stream_error = None
    try:
        with client.stream() as stream:
            refused = []
            for number, answer in enumerate(stream.submit_pipelined(batches)):
                if isinstance(answer, NodeError):
                    refused.append((number, answer))
                else:
                    answers[number] = answer
            for number, error in refused:
                answers[number] = _retry(stream, batches[number], error, deadline)
    except NodeError as e:
        stream_error = str(e)
    taken = [r["status"] in ("accepted", "known") for answer in answers for r in (answer or [])]
    unbroken = next((n for n, ok in enumerate(taken) if not ok), len(taken))
    if any(answer is None for answer in answers):
        unbroken = min(unbroken, BATCH_TXS * answers.index(None))
    loan_txs = [(payload["loan_id"], tx) for payload, tx in zip(payloads, txs, strict=True)]
    return Sent(loan_txs, unbroken, stream_error)


def _retry(stream: Any, batch: list[str], error: NodeError, deadline: float) -> list[dict[str, Any]] | None:
    """Send a refused batch again while the node says to wait and retry; its results, None if never taken."""
    while error.status in _RETRIED_ERRORS and time.monotonic() < deadline:
        time.sleep(1 if error.retry_after_s is None else error.retry_after_s)
        try:
            return stream.submit_hex(batch)
        except NodeError as again:
            if again.status is None:  # the stream closed: nothing more goes on it
                raise
            error = again
    return None


def _outcome(
    client: Any,
    did: str,
    sent: Sent,
    timeout_s: float,
    took_effect: Callable[[dict[str, Any]], bool],
    written_off: bool,
) -> Outcome:
    """What became of the txs sent: read from the book once they are out of the mempool, else from
    each tx's status.

    A sender's txs commit in nonce order, so the last of the unbroken run
    leaving the mempool means the ones before it have too. Those after a nonce
    the node never took wait for it until they expire: they are still pending.
    """
    outcome = Outcome()
    if not sent.txs:
        return outcome
    if sent.unbroken:
        try:
            client.wait_tx(sent.txs[sent.unbroken - 1][1].id.hex(), timeout_s)
        except NodeError as e:
            if e.status not in (None, 404):  # None: still pending at the timeout, said per tx below
                raise
    effective = {row["loan_id"] for row in _read_book(client, did, written_off) if took_effect(row)}
    for loan_id, tx in sent.txs:
        if loan_id in effective:
            outcome.done.append(loan_id)
            continue
        try:
            status = client.tx(tx.id.hex())
        except NodeError as e:
            if e.status != 404:
                raise
            outcome.not_sent.append(loan_id)
            continue
        _note(outcome, loan_id, status)
    return outcome


def _note(outcome: Outcome, loan_id: str, status: dict[str, Any]) -> None:
    """File a tx that did not take effect under why, by its status."""
    if status["status"] == "pending":
        outcome.pending.append(loan_id)
    elif status["status"] == "committed":
        result = status.get("result") or {}
        why = (result.get("code", "?"), _general(result.get("message") or "", loan_id))
        outcome.refused.setdefault(why, []).append(loan_id)
    else:  # expired, or rejected when a block was cut
        why = (status.get("code") or status["status"], _general(status.get("message") or "", loan_id))
        outcome.dropped.setdefault(why, []).append(loan_id)


def _general(message: str, loan_id: str) -> str:
    """A refusal's message without the loan and tx it names, so alike refusals group together."""
    message = message.replace(loan_id, "LOAN").replace(loan_id[:16], "LOAN")
    return re.sub(r"\btx [0-9a-f]{16}\b", "tx", message)


def _groups(by_why: dict[tuple[str, str], list[str]]) -> list[dict[str, Any]]:
    return [
        {"code": code, "message": message, "loans": loans}
        for (code, message), loans in sorted(by_why.items(), key=lambda item: -len(item[1]))
    ]


def _heading(summary: dict[str, Any]) -> str:
    me = summary["member"]
    if summary["command"] == "transfer-book":
        where = f"to {summary['to']['name']} ({summary['to']['did']})"
    else:
        where = (
            f"offered by {member_text(summary['from'], summary['from_name'])}"
            if summary["from"]
            else "pending to it"
        )
    currency = f" in {summary['currency']}" if summary["currency"] else ""
    loans = f", {summary['loans']} loans" if summary["loans"] != "all" else ""
    return f"{summary['command']}: {me['name']} ({me['did']}), {summary['kind']} {where}{currency}{loans}"


def _skipped_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    if summary.get("already_offered"):
        lines.append(
            f"  already offered to {summary['to']['name']}, not sent again: {len(summary['already_offered'])}"
        )
    elsewhere = summary.get("pending_elsewhere", [])
    if elsewhere:
        lines.append(f"  pending to another lender, left alone: {len(elsewhere)}")
        lines += [
            f"    loan {row['loan_id']} to {member_text(row['to'], row['to_name'])}" for row in elsewhere
        ]
    if summary["left_by_limit"]:
        lines.append(f"  left for a later run by --limit: {summary['left_by_limit']}")
    return lines


def _dry_run_text(summary: dict[str, Any]) -> str:
    would = summary["would_send"]
    lines = [_heading(summary), f"  dry run, nothing sent: would send {len(would)}"]
    lines += [
        f"    loan {row['loan_id']}  {row['currency']} {row['amount']}  {row['state']}  "
        f"lender {member_text(row['lender'], row['lender_name'])}"
        for row in would
    ]
    return "\n".join(lines + _skipped_lines(summary))


def _summary_text(summary: dict[str, Any], done_name: str) -> str:
    refused = sum(len(group["loans"]) for group in summary["refused"])
    dropped = sum(len(group["loans"]) for group in summary["not_included"])
    lines = [
        _heading(summary),
        f"  sent {summary['sent']} of {summary['sent'] + len(summary['not_sent'])}: {done_name} "
        f"{len(summary[done_name])}, refused {refused}, not included {dropped}, "
        f"still pending {len(summary['still_pending'])}, not sent {len(summary['not_sent'])}",
    ]
    lines += _skipped_lines(summary)
    if summary["stream_error"]:
        lines.append(f"  the stream to the node failed: {summary['stream_error']}")
    for title, groups in (("refused", summary["refused"]), ("not included", summary["not_included"])):
        for group in groups:
            lines.append(f"  {title} ({group['code']}, {len(group['loans'])}): {group['message']}")
            lines += [f"    loan {loan_id}" for loan_id in group["loans"]]
    for title, key in (("still pending", "still_pending"), ("not sent", "not_sent")):
        if summary[key]:
            lines.append(f"  {title}: run the command again once the node has them committed or expired")
            lines += [f"    loan {loan_id}" for loan_id in summary[key]]
    return "\n".join(lines)
