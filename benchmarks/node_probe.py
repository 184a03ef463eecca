"""What the benchmarks read from a running node process: CPU, memory, disk, metrics counters.

Linux only (``/proc``); shared by network_bench.py and chain_bench.py.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import httpx

import lendchain
from lendchain.node.cluster import NodeProcess

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(node: NodeProcess) -> float:
    fields = Path(f"/proc/{node.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def main_thread_cpu_seconds(node: NodeProcess) -> float:
    """CPU of the node's main thread (the event loop: ledger, consensus, API), not LevelDB's or workers'."""
    pid = node.process.pid
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(node: NodeProcess) -> dict[str, float]:
    found = {}
    for line in Path(f"/proc/{node.process.pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


COUNTERS = {
    "lendchain_view_changes_total": "view_changes",
    'lendchain_relayed_txs_total{direction="out"}': "relayed_txs",
}


def node_counters(node: NodeProcess) -> dict[str, int]:
    """View changes, and txs its request timer relayed (a primary that lacked them), from /metrics."""
    found = dict.fromkeys(COUNTERS.values(), 0)
    for name, _, value in (
        line.partition(" ") for line in httpx.get(node.url + "/metrics", timeout=5).text.splitlines()
    ):
        if name in COUNTERS:
            found[COUNTERS[name]] = int(float(value))
    return found


def idle_cpu_percent(nodes: list[NodeProcess], seconds: float) -> float:
    """CPU of all nodes together while no tx is offered, in % of one core (ticks, heartbeats, pings)."""
    before, started = sum(cpu_seconds(n) for n in nodes), time.monotonic()
    time.sleep(seconds)
    return round(100 * (sum(cpu_seconds(n) for n in nodes) - before) / (time.monotonic() - started), 1)


def machine_speed(wire_txs: list[bytes], sample: int = 1000) -> dict[str, float]:
    """This machine's speed at two per-tx costs every node pays, measured before a run.

    Machines differ (the same code has cost 0.50 to 0.76 ms of CPU per tx on
    the 20k run on different 2-core machines) while the Ed25519 cost barely
    moves, so a result is only comparable with the Python figure beside it:
    µs of CPU to decode one tx (canonical msgpack, checks, the decode cache)
    and to verify one signature, each the median of three slices of
    ``sample`` of the run's own txs, decoded here for the first time. The
    decode figure measures this tree's decoder as well as the machine: it
    fell by ~2 µs when txs began to decode with ormsgpack (eleventh session
    of 2026-12-05), so compare it across machines only for one tree.
    """
    from lendchain.ledger.transactions import decode_transaction, verify_signature

    decode_us, verify_us = [], []
    for part in range(3):
        raw = [bytes(tx) for tx in wire_txs[part * sample : (part + 1) * sample]]
        if not raw:
            break
        started = time.process_time()
        txs = [decode_transaction(tx) for tx in raw]
        decoded = time.process_time()
        assert all(verify_signature(tx) for tx in txs)
        done = time.process_time()
        decode_us.append(1e6 * (decoded - started) / len(raw))
        verify_us.append(1e6 * (done - decoded) / len(raw))
    if not decode_us:
        return {}
    return {
        "tx_decode_us": round(sorted(decode_us)[len(decode_us) // 2], 2),
        "ed25519_verify_us": round(sorted(verify_us)[len(verify_us) // 2], 2),
    }


def cpu_model(cpuinfo: str) -> str | None:
    """The first CPU's model in ``/proc/cpuinfo`` text, with its x86 family and model numbers.

    Two machines sold under one name ("AMD EPYC") have verified a signature in 39 and in
    129 µs; the numbers tell them apart.
    """
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if name is None:
        return None
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


# What a result depends on: the node's code, and the benchmarks' own (their workloads).
MEASURED_CODE = ("lendchain", "benchmarks/*.py")


def tree_commit(tree: Path) -> str | None:
    """The git commit of the lendchain tree at ``tree``; None outside git.

    "+changes" follows it when the tree's ``MEASURED_CODE`` differs from that commit.
    """
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return None
        changed = subprocess.run(
            ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no", "--", *MEASURED_CODE],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


def machine_identity() -> dict[str, object]:
    """What a result needs beside it to be compared: CPU model and count, Python, the code's commit.

    The commit is that of the tree ``lendchain`` is imported from (an A/B run with
    ``PYTHONPATH`` names the tree it ran), with "+changes" when its code differs from that
    commit (``tree_commit``).
    """
    try:
        model = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        model = None
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "lendchain_commit": tree_commit(Path(lendchain.__file__).resolve().parents[1]),
    }


def machine_line(machine: dict) -> str:
    """``machine_identity`` (as a result holds it) on one line of a benchmark's table."""
    return f"{machine['cpu_model']}, {machine['cpus']} CPUs; {machine['lendchain_commit']}"
