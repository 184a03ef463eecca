"""LevelDB's background CPU per tx as a chain grows, under the store options given (issue 7).

Builds a chain as ``chain_bench.py`` does (``chain_build.build_chain``: real
signed loan lifecycles, blocks cut by ``make_block`` and stored by
``ChainStore.commit_block`` with a commit certificate), and nothing else: no
nodes are started. Per window of ``--window`` txs it reports main-thread CPU
of execution and commit, and CPU of the process's other threads, which is
LevelDB's background compaction (the signer is another process). CPU time,
not wall time, so that a shared machine moves it less; still, compare two
settings alternated, run after run.

``--node-writes`` adds what a node writes per block besides
``commit_block`` (``chain_build.node_writes_before_commit``): the
accepted-tx records of a quarter of the block's txs and the WAL's copy of
the proposal, both deleted when the block commits.

``--write-buffer-mb``, ``--max-file-mb``, ``--block-kb`` override the
store's ``_DB_OPTIONS`` for this process (LevelDB 1.22's defaults for the
last two: 2 MB, 4 KB). To compare two trees (say, a change to what
``commit_block`` writes), run each with its own ``PYTHONPATH``.

Usage:
  python benchmarks/store_bench.py [--txs 200000] [--window 20000] [--node-writes] [--max-file-mb 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chain_bench import make_network, member_keys
from chain_build import build_chain

from lendchain.node import store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=200_000)
    parser.add_argument("--block", type=int, default=1_000, help="txs per block")
    parser.add_argument("--window", type=int, default=20_000, help="txs per measuring window")
    parser.add_argument("--chain-tps", type=float, default=500)
    parser.add_argument("--write-buffer-mb", type=int)
    parser.add_argument("--max-file-mb", type=int)
    parser.add_argument("--block-kb", type=int)
    parser.add_argument(
        "--node-writes",
        action="store_true",
        help="also write what a node does per block: accepted-tx records, the WAL's copy of the block",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.chain_lenders, args.chain_attesters = ["bank1", "bank2"], ["bank1", "bank2"]
    args.block_ms = max(1, round(args.block * 1000 / args.chain_tps))
    args.profile = None
    return args


def store_options(args: argparse.Namespace) -> dict:
    options = dict(store._DB_OPTIONS)
    if args.write_buffer_mb is not None:
        options["write_buffer_size"] = args.write_buffer_mb * 2**20
    if args.max_file_mb is not None:
        options["max_file_size"] = args.max_file_mb * 2**20
    if args.block_kb is not None:
        options["block_size"] = args.block_kb * 1024
    return options


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    log = lambda *a, **k: print(*a, **k, file=sys.stderr, flush=True)  # noqa: E731
    store._DB_OPTIONS = store_options(args)
    tmp = Path(tempfile.mkdtemp(prefix="lendchain-store-bench-"))
    try:
        blocks = -(-args.txs // args.block)
        layout = make_network(tmp / "chain", backdate_ms=blocks * args.block_ms + 60_000)
        layout = type(layout)(layout.out, layout.genesis, layout.configs[:1])  # no copies for peers
        keys = member_keys(layout)
        thread0, process0 = time.thread_time(), time.process_time()
        built = build_chain(layout, keys, args, log)  # closes the store: waits for a running compaction
        main_cpu = time.thread_time() - thread0
        background_cpu = time.process_time() - process0 - main_cpu
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    windows = [w.per_tx_us() | {"end_txs": w.end_txs, "rss_mb": round(w.rss_mb)} for w in built.windows]
    total = {
        key: round(statistics.fmean(w[key] for w in windows), 1)
        for key in ("execute_cpu", "commit_cpu", "compaction_cpu")
    }
    total["all_cpu"] = round(sum(total.values()), 1)
    # The whole build, the last partial window and the close included (the windows leave them out).
    whole = {
        "main_cpu": round(1e6 * main_cpu / built.txs, 1),
        "background_cpu": round(1e6 * background_cpu / built.txs, 1),
    }
    result = {
        "options": {k: v for k, v in store._DB_OPTIONS.items()},
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "node_writes": args.node_writes,
        "txs": built.txs,
        "mean_us_per_tx": total,
        "whole_build_us_per_tx": whole,
        "disk_bytes_per_tx": round(built.disk_bytes / built.txs),
        "peak_rss_mb": round(built.peak_rss_mb),
        "windows": windows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"options {result['options']}")
        print(f"{'end txs':>9} {'execute':>8} {'commit':>7} {'bg':>6} {'RSS':>5}")
        for w in windows:
            print(
                f"{w['end_txs']:>9,} {w['execute_cpu']:>8} {w['commit_cpu']:>7} "
                f"{w['compaction_cpu']:>6} {w['rss_mb']:>5}"
            )
        print(f"whole build µs/tx: {whole}")
        print(
            f"mean µs/tx: {total}; disk {result['disk_bytes_per_tx']} B/tx; peak RSS {result['peak_rss_mb']} MB"
        )
    return result


if __name__ == "__main__":
    main()
