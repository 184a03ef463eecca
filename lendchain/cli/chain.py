"""``lendchain status``, ``tx`` and ``block``: reading the chain and sending any tx kind."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    client_options,
    config_option,
    describe_tx,
    emit,
    event_names,
    event_text,
    load_signer,
    send_tx,
    signer_options,
    tx_events,
    user_errors,
)
from lendchain.client import ref_path
from lendchain.consensus.quorum import faulty
from lendchain.ledger.dispute_records import time_text
from lendchain.node.pages import BLOCKS_PAGE_MAX, HEIGHT_MAX

_BLOCK_HASH = re.compile(r"[0-9a-fA-F]{64}")
_TX_ID = _BLOCK_HASH  # both are sha256 digests


def _tx_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A TX_ID argument, checked here: ``/txs/stream`` and ``/txs/check`` are routes of their own, so
    ``tx show stream`` would be answered that the stream is a WebSocket."""
    if not _TX_ID.fullmatch(value):
        raise click.BadParameter(f"{value!r} is no tx id: a tx id is 64 hex digits (32 bytes)")
    return value


@click.command()
@client_options
@click.pass_context
@user_errors
def status(ctx: click.Context, **kw: Any) -> None:
    """Show a node's height, view, primary, peers and mempool."""
    with client_from(kw) as client:
        value = client.status()

    def human(v: dict[str, Any]) -> str:
        roles = {
            "member": "voting member",
            "joining": "joining: not admitted yet",
            "removed": "removed member",
        }
        role = roles.get(v.get("role"), "observer")
        sync = v.get("sync", {})
        return "\n".join(
            [
                f"node     {v['name']} ({role}) on {v['chain_id']}",
                *_key_line(v),
                f"height   {v['height']}  head {v['head_hash'][:16]}",
                f"view     {v.get('view', '-')}  primary {v.get('primary', '-')}"
                + ("  (view change in progress)" if v.get("in_view_change") else ""),
                *_voters_line(v.get("members")),
                f"sync     {_sync_text(sync)}",
                f"peers    {', '.join(v.get('peers', [])) or 'none'}",
                f"mempool  {v.get('mempool', {}).get('txs', 0)} txs",
                _backup_line(v.get("backup", {}), scheduled=bool(v.get("backup_schedule"))),
                *_schedule_line(v.get("backup_schedule")),
                *_rules_lines(v.get("rules")),
            ]
        )

    emit(ctx, value, human)


def _sync_text(sync: dict[str, Any]) -> str:
    """Caught up, or how far behind (not known until the node has heard a peer since it started)."""
    if sync.get("state") != "catching_up":
        return f"{sync.get('state', '-')} (target {sync.get('target', '-')})"
    if sync.get("behind") is None:
        return "catching_up (how far behind is not known yet: no peer heard since the start)"
    return f"catching_up ({sync['behind']} blocks behind, target {sync['target']})"


def _voters_line(members: list[str] | None) -> list[str]:
    """Who votes at the height in flight, and how many of them may fail (governance may change it)."""
    if not members:
        return []
    tolerated = faulty(len(members))
    return [f"voters   {', '.join(members)} (n {len(members)}, tolerates {tolerated} faulty)"]


def _key_line(v: dict[str, Any]) -> list[str]:
    """Which node key the node runs on: the member's genesis key, or the key it rotated to."""
    if "peer_id" not in v:  # an older node
        return []
    if v["key_did"] == v["did"]:
        return [f"key      genesis key, peer {v['peer_id']}"]
    return [f"key      rotated: signs as {v['key_did']}, peer {v['peer_id']}"]


def _backup_line(backup: dict[str, Any] | None, scheduled: bool) -> str:
    """When and at what height this node's newest backup was written (``{}``: an older node)."""
    if backup is None and scheduled:
        return "backup   none yet"
    if backup is None:
        return "backup   none found: set [store] backup_interval_s, or lendchain backup --keep N from cron"
    if not backup:
        return "backup   -"
    age_h = max(0.0, time.time() - backup["written_s"]) / 3600
    return f"backup   height {backup['height']}, {age_h:.1f} h ago, in {backup['path']}"


def _schedule_line(schedule: dict[str, Any] | None) -> list[str]:
    """The node's own backup schedule, if it has one."""
    if not schedule:
        return []
    due_h = max(0.0, schedule["next_s"] - time.time()) / 3600
    every_h = schedule["interval_s"] / 3600
    return [f"         next in {due_h:.1f} h (every {every_h:g} h, keeping {schedule['keep']})"]


def _rules_lines(rules: dict[str, Any] | None) -> list[str]:
    """The status lines about the ledger rules (nothing from a node that does not report them)."""
    if not rules:
        return []
    lines = [f"rules    version {rules['version']} (this release runs up to {rules['software_version']})"]
    lines += [f"         version {s['version']} from height {s['height']}" for s in rules["scheduled"]]
    if rules["upgrade_needed_at"] is not None:
        lines.append(
            f"UPGRADE  this node stops before block {rules['upgrade_needed_at']}: "
            "install a release that supports the scheduled rules"
        )
    return lines


@click.group()
def tx() -> None:
    """Send any transaction kind, or look one up."""


@tx.command("send")
@click.argument("kind")
@click.argument("payload")
@signer_options
@click.pass_context
@user_errors
def tx_send(ctx: click.Context, kind: str, payload: str, **kw: Any) -> None:
    """Sign and submit a KIND transaction with a JSON object PAYLOAD."""
    send_tx(ctx, kw, kind, _payload_object(payload))


def _payload_object(payload: str) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except json.JSONDecodeError as e:
        raise click.ClickException(f"payload is not JSON ({e})") from None
    if not isinstance(body, dict):
        raise click.ClickException('payload must be a JSON object, such as \'{"role": "borrower"}\'')
    return body


@tx.command("check")
@click.argument("kind")
@click.argument("payload")
@signer_options
@click.pass_context
@user_errors
def tx_check(ctx: click.Context, kind: str, payload: str, **kw: Any) -> None:
    """Sign a KIND transaction and ask what the next block would do with it; nothing is sent on."""
    body = _payload_object(payload)
    with client_from(kw) as client:
        key = load_signer(kw["key_path"], kw["config_path"], kw["passphrase_file"], client)
        answer = client.check(client.build(key, kind, body))
    emit(ctx, answer, _check_text)
    if answer["outcome"] != "ok":
        ctx.exit(1)


def _check_text(answer: dict[str, Any]) -> str:
    where = f"in block {answer['height']}"
    if answer["outcome"] == "ok":
        events = [e.get("event", "?") for e in answer["result"].get("events", [])]
        return f"would commit {where}: ok" + (f" ({', '.join(events)})" if events else "")
    if answer["outcome"] == "refused":
        result = answer["result"]
        return f"would be refused {where} ({result['code']}): {result['message']}"
    what = "would be left out of" if answer["outcome"] == "left_out" else "would be rejected before"
    return f"{what} block {answer['height']} ({answer['code']}): {answer['message']}"


@tx.command("show")
@click.argument("tx_id", callback=_tx_id)
@click.option("--wait", "wait_s", default=0.0, help="Wait up to this many seconds for it to commit.")
@client_options
@click.pass_context
@user_errors
def tx_show(ctx: click.Context, tx_id: str, wait_s: float, **kw: Any) -> None:
    """Show a transaction's status, block and result."""
    with client_from(kw) as client:
        value = client.wait_tx(tx_id, wait_s) if wait_s > 0 else client.tx(tx_id)
        names = event_names(ctx, client, tx_events(value))
    emit(ctx, value, lambda status: describe_tx(status, names))


@click.group()
def block() -> None:
    """Read blocks and their commit certificates."""


@block.command("show")
@click.argument("ref", default="head")
@client_options
@click.pass_context
@user_errors
def block_show(ctx: click.Context, ref: str, **kw: Any) -> None:
    """Show a block by height, hash or 'head', with who signed its commit certificate."""
    # Checked here: /blocks/raw is a route of its own, and anything else is no block.
    if not (ref == "head" or ref.isdigit() or _BLOCK_HASH.fullmatch(ref)):
        raise click.BadParameter(
            f"{ref!r} is no block: give a height, a block hash (64 hex digits) or 'head'",
            param_hint="'REF'",
        )
    with client_from(kw) as client:
        value = client.get(ref_path("/blocks", ref))
        names = event_names(ctx, client, value.get("ledger_events", []))
    emit(ctx, value, lambda block: _block_text(block, names))


def _block_text(block: dict[str, Any], names: dict[str, str]) -> str:
    """What `block show` prints of a block view (``GET /blocks/{ref}``); ``names`` names the members
    its ledger events hold the DIDs of."""
    header = block["header"]
    lines = [
        f"block    {header['height']}  {block['hash']}",
        f"time     {time_text(header['timestamp_ms'])}",
        f"proposer {header['proposer']}",
        f"parent   {header['prev_hash']}",
        f"roots    state {header['state_root']}",
        f"         txs {header['tx_root']}  results {header['results_root']}",
        f"txs      {header['tx_count']}",
        *(f"  {tx_id}" for tx_id in block["txs"]),
    ]
    events = block.get("ledger_events", [])
    if events:
        lines.append(f"ledger   {len(events)} event{'s' if len(events) != 1 else ''} of its own")
        lines += (f"  {event_text(event, names)}" for event in events)
    certificate = block.get("certificate")
    if certificate is None:
        lines.append("certified  no commit certificate stored")
    else:
        lines.append(f"certified  in view {certificate['view']} by {', '.join(certificate['signers'])}")
    return "\n".join(lines)


@block.command("list")
@click.option(
    "--from", "start", type=click.IntRange(0, HEIGHT_MAX), default=1, show_default=True, help="First height."
)
@click.option(
    "--limit",
    type=click.IntRange(1, BLOCKS_PAGE_MAX),
    default=20,
    show_default=True,
    help=f"How many blocks (the node hands out at most {BLOCKS_PAGE_MAX} at a time).",
)
@client_options
@click.pass_context
@user_errors
def block_list(ctx: click.Context, start: int, limit: int, **kw: Any) -> None:
    """List block headers from a height."""
    with client_from(kw) as client:
        value = client.get("/blocks", **{"from": start, "limit": limit})

    def human(v: Any) -> str:
        lines = []
        for b in v["blocks"]:
            header = b["header"]
            lines.append(
                f"{header['height']:>8}  {b['hash'][:16]}  {time_text(header['timestamp_ms'])}  txs={header['tx_count']:<5}  "
                f"proposer {header['proposer']}"
            )
        return "\n".join(lines) or f"no blocks from height {start}"

    emit(ctx, value, human)


@click.command("verify-chain")
@config_option("The (stopped) node whose data directory to check.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Check this data directory (a backup, say) instead of the config's.",
)
@click.pass_context
@user_errors
def verify_chain(ctx: click.Context, config_path: str, data_dir: str | None) -> None:
    """Replay a stopped node's chain (or a backup) from genesis and check every hash, root and certificate."""
    from lendchain.ledger.rules import UpgradeRequired
    from lendchain.node.config import load_node_config
    from lendchain.node.driver import verify_certificate
    from lendchain.node.keyschedule import key_schedule
    from lendchain.node.replay import verify_chain as replay
    from lendchain.node.store import ChainStore, StoreError

    config = load_node_config(config_path)
    try:
        store = ChainStore.open(
            data_dir or config.data_dir, config.genesis, create=False, compression=config.store.compression
        )
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    try:
        checked = replay(store)
        # The replay matched the stored state, so its key schedule is the chain's: each
        # certificate is checked with the keys valid at its height (rotations included).
        members = key_schedule(config.genesis, store)
        head = store.head()
        for height in range(1, head.height + 1):
            try:
                cert = verify_certificate(config.genesis.chain_id, members, store.certificate(height) or b"")
            except ValueError as e:
                raise click.ClickException(
                    f"block {height}: commit certificate does not verify: {e}"
                ) from None
            if cert.height != height or cert.digest != store.block(height).hash():
                raise click.ClickException(f"block {height}: its commit certificate covers another block")
    except (StoreError, UpgradeRequired) as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()
    value = {
        "blocks": checked,
        "height": head.height,
        "head_hash": head.hash.hex(),
        "state_root": head.state_root.hex(),
    }
    emit(ctx, value, lambda v: f"ok: {v['blocks']} blocks replayed and certified up to height {v['height']}")


@tx.command("status")
@click.argument("tx_id", callback=_tx_id)
@client_options
@click.pass_context
@user_errors
def tx_status(ctx: click.Context, tx_id: str, **kw: Any) -> None:
    """Show a transaction's status now (pending, committed with its result, expired, rejected)."""
    with client_from(kw) as client:
        value = client.tx(tx_id)
        names = event_names(ctx, client, tx_events(value))
    emit(ctx, value, lambda status: describe_tx(status, names))


@tx.command("wait")
@click.argument("tx_id", callback=_tx_id)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait.")
@client_options
@click.pass_context
@user_errors
def tx_wait(ctx: click.Context, tx_id: str, timeout: float, **kw: Any) -> None:
    """Wait until a transaction commits (or expires or is rejected); exit 1 if it did not commit."""
    with client_from(kw) as client:
        value = client.wait_tx(tx_id, timeout)
        names = event_names(ctx, client, tx_events(value))
    emit(ctx, value, lambda status: describe_tx(status, names))
    if value.get("status") != "committed":
        ctx.exit(1)
