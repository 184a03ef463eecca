"""Building the 1M-tx chain for ``chain_bench.py``: sign, cut, check and store blocks, costed per window.

Split from chain_bench.py for size; see that module's docstring for what is measured.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ledger_bench import check_next_block
from loan_workload import TXS_PER_LOAN, signed_in_background
from node_probe import disk_bytes

from lendchain import codec
from lendchain.cli.network import tune_gc
from lendchain.consensus import wal
from lendchain.consensus.certificate import CheckpointProof, CommitCertificate
from lendchain.consensus.quorum import quorum, tag
from lendchain.crypto import SigningKey
from lendchain.ledger.block import make_block
from lendchain.node.config import load_node_config
from lendchain.node.store import ChainStore
from lendchain.node.testnet import TestnetLayout

COHORT = 100  # borrowers signed together: 1,100 txs, far below a measuring window


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


# -- building the chain -----------------------------------------------------------------


@dataclass
class Window:
    """Cost of one window of committed txs (CPU times are main-thread seconds)."""

    end_txs: int = 0
    txs: int = 0
    execute_cpu: float = 0.0  # make_block: the execution a node commits
    commit_cpu: float = 0.0  # commit_block
    wall: float = 0.0  # make_block + commit_block, wall clock
    validate_cpu: float = 0.0  # check_block on the window's first block
    validate_txs: int = 0
    background_cpu: float = 0.0  # other threads of this process: LevelDB compaction
    gc_cpu: float = 0.0  # Python's cyclic garbage collector, within execute and commit
    rss_mb: float = 0.0

    def per_tx_us(self) -> dict[str, float]:
        return {
            "execute_cpu": round(1e6 * self.execute_cpu / self.txs, 1),
            "commit_cpu": round(1e6 * self.commit_cpu / self.txs, 1),
            "execute_commit_cpu": round(1e6 * (self.execute_cpu + self.commit_cpu) / self.txs, 1),
            "execute_commit_wall": round(1e6 * self.wall / self.txs, 1),
            "compaction_cpu": round(1e6 * self.background_cpu / self.txs, 1),
            "validate_cpu": round(1e6 * self.validate_cpu / max(1, self.validate_txs), 1),
            "gc_cpu": round(1e6 * self.gc_cpu / self.txs, 1),
        }


class GcClock:
    """Main-thread CPU seconds spent in the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._started


@dataclass
class Built:
    txs: int = 0
    blocks: int = 0
    windows: list[Window] = field(default_factory=list)
    seconds: float = 0.0
    head_height: int = 0
    disk_bytes: int = 0
    peak_rss_mb: float = 0.0


def commit_certificate(
    chain_id: str, signers: list[tuple[str, SigningKey]], height: int, digest: bytes
) -> bytes:
    """The certificate a quorum's COMMIT(view 0, height, digest) votes form."""
    body = [0, height, digest]
    signatures = tuple((name, key.sign(tag("commit"), chain_id, body)) for name, key in signers)
    return CommitCertificate(0, height, digest, signatures).encode()


def checkpoint_record(
    chain_id: str, signers: list[tuple[str, SigningKey]], height: int, root: bytes
) -> bytes:
    body = [height, root]
    signatures = tuple((name, key.sign(tag("checkpoint"), chain_id, body)) for name, key in signers)
    return codec.pack(CheckpointProof(height, root, signatures).to_value())


def build_chain(layout: TestnetLayout, keys: dict[str, SigningKey], args: argparse.Namespace, log) -> Built:
    """Sign, cut, check and store ``args.txs`` txs in bank1's data directory (see the module doc)."""
    genesis = layout.genesis
    chain_id = genesis.chain_id
    names = [m.name for m in genesis.members]
    signers = [(name, keys[name]) for name in names[: quorum(len(names))]]
    interval = genesis.consensus.checkpoint_interval
    borrowers = args.txs // TXS_PER_LOAN
    lenders = [keys[n] for n in args.chain_lenders]
    attesters = [keys[n] for n in args.chain_attesters]
    built = Built()
    data_dir = load_data_dir(layout.configs[0])
    started = time.perf_counter()
    store = ChainStore.open(data_dir, genesis, key_filter=True)  # as a node opens its store
    store.sync_writes = getattr(args, "sync_writes", True)  # chain_window.py builds unsynced
    window = Window()
    window_thread0 = time.thread_time()
    window_process0 = time.process_time()
    tune_gc()  # the collector settings of a node process (``lendchain start``)
    gc_clock = GcClock()
    checkpoint: tuple[int, bytes] | None = None
    certificates: dict[int, bytes] = {}
    height = 0
    txs = signed_in_background(
        chain_id,
        lenders,
        attesters,
        borrowers,
        cohort=COHORT,
        created_ms=genesis.genesis_time_ms,
        chunk=args.block,
    )
    profiler = None
    for candidates in txs:
        if args.profile and window.txs == 0 and len(built.windows) in (1, args.txs // args.window - 2):
            profiler = cProfile.Profile()  # the second and the last window: execute and commit
            profiler.enable()
        head = store.head()
        height = head.height + 1
        wall, cpu = time.perf_counter(), time.thread_time()
        block, execution = make_block(
            parent_hash=head.hash,
            parent_timestamp_ms=head.timestamp_ms,
            height=height,
            proposer=names[height % len(names)],
            candidate_txs=candidates,
            reader=store,
            now_ms=genesis.genesis_time_ms + height * args.block_ms,
            chain_id=chain_id,
        )
        middle = time.thread_time()
        window.execute_cpu += middle - cpu
        window.wall += time.perf_counter() - wall
        if execution.dropped or not all(result.ok for result in execution.results):
            failed = execution.dropped or [r for r in execution.results if not r.ok]
            raise SystemExit(f"block {height}: the workload does not execute cleanly: {failed[:3]}")
        raw = block.encode()
        certificate = commit_certificate(chain_id, signers, height, block.hash())
        if window.txs == 0:  # a validator's cost, on the first block of every window
            cpu = time.thread_time()
            check_next_block(store, raw, {tx.id for tx in candidates}, chain_id)
            window.validate_cpu = time.thread_time() - cpu
            window.validate_txs = len(candidates)
        node_wal: list[tuple[bytes, bytes]] = []
        if getattr(args, "node_writes", False):  # store_bench.py: what a node writes besides
            node_wal = node_writes_before_commit(store, candidates, raw, block.hash(), height)
        wall, cpu = time.perf_counter(), time.thread_time()
        store.commit_block(raw, certificate, execution, node_wal or None)
        if node_wal:
            store.pending_delete(list(execution.tx_ids))
        window.commit_cpu += time.thread_time() - cpu
        window.wall += time.perf_counter() - wall
        if height % interval == 0:
            checkpoint = (height, execution.state_root)
        certificates = {h: c for h, c in certificates.items() if h == height - 1}
        certificates[height] = certificate
        built.txs += len(candidates)
        window.txs += len(candidates)
        if window.txs >= args.window:
            thread_now, process_now = time.thread_time(), time.process_time()
            window.background_cpu = max(0.0, (process_now - window_process0) - (thread_now - window_thread0))
            window.end_txs = built.txs
            window.gc_cpu, gc_clock.seconds = gc_clock.seconds, 0.0
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(Path(args.profile) / f"window-{built.txs}.prof")
                profiler = None
            window.rss_mb = rss_mb()[0]
            built.windows.append(window)
            log(
                f"{built.txs:>9,} txs, height {height}: "
                f"{window.per_tx_us()['execute_commit_cpu']:6.1f} µs CPU/tx execute+commit, "
                f"RSS {window.rss_mb:5.0f} MB, {time.perf_counter() - started:6.0f} s"
            )
            window = Window()
            window_thread0, window_process0 = time.thread_time(), time.process_time()
    # What a replica leaves in its WAL at this height: the last two certificates and the
    # stable checkpoint (without it the watermark window would stop the chain at K + W).
    records = [(wal.cert_key(h), c) for h, c in certificates.items()]
    if checkpoint is not None:
        records.append((wal.CHECKPOINT_KEY, checkpoint_record(chain_id, signers, *checkpoint)))
    store.wal_write(records)
    CommitCertificate.decode(certificates[height]).verify(
        chain_id, [(m.name, m.public_key) for m in genesis.members]
    )
    built.head_height = store.head().height
    store.close()
    built.blocks = built.head_height
    built.seconds = time.perf_counter() - started
    built.disk_bytes = disk_bytes(data_dir)
    built.peak_rss_mb = rss_mb()[1]
    for config in layout.configs[1:]:
        shutil.copytree(data_dir, load_data_dir(config))
    return built


def node_writes_before_commit(
    store: ChainStore, txs: list, raw_block: bytes, digest: bytes, height: int
) -> list[tuple[bytes, bytes]]:
    """What one node of four writes for a block besides ``commit_block``; the WAL records it deletes.

    The accepted-tx records (``p:``) of the quarter of the block's txs that
    clients submitted to this node, and the WAL's copy of the proposal
    (``blk/``) with the node's prepare vote, synced, as a backup's
    ``Persist`` does; its commit deletes them (``pending_delete``, the WAL
    records in its batch). The signed votes and certificates a real node
    also logs are left out.
    """
    store.pending_put([(tx.id, tx.encode()) for tx in txs[::4]])
    records = [(wal.block_key(height, digest), raw_block), (wal.vote_key(height, 0, b"p"), digest)]
    store.wal_write(records)
    return [(key, b"") for key, _ in records]


def load_data_dir(config_path: Path) -> Path:
    return load_node_config(config_path).data_dir
