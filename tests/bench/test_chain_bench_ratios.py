"""The chain benchmark's cost ratios (issue 7), from windows made up here: no chain is built."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "chain_bench.py"


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH.parent))  # it imports its siblings chain_build, node_probe
        spec = importlib.util.spec_from_file_location("chain_bench", BENCH)
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, "chain_bench", module)
        spec.loader.exec_module(module)
        yield module


def windows(bench, costs_us: list[float], txs: int = 10_000):
    """Windows of ``txs`` txs, each costing its ``costs_us`` µs per tx of execute+commit CPU."""
    return [
        bench.Window(end_txs=(number + 1) * txs, txs=txs, execute_cpu=cost * txs / 1e6)
        for number, cost in enumerate(costs_us)
    ]


def test_the_steady_state_ratio_starts_from_the_first_window_after_the_memories_fill(bench):
    costs = [20.0] * 10 + [25.0, 26.0, 24.0, 25.0, 27.0] + [28.0] * 80 + [30.0, 31.0, 29.0, 30.0, 32.0]
    built = windows(bench, costs)
    steady = bench.steady_state_ratios(built)
    assert steady == {
        "from_window_ending_at": bench.STEADY_FROM_TXS + 10_000,  # the first to start at 100k
        "ratio": round(32.0 / 25.0, 3),
        "median_ratio": round(30.0 / 25.0, 3),
    }
    # The ratios (against the first window, and windows 2-5) are left as they were.
    assert bench.median_ratio(built) == round(30.0 / 20.0, 3)


def test_a_chain_too_short_for_ten_steady_windows_has_no_steady_state_ratio(bench):
    assert bench.steady_state_ratios(windows(bench, [20.0] * 19)) is None
    assert bench.steady_state_ratios(windows(bench, [20.0] * 20)) is not None
