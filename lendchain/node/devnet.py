"""``lendchain devnet``: a local N-node network of real processes, with a demo loan.

The directory keeps everything (keys, genesis, configs, LevelDBs, logs), so
running the command again restarts the same network where it left off.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import click

from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.cluster import Cluster, ClusterError
from lendchain.node.config import ConfigError, load_genesis
from lendchain.node.testnet import generate_testnet


def _configs(directory: Path, nodes: int, api_port: int, p2p_port: int) -> list[Path]:
    if (directory / "genesis.toml").exists():
        # No node has run this chain yet (it has no store, and devnet runs every node): a new
        # chain's genesis, checked as strictly as a generated one (see node.config).
        started = any((directory / "data").glob("*/CURRENT"))
        genesis = load_genesis(directory / "genesis.toml", strict=not started)
        if genesis.n != nodes:
            raise ConfigError(
                f"{directory} holds a {genesis.n}-node network, not {nodes}; "
                f"use --nodes {genesis.n} or another --dir"
            )
        click.echo(f"reusing the network in {directory}")
        return [directory / f"{m.name}.toml" for m in genesis.members]
    layout = generate_testnet(
        directory,
        nodes,
        chain_id="lendchain-devnet-1",
        api_base_port=api_port,
        p2p_base_port=p2p_port,
        rules_version=RULES_VERSION,  # a new network starts on the newest rules
    )
    click.echo(f"generated a {nodes}-node network in {directory} (tolerates f={layout.genesis.f} faulty)")
    return list(layout.configs)


def run_devnet(
    directory: Path, nodes: int, *, demo: bool, exit_after: bool, api_port: int, p2p_port: int
) -> int:
    configs = _configs(directory, nodes, api_port, p2p_port)
    cluster = Cluster(configs, directory / "logs")
    stop = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        cluster.start_all()
        cluster.wait_healthy(timeout_s=60)
        for name in cluster.names:
            node = cluster[name]
            click.echo(f"  {name:<8} api {node.url}  log {node.log_path}")
        cluster.wait_height(0, timeout_s=30)
        if demo:
            from lendchain.node.demo import run_demo

            report = run_demo(cluster, directory)
            click.echo(json.dumps(report, indent=2, sort_keys=True) if report.get("json") else report["text"])
        if exit_after:
            return 0
        click.echo(
            f"network running; try: lendchain status --node {cluster[cluster.names[0]].url}  (Ctrl-C stops it)"
        )
        while stop["signal"] is None:
            for name in cluster.names:
                if not cluster[name].running:
                    raise ClusterError(f"{name} exited unexpectedly:\n{cluster[name].log_tail()}")
            time.sleep(0.2)
        return 0
    except ClusterError as e:
        click.echo(f"error: {e}", err=True)
        return 1
    finally:
        codes = cluster.stop_all()
        for s, handler in previous.items():
            signal.signal(s, handler)
        bad = {n: c for n, c in codes.items() if c not in (0, None)}
        click.echo("stopped all nodes" + (f" (exit codes {bad})" if bad else ""))
