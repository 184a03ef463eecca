"""``lendchain testnet``, ``start`` and ``devnet``: making networks and running nodes."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import click

from lendchain.cli._common import config_option, emit, forget_env_passphrase, read_passphrase, user_errors
from lendchain.crypto import read_key_file
from lendchain.ledger.params import PARAMS, ParamError, parse_text, unknown
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.config import load_node_config


def parse_params(values: tuple[str, ...]) -> dict[str, Any]:
    """``--param KEY=VALUE`` options as genesis ``[app]`` values, read as ``params.set`` reads them."""
    chosen: dict[str, Any] = {}
    for given in values:
        key, equals, text = given.partition("=")
        if not equals:
            raise click.BadParameter(f"{given!r} is not KEY=VALUE", param_hint="'--param'")
        if key not in PARAMS:
            raise click.BadParameter(unknown(key, RULES_VERSION), param_hint="'--param'")
        if key == "rules_version":
            raise click.BadParameter("give the rules version with --rules-version", param_hint="'--param'")
        try:
            chosen[key] = parse_text(key, text)
        except ParamError as e:
            raise click.BadParameter(str(e), param_hint="'--param'") from None
    return chosen


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Empty directory to write.")
@click.option("--nodes", default=4, show_default=True, type=click.IntRange(1, 64), help="Voting members.")
@click.option(
    "--observers", default=0, show_default=True, type=click.IntRange(0, 16), help="Read-only members."
)
@click.option("--chain-id", default="lendchain-test-1", show_default=True)
@click.option("--p2p-port", default=47100, show_default=True, help="Base port: node i listens on base+i.")
@click.option("--api-port", default=8100, show_default=True, help="Base port: node i serves on base+i.")
@click.option("--docker", is_flag=True, help="Address members on the docker-compose network.")
@click.option(
    "--rules-version",
    default=RULES_VERSION,
    show_default=True,
    type=click.IntRange(1, RULES_VERSION),
    help="Ledger rules the chain starts on: the newest by default; an older one to match an existing chain.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    callback=lambda ctx, param, values: parse_params(values),
    help="A chain parameter for the genesis [app] (repeatable), e.g. max_term_months=360, "
    "currencies=EUR,USD; `lendchain gov params` lists them.",
)
@click.pass_context
@user_errors
def testnet(
    ctx: click.Context,
    out: str,
    nodes: int,
    observers: int,
    chain_id: str,
    p2p_port: int,
    api_port: int,
    docker: bool,
    rules_version: int,
    params: dict[str, Any],
) -> None:
    """Generate keys, a genesis and one config per node for a test network."""
    from lendchain.node.testnet import generate_testnet

    layout = generate_testnet(
        out,
        nodes,
        chain_id=chain_id,
        p2p_base_port=p2p_port,
        api_base_port=api_port,
        observers=observers,
        docker=docker,
        rules_version=rules_version,
        params=params,
    )
    value = {
        "genesis": str(layout.out / "genesis.toml"),
        "configs": [str(p) for p in layout.configs],
        "n": layout.genesis.n,
        "f": layout.genesis.f,
    }
    emit(
        ctx,
        value,
        lambda v: "\n".join(
            [f"wrote {v['genesis']}: n={v['n']} voting members, tolerates f={v['f']} faulty; start each with"]
            + [f"  lendchain start --config {c}" for c in v["configs"]]
        ),
    )


@click.command()
@config_option("The node's TOML config.")
@click.option(
    "--passphrase-file", type=click.Path(dir_okay=False), help="Overrides the config's passphrase_file."
)
@click.option(
    "--check",
    is_flag=True,
    help="Make every check a start makes (config, keys, data directory, rules, ports), then exit.",
)
@user_errors
def start(config_path: str, passphrase_file: str | None, check: bool) -> None:
    """Run a node in the foreground until SIGINT or SIGTERM."""
    config = load_node_config(config_path)
    if passphrase_file is None and config.passphrase_file is not None:
        passphrase_file = str(config.passphrase_file)
    passphrase = read_passphrase(passphrase_file)
    key = read_key_file(config.key_file, passphrase)
    # The key this member rotates to: encrypted or not, with the same passphrase as the node key.
    next_key = read_key_file(config.next_key_file, passphrase) if config.next_key_file else None
    forget_env_passphrase()  # both keys are open: the node never needs it again
    if check:
        from lendchain.node.precheck import PrecheckFailed, precheck

        try:
            click.echo("\n".join(precheck(config, key, next_key)))
        except PrecheckFailed as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(e.code)
        return
    from lendchain.node.daemon import run_node  # after the checks: importing the daemon is slow

    tune_gc()
    sys.exit(run_node(config, key, next_key))


# A node allocates and frees millions of small dicts and lists per minute (decoded txs, state
# values, messages), and keeps bounded caches of them; with CPython's default first threshold
# (700) the cyclic collector ran so often that it took ~7 % of a node's CPU under load
# (benchmarks/RESULTS.md, 2026-12-04). Almost nothing a node allocates forms reference cycles,
# so collecting less often costs little memory. The first threshold counts tracked objects
# allocated minus those freed: at 10,000 a loaded node still collected about every block
# (~3 a second, each scanning the block's live txs and results), 1.6 s of its CPU in a
# 65 s run; at 50,000 it collects a few times a run, with the same peak RSS (fifth session
# of 2026-12-05).
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Freeze what start-up allocated (modules, config, keys) and collect less often."""
    gc.collect()
    gc.freeze()  # never scanned again: the objects every collection would otherwise walk first
    gc.set_threshold(*GC_THRESHOLDS)


@click.command()
@click.option(
    "--dir",
    "directory",
    default=".lendchain-devnet",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where keys, configs, data and logs go (reused if it already holds a devnet).",
)
@click.option("--nodes", default=4, show_default=True, type=click.IntRange(1, 16))
@click.option("--demo/--no-demo", default=True, show_default=True, help="Run a loan through the network.")
@click.option(
    "--exit", "exit_after", is_flag=True, help="Stop the network after the demo instead of serving."
)
@click.option("--api-port", default=8100, show_default=True, help="Base API port: node i serves on base+i.")
@click.option("--p2p-port", default=47100, show_default=True, help="Base p2p port: node i listens on base+i.")
@user_errors
def devnet(directory: str, nodes: int, demo: bool, exit_after: bool, api_port: int, p2p_port: int) -> None:
    """Run a local N-node network as processes on 127.0.0.1, with a demo loan.

    Serves until Ctrl-C (or exits after the demo with --exit).
    """
    from lendchain.node.devnet import run_devnet

    code = run_devnet(
        Path(directory), nodes, demo=demo, exit_after=exit_after, api_port=api_port, p2p_port=p2p_port
    )
    sys.exit(code)
