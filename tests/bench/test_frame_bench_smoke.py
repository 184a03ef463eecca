"""The frame benchmark still runs, gets every frame through intact and in order, and reports (issue 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "frame_bench.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120, cwd=BENCH.parent
    )


def test_frames_one_at_a_time_and_batched_are_measured():
    alone = run("--frames", "100", "--json")
    assert alone.returncode == 0, alone.stderr[-3000:]
    one = json.loads(alone.stdout)
    assert (one["frames"], one["size"], one["in_flight"]) == (100, 200, 1)
    assert one["cpu_us_per_frame"] > 0 and one["wall_us_per_frame"] > 0
    batched = run("--frames", "100", "--in-flight", "10", "--size", "64", "--json")
    assert batched.returncode == 0, batched.stderr[-3000:]
    ten = json.loads(batched.stdout)
    # The sender's link writes frames queued together in one write: fewer steps per frame.
    assert 0 < ten["task_steps_per_frame"] < one["task_steps_per_frame"]


def test_bad_arguments_are_refused_before_anything_starts():
    refused = run("--frames", "0")
    assert refused.returncode == 2 and "--frames and --in-flight must be at least 1" in refused.stderr
    too_big = run("--size", "100000000")
    assert too_big.returncode == 2 and "--size is at most the frame limit" in too_big.stderr
