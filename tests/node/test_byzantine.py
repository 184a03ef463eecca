"""A Byzantine member among real node processes (issue 8).

One member holds its real key and lies on every consensus frame it sends
(``lendchain.node.byzantine``), switched by its fault file. The three honest
members must keep committing, never disagree on a block, and name the liar
in their metrics and logs. Waiting is always on a condition with a deadline.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lendchain.crypto import SigningKey
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet
from tests.node.helpers import client, committed_everywhere, metric, register


def submit(cluster: Cluster, names: list[str], count: int) -> list[str]:
    """``count`` party registrations, sent round robin to ``names``; their tx ids."""
    tx_ids = []
    for i in range(count):
        with client(cluster, names[i % len(names)]) as c:
            tx_ids.append(register(c))
    return tx_ids


def throttling_stopped(cluster: Cluster, names: list[str], member: str, quiet_s: float = 2.0):
    """A condition for ``wait_for``: no member of ``names`` has throttled ``member`` for ``quiet_s``."""
    last: dict[str, float] = {}

    def stopped() -> bool:
        total = sum(metric(cluster, n, "lendchain_p2p_throttled", member=member) for n in names)
        now = time.monotonic()
        if last.get("total") != total:
            last.update(total=total, since=now)
        return now - last["since"] >= quiet_s

    return stopped


pytestmark = pytest.mark.slow

HONEST_BACKUPS = ["bank1", "bank2", "bank3"]  # bank4 lies; bank1 is primary of view 0


def start_network(root: Path, liar: str, kind: str) -> Cluster:
    p2p = free_port_block(8)
    api = free_port_block(8, start=p2p + 20)
    layout = generate_testnet(root / "net", 4, p2p_base_port=p2p, api_base_port=api)
    cluster = Cluster(layout.configs, root / "logs")
    cluster.use_fault_files(root)
    set_faults(cluster, liar, byzantine=kind)
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
    except Exception:
        cluster.stop_all()
        raise
    return cluster


def set_faults(cluster: Cluster, name: str, **faults) -> None:
    cluster.set_faults(name, **faults)


def assert_honest_agree(cluster: Cluster, honest: list[str]) -> int:
    """The honest members hold the same block at every height up to the lowest head."""
    head = min(cluster.heights(honest).values())
    for height in range(1, head + 1):
        hashes = {cluster[n].get(f"/blocks/{height}")["hash"] for n in honest}
        assert len(hashes) == 1, f"honest members disagree at height {height}: {hashes}"
    return head


def log_of(cluster: Cluster, name: str) -> str:
    return cluster[name].log_path.read_text(errors="replace")


@pytest.mark.parametrize("kind", ["invalid-block", "equivocate"])
def test_a_lying_primary_is_replaced_and_the_honest_members_agree(tmp_path, kind):
    cluster = start_network(tmp_path, "bank1", kind)
    honest = ["bank2", "bank3", "bank4"]
    try:
        tx_ids = submit(cluster, honest, 6)
        committed_everywhere(cluster, tx_ids, honest, timeout_s=120)
        assert_honest_agree(cluster, honest)
        for name in honest:
            status = cluster[name].get("/status")
            assert status["view"] >= 1 and status["primary"] != "bank1", status
        if kind == "invalid-block":
            seen = sum(
                metric(cluster, n, "lendchain_faults_total", member="bank1", kind=kind) for n in honest
            )
            assert seen >= 1
            assert any("fault by member=bank1 kind=invalid-block" in log_of(cluster, n) for n in honest)
    finally:
        cluster.stop_all()


def test_a_lying_backup_cannot_stop_or_fork_the_chain(tmp_path):
    cluster = start_network(tmp_path, "bank4", "silent")
    honest = HONEST_BACKUPS
    try:
        for kind in ("silent", "garbage", "conflicting-votes", "replay", "oversized", "flood"):
            set_faults(cluster, "bank4", byzantine=kind)
            wait_for(
                lambda kind=kind: f"byzantine={kind}" in log_of(cluster, "bank4"), 10, f"bank4 to {kind}"
            )
            tx_ids = submit(cluster, honest, 6)
            committed_everywhere(cluster, tx_ids, honest, timeout_s=90)
            assert_honest_agree(cluster, honest)
            if kind == "garbage":  # bank4's frames may arrive after the honest three committed
                wait_for(
                    lambda: sum(metric(cluster, n, "lendchain_faults_total", member="bank4") for n in honest),
                    30,
                    "an honest member to count bank4's garbage",
                )
            if kind == "oversized":
                wait_for(
                    lambda: any("closing consensus stream from bank4" in log_of(cluster, n) for n in honest),
                    30,
                    "an honest member to refuse bank4's oversized frame",
                )
            if kind == "flood":
                wait_for(
                    lambda: sum(
                        metric(cluster, n, "lendchain_p2p_throttled", member="bank4") for n in honest
                    ),
                    30,
                    "bank4's flood to be rate limited",
                )
                assert any("rate limiting bank4" in log_of(cluster, n) for n in honest)
                for other in ("bank1", "bank2", "bank3"):  # the honest ones are never throttled
                    assert all(
                        metric(cluster, n, "lendchain_p2p_throttled", member=other) == 0 for n in honest
                    )
                # The honest members read bank4 only within its budget, so its flooded frames wait in
                # its own link (~45 s of them) and its next votes behind them. The view change below
                # needs bank4's votes: stop the flood and let the backlog drain first, not inside that
                # phase's deadline.
                set_faults(cluster, "bank4")
                wait_for(throttling_stopped(cluster, honest, "bank4"), 150, "bank4's flooded frames to drain")

        # A view change while bank4 lies in its VIEW-CHANGE: cut off the primary.
        set_faults(cluster, "bank4", byzantine="lying-view-change")
        primary = cluster["bank2"].get("/status")["primary"]
        assert primary in honest
        set_faults(cluster, primary, isolate=True)
        others = [n for n in honest if n != primary]
        tx_ids = submit(cluster, others, 4)
        committed_everywhere(cluster, tx_ids, others, timeout_s=120)
        set_faults(cluster, primary)
        committed_everywhere(cluster, tx_ids, honest, timeout_s=120)
        assert_honest_agree(cluster, honest)
        assert all(cluster[n].running for n in cluster.names)
    finally:
        cluster.stop_all()


def test_a_primary_that_leaves_one_borrower_out_is_replaced_while_it_commits_the_rest(tmp_path):
    """The no-progress timer never fires against it; the backups' request timer does (timers.py)."""
    cluster = start_network(tmp_path, "bank4", "")
    honest = ["bank2", "bank3", "bank4"]
    victim = SigningKey.generate()
    with client(cluster, "bank2") as c:
        censored = c.build(victim, "party.register", {"role": "borrower"}, nonce=0)
    set_faults(cluster, "bank1", censor=[censored.sender])
    stop = threading.Event()
    others: list[str] = []

    def steady_traffic() -> None:  # keeps the censoring primary committing
        while not stop.wait(0.3):
            with client(cluster, honest[len(others) % 3]) as c:
                others.append(register(c))

    feeder = threading.Thread(target=steady_traffic, daemon=True)
    feeder.start()
    try:
        wait_for(lambda: len(others) >= 3, 30, "the first other registrations")
        with client(cluster, "bank3") as c:
            c.submit(censored)
        committed_everywhere(cluster, [censored.id.hex()], honest, timeout_s=90)
        stop.set()
        feeder.join()
        committed_everywhere(cluster, others, honest, timeout_s=60)
        assert_honest_agree(cluster, honest)
        for name in honest:
            status = cluster[name].get("/status")
            assert status["view"] >= 1 and status["primary"] != "bank1", status
        assert any("and primary bank1 left it out" in log_of(cluster, n) for n in honest)
        assert sum(metric(cluster, n, "lendchain_request_timeouts_total") for n in honest) >= 2
        # The backups relayed the request to bank1 before they gave up on it.
        assert metric(cluster, "bank1", "lendchain_relayed_txs_total", direction="in") >= 1
    finally:
        stop.set()
        cluster.stop_all()
