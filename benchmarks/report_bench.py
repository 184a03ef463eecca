"""Point-in-time report benchmark: replay time and peak memory of ``lendchain report books`` as a chain grows.

Builds a chain of ``--txs`` loan-lifecycle txs in a stopped node's data
directory (``chain_build.build_chain``, as ``chain_bench.py`` does, certificates
signed by 3 of 4 members), then runs ``lendchain --json report books
--data-dir`` on it in a child process, and ``lendchain verify-chain`` for
comparison (which holds the whole state in a Python dict), and prints each
one's wall time and peak RSS (the child's ``ru_maxrss``). Run it at two sizes:
the report's peak RSS should not grow with the chain, verify-chain's does.

Then the replay cache (``--cache-dir``): a report at half the chain's height
fills it (``cache_fill``: a replay from the genesis, kept), a report at the
head resumes from it (``cache_resume``: the second half replayed), and one
more at the head finds it there (``cache_at_head``: nothing replayed, the
cache opened and its checksums verified).

Usage:
  python benchmarks/report_bench.py [--txs 100000] [--block 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from chain_bench import make_network, member_keys
from chain_build import build_chain, load_data_dir
from node_probe import machine_identity


def child_run(args: list[str]) -> tuple[float, dict[str, float], str]:
    """Run ``lendchain ARGS`` in a child; (wall seconds, peak memory in MB, stdout); exit if it fails.

    Peak memory: ``rss`` (the kernel's ``ru_maxrss``), and sampled every 50 ms from
    ``/proc/PID/status``: ``anon`` (heap: Python objects, LevelDB's memtable and cache) and
    ``file`` (pages of mapped files: LevelDB reads uncompressed tables through mmap, which
    the page cache backs and can reclaim).
    """
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "lendchain", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peaks = {"anon": 0.0, "file": 0.0}
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(child.stdout.read()), daemon=True)
    reader.start()
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        try:
            lines = Path(f"/proc/{child.pid}/status").read_text().splitlines()
        except OSError:  # gone between the two calls
            lines = []
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                name = key[3:].lower()
                peaks[name] = max(peaks[name], int(value.split()[0]) / 1024)
        time.sleep(0.05)
    child.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if child.returncode != 0:
        raise SystemExit(f"lendchain {' '.join(args)} failed: {child.stderr.read().decode()}")
    peaks["rss"] = usage.ru_maxrss / 1024
    return time.perf_counter() - started, peaks, b"".join(chunks).decode()


def cache_runs(config: str, data_dir: str, blocks: int, cache: Path) -> dict[str, float]:
    """Wall seconds, peak heap and blocks replayed of three reports with ``--cache-dir``."""
    result: dict[str, float] = {}
    report = [
        "--json",
        "report",
        "books",
        "--config",
        config,
        "--data-dir",
        data_dir,
        "--cache-dir",
        str(cache),
    ]
    for name, height in (("cache_fill", blocks // 2), ("cache_resume", None), ("cache_at_head", None)):
        at = [] if height is None else ["--height", str(height)]
        seconds, mb, out = child_run([*report, *at])
        basis = json.loads(out)["basis"]
        result[f"{name}_s"] = round(seconds, 1)
        result[f"{name}_peak_anon_mb"] = round(mb["anon"])
        result[f"{name}_blocks_replayed"] = basis["blocks_checked"]
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=100_000, help="about this many txs in the chain")
    parser.add_argument("--block", type=int, default=1_000, help="txs per block")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    args = parser.parse_args(argv)
    args.window, args.profile, args.block_ms = max(args.block, args.txs // 4), None, 2_000
    args.chain_lenders, args.chain_attesters = ["bank1", "bank2"], ["bank1", "bank2"]
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    tmp = Path(tempfile.mkdtemp(prefix="lendchain-report-bench-"))
    try:
        blocks = -(-args.txs // args.block)
        layout = make_network(tmp / "chain", backdate_ms=blocks * args.block_ms + 60_000)
        built = build_chain(layout, member_keys(layout), args, log)
        config = str(layout.configs[0])
        data_dir = str(load_data_dir(layout.configs[0]))
        report_s, report_mb, out = child_run(
            ["--json", "report", "books", "--config", config, "--data-dir", data_dir]
        )
        verify_s, verify_mb, _ = child_run(["verify-chain", "--config", config])
        cached = cache_runs(config, data_dir, built.blocks, tmp / "cache")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "txs": built.txs,
        "blocks": built.blocks,
        "data_dir_mb": round(built.disk_bytes / 2**20),
        "report_books_s": round(report_s, 1),
        **{f"report_books_peak_{k}_mb": round(v) for k, v in report_mb.items()},
        "verify_chain_s": round(verify_s, 1),
        **{f"verify_chain_peak_{k}_mb": round(v) for k, v in verify_mb.items()},
        **cached,
        "lenders_reported": len(json.loads(out)["view"]["books"]),
        "machine": machine_identity(),
    }
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:<30} {v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
