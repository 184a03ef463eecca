"""``lendchain report``: point-in-time reports a supervisor can check without trusting a node.

``report books``, ``exposure DID``, ``portfolio DID``, ``positions DID``,
``loan LOAN_ID``, ``params``, ``collateral ASSET``, ``guarantees DID`` and
``disputes DID`` print what ``loan books``, ``party exposure``, ``loan
portfolio``, ``fund positions``, ``loan show``, ``gov params``, ``collateral
show``, ``party exposure`` (its guarantor part) and ``credit disputes`` print, as the chain held it
at ``--height H`` or at ``--as-of DATE|TIME`` (the last block at or before it;
a date is the end of that day UTC), or at the source's newest block. The
blocks come from ``--data-dir`` (a stopped node's, or a backup) or from a
running node (``--node URL``, ``GET /blocks/raw``, with the API token as every
command takes it) and are replayed from the genesis the reader gives
(``--genesis``, or a node config's), every one re-executed and its commit
certificate checked (``lendchain.node.pointintime``). Each report is headed by
what it stands on: the chain and genesis, the block (height, hash, time) and
who certified it, and how many blocks were replayed and checked. A block that
fails a check ends the command with the height and what did not match, and
no figures.

A data directory is read through a private copy, never opened itself
(``datadir_snapshot``), and refused while a node runs on it. With
``--cache-dir`` (or ``LENDCHAIN_REPORT_CACHE``) the replayed state is kept
(``lendchain.node.replaycache``) and a later report at or after its block
replays only the blocks since; how each report used the cache is said on
stderr, so that stdout holds the report alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from lendchain.cli._common import client_from, client_options, emit, user_errors
from lendchain.cli.domain import describe_positions
from lendchain.cli.loans import loan_text
from lendchain.cli.reports import books_text, consortium_books, exposure_text, lender_books, portfolio_text
from lendchain.client import NodeError
from lendchain.genesis import Genesis

BLOCKS_PER_REQUEST = 200  # of GET /blocks/raw, at most pages.RAW_BLOCKS_PAGE_MAX (and about 8 MiB)


def _as_of(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from lendchain.node.pointintime import parse_as_of

    if value is None:
        return None
    try:
        return parse_as_of(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def report_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--cache-dir",
        envvar="LENDCHAIN_REPORT_CACHE",
        type=click.Path(file_okay=False),
        help="Keep the replayed state here (made if missing; or LENDCHAIN_REPORT_CACHE), so that a later "
        "report at the same block or after it replays only the blocks since, each checked as always.",
    )(fn)
    fn = click.option(
        "--scratch-dir",
        type=click.Path(file_okay=False, exists=True),
        help="Where the replayed state (without --cache-dir) and the copy of --data-dir go while the "
        "command runs (default: the system's temp directory): about the disk of a node's data directory; on "
        "--data-dir's filesystem its copy takes hard links, not a copy of its table files.",
    )(fn)
    fn = click.option(
        "--as-of",
        "as_of_ms",
        callback=_as_of,
        metavar="DATE|TIME",
        help="Report at the last block at or before this: a date (2026-09-30, the end of that day "
        "UTC) or an ISO 8601 time with its zone (2026-09-30T17:00:00Z).",
    )(fn)
    fn = click.option("--height", type=click.IntRange(0), help="Report at this block height.")(fn)
    fn = click.option(
        "--genesis",
        "genesis_path",
        type=click.Path(exists=True, dir_okay=False),
        help="The consortium's genesis.toml, the one thing the report trusts (default: --config's).",
    )(fn)
    fn = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, exists=True),
        help="Replay the blocks of this data directory (a stopped node's, or a backup) instead of a node's; "
        "it is read through a copy, and left as it was.",
    )(fn)
    return client_options(fn)


@click.group()
def report() -> None:
    """Point-in-time reports: figures as the chain held them at a past block, replayed and checked.

    \b
    lendchain report books --as-of 2026-09-30 --node URL --genesis genesis.toml
    lendchain report exposure DID --height 1200 --data-dir backups/bank1-h0000001200-…
    lendchain report books --as-of 2026-10-31 --node URL --genesis genesis.toml --cache-dir ~/.cache/lc
    """


@report.command("books")
@click.option("--currency", help="Only this currency (ISO 4217 code, e.g. EUR).")
@report_options
@click.pass_context
@user_errors
def report_books(ctx: click.Context, currency: str | None, **kw: Any) -> None:
    """Every lender member's book side by side, as `loan books` prints it, at a past block."""

    def books(views: Any) -> dict[str, Any]:
        members = views.query("members", "*")["members"]
        portfolios = lender_books(members, lambda did: views.query("portfolio", did))
        return consortium_books(portfolios, currency.upper() if currency else None)

    _report(ctx, kw, "books", books, books_text)


@report.command("exposure")
@click.argument("did")
@report_options
@click.pass_context
@user_errors
def report_exposure(ctx: click.Context, did: str, **kw: Any) -> None:
    """What DID owed across every lender at a past block, as `party exposure` prints it."""
    missing = f"{did} was no registered party and had no loans"
    _report(ctx, kw, "exposure", lambda views: views.query("exposure", did), exposure_text, missing)


@report.command("portfolio")
@click.argument("did")
@report_options
@click.pass_context
@user_errors
def report_portfolio(ctx: click.Context, did: str, **kw: Any) -> None:
    """A lender's book at a past block, as `loan portfolio` prints it."""
    missing = f"{did} was no member and serviced no loan"
    _report(ctx, kw, "portfolio", lambda views: views.query("portfolio", did), portfolio_text, missing)


@report.command("positions")
@click.argument("did")
@report_options
@click.pass_context
@user_errors
def report_positions(ctx: click.Context, did: str, **kw: Any) -> None:
    """A funder's positions in syndicated loans at a past block, as `fund positions` prints them."""
    missing = f"{did} had committed to no syndicated loan (indexed from rules 2)"
    _report(ctx, kw, "positions", lambda views: views.query("positions", did), describe_positions, missing)


@report.command("loan")
@click.argument("loan_id")
@report_options
@click.pass_context
@user_errors
def report_loan(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """A loan at a past block, as `loan show` prints it (with --json also its schedule and history)."""
    missing = f"there was no loan {loan_id}"
    _report(ctx, kw, "loan", lambda views: views.query("loan", loan_id), loan_text, missing)


@report.command("params")
@report_options
@click.pass_context
@user_errors
def report_params(ctx: click.Context, **kw: Any) -> None:
    """Every chain parameter in force at a past block and where it came from, as `gov params` prints it."""
    from lendchain.cli.governance import describe_params

    _report(ctx, kw, "params", lambda views: views.query("params", "*"), describe_params)


@report.command("collateral")
@click.argument("asset")
@report_options
@click.pass_context
@user_errors
def report_collateral(ctx: click.Context, asset: str, **kw: Any) -> None:
    """Every lien on ASSET (its collateral id) at a past block, by rank, as `collateral show` prints it
    (rules 6)."""
    from lendchain.cli.collateral import asset_text

    missing = f"no lien was recorded on asset {asset}"
    _report(ctx, kw, "collateral", lambda views: views.query("collateral", asset), asset_text, missing)


@report.command("guarantees")
@click.argument("did")
@report_options
@click.pass_context
@user_errors
def report_guarantees(ctx: click.Context, did: str, **kw: Any) -> None:
    """DID's contingent exposure as a guarantor at a past block: per currency and by lender, and each
    guarantee proposed to it, as `party exposure` prints them (rules 7)."""
    from lendchain.cli.guarantees import guarantor_report, guarantor_text

    def guarantees(views: Any) -> dict[str, Any] | None:
        return guarantor_report(views.query("exposure", did))

    missing = f"no guarantee had been proposed to {did}"
    _report(ctx, kw, "guarantees", guarantees, guarantor_text, missing)


@report.command("disputes")
@click.argument("did")
@report_options
@click.pass_context
@user_errors
def report_disputes(ctx: click.Context, did: str, **kw: Any) -> None:
    """A party's disputes of its credit reports at a past block, or a member's record of answering the
    disputes of its reports (on time, late, overdue then), as `credit disputes` prints them (rules 7)."""
    from lendchain.cli.disputes import describe_disputes

    missing = f"{did} was no registered party and no member"
    _report(ctx, kw, "disputes", lambda views: views.query("disputes", did), describe_disputes, missing)


def _report(
    ctx: click.Context,
    kw: dict[str, Any],
    name: str,
    compute: Callable[[Any], dict[str, Any] | None],
    text: Callable[[dict[str, Any]], str],
    missing: str = "",
) -> None:
    """Replay to the target, compute the view on the replayed chain, print it under its basis."""
    from lendchain.node.pointintime import ReportError, Target, replay_to
    from lendchain.node.replaycache import ReplayCache

    if kw["height"] is not None and kw["as_of_ms"] is not None:
        raise click.UsageError("give --height or --as-of, not both")
    target = Target(kw["height"], kw["as_of_ms"])
    genesis = _genesis(kw)
    cache = None if kw["cache_dir"] is None else ReplayCache(kw["cache_dir"], genesis, _note)
    try:
        with (
            _source(ctx, kw, genesis) as source,
            replay_to(genesis, source, target, kw["scratch_dir"], cache) as replayed,
        ):
            view = compute(replayed.views)
            basis = replayed.basis
    except ReportError as e:
        raise click.ClickException(str(e)) from None
    if view is None:
        raise click.ClickException(f"{missing} at height {basis['height']} ({basis['time']})")
    emit(
        ctx,
        {"report": name, "basis": basis, "view": view},
        lambda v: f"{basis_text(v['basis'])}\n\n{text(v['view'])}",
    )


def _note(sentence: str) -> None:
    """What the reader should know about how the report was made (the cache, a copy): on stderr, so
    that stdout holds the report alone."""
    click.echo(sentence if sentence.startswith("warning: ") else f"note: {sentence}", err=True)


def _genesis(kw: dict[str, Any]) -> Genesis:
    from lendchain.node.config import load_genesis, load_node_config

    if kw["genesis_path"]:
        return load_genesis(kw["genesis_path"])
    if kw["config_path"]:
        return load_node_config(kw["config_path"]).genesis
    raise click.UsageError(
        "give the consortium's genesis with --genesis FILE (or a node's --config): every block is checked "
        "against it, and nothing else is trusted"
    )


@contextmanager
def _source(ctx: click.Context, kw: dict[str, Any], genesis: Genesis) -> Iterator[Any]:
    """The blocks of ``--data-dir``, else of the node (``--node``, or ``--config``'s API)."""
    from lendchain.node.pointintime import DataDirBlocks

    if kw["data_dir"]:
        if ctx.get_parameter_source("node_url") == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("give --data-dir or --node, not both: the blocks come from one of them")
        source = DataDirBlocks(Path(kw["data_dir"]), genesis, kw["scratch_dir"], _note)
        try:
            yield source
        finally:
            source.close()
        return
    with client_from(kw) as client:
        yield NodeBlocks(client, genesis)


class NodeBlocks:
    """The blocks a running node serves (``GET /blocks/raw``), checked for shape only: the replay
    checks what they say."""

    def __init__(self, client: Any, genesis: Genesis) -> None:
        from lendchain.node.pointintime import SourceHead

        self.where = f"node at {client.url}"
        self._client = client
        answer = self._get(1, 1)
        if answer["genesis_hash"] != genesis.hash().hex():
            raise self._error(
                f"serves chain {answer.get('chain_id')!r} (genesis {answer['genesis_hash'][:16]}), not the chain "
                f"of the genesis given ({genesis.chain_id!r}, genesis {genesis.hash().hex()[:16]})"
            )
        self._head = SourceHead(answer["head"]["height"], answer["head"]["timestamp_ms"])

    def head(self) -> Any:
        return self._head

    def blocks(self, start: int, end: int) -> Iterator[tuple[int, bytes, bytes]]:
        height = start
        while height <= end:
            items = self._get(height, min(BLOCKS_PER_REQUEST, end - height + 1))["blocks"]
            if not items:
                raise self._damaged(
                    f"served no block from height {height}, though its newest is {self._head.height}"
                )
            for item in items[: end - height + 1]:
                if item["height"] != height:
                    raise self._damaged(f"served block {item['height']} where block {height} was asked for")
                yield height, bytes.fromhex(item["block"]), bytes.fromhex(item["certificate"])
                height += 1

    def _get(self, start: int, limit: int) -> dict[str, Any]:
        try:
            answer = self._client.get("/blocks/raw", **{"from": start, "limit": limit})
        except NodeError as e:
            raise self._refused(e) from None
        problem = _malformed(answer)
        if problem:
            raise self._damaged(f"answered GET /blocks/raw with a malformed document ({problem})")
        return answer

    def _refused(self, e: NodeError) -> Exception:
        from lendchain.node.pointintime import ReportError

        if e.status == 401:
            return ReportError(
                f"{self.where} refused the request ({e}): give its API token with --token-file FILE"
            )
        if e.status == 404:
            return ReportError(
                f"{self.where} does not serve GET /blocks/raw (a release older than point-in-time reports): "
                "replay a backup of its data directory with --data-dir instead"
            )
        if e.status is None:  # unreachable, or no answer in time: the client's sentence says which
            return ReportError(str(e))
        return ReportError(f"{self.where} failed to serve blocks ({e})")

    def _error(self, what: str) -> Exception:
        from lendchain.node.pointintime import ReportError

        return ReportError(f"{self.where} {what}")

    def _damaged(self, what: str) -> Exception:
        from lendchain.node.pointintime import NOTHING_REPORTED

        return self._error(f"{what}; {NOTHING_REPORTED}")


def _malformed(answer: Any) -> str | None:
    """What is wrong with a ``GET /blocks/raw`` answer's shape, or None."""
    if not isinstance(answer, dict) or not isinstance(answer.get("genesis_hash"), str):
        return "no genesis_hash"
    head = answer.get("head")
    if not isinstance(head, dict) or not all(type(head.get(k)) is int for k in ("height", "timestamp_ms")):
        return "no head height and timestamp_ms"
    blocks = answer.get("blocks")
    if not isinstance(blocks, list):
        return "no list of blocks"
    for item in blocks:
        if not isinstance(item, dict) or type(item.get("height")) is not int:
            return "a block without its height"
        for name in ("block", "certificate"):
            value = item.get(name)
            if not isinstance(value, str) or not _is_hex(value):
                return f"block {item['height']}'s {name} is not hex"
    return None


def _is_hex(value: str) -> bool:
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def basis_text(basis: dict[str, Any]) -> str:
    """The heading of every report: what its figures stand on, and how it was checked."""
    from lendchain.node.pointintime import utc_text

    if basis["height"] == 0:
        block = f"block     the genesis (height 0), at {basis['time']}"
        signed = "signed    - (the genesis is the reader's own, not certified)"
    else:
        cert = basis["certificate"]
        block = f"block     height {basis['height']}, hash {basis['block_hash']}, at {basis['time']}"
        signed = f"signed    {', '.join(cert['signers'])} (its commit certificate, view {cert['view']})"
    resumed = basis.get("resumed_from")
    replayed = (
        f"{basis['blocks_checked']} blocks replayed from the genesis"
        if resumed is None
        else f"{basis['blocks_checked']} blocks replayed onto block {resumed['height']} of the replay cache "
        f"{resumed['cache']} (blocks 1 to {resumed['height']} replayed from the genesis and checked alike by "
        f"an earlier report; the source's block {resumed['height']} has the same hash)"
    )
    lines = [
        f"report of chain {basis['chain_id']}, genesis {basis['genesis_hash']}",
        block,
        signed,
        f"checked   {replayed}, each re-executed (tx, state and results roots, signatures) and its certificate "
        f"verified under the genesis keys and the replayed governance; from {basis['source']}",
    ]
    as_of = basis["as_of"]
    if as_of is not None:
        after = as_of["next_block"]
        proof = (
            "the newest block, at that very time"
            if after is None
            else f"block {after['height']}, certified by {', '.join(after['signers'])}, is at "
            f"{utc_text(after['timestamp_ms'])}, after it"
        )
        lines.append(f"as of     {as_of['time']}: the last block at or before it; {proof}")
    return "\n".join(lines)
