"""Chain benchmark: a chain of 1,000,000 txs, its cost per tx as it grows, node memory and restart (issue 7).

Targets (issue 7): execution and commit cost per tx at 1,000,000 txs within
20 % of the cost at 10,000; node RSS under 400 MB; restart to ready under 10 s.
Besides the issue's ratio (the last window against the first), the report
gives a steady-state ratio against the first window after a node's bounded
memories are full (``STEADY_FROM_TXS``): the growth with the chain alone.

1. Writes a real 4-member test network into a temp directory, with its
   genesis dated back so that the chain's blocks lie in the past.
2. Builds the chain in this process without running consensus: a second
   process signs loan lifecycles (``loan_workload.py``, a cohort at a time
   so the mix of kinds is the same all along); this one cuts blocks of
   ``--block`` txs as a proposer does (``make_block``, whose execution the
   node then commits), stores each with ``ChainStore.commit_block`` and a
   commit certificate signed by 3 of the 4 members, and finally writes the
   WAL records a replica leaves behind (the last two certificates, a stable
   checkpoint signed by the members). Cost is measured per window of
   ``--window`` txs: main-thread CPU of make_block ("execute") and
   commit_block ("commit"), their wall time, CPU of LevelDB's background
   compaction, this process's RSS; and a validator's ``check_block`` on the
   first block of each window.
3. Copies the data directory to the other three nodes, starts the four
   ``lendchain start`` processes at once and times each from its start to
   ``/ready`` answering with the chain's head height.
4. Submits ``--live-txs`` new txs (``network_bench.py``'s workload and
   driver; the lender and attester are members that signed nothing in the
   chain, so their nonces start at 0) and measures CPU per committed tx
   summed over the nodes and their RSS; then does the same on a fresh
   network for comparison.

Usage:
  python benchmarks/chain_bench.py [--txs 1000000] [--block 1000] [--json] [--keep]
  python benchmarks/chain_bench.py --smoke --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import tomli_w
from chain_build import Built, Window, build_chain
from network_bench import build_workload, drive
from node_probe import cpu_seconds, machine_identity, machine_line, main_thread_cpu_seconds, memory_mb

from lendchain.crypto import SigningKey, read_key_file
from lendchain.node.cluster import Cluster, ClusterError, free_port_block, wait_for
from lendchain.node.testnet import TestnetLayout, generate_testnet

NODES = 4
READY_TIMEOUT_S = 300


# -- the network -----------------------------------------------------------------------


def make_network(out: Path, backdate_ms: int = 0) -> TestnetLayout:
    """A 4-member test network on free ports; its genesis moved ``backdate_ms`` into the past."""
    p2p = free_port_block(NODES + 2)
    api = free_port_block(NODES + 2, start=p2p + NODES + 20)
    layout = generate_testnet(out, NODES, p2p_base_port=p2p, api_base_port=api)
    if not backdate_ms:
        return layout
    genesis = dataclasses.replace(
        layout.genesis, genesis_time_ms=layout.genesis.genesis_time_ms - backdate_ms
    )
    (out / "genesis.toml").write_text(tomli_w.dumps(genesis.to_toml_doc()))
    return TestnetLayout(out, genesis, layout.configs)


def member_keys(layout: TestnetLayout) -> dict[str, SigningKey]:
    return {m.name: read_key_file(layout.out / "keys" / f"{m.name}.key") for m in layout.genesis.members}


def with_role(layout: TestnetLayout, keys: dict[str, SigningKey], role: str) -> list[str]:
    return [m.name for m in layout.genesis.members if role in m.roles and m.name in keys]


# -- restart and live load ----------------------------------------------------------------


def start_and_time(cluster: Cluster, height: int) -> tuple[dict[str, float], dict[str, float]]:
    """Start every node at once; seconds (wall, and CPU) from each one's start until ready at ``height``."""
    started = {}
    for name in cluster.names:
        started[name] = time.monotonic()
        cluster.start(name)
    ready: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def all_ready() -> bool:
        for name in cluster.names:
            node = cluster[name]
            if name in ready:
                continue
            if not node.running:
                raise ClusterError(f"{name} exited with {node.process.returncode}:\n{node.log_tail()}")
            try:
                if httpx.get(node.url + "/ready", timeout=2).status_code != 200:
                    continue
                if node.get("/status")["height"] >= height:
                    ready[name] = time.monotonic() - started[name]
                    cpu[name] = cpu_seconds(node)
            except httpx.HTTPError:
                continue
        return len(ready) == len(cluster.names)

    wait_for(all_ready, READY_TIMEOUT_S, f"the nodes to be ready at height {height}", interval_s=0.02)
    return (
        {name: round(ready[name], 2) for name in cluster.names},
        {name: round(cpu[name], 2) for name in cluster.names},
    )


def node_memory(cluster: Cluster) -> dict[str, dict[str, float]]:
    """VmRSS and VmHWM per node, and VmRSS split into anonymous and file-backed (mapped tables)."""
    memory = {}
    for name in cluster.names:
        found = memory_mb(cluster[name])
        for line in Path(f"/proc/{cluster[name].process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                found[key] = int(value.split()[0]) / 1024
        memory[name] = {key: round(value, 1) for key, value in found.items()}
    return memory


def live_load(cluster: Cluster, layout: TestnetLayout, args: argparse.Namespace, log) -> dict:
    """Submit ``args.live_txs`` txs through the API; CPU per committed tx summed over the nodes."""
    keys = member_keys(layout)
    lenders = [keys[n] for n in args.live_lenders]
    attesters = [keys[n] for n in args.live_attesters]
    workload = build_workload(args.live_txs, layout.genesis.chain_id, lenders, attesters, NODES, 4)
    head = cluster.wait_agree(timeout_s=60)
    nodes = [cluster[name] for name in cluster.names]
    cpu0 = {n.name: cpu_seconds(n) for n in nodes}
    main0 = {n.name: main_thread_cpu_seconds(n) for n in nodes}
    driver_args = argparse.Namespace(
        rate=0, window=args.live_window, timeout=args.live_timeout, json=args.json, submit="stream"
    )
    run, duration = drive(cluster, workload, driver_args, head["height"])
    cpu = sum(cpu_seconds(n) - cpu0[n.name] for n in nodes)
    main = sum(main_thread_cpu_seconds(n) - main0[n.name] for n in nodes)
    committed = sum(1 for t in run.committed_at if t)
    final = cluster.wait_agree(timeout_s=60)
    log(
        f"  {committed} of {len(workload.txs)} txs committed in {duration:.1f} s, up to height {final['height']}"
    )
    return {
        "submitted": len(workload.txs),
        "committed": committed,
        "rejected": len(run.rejected),
        "tx_per_s": round(committed / duration, 1) if duration else 0.0,
        "cpu_ms_per_tx": round(1000 * cpu / committed, 3) if committed else None,
        "main_thread_cpu_ms_per_tx": round(1000 * main / committed, 3) if committed else None,
        "height": final["height"],
        "memory_mb": node_memory(cluster),
    }


def run_nodes(layout: TestnetLayout, logs: Path, height: int, args: argparse.Namespace, log) -> dict:
    cluster = Cluster(list(layout.configs), logs)
    try:
        log(f"starting {NODES} nodes on height {height}")
        ready, ready_cpu = start_and_time(cluster, height)
        log(f"  ready after {ready} s ({ready_cpu} CPU seconds)")
        memory_ready = node_memory(cluster)
        settled = settle(cluster)
        log(f"  settled (background checksum check done) {settled} s after ready")
        memory_settled = node_memory(cluster)
        live = live_load(cluster, layout, args, log)
    finally:
        codes = cluster.stop_all()
    return {
        "ready_s": ready,
        "ready_cpu_s": ready_cpu,
        "memory_ready_mb": memory_ready,
        "settled_after_ready_s": settled,
        "memory_settled_mb": memory_settled,
        "live": live,
        "exit_codes": codes,
    }


def settle(cluster: Cluster, idle_cpu_s: float = 0.25, timeout_s: float = 120) -> float:
    """Seconds until every node uses under ``idle_cpu_s`` CPU in a second (start-up work done)."""
    started = time.monotonic()
    nodes = [cluster[name] for name in cluster.names]
    while time.monotonic() - started < timeout_s:
        before = [cpu_seconds(n) for n in nodes]
        time.sleep(1)
        if all(cpu_seconds(n) - b < idle_cpu_s for n, b in zip(nodes, before, strict=True)):
            break
    return round(time.monotonic() - started, 1)


# -- report ----------------------------------------------------------------------------


# The bounded memories of a node process (decoded txs: 16,384; well-formed tx ids: 65,536) are
# full from ~66,000 txs on; before that a window pays no eviction and frees no tx (its cost is
# deferred, not saved), so the first windows are cheaper than any node's steady state.
STEADY_FROM_TXS = 100_000


def median_ratio(windows: list[Window], key: str = "execute_commit_cpu") -> float | None:
    if len(windows) < 10:
        return None
    early = statistics.median(w.per_tx_us()[key] for w in windows[1:5])
    late = statistics.median(w.per_tx_us()[key] for w in windows[-5:])
    return round(late / early, 3)


def steady_state_ratios(windows: list[Window], key: str = "execute_commit_cpu") -> dict | None:
    """The last window, and the median of the last five, against the window(s) from ``STEADY_FROM_TXS``."""
    steady = [w for w in windows if w.end_txs - w.txs >= STEADY_FROM_TXS]
    if len(steady) < 10:
        return None
    return {
        "from_window_ending_at": steady[0].end_txs,
        "ratio": round(windows[-1].per_tx_us()[key] / steady[0].per_tx_us()[key], 3),
        "median_ratio": round(
            statistics.median(w.per_tx_us()[key] for w in windows[-5:])
            / statistics.median(w.per_tx_us()[key] for w in steady[:5]),
            3,
        ),
    }


def report(args: argparse.Namespace, built: Built, chain_nodes: dict, fresh_nodes: dict | None) -> dict:
    first, last = built.windows[0], built.windows[-1]
    start, end = first.per_tx_us(), last.per_tx_us()
    ratio = end["execute_commit_cpu"] / start["execute_commit_cpu"]
    result = {
        "machine": machine_identity(),
        "txs": built.txs,
        "blocks": built.blocks,
        "block_txs": args.block,
        "window_txs": args.window,
        "build_s": round(built.seconds, 1),
        "cost_us_per_tx": {
            "first_window": {"end_txs": first.end_txs, **start},
            "last_window": {"end_txs": last.end_txs, **end},
            "execute_commit_cpu_ratio": round(ratio, 3),
            # Single windows move by +-30 % on a shared machine (the first also pays warm-up), so
            # also: the median window of the last five against the median of windows 2-5 (10k-50k).
            "median_execute_commit_cpu_ratio": median_ratio(built.windows),
            # Issue 7's ratio above is against the first window; this one is against the first
            # window after the bounded memories fill (STEADY_FROM_TXS): growth with the chain
            # alone, not the memories' filling. In addition to the issue's ratio, never instead.
            "steady_state_execute_commit_cpu_ratio": steady_state_ratios(built.windows),
        },
        "windows": [
            {"end_txs": w.end_txs, "rss_mb": round(w.rss_mb, 1), **w.per_tx_us()} for w in built.windows
        ],
        "builder_peak_rss_mb": round(built.peak_rss_mb, 1),
        "disk_bytes_per_tx": round(built.disk_bytes / built.txs),
        "disk_mb_per_node": round(built.disk_bytes / 2**20, 1),
        "restart_ready_s": chain_nodes["ready_s"],
        "restart_ready_cpu_s": chain_nodes["ready_cpu_s"],
        "fresh_ready_s": fresh_nodes["ready_s"] if fresh_nodes else None,
        "node_rss_ready_mb": chain_nodes["memory_ready_mb"],
        "settled_after_ready_s": chain_nodes["settled_after_ready_s"],
        "node_rss_settled_mb": chain_nodes["memory_settled_mb"],
        "live_at_height": chain_nodes["live"],
        "live_fresh": fresh_nodes["live"] if fresh_nodes else None,
    }
    if fresh_nodes:
        result["live_cpu_ratio"] = round(
            chain_nodes["live"]["cpu_ms_per_tx"] / fresh_nodes["live"]["cpu_ms_per_tx"], 3
        )
    return result


def print_table(result: dict) -> None:
    cost = result["cost_us_per_tx"]
    first, last = cost["first_window"], cost["last_window"]
    live, fresh = result["live_at_height"], result["live_fresh"]
    machine = result["machine"]
    rows = [
        ("machine, code", machine_line(machine)),
        ("chain", f"{result['txs']:,} txs in {result['blocks']:,} blocks of {result['block_txs']}"),
        ("build time", f"{result['build_s']} s"),
        ("", f"window ending at {first['end_txs']:,} txs  vs  at {last['end_txs']:,} txs"),
    ]
    for key, label in (
        ("execute_cpu", "execute CPU µs/tx (make_block)"),
        ("commit_cpu", "commit CPU µs/tx (commit_block)"),
        ("execute_commit_cpu", "execute+commit CPU µs/tx"),
        ("execute_commit_wall", "execute+commit wall µs/tx"),
        ("compaction_cpu", "LevelDB compaction CPU µs/tx"),
        ("validate_cpu", "validate CPU µs/tx (check_block)"),
    ):
        rows.append((label, f"{first[key]:>8}  vs  {last[key]:>8}"))
    rows += [
        ("execute+commit CPU, last / first", cost["execute_commit_cpu_ratio"]),
        ("execute+commit CPU, median last 5 / windows 2-5", cost["median_execute_commit_cpu_ratio"]),
        ("execute+commit CPU, steady state (from 100k)", cost["steady_state_execute_commit_cpu_ratio"]),
        ("builder peak RSS", f"{result['builder_peak_rss_mb']} MB"),
        ("disk per node", f"{result['disk_mb_per_node']} MB ({result['disk_bytes_per_tx']} B/tx)"),
        ("restart to ready (s)", ", ".join(f"{k} {v}" for k, v in result["restart_ready_s"].items())),
        ("settled (idle) after ready", f"{result['settled_after_ready_s']} s"),
        (
            "node RSS settled (MB)",
            ", ".join(f"{k} {v['VmRSS']}" for k, v in result["node_rss_settled_mb"].items()),
        ),
        (
            "node RSS when ready (MB)",
            ", ".join(f"{k} {v['VmRSS']}" for k, v in result["node_rss_ready_mb"].items()),
        ),
        (
            "node RSS after load, peak (MB)",
            ", ".join(f"{k} {v['VmRSS']} ({v['VmHWM']})" for k, v in live["memory_mb"].items()),
        ),
        (
            "live load at height",
            f"{live['committed']} txs, {live['tx_per_s']} tx/s, {live['cpu_ms_per_tx']} ms CPU/tx",
        ),
    ]
    if fresh:
        rows.append(
            (
                "same on a fresh network",
                f"{fresh['committed']} txs, {fresh['tx_per_s']} tx/s, {fresh['cpu_ms_per_tx']} ms CPU/tx",
            )
        )
        rows.append(("live CPU/tx, chain / fresh", result["live_cpu_ratio"]))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


# -- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=1_000_000, help="about this many txs in the chain")
    parser.add_argument("--block", type=int, default=1_000, help="txs per block")
    parser.add_argument("--window", type=int, default=10_000, help="txs per measuring window")
    parser.add_argument("--chain-tps", type=float, default=500, help="block time spacing: the chain's tx/s")
    parser.add_argument("--live-txs", type=int, default=10_000, help="txs submitted to the running nodes")
    parser.add_argument("--live-window", type=int, default=6_000, help="txs outstanding while submitting")
    parser.add_argument("--live-timeout", type=float, default=300)
    parser.add_argument("--no-fresh", action="store_true", help="skip the live load on a fresh network")
    parser.add_argument("--verify", action="store_true", help="run lendchain verify-chain on the built chain")
    parser.add_argument("--smoke", action="store_true", help="20,000 txs, a short live load (CI)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--profile", metavar="DIR", help="cProfile the second and the last full build window into DIR"
    )
    parser.add_argument("--keep", action="store_true", help="keep the network directories")
    args = parser.parse_args(argv)
    if args.smoke:
        args.txs, args.window, args.live_txs, args.live_window = 20_000, 5_000, 300, 300
        args.live_timeout, args.verify = 120, True
    # The chain's members: bank1 and bank2 lend and attest; bank3 and bank4 do so live.
    args.chain_lenders, args.chain_attesters = ["bank1", "bank2"], ["bank1", "bank2"]
    args.live_lenders, args.live_attesters = ["bank3"], ["bank4"]
    args.block_ms = max(1, round(args.block * 1000 / args.chain_tps))
    return args


def verify_chain(config: Path, log) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lendchain", "verify-chain", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"verify-chain failed on the built chain: {done.stdout}{done.stderr}")
    log(f"  {done.stdout.strip()}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # Progress goes to stderr in both modes: a full run takes many minutes.
    log = lambda *a, **k: print(*a, **k, file=sys.stderr, flush=True)  # noqa: E731
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the nodes and the signer too
    tmp = Path(tempfile.mkdtemp(prefix="lendchain-chain-bench-"))
    try:
        blocks = -(-args.txs // args.block)
        layout = make_network(tmp / "chain", backdate_ms=blocks * args.block_ms + 60_000)
        keys = member_keys(layout)
        log(f"building a chain of {args.txs:,} txs in {tmp / 'chain'}")
        built = build_chain(layout, keys, args, log)
        log(
            f"  {built.txs:,} txs in {built.blocks} blocks, {built.seconds:.0f} s, {built.disk_bytes / 2**20:.0f} MB"
        )
        verify_s = verify_chain(layout.configs[0], log) if args.verify else None
        chain_nodes = run_nodes(layout, tmp / "chain-logs", built.head_height, args, log)
        fresh_nodes = None
        if not args.no_fresh:
            log("the same live load on a fresh network")
            fresh = make_network(tmp / "fresh")
            fresh_nodes = run_nodes(fresh, tmp / "fresh-logs", 0, args, log)
    finally:
        if args.keep:
            log(f"networks kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result = report(args, built, chain_nodes, fresh_nodes)
    result["verify_chain_s"] = round(verify_s, 1) if verify_s is not None else None
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return result


if __name__ == "__main__":
    main()
