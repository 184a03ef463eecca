"""The network benchmark's workload and rate series (issue 7), without starting a network."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lendchain.crypto import SigningKey

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "network_bench.py"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def bench(monkeypatch_module):
    monkeypatch_module.syspath_prepend(str(BENCH.parent))  # it imports its sibling node_probe
    spec = importlib.util.spec_from_file_location("network_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["network_bench"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["network_bench"]


@pytest.fixture(scope="module")
def workload(bench):
    lenders = [SigningKey.generate() for _ in range(3)]
    attesters = [SigningKey.generate() for _ in range(2)]
    return bench.build_workload(3400, "bench-test", lenders, attesters, 4, 4, chunk=10), lenders


def test_dependencies_point_backwards_and_senders_chain_in_order(workload):
    planned, _ = workload
    for tx in planned.txs:
        assert tx.after is None or tx.after < tx.index
        assert tx.next_same_sender is None or planned.txs[tx.next_same_sender].sender == tx.sender
    heads = {planned.txs[i].sender for i in planned.first_of_sender}
    assert len(heads) == len(planned.first_of_sender) == len({tx.sender for tx in planned.txs})


def test_loans_that_go_all_the_way_are_registered_early(bench, workload):
    planned, _ = workload
    applied_for = {tx.sender for tx in planned.txs if tx.kind == "loan.accept"}
    registrations = [
        planned.txs[i] for i in planned.first_of_sender if planned.txs[i].kind == "party.register"
    ]
    positions = [k for k, tx in enumerate(registrations) if tx.sender in applied_for]
    assert len(positions) == len(registrations) // 4
    # they go out as if the first LIFECYCLE_SPREAD of the borrowers, the others mixed in as before
    last = len(positions) + (len(registrations) - len(positions)) * bench.LIFECYCLE_SPREAD
    assert last - 2 <= max(positions) <= last + 2
    assert positions[0] == 0


def test_lender_work_comes_in_about_lender_chunks_chunks(bench, workload):
    planned, lenders = workload
    for lender in lenders:
        kinds = [tx.kind for tx in planned.txs if tx.sender == lender.did]
        chunks = sum(
            1
            for a, b in zip(["start", *kinds], kinds, strict=False)
            if b == "loan.offer" and a != "loan.offer"
        )
        assert chunks == bench.LENDER_CHUNKS


@pytest.fixture(scope="module")
def bench_report(bench):
    import bench_report  # beside network_bench, on the path the bench fixture set

    return bench_report


def test_rate_series_counts_commits_per_step(bench, bench_report):
    run = bench.Run(
        workload=None, submitted_at=[100.0, 100.0, 100.5, 0.0], committed_at=[101.0, 112.0, 126.0, 0.0]
    )
    # steps [100, 110), [110, 120), [120, 126]: one commit each; the last step is 6 s long
    assert bench_report.rate_series(run, 10.0) == [0.1, 0.1, round(1 / 6, 1)]
    # a remainder under half a step joins the step before: [110, 124] holds two commits
    run.committed_at[2] = 124.0
    assert bench_report.rate_series(run, 10.0) == [0.1, round(2 / 14, 1)]
    assert bench_report.rate_series(bench.Run(workload=None), 10.0) == []


def test_cost_series_gives_cpu_per_tx_and_the_lifecycle_share_of_each_step(bench, bench_report):
    kinds = ["party.register", "loan.apply", "loan.offer", "loan.repay", "loan.repay"]
    txs = [bench.PlannedTx(i, f"{i:02x}", "", "s", kind, 0) for i, kind in enumerate(kinds)]
    run = bench.Run(
        workload=bench.Workload(txs, [0]),
        submitted_at=[100.0] * 5,
        committed_at=[101.0, 105.0, 112.0, 115.0, 0.0],  # the last never committed
        # CPU grows 2 s per 10 s until 110, then 3 s per 5 s; main threads half of that
        cpu_samples=[(100.0, 10.0, 5.0), (110.0, 12.0, 6.0), (115.0, 15.0, 7.5)],
    )
    series = bench_report.cost_series(run, 10.0)
    # steps [100, 110): 2 txs, 2 s of CPU; [110, 115]: 2 txs, 3 s
    assert series["cpu_ms_per_tx"] == [1000.0, 1500.0]
    assert series["main_thread_cpu_ms_per_tx"] == [500.0, 750.0]
    assert series["lifecycle_percent"] == [0.0, 100.0]
    # between samples CPU is taken as linear: a sample only at 100 and 120 splits 4 s evenly
    run.cpu_samples = [(100.0, 10.0, 5.0), (120.0, 14.0, 7.0)]
    run.committed_at[3] = 119.0
    assert bench_report.cost_series(run, 10.0)["cpu_ms_per_tx"] == [1000.0, round(1000 * 1.8 / 2, 3)]
    assert bench_report.cost_series(bench.Run(workload=None), 10.0)["cpu_ms_per_tx"] == []


def test_cpu_samples_are_skipped_while_a_node_is_gone(bench):
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its /proc entry no longer exists
    alive = SimpleNamespace(process=SimpleNamespace(pid=os.getpid()))
    run = bench.Run(workload=None)
    bench.sample_cpu(run, [alive])
    assert len(run.cpu_samples) == 1 and run.cpu_samples[0][1] > 0
    bench.sample_cpu(run, [alive, SimpleNamespace(process=gone)])
    assert len(run.cpu_samples) == 1


def test_busiest_window_finds_the_span_with_most_commits(bench, bench_report):
    # first submission at 100; 10 commits a second from 101 to 130, then 1 a second to 170
    busy = [101 + k / 10 for k in range(300)]
    slow = [131.0 + k for k in range(40)]
    done = busy + slow
    run = bench.Run(
        workload=None,
        submitted_at=[100.0] * len(done),
        committed_at=done,
        # 1 CPU s per s throughout
        cpu_samples=[(100.0 + t, float(t), float(t) / 2) for t in range(0, 81, 5)],
    )
    window = bench_report.sustained(run, span_s=30.0)
    # [101, 131] holds the 300 busy commits and the slow one at 131
    assert window == {"tx_per_s": round(301 / 30, 1), "start_s": 1.0, "cpu_ms_per_tx": round(30_000 / 301, 3)}
    # a window may not run past the last commit (170): the latest starts at 110
    late = bench_report.sustained(run, span_s=60.0)
    assert late["start_s"] == 1.0 and late["tx_per_s"] == round((300 + 30) / 60, 1)
    # all commits in the run's last 60 s: the window ends at the last commit
    run.committed_at = [150.0 + k / 10 for k in range(100)]  # 150..159.9, the run is 59.9 s long
    assert bench_report.sustained(run, span_s=60.0) is None
    run.committed_at[-1] = 175.0  # now 75 s long: [115, 175] holds all 100
    assert bench_report.sustained(run, span_s=60.0) == {
        "tx_per_s": round(100 / 60, 1),
        "start_s": 15.0,
        "cpu_ms_per_tx": 600.0,
    }
    assert bench_report.sustained(bench.Run(workload=None)) is None


def test_the_table_shows_the_busiest_window_or_says_the_run_was_too_short(bench_report):
    assert bench_report._busiest(None) == "- (a run shorter than 60 s)"
    window = {"tx_per_s": 2984.7, "start_s": 1.0, "cpu_ms_per_tx": 0.647}
    assert bench_report._busiest(window) == "2985 tx/s, 0.647 ms, from 1.0 s"


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu vme

processor\t: 1
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
"""


def test_a_result_names_the_cpu_by_family_and_model_and_the_code_by_commit(bench):
    import node_probe  # beside network_bench, on the path the bench fixture set

    assert node_probe.cpu_model(CPUINFO) == "AMD EPYC (family 25, model 17)"
    assert node_probe.cpu_model("processor\t: 0\nmodel name\t: Neoverse-N1\n") == "Neoverse-N1"
    assert node_probe.cpu_model("processor\t: 0\nCPU implementer\t: 0x41\n") is None
    identity = node_probe.machine_identity()
    assert identity["cpus"] == os.cpu_count() and identity["cpu_model"]
    tree = BENCH.parents[1]
    head = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        assert identity["lendchain_commit"] is None
    else:
        assert identity["lendchain_commit"].split("+")[0] == head.stdout.strip()


def test_a_tree_with_changes_to_its_code_says_so(bench, tmp_path):
    import node_probe

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "lendchain").mkdir()
    (tmp_path / "lendchain" / "x.py").write_text("a = 1\n")
    (tmp_path / "README.md").write_text("readme\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "one")
    clean = node_probe.tree_commit(tmp_path)
    assert clean is not None and "+" not in clean
    (tmp_path / "README.md").write_text("other\n")  # not the code: still the commit
    assert node_probe.tree_commit(tmp_path) == clean
    (tmp_path / "lendchain" / "x.py").write_text("a = 2\n")
    assert node_probe.tree_commit(tmp_path) == clean + "+changes"
    git("checkout", "-q", "--", "lendchain")
    assert node_probe.tree_commit(tmp_path) == clean
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "b.py").write_text("w = 1\n")
    (tmp_path / "benchmarks" / "RESULTS.md").write_text("r\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "two")
    clean = node_probe.tree_commit(tmp_path)
    (tmp_path / "benchmarks" / "RESULTS.md").write_text("results change, not the code\n")
    assert node_probe.tree_commit(tmp_path) == clean
    (tmp_path / "benchmarks" / "b.py").write_text("w = 2\n")  # a workload changed
    assert node_probe.tree_commit(tmp_path) == clean + "+changes"
    assert node_probe.tree_commit(tmp_path / "lendchain" / "nowhere") is None
