"""The intake benchmark still runs, feeds every tx through its stage and pools them all (issue 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "intake_bench.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), "--txs", "340", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCH.parent,
    )


def test_every_tx_goes_through_gossip_or_the_api_and_is_pooled():
    for verify in (True, False):
        done = run("--json", *(() if verify else ("--skip-verify",)))
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)
        stages = result["stages"]
        assert result["verify"] is verify and result["txs"] == 340  # 20 groups of 17 txs
        # A quarter of the senders talk to this node; the rest of their txs come by gossip.
        assert stages["gossip_validate"]["txs"] == stages["gossip_deliver"]["txs"] > 0
        assert stages["gossip_validate"]["txs"] + stages["api_stream"]["txs"] == 340
        assert stages["api_stream"]["txs"] > 0
        assert all(row["us_per_tx"] > 0 for row in stages.values()) and result["us_per_tx"] > 0


def test_only_the_streams_messages_go_in_with_only_stream():
    done = run("--json", "--skip-verify", "--only-stream")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    stages = result["stages"]
    assert stages["gossip_validate"]["txs"] == stages["gossip_deliver"]["txs"] == 0
    assert result["txs"] == stages["api_stream"]["txs"] > 0  # every one pooled (the bench checks)


def test_the_instruction_count_stop_prints_nothing_and_a_bad_size_is_refused():
    done = run("--stop-after", "build")
    assert (done.returncode, done.stdout) == (0, ""), done.stderr[-3000:]
    refused = subprocess.run(
        [sys.executable, str(BENCH), "--txs", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BENCH.parent,
    )
    assert refused.returncode == 2 and "--txs must be at least 1, got 0" in refused.stderr
