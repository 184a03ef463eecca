"""Network benchmark: n real node processes on 127.0.0.1, signed loan txs in, commits out.

Starts a fresh n-member test network in a temporary directory, pre-signs M
transactions, submits them in batches spread over all nodes and learns
commits from one node's ``GET /commits`` long-poll. Reports committed tx/s,
commit latency from submission (p50/p95/p99), CPU seconds per committed tx
summed over all nodes (``/proc/<pid>/stat``), RSS per node, bytes on disk per
tx and view changes, as a table or as JSON.

The workload is a lending mix. Every borrower registers, a ``kyc`` member
attests it once that has committed, and the borrower applies for a loan;
every ``--lifecycle-every``-th loan walks on: a lender offers, the borrower
accepts, the lender disburses and takes two repayments. A tx that needs an
earlier one committed is released once that one is seen committed, and a
sender's txs leave in nonce order, to the node that sender talks to.

Submission is closed-loop (at most ``--window`` txs outstanding) or open-loop
at a fixed ``--rate`` tx/s, over one ``/txs/stream`` WebSocket per node
(``--submit stream``, the default) or one ``POST /txs`` per batch
(``--submit post``). The benchmark process itself shares the machine
with the nodes; its CPU is reported on its own ("load generator"), not in
"CPU per tx". The committed rate is also given for each 10 s of the run
(the last step runs to the last commit), so a sustained rate can be told
from a burst. A run in which a view change happens keeps its node logs.

Usage:
  python benchmarks/network_bench.py [--nodes 4] [--txs 60000] [--window 6000]
  python benchmarks/network_bench.py --rate 1000 --txs 30000
  python benchmarks/network_bench.py --smoke --json
Set LENDCHAIN_BENCH_PROFILE=DIR to run node processes under cProfile
(one ``<node>.prof`` per node in DIR, written when the node stops).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from bench_report import print_table, report
from node_probe import (
    cpu_seconds,
    disk_bytes,
    idle_cpu_percent,
    machine_speed,
    main_thread_cpu_seconds,
    memory_mb,
    node_counters,
)

from lendchain.client import NodeError, TxStream
from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger.transactions import Transaction, build_transaction
from lendchain.node.cluster import Cluster, NodeProcess, free_port_block
from lendchain.node.testnet import generate_testnet

PROFILE_ENV = "LENDCHAIN_BENCH_PROFILE"
BATCH_MAX = 1000
TICK_S = 0.01
KYC_VALID_MS = 365 * 86_400_000
LENDER_CHUNKS = 4
LIFECYCLE_SPREAD = 0.4


# -- workload ------------------------------------------------------------------


@dataclass
class PlannedTx:
    index: int
    tx_id: str
    hex: str
    sender: str
    kind: str
    node: int
    after: int | None = None  # index of a tx that must be committed first
    next_same_sender: int | None = None  # released when this one is submitted


@dataclass
class Workload:
    txs: list[PlannedTx]
    first_of_sender: list[int]  # txs with no predecessor of their sender

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for tx in self.txs:
            counts[tx.kind] = counts.get(tx.kind, 0) + 1
        return counts


def build_workload(
    total: int,
    chain_id: str,
    lenders: list[SigningKey],
    attesters: list[SigningKey],
    nodes: int,
    lifecycle_every: int,
    chunk: int = 100,
) -> Workload:
    """About ``total`` signed txs: registrations, KYC attestations, applications, some full lifecycles."""
    created_ms = int(time.time() * 1000)
    planned: list[PlannedTx] = []
    last_of_sender: dict[str, int] = {}
    nonces: dict[str, int] = {}
    node_of: dict[str, int] = {}
    firsts: list[int] = []

    def add(key: SigningKey, kind: str, payload: dict, after: int | None = None) -> Transaction:
        nonce = nonces.get(key.did, 0)
        nonces[key.did] = nonce + 1
        tx = build_transaction(key, chain_id, kind, nonce=nonce, payload=payload, created_ms=created_ms)
        node = node_of.setdefault(key.did, len(node_of) % nodes)
        item = PlannedTx(len(planned), tx.id.hex(), tx.encode().hex(), key.did, kind, node, after)
        previous = last_of_sender.get(key.did)
        if previous is None:
            firsts.append(item.index)
        else:
            planned[previous].next_same_sender = item.index
        last_of_sender[key.did] = item.index
        planned.append(item)
        return tx

    per_group = 3 * lifecycle_every + 5  # lifecycle_every borrowers, one of them goes all the way
    groups = max(1, total // per_group)
    borrowers = [SigningKey.generate() for _ in range(groups * lifecycle_every)]
    applications: list[tuple[SigningKey, int, Transaction]] = []
    send_order: dict[int, float] = {}
    for i, borrower in enumerate(borrowers):
        # Loans that go all the way are sent within the first LIFECYCLE_SPREAD of the registrations,
        # so the commit rounds their later steps wait for overlap with the rest.
        send_order[len(planned)] = i * LIFECYCLE_SPREAD if i % lifecycle_every == 0 else i
        add(borrower, "party.register", {"role": "borrower"})
        attestation = {
            "subject": borrower.did,
            "level": 2,
            "expires_ms": created_ms + KYC_VALID_MS,
            "evidence_hash": f"{i:064x}",
        }
        add(attesters[i % len(attesters)], "kyc.attest", attestation, len(planned) - 1)
        apply = add(
            borrower,
            "loan.apply",
            {"amount": 100_000 + i, "currency": "EUR", "term_months": 12, "purpose": "working capital"},
            len(planned) - 1,
        )
        if i % lifecycle_every == 0:
            applications.append((borrower, len(planned) - 1, apply))
    # Lenders act on their loans a chunk at a time (offers, then disbursements and repayments),
    # so a lender's nonce order never waits on a later chunk. A chunk takes four commit rounds
    # whatever its size: fixed chunks of 100 left long runs ending in a tail only lenders fed.
    chunk = max(chunk, -(-len(applications) // (len(lenders) * LENDER_CHUNKS)))
    for start in range(0, len(applications), chunk * len(lenders)):
        for li, lender in enumerate(lenders):
            mine = applications[start + li * chunk : start + (li + 1) * chunk]
            offers = []
            for borrower, apply_index, apply in mine:
                offer = add(lender, "loan.offer", {"loan_id": apply.id.hex(), "rate_bps": 850}, apply_index)
                offers.append(len(planned) - 1)
                add(
                    borrower,
                    "loan.accept",
                    {"loan_id": apply.id.hex(), "offer_id": offer.id.hex()},
                    len(planned) - 1,
                )
            accepts = [i + 1 for i in offers]
            for (_, _, apply), accept_index in zip(mine, accepts, strict=True):
                add(lender, "loan.disburse", {"loan_id": apply.id.hex()}, accept_index)
            disbursed = len(planned) - len(mine)
            for k, (_, _, apply) in enumerate(mine):
                add(lender, "loan.repay", {"loan_id": apply.id.hex(), "amount": 9_000}, disbursed + k)
            for k, (_, _, apply) in enumerate(mine):
                add(lender, "loan.repay", {"loan_id": apply.id.hex(), "amount": 9_000}, disbursed + k)
    firsts.sort(key=lambda index: send_order.get(index, index))
    return Workload(planned, firsts)


# -- node processes -------------------------------------------------------------


def start_node(cluster: Cluster, name: str, profile_dir: Path | None) -> None:
    if profile_dir is None:
        cluster.start(name)
        return
    node = cluster[name]
    argv = [sys.executable, "-m", "cProfile", "-o", str(profile_dir / f"{name}.prof")]
    argv += ["-m", "lendchain", "start", "--config", str(node.config_path)]
    with open(node.log_path, "ab") as log:
        node.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")
        )


# -- driving the load ------------------------------------------------------------


@dataclass
class Run:
    workload: Workload
    submitted_at: list[float] = field(default_factory=list)
    committed_at: list[float] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    retries: int = 0
    blocks: list[tuple[int, int]] = field(default_factory=list)  # (height, txs)
    client_cpu_s: float = 0.0  # this process while it drove the load: it shares the machine
    machine_speed: dict[str, float] = field(default_factory=dict)  # node_probe.machine_speed
    # (monotonic time, CPU s of all nodes, of their main threads), about once a second
    cpu_samples: list[tuple[float, float, float]] = field(default_factory=list)


class Submitter(threading.Thread):
    """Sends batches to one node, in order, on its stream or by POST; records when each tx left."""

    def __init__(self, url: str, run: Run, errors: queue.Queue, how: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.how = how
        self.run_state = run
        self.inbox: queue.Queue[list[PlannedTx] | None] = queue.Queue()
        self.errors = errors

    def run(self) -> None:
        try:
            if self.how == "stream":
                with TxStream(self.url, {}, timeout=60) as stream:
                    self._send_all(stream.submit_hex)
            else:
                with httpx.Client(base_url=self.url, timeout=60) as http:
                    self._send_all(lambda items: self._post(http, items))
        except Exception as e:  # reported by the main loop, which stops the run
            self.errors.put(f"{self.url}: {e!r}")

    def _send_all(self, submit: Callable[[list[str]], list[dict] | None]) -> None:
        while (batch := self.inbox.get()) is not None:
            while True:
                sent = time.monotonic()
                for tx in batch:
                    self.run_state.submitted_at[tx.index] = sent
                try:
                    results = submit([tx.hex for tx in batch])
                except NodeError as e:
                    if e.status != 503:
                        raise
                    results = None
                if results is not None:
                    break
                self.run_state.retries += 1  # the mempool is full: try again shortly
                time.sleep(0.05)
            for tx, result in zip(batch, results, strict=True):
                if result["status"] == "rejected":
                    self.run_state.rejected[tx.index] = f"{result['code']}: {result['message']}"

    @staticmethod
    def _post(http: httpx.Client, items: list[str]) -> list[dict] | None:
        response = http.post("/txs", json={"txs": items})
        return None if response.status_code == 503 else response.json()["results"]


class CommitWatcher(threading.Thread):
    """Follows one node's /commits long-poll and hands committed tx ids to the main loop."""

    def __init__(self, url: str, run: Run, since: int, out: queue.Queue) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=30)
        self.run_state = run
        self.since = since
        self.out = out
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                doc = self.http.get("/commits", params={"since": self.since, "wait_ms": 500, "limit": 1000})
                doc.raise_for_status()
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            now = time.monotonic()
            for commit in doc.json()["commits"]:
                self.since = commit["height"]
                self.run_state.blocks.append((commit["height"], len(commit["txs"])))
                self.out.put((now, commit["txs"]))


def stuck_report(nodes: list[NodeProcess], run: Run, limit: int = 5) -> str:
    """What the nodes say about a few submitted txs that never committed."""
    stuck = [i for i, t in enumerate(run.committed_at) if run.submitted_at[i] and not t]
    lines = [f"{len(stuck)} submitted txs not seen committed"]
    for index in stuck[:limit]:
        tx = run.workload.txs[index]
        states = []
        for node in nodes:
            response = httpx.get(f"{node.url}/txs/{tx.tx_id}", timeout=5)
            states.append(f"{node.name}={response.json().get('status', response.status_code)}")
        lines.append(f"{tx.kind} {tx.tx_id[:12]} sent to {nodes[tx.node].name}: {' '.join(states)}")
    return "\n  ".join(lines)


def sample_cpu(run: Run, nodes: list[NodeProcess]) -> None:
    """Add (now, CPU seconds of all the nodes' threads, of their main threads) to the run.

    Nothing is added while a node is gone: the run then stops on its own error or timeout.
    """
    try:
        sample = time.monotonic(), sum(map(cpu_seconds, nodes)), sum(map(main_thread_cpu_seconds, nodes))
    except OSError:
        return
    run.cpu_samples.append(sample)


def drive(cluster: Cluster, workload: Workload, args: argparse.Namespace, since: int) -> tuple[Run, float]:
    n = len(workload.txs)
    run = Run(workload, [0.0] * n, [0.0] * n)
    by_id = {tx.tx_id: tx.index for tx in workload.txs}
    dependents: dict[int, list[int]] = {}
    for tx in workload.txs:
        if tx.after is not None:
            dependents.setdefault(tx.after, []).append(tx.index)
    pred_done = [False] * n
    dep_done = [tx.after is None for tx in workload.txs]
    for i in workload.first_of_sender:
        pred_done[i] = True
    bulk = deque(i for i in workload.first_of_sender if dep_done[i])
    urgent: deque[int] = deque()
    errors: queue.Queue = queue.Queue()
    commits: queue.Queue = queue.Queue()
    nodes = [cluster[name] for name in cluster.names]
    submitters = [Submitter(node.url, run, errors, args.submit) for node in nodes]
    watcher = CommitWatcher(nodes[0].url, run, since, commits)
    for thread in [*submitters, watcher]:
        thread.start()

    committed = sent = 0
    started = time.monotonic()
    last_commit = started
    next_progress, next_sample = started + 1, started
    deadline = started + args.timeout
    try:
        while committed + len(run.rejected) < n:
            now = time.monotonic()
            idle = sent == committed + len(run.rejected) and not urgent and not bulk
            if idle and sent:  # what is left waits on a rejected tx
                break
            if now > deadline:
                raise SystemExit(
                    f"gave up after {args.timeout:.0f} s: {committed} of {n} txs committed; "
                    f"{stuck_report(nodes, run)}"
                )
            if not errors.empty():
                raise SystemExit(f"submission failed: {errors.get()}")
            while not commits.empty():
                seen, tx_ids = commits.get()
                for tx_id in tx_ids:
                    index = by_id.get(tx_id)
                    if index is None or run.committed_at[index]:
                        continue
                    run.committed_at[index] = seen
                    committed += 1
                    last_commit = seen
                    for j in dependents.get(index, ()):
                        dep_done[j] = True
                        if pred_done[j]:
                            urgent.append(j)
            if args.rate:
                budget = int(args.rate * (now - started)) - sent
            else:
                budget = args.window - (sent - committed - len(run.rejected))
            batches: list[list[PlannedTx]] = [[] for _ in nodes]
            while budget > 0 and (urgent or bulk):
                tx = workload.txs[urgent.popleft() if urgent else bulk.popleft()]
                batches[tx.node].append(tx)
                budget -= 1
                sent += 1
                follower = tx.next_same_sender
                if follower is not None:
                    pred_done[follower] = True
                    if dep_done[follower]:
                        urgent.append(follower)
            for submitter, batch in zip(submitters, batches, strict=True):
                for start in range(0, len(batch), BATCH_MAX):
                    submitter.inbox.put(batch[start : start + BATCH_MAX])
            if now >= next_sample:  # for the CPU per tx in each 10 s of the run
                sample_cpu(run, nodes)
                next_sample += 1
            if now >= next_progress and not args.json:
                elapsed = now - started
                print(
                    f"\r{elapsed:6.1f} s  sent {sent:>7}/{n}  committed {committed:>7}  "
                    f"({committed / elapsed:7.0f} tx/s)  height {watcher.since}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
                next_progress += 1
            time.sleep(TICK_S)
        sample_cpu(run, nodes)
    finally:
        watcher.stopped.set()
        for submitter in submitters:
            submitter.inbox.put(None)
        if not args.json:
            print(file=sys.stderr)
    return run, last_commit - started


# -- report ----------------------------------------------------------------------


def status_views(cluster: Cluster) -> dict[str, int]:
    return {name: cluster[name].get("/status")["view"] for name in cluster.names}


# -- main --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--txs", type=int, default=30_000, help="about this many txs")
    parser.add_argument("--window", type=int, default=6_000, help="closed loop: txs outstanding")
    parser.add_argument("--rate", type=float, default=0, help="open loop: offered tx/s")
    parser.add_argument(
        "--submit", choices=("stream", "post"), default="stream", help="a /txs/stream per node, or POST /txs"
    )
    parser.add_argument("--lifecycle-every", type=int, default=4, help="every k-th loan is offered, repaid")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--smoke", action="store_true", help="a few hundred txs (CI)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the network directory")
    parser.add_argument(
        "--rules-version",
        type=int,
        default=1,
        help="the genesis's rules version (1, as every run before 2026-12-06's fifth session; "
        "`lendchain testnet` writes the newest)",
    )
    parser.add_argument(
        "--idle-s", type=float, default=0, help="first measure the idle network's CPU for this long"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.txs, args.window, args.timeout = 300, 300, 120
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    profile = os.environ.get(PROFILE_ENV)
    profile_dir = Path(profile).resolve() if profile else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lendchain-bench-"))
    p2p = free_port_block(args.nodes + 2)
    api = free_port_block(args.nodes + 2, start=p2p + args.nodes + 20)
    layout = generate_testnet(
        tmp / "net",
        args.nodes,
        p2p_base_port=p2p,
        api_base_port=api,
        rules_version=args.rules_version,
    )
    cluster = Cluster(list(layout.configs), tmp / "logs")
    lenders, attesters = (
        [
            read_key_file(tmp / "net" / "keys" / f"{m.name}.key")
            for m in layout.genesis.members
            if role in m.roles
        ]
        for role in ("lender", "kyc")
    )
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    started = time.perf_counter()
    workload = build_workload(
        args.txs, layout.genesis.chain_id, lenders, attesters, args.nodes, args.lifecycle_every
    )
    log(
        f"signed {len(workload.txs)} txs in {time.perf_counter() - started:.1f} s; starting {args.nodes} nodes"
    )
    speed = machine_speed([bytes.fromhex(tx.hex) for tx in workload.txs])  # before any node runs
    per_node: dict[str, dict] = {}
    try:
        for name in cluster.names:
            start_node(cluster, name, profile_dir)
        cluster.wait_healthy(timeout_s=90)
        head = cluster.wait_agree(timeout_s=60)
        nodes = [cluster[name] for name in cluster.names]
        idle = idle_cpu_percent(nodes, args.idle_s) if args.idle_s > 0 else None
        cpu0 = {n.name: cpu_seconds(n) for n in nodes}
        main0 = {n.name: main_thread_cpu_seconds(n) for n in nodes}
        disk0 = {n.name: disk_bytes(n.config.data_dir) for n in nodes}
        client_cpu0 = time.process_time()
        run, duration = drive(cluster, workload, args, head["height"])
        run.machine_speed = speed
        # Main threads read inside the processes' window (after it opens, before it closes).
        main1 = {n.name: main_thread_cpu_seconds(n) for n in nodes}
        cpu1 = {n.name: cpu_seconds(n) for n in nodes}
        run.client_cpu_s = time.process_time() - client_cpu0
        cluster.wait_agree(timeout_s=60)
        views = status_views(cluster)
        for n in nodes:
            memory = memory_mb(n)
            per_node[n.name] = {
                "cpu_s": round(cpu1[n.name] - cpu0[n.name], 2),
                # The event loop's thread; the rest is LevelDB's compaction and other native threads.
                "main_thread_cpu_s": round(main1[n.name] - main0[n.name], 2),
                "rss_mb": round(memory["VmRSS"], 1),
                "peak_mb": round(memory["VmHWM"], 1),
                "disk_bytes": disk_bytes(n.config.data_dir) - disk0[n.name],
                "view": views[n.name],
                **node_counters(n),
            }
    finally:
        cluster.stop_all()
        worth_reading = [
            what for what in ("view_changes", "relayed_txs") if any(n.get(what) for n in per_node.values())
        ]
        if worth_reading and not args.keep:
            args.keep = True
            print(
                f"{' and '.join(worth_reading)} happened: node logs kept in {tmp / 'logs'}", file=sys.stderr
            )
        if not args.keep and not profile_dir:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
        elif args.keep:
            log(f"network kept in {tmp}")
    result = report(args, run, duration, per_node)
    if idle is not None:
        result["idle_cpu_percent_of_a_core"] = idle
    if run.rejected:
        sample = list(run.rejected.items())[:3]
        log(f"{len(run.rejected)} txs rejected, e.g. {sample}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return result


if __name__ == "__main__":
    main()
