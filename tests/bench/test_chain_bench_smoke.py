"""The chain benchmark still runs: a 20,000-tx chain is built, restarted on 4 nodes and loaded (issue 7).

Benchmark targets are not asserted here, only that every number is there and sane.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "chain_bench.py"
NODES = {"bank1", "bank2", "bank3", "bank4"}


def test_smoke_run_builds_a_chain_restarts_it_and_reports_every_field():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json"], capture_output=True, text=True, timeout=420
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)

    # The chain: ~20,000 txs in blocks of 1,000, checked by verify-chain.
    assert 19_000 <= result["txs"] <= 20_000
    assert result["blocks"] == -(-result["txs"] // 1000)
    assert result["verify_chain_s"] > 0
    windows = result["windows"]
    assert [w["end_txs"] for w in windows] == sorted(w["end_txs"] for w in windows)
    assert len(windows) >= 3 and windows[-1]["end_txs"] <= result["txs"]
    for window in windows:
        assert window["execute_cpu"] > 0 and window["commit_cpu"] > 0 and window["validate_cpu"] > 0
        assert window["execute_commit_wall"] > 0 and window["compaction_cpu"] >= 0
        assert 0 < window["rss_mb"] < 2000
    cost = result["cost_us_per_tx"]
    assert cost["first_window"]["end_txs"] < cost["last_window"]["end_txs"]
    assert cost["execute_commit_cpu_ratio"] > 0
    assert 100 < result["disk_bytes_per_tx"] < 10_000
    assert 0 < result["builder_peak_rss_mb"] < 2000

    # The restart: every node became ready on the chain's head, with its CPU and memory known.
    assert set(result["restart_ready_s"]) == NODES
    assert all(0 < s < 300 for s in result["restart_ready_s"].values())
    assert all(0 < s < 300 for s in result["restart_ready_cpu_s"].values())
    assert all(0 < m["VmRSS"] <= m["VmHWM"] for m in result["node_rss_ready_mb"].values())
    assert result["settled_after_ready_s"] >= 0
    assert all(0 < m["VmRSS"] <= m["VmHWM"] for m in result["node_rss_settled_mb"].values())

    # The live load went through on the restarted chain and on a fresh network.
    for live in (result["live_at_height"], result["live_fresh"]):
        assert live["submitted"] >= 200
        assert live["committed"] == live["submitted"] and live["rejected"] == 0
        assert live["cpu_ms_per_tx"] > 0 and live["tx_per_s"] > 0
        assert set(live["memory_mb"]) == NODES
    assert result["live_at_height"]["height"] > result["blocks"]
    assert result["live_cpu_ratio"] > 0
