"""One more window of the chain benchmark's workload on a kept chain, for instruction counts (issue 7).

``chain_bench.py`` times windows of a chain it builds and throws away;
timings on a shared machine move by tens of percent. This driver keeps the
chain and executes and commits one more window of the same workload (loan
lifecycles, a cohort at a time, blocks of ``--block`` txs) on it, so that
callgrind can count the instructions of that window alone, on a fresh chain
and on one of 1,000,000 txs:

  python benchmarks/chain_window.py build DIR --txs 1000000   # or --txs 0: a fresh chain
  PYTHONHASHSEED=0 nice -n 19 valgrind --tool=callgrind --collect-atstart=no \\
      --toggle-collect=functools_reduce --callgrind-out-file=OUT \\
      /root/.pyenv/versions/3.11.7/bin/python3.11 benchmarks/chain_window.py window DIR --txs 10000

Only ``make_block`` and ``commit_block`` are counted (what ``chain_bench.py``
times as "execute" and "commit"): the driver calls each through
``functools.reduce``, a C function nothing else in the process calls, which
``--toggle-collect`` turns collection on for. Opening the store, signing
and decoding the window's txs and the commit certificates are not counted.

``--fill-memories``: first fill the process's bounded memories of decoded
txs and well-formed tx ids with stand-in entries, as a node has them after
~100,000 txs (a fresh process starts with them empty; the build's later
windows run with them full and evicting).

Each ``window`` run adds its txs to the kept chain (the workload continues
with new borrowers and the members' next nonces), so successive runs
measure successive windows.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

from chain_bench import make_network, member_keys
from chain_build import COHORT, build_chain, load_data_dir
from loan_workload import TXS_PER_LOAN, loan_lifecycles

from lendchain.cli.network import tune_gc
from lendchain.crypto import read_key_file
from lendchain.ledger import transactions
from lendchain.ledger.block import make_block
from lendchain.ledger.state import next_nonce
from lendchain.ledger.transactions import decode_transaction
from lendchain.node.config import load_node_config
from lendchain.node.store import ChainStore

TICKS = os.sysconf("SC_CLK_TCK")
STATE_FILE = "chain_window.json"
BACKDATE_SLACK_MS = 24 * 3_600_000  # room for many more windows after the built chain


def main_thread_counters() -> dict[str, int]:
    """This thread's minor and major page faults and user and system CPU ticks (``/proc``)."""
    stat = Path(f"/proc/self/task/{threading.get_native_id()}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # from the state field (3rd) on
    return {
        "minflt": int(fields[7]),
        "majflt": int(fields[9]),
        "utime": int(fields[11]),
        "stime": int(fields[12]),
    }


def counted(work, *args, **kwargs):
    """``work(*args, **kwargs)``, called from inside ``functools.reduce`` (callgrind's toggle)."""
    return functools.reduce(lambda _first, _second: work(*args, **kwargs), (None, None))


def build(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    block_ms = max(1, round(args.block * 1000 / args.chain_tps))
    blocks = -(-args.txs // args.block)
    layout = make_network(out, backdate_ms=blocks * block_ms + BACKDATE_SLACK_MS)
    layout = type(layout)(layout.out, layout.genesis, layout.configs[:1])  # no copies for nodes 2-4
    state = {"config": str(layout.configs[0]), "block": args.block, "block_ms": block_ms, "borrowers": 0}
    if args.txs:
        build_args = argparse.Namespace(
            txs=args.txs,
            block=args.block,
            window=args.window,
            block_ms=block_ms,
            chain_lenders=["bank1", "bank2"],
            chain_attesters=["bank1", "bank2"],
            profile=None,
            # The build's blocks are not fsynced: the store's content and its tables' shape are the
            # same, and a 1M-tx build on a shared disk takes several times longer with a sync per block.
            sync_writes=False,
        )
        log = lambda *a, **k: print(*a, **k, file=sys.stderr, flush=True)  # noqa: E731
        built = build_chain(layout, member_keys(layout), build_args, log)
        state["borrowers"] = args.txs // TXS_PER_LOAN
        state["built"] = {
            "txs": built.txs,
            "seconds": round(built.seconds, 1),
            "windows": [{"end_txs": w.end_txs, **w.per_tx_us()} for w in built.windows],
        }
    else:
        ChainStore.open(load_data_dir(layout.configs[0]), layout.genesis).close()
    (out / STATE_FILE).write_text(json.dumps(state, indent=1))


def fill_memories() -> None:
    """Fill the bounded memories of decoded txs and well-formed ids with stand-ins (see the doc)."""
    well_formed, decoded = transactions._well_formed, transactions._decoded
    for number in range(well_formed.limit):
        well_formed.put(hashlib.sha256(number.to_bytes(8, "big")).digest(), "stand-in")
    stand_in = 300 * b"s"  # a loan tx's size
    for number in range(decoded.limit):
        decoded.put(number.to_bytes(8, "big") + stand_in, None)


def window(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    state = json.loads((out / STATE_FILE).read_text())
    config = load_node_config(Path(state["config"]))
    genesis = config.genesis
    keys = {name: read_key_file(out / "keys" / f"{name}.key") for name in ("bank1", "bank2")}
    lenders, attesters = [keys["bank1"], keys["bank2"]], [keys["bank1"], keys["bank2"]]
    store = ChainStore.open(config.data_dir, genesis)
    nonces = {key.did: next_nonce(store, key.did) for key in lenders + attesters}
    borrowers = args.txs // TXS_PER_LOAN
    raws = [
        tx.encode()
        for tx in loan_lifecycles(
            genesis.chain_id,
            lenders,
            attesters,
            borrowers,
            cohort=COHORT,
            created_ms=genesis.genesis_time_ms,
            member_nonces=nonces,
            first_borrower=state["borrowers"],
        )
    ]
    if args.fill_memories:
        fill_memories()
    tune_gc()
    started, cpu, counters = time.perf_counter(), 0.0, main_thread_counters()
    for first in range(0, len(raws), state["block"]):
        candidates = [decode_transaction(raw) for raw in raws[first : first + state["block"]]]
        head = store.head()
        height = head.height + 1
        clock = time.thread_time()
        block, execution = counted(
            make_block,
            parent_hash=head.hash,
            parent_timestamp_ms=head.timestamp_ms,
            height=height,
            proposer=genesis.members[height % len(genesis.members)].name,
            candidate_txs=candidates,
            reader=store,
            now_ms=genesis.genesis_time_ms + height * state["block_ms"],
            chain_id=genesis.chain_id,
        )
        cpu += time.thread_time() - clock
        if execution.dropped or not all(result.ok for result in execution.results):
            raise SystemExit(f"block {height}: the workload does not execute cleanly")
        raw = block.encode()
        certificate = b"\x90"  # not read by commit_block; the kept chain is for measuring only
        clock = time.thread_time()
        counted(store.commit_block, raw, certificate, execution)
        cpu += time.thread_time() - clock
    counters = {key: value - counters[key] for key, value in main_thread_counters().items()}
    store.close()
    state["borrowers"] += borrowers
    (out / STATE_FILE).write_text(json.dumps(state, indent=1))
    print(
        json.dumps(
            {
                "head_height": store.head().height,
                "txs": len(raws),
                "execute_commit_cpu_us_per_tx": round(1e6 * cpu / len(raws), 1),
                "wall_s": round(time.perf_counter() - started, 2),
                # Around the whole loop (the txs' decoding too): what instruction counts miss.
                "main_thread_per_tx": {
                    "minor_faults": round(counters["minflt"] / len(raws), 2),
                    "major_faults": round(counters["majflt"] / len(raws), 2),
                    "user_us": round(1e6 * counters["utime"] / TICKS / len(raws), 1),
                    "system_us": round(1e6 * counters["stime"] / TICKS / len(raws), 1),
                },
            }
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a chain of --txs txs (0: a fresh chain) into DIR, kept")
    b.add_argument("dir")
    b.add_argument("--txs", type=int, default=1_000_000)
    b.add_argument("--block", type=int, default=1_000)
    b.add_argument("--window", type=int, default=10_000, help="txs per timed window of the build")
    b.add_argument("--chain-tps", type=float, default=500)
    w = sub.add_parser("window", help="execute and commit --txs more txs on the chain in DIR")
    w.add_argument("dir")
    w.add_argument("--txs", type=int, default=10_000)
    w.add_argument("--fill-memories", action="store_true", help="start with full bounded memories")
    args = parser.parse_args(argv)
    build(args) if args.command == "build" else window(args)


if __name__ == "__main__":
    main()
