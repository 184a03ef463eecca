"""What each kind of loan tx costs a validating node to execute and store.

Builds the same workload as ``ledger_bench.py`` (loans walked through their
whole life, phase by phase, so each block holds one kind of tx), has a
proposer cut it into blocks, then checks and commits every block on a fresh
LevelDB as a validating node does and reports CPU µs per tx by kind:
``check_block`` (decode, tx root, execution, state and results roots, with
the signatures already verified) and ``commit_block`` (one WriteBatch).

Timings on a shared 2-core machine move by tens of percent between runs.
For a comparison of two trees that does not, count instructions instead:
the build and the proposer's pass are the same in both, so the difference of
whole-process counts is the difference in execution (twice: proposer and
validator). With the interpreter binary itself, not a shim:

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        python3.11 benchmarks/kind_bench.py --txs 5500

``--stop-after build`` and ``--stop-after propose`` give the counts to
subtract to see what execution alone costs. A change that allocates less
moves where the cyclic collector's passes fall, by up to ~10 M instructions
either way at 5,500 txs; ``--no-gc`` turns the collector off once the
workload is built, so that two trees' counts differ by their code alone.
``--no-teardown`` leaves the process with ``os._exit`` once it has reported,
without the interpreter's teardown (freeing every object still alive, a last
collection), which costs up to ~10 M instructions more or less with what the
node's memories hold at the end: not per-tx work. ``--profile KIND`` prints a
cProfile of the blocks of that kind.

``--node`` runs the validator as a backup node does, through ``NodeApp``:
before each block its txs enter the mempool (as gossip brings them; not
timed), then ``validate`` checks the proposal and records it with the
prepare vote in the WAL (the replica's ``Persist``), the commit vote follows,
and ``commit`` stores the block with the WAL records of its delivery and
takes its txs out of the mempool; last, the daemon's commit listener
(``Node._on_commit``) stops the commit-latency clock of each of its txs.
The plain mode leaves all of that but ``check_block`` and ``commit_block`` out.

Usage: python benchmarks/kind_bench.py [--txs 22000] [--block 500] [--node] [--no-gc] [--no-teardown] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from collections import Counter

from ledger_bench import build_workload, check_next_block, propose_blocks

from lendchain.bounded import BoundedCache
from lendchain.cli.network import tune_gc
from lendchain.consensus import wal as walkeys
from lendchain.ledger.block import Block
from lendchain.ledger.transactions import decode_transaction
from lendchain.node.app import NodeApp
from lendchain.node.config import MempoolConfig
from lendchain.node.mempool import Mempool, PendingTx
from lendchain.node.store import ChainStore

CERTIFICATE = bytes(1_100)  # about what 3 signed COMMITs of a 4-member network encode to


def validate(
    genesis, blocks, verified: set[bytes], profile_kind: str | None
) -> tuple[dict, pstats.Stats | None]:
    """Check and commit every block; CPU seconds of each stage and tx count, by kind."""
    by_kind: dict[str, dict[str, float]] = {}
    profiler = cProfile.Profile() if profile_kind else None
    with tempfile.TemporaryDirectory() as tmp:
        store = ChainStore.open(tmp, genesis)
        for raw, kind, count in blocks:
            profiling = profiler is not None and kind == profile_kind
            if profiling:
                profiler.enable()
            started = time.process_time()
            block, execution = check_next_block(store, raw, verified)
            checked = time.process_time()
            store.commit_block(raw, b"certificate", execution, block=block)
            stored = time.process_time()
            if profiling:
                profiler.disable()
            _add_times(by_kind, kind, count, checked - started, stored - checked)
        store.close()
    return by_kind, (pstats.Stats(profiler) if profiler else None)


def _add_times(by_kind: dict, kind: str, count: int, execute_s: float, store_s: float) -> None:
    totals = by_kind.setdefault(kind, {"txs": 0, "execute_s": 0.0, "store_s": 0.0})
    totals["txs"] += count
    totals["execute_s"] += execute_s
    totals["store_s"] += store_s


def validate_as_node(
    genesis, blocks, txs_by_block, profile_kind: str | None
) -> tuple[dict, pstats.Stats | None]:
    """``validate`` then ``commit`` every block through a backup's ``NodeApp``; as ``validate``."""
    by_kind: dict[str, dict[str, float]] = {}
    profiler = cProfile.Profile() if profile_kind else None
    with tempfile.TemporaryDirectory() as tmp:
        store = ChainStore.open(tmp, genesis)
        app = NodeApp(genesis, "backup", store, Mempool(MempoolConfig()), logging.getLogger("backup"))
        accepted_at: BoundedCache[bytes, float] = BoundedCache(MempoolConfig().max_txs)
        for (raw, kind, count), chunk in zip(blocks, txs_by_block, strict=True):
            for tx in chunk:  # gossip: each tx checked on arrival, then pooled
                app.mempool.add(PendingTx(tx, 0))
                accepted_at.put(tx.id, 0.0)
            head = store.head()
            height = head.height + 1
            timestamp_ms = Block.decode(raw).header.timestamp_ms
            profiling = profiler is not None and kind == profile_kind
            if profiling:
                profiler.enable()
            started = time.process_time()
            reason = app.validate(height, head.hash, raw, timestamp_ms)
            assert reason is None, reason
            digest = app.digest(raw)
            store.wal_write(
                [(walkeys.vote_key(height, 0, b"p"), digest), (walkeys.block_key(height, digest), raw)]
            )
            store.wal_write([(walkeys.vote_key(height, 0, b"c"), digest)])
            checked = time.process_time()
            delivered = [(walkeys.cert_key(height), CERTIFICATE)] + [
                (key, b"")
                for key in (
                    walkeys.vote_key(height, 0, b"p"),
                    walkeys.vote_key(height, 0, b"c"),
                    walkeys.block_key(height, digest),
                )
            ]
            app.commit(height, raw, digest, CERTIFICATE, delivered)
            for tx_id in app.last_committed_tx_ids:  # the daemon's _on_commit: commit latencies
                accepted_at.pop(tx_id, None)
            assert not app.mempool, f"{len(app.mempool)} txs of block {height} left in the mempool"
            stored = time.process_time()
            if profiling:
                profiler.disable()
            _add_times(by_kind, kind, count, checked - started, stored - checked)
        store.close()
    return by_kind, (pstats.Stats(profiler) if profiler else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=22_000)
    parser.add_argument("--block", type=int, default=500, help="txs per block")
    parser.add_argument("--profile", metavar="KIND", help="cProfile the blocks of this kind (slower)")
    parser.add_argument("--stop-after", choices=("build", "propose"), help="for instruction counts")
    parser.add_argument("--node", action="store_true", help="validate and commit through NodeApp")
    parser.add_argument("--no-gc", action="store_true", help="no cyclic collection after the build")
    parser.add_argument("--no-teardown", action="store_true", help="os._exit at the end (instruction counts)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    genesis, txs = build_workload(args.txs)
    # The collector settings of a node process (``lendchain start``): with Python's default
    # thresholds, full collections over the workload's millions of objects land in whichever
    # kind's blocks happen to allocate then.
    tune_gc()
    if args.no_gc:
        gc.disable()
    if args.stop_after == "build":
        return _leave(args)
    proposed = propose_blocks(genesis, txs, args.block)[0]
    blocks = [
        (raw, Counter(tx.kind for tx in chunk).most_common(1)[0][0], len(chunk)) for raw, chunk in proposed
    ]
    if args.stop_after == "propose":
        return _leave(args)
    for tx in txs:  # a node decoded each tx when it arrived by gossip or the API
        decode_transaction(tx.encode())
    if args.node:
        by_kind, stats = validate_as_node(genesis, blocks, [chunk for _, chunk in proposed], args.profile)
    else:
        by_kind, stats = validate(genesis, blocks, {tx.id for tx in txs}, args.profile)

    rows = {
        kind: {
            "txs": int(t["txs"]),
            "execute_us": round(1e6 * t["execute_s"] / t["txs"], 1),
            "store_us": round(1e6 * t["store_s"] / t["txs"], 1),
            "total_us": round(1e6 * (t["execute_s"] + t["store_s"]) / t["txs"], 1),
        }
        for kind, t in by_kind.items()
    }
    count = sum(r["txs"] for r in rows.values())
    overall = round(sum(t["execute_s"] + t["store_s"] for t in by_kind.values()) * 1e6 / count, 1)
    if args.json:
        print(
            json.dumps(
                {"txs": count, "block_txs": args.block, "by_kind": rows, "total_us": overall}, indent=2
            )
        )
    else:
        print(f"{'kind':<16} {'txs':>7} {'execute µs':>11} {'store µs':>9} {'total µs':>9}")
        for kind, row in rows.items():
            print(
                f"{kind:<16} {row['txs']:>7} {row['execute_us']:>11} {row['store_us']:>9} {row['total_us']:>9}"
            )
        print(f"{'all':<16} {count:>7} {'':>11} {'':>9} {overall:>9}")
    if stats is not None:
        stats.sort_stats("cumulative").print_stats(40)
    _leave(args)


def _leave(args: argparse.Namespace) -> None:
    if args.no_teardown:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
