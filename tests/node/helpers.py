"""Helpers the multi-process node tests share: clients, registrations, waiting for commits."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from lendchain.client import NodeClient, NodeError
from lendchain.crypto import SigningKey, read_key_file
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet


def client(cluster: Cluster, name: str) -> NodeClient:
    return NodeClient(cluster[name].url, timeout=10)


def register(c: NodeClient, key: SigningKey | None = None) -> str:
    """Submit one party registration; returns its tx id."""
    key = key or SigningKey.generate()
    tx = c.build(key, "party.register", {"role": "borrower"}, nonce=0)
    c.submit(tx)
    return tx.id.hex()


def committed_everywhere(
    cluster: Cluster, tx_ids: list[str], names: list[str], timeout_s: float = 60
) -> None:
    """Each tx is committed on each named node (a node still catching up may not know it yet)."""
    for name in names:
        with client(cluster, name) as c:
            for tx_id in tx_ids:

                def committed(c: NodeClient = c, tx_id: str = tx_id, name: str = name) -> bool:
                    try:
                        status = c.get(f"/txs/{tx_id}", wait_ms=2000)
                    except NodeError as e:
                        if e.status == 404:
                            return False
                        raise
                    assert status["status"] in ("pending", "committed"), (name, status)
                    return status["status"] == "committed"

                wait_for(committed, timeout_s, f"tx {tx_id[:16]} to commit on {name}")


def lendchain_cli(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess:
    """``lendchain ARGS`` in a subprocess, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "lendchain", *args], capture_output=True, text=True, timeout=timeout_s
    )


def propose_by_cli(net: Path, *args: str) -> dict[str, Any]:
    """``lendchain --json gov ARGS`` as bank1; the committed proposal (asserted ok)."""
    result = lendchain_cli("--json", "gov", *args, "--config", str(net / "bank1.toml"))
    assert result.returncode == 0, result.stderr
    proposal = json.loads(result.stdout)
    assert proposal["status"] == "committed" and proposal["result"]["code"] == "ok", proposal
    return proposal


def vote_through(
    cluster: Cluster, net: Path, proposal_id: str, voters: tuple[str, ...] = ("bank3", "bank4")
) -> None:
    """Each of ``voters`` (their key files under ``net/keys``) votes for the proposal; each vote commits ok."""
    with client(cluster, "bank1") as c:
        for voter in voters:
            vote = c.build(
                read_key_file(net / "keys" / f"{voter}.key"), "gov.vote", {"proposal_id": proposal_id}
            )
            c.submit(vote)
            assert c.wait_tx(vote.id.hex(), 60)["result"]["code"] == "ok"


def metric(cluster: Cluster, name: str, metric_name: str, **labels: str) -> float:
    """Sum of a Prometheus series on ``name``'s /metrics whose labels include ``labels``."""
    text = httpx.get(cluster[name].url + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{metric_name}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def start_testnet(
    tmp_path: Path, nodes: int = 4, extra: dict[str, str] | None = None, rules_version: int = 1
) -> tuple[Path, Cluster]:
    """A generated ``nodes``-member testnet under ``tmp_path/net`` on free ports, every node started.

    ``extra``: node name -> TOML appended to its config first. The caller
    stops the network (``cluster.stop_all()`` in a ``finally``).
    """
    p2p = free_port_block(2 * nodes)
    api = free_port_block(2 * nodes, start=p2p + 20)
    net = tmp_path / "net"
    layout = generate_testnet(net, nodes, p2p_base_port=p2p, api_base_port=api, rules_version=rules_version)
    for name, toml in (extra or {}).items():
        config = net / f"{name}.toml"
        config.write_text(config.read_text() + "\n" + toml)
    cluster = Cluster(list(layout.configs), tmp_path / "logs")
    cluster.start_all()
    return net, cluster


def push_blocks(
    cluster: Cluster,
    target: int,
    timeout_s: float = 90,
    via: tuple[str, ...] = ("bank1",),
    names: list[str] | None = None,
) -> None:
    """Submit registrations (through each of ``via`` in turn) until every running member (of ``names``)
    reaches ``target``."""
    sent = 0

    def reached() -> bool:
        nonlocal sent
        with client(cluster, via[sent % len(via)]) as c:
            key = SigningKey.generate()
            c.submit(c.build(key, "party.register", {"role": "borrower"}, nonce=0))
        sent += 1
        heights = cluster.heights(names)
        return min(heights.values()) >= target

    wait_for(reached, timeout_s, f"every member at height {target}", interval_s=0.1)


def two_banks(tmp_path: Path, rules_version: int) -> Iterator[list[Path]]:
    """A running two-member testnet on rules ``rules_version``, for a fixture: its config paths;
    both nodes must exit cleanly at the end."""
    _, cluster = start_testnet(tmp_path, 2, rules_version=rules_version)
    try:
        cluster.wait_healthy()
        yield [node.config_path for node in cluster.nodes.values()]
    finally:
        assert cluster.stop_all() == {"bank1": 0, "bank2": 0}
