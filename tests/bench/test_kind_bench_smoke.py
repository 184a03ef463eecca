"""The per-kind ledger benchmark still runs and accounts for every tx it built (issue 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "kind_bench.py"
KINDS = {
    "party.register",
    "kyc.attest",
    "loan.apply",
    "loan.offer",
    "loan.accept",
    "loan.disburse",
    "loan.repay",
}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), "--txs", "1100", "--block", "100", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCH.parent,
    )


def test_every_kind_is_reported_with_its_cost():
    done = run("--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result["by_kind"]) == KINDS
    assert sum(row["txs"] for row in result["by_kind"].values()) == result["txs"] == 1100
    assert result["by_kind"]["loan.repay"]["txs"] == 500  # five repayments per loan
    for row in result["by_kind"].values():
        assert row["execute_us"] > 0 and row["store_us"] > 0
        assert abs(row["total_us"] - row["execute_us"] - row["store_us"]) <= 0.11  # each rounded
    assert result["total_us"] > 0


def test_the_instruction_count_stops_print_nothing():
    for stage in ("build", "propose"):
        done = run("--stop-after", stage)
        assert (done.returncode, done.stdout) == (0, ""), done.stderr[-3000:]


def test_without_the_teardown_the_report_is_the_same_and_whole():
    """``--no-teardown`` leaves with os._exit after the report: it must be written out in full."""
    done = run("--json", "--node", "--no-gc", "--no-teardown")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result["by_kind"]) == KINDS and result["txs"] == 1100
    for stage in ("build", "propose"):
        stopped = run("--stop-after", stage, "--no-teardown")
        assert (stopped.returncode, stopped.stdout) == (0, ""), stopped.stderr[-3000:]
