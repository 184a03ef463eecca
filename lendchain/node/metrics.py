"""Prometheus metrics of one node, in a registry of its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lendchain.ledger.rules import rules_status
from lendchain.ledger.state import StateReader


class _NetworkCollector(Collector):
    """Exports the network layer's counters at scrape time."""

    def __init__(
        self,
        stats: Callable[[], dict[str, Any]],
        member_stats: Callable[[], dict[str, dict[str, int]]] | None,
    ) -> None:
        self.stats = stats
        self.member_stats = member_stats

    def collect(self):
        stats = self.stats()
        for name, value in stats.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield GaugeMetricFamily(f"lendchain_p2p_{name}", f"network: {name}", value=value)
        if self.member_stats is not None:
            throttled = GaugeMetricFamily(
                "lendchain_p2p_throttled",
                "times a member exceeded its inbound budget, by unit",
                labels=["member", "unit"],
            )
            for member, units in sorted(self.member_stats().items()):
                for unit, count in sorted(units.items()):
                    throttled.add_metric([member, unit], count)
            yield throttled


class _StoreCollector(Collector):
    """The store's memory at scrape time: LevelDB's memtables and block cache."""

    def __init__(self, memory_bytes: Callable[[], int]) -> None:
        self.memory_bytes = memory_bytes

    def collect(self):
        yield GaugeMetricFamily(
            "lendchain_store_memory_bytes",
            "LevelDB memtables and block cache (approximate; part of process_resident_memory_bytes)",
            value=self.memory_bytes(),
        )


class _SyncCollector(Collector):
    """Whether the node is caught up, and how far behind it is, at scrape time (``NodeViews.sync_status``)."""

    def __init__(self, sync_status: Callable[[], dict[str, Any]]) -> None:
        self.sync_status = sync_status

    def collect(self):
        sync = self.sync_status()
        yield GaugeMetricFamily(
            "lendchain_catching_up",
            "1 while the node is behind its peers, or has heard none of them since it started",
            value=int(sync["state"] != "synced"),
        )
        if sync["behind"] is not None:  # absent while not known
            yield GaugeMetricFamily(
                "lendchain_sync_behind_blocks",
                "blocks between this node's head and the height its peers showed it",
                value=sync["behind"],
            )


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # process_resident_memory_bytes, process_cpu_seconds_total, open fds: what an operator
        # sizes a node's machine by (RSS grows with load and chain size: benchmarks/RESULTS.md).
        ProcessCollector(registry=r)
        self.height = Gauge("lendchain_height", "committed height", registry=r)
        self.view = Gauge("lendchain_view", "current PBFT view", registry=r)
        self.view_changes = Counter("lendchain_view_changes", "views entered after the first", registry=r)
        self.request_timeouts = Counter(
            "lendchain_request_timeouts",
            "view changes this node asked for because the primary left a tx it could order out",
            registry=r,
        )
        self.stalled_seconds = Counter(
            "lendchain_stalled_seconds",
            "time the consensus ticker ran late (this node too busy to listen); not counted against the primary",
            registry=r,
        )
        self.blocks = Counter("lendchain_blocks_committed", "blocks committed", registry=r)
        self.txs_committed = Counter("lendchain_txs_committed", "transactions committed", registry=r)
        self.tx_accepted = Counter(
            "lendchain_tx_accepted", "transactions accepted by API or gossip", ["source"], registry=r
        )
        # Counted once per accepted tx: ``labels()`` looks its child up under a lock each call.
        self.tx_accepted_from = {
            source: self.tx_accepted.labels(source) for source in ("api", "gossip", "restore", "relay")
        }
        self.tx_rejected = Counter("lendchain_tx_rejected", "transactions refused", ["reason"], registry=r)
        self.block_time = Histogram(
            "lendchain_block_interval_seconds",
            "time between commits",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "lendchain_block_commit_seconds",
            "time to store a block",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1),
            registry=r,
        )
        self.commit_latency = Histogram(
            "lendchain_commit_latency_seconds",
            "from acceptance at this node to commit",
            buckets=(0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10),
            registry=r,
        )
        self.rules_version = Gauge(
            "lendchain_rules_version", "ledger rules the head block ran under", registry=r
        )
        self.upgrade_needed = Gauge(
            "lendchain_rules_upgrade_needed_height",
            "height this release cannot execute (scheduled newer rules; 0: none): upgrade before it",
            registry=r,
        )
        self.peers = Gauge("lendchain_peers_connected", "members connected", registry=r)
        self.mempool_txs = Gauge("lendchain_mempool_txs", "transactions waiting", registry=r)
        self.mempool_bytes = Gauge("lendchain_mempool_bytes", "bytes waiting", registry=r)
        self.faults = Counter(
            "lendchain_faults", "misbehaviour seen, by member and kind", ["member", "kind"], registry=r
        )
        self.dropped_frames = Counter(
            "lendchain_dropped_frames", "consensus frames dropped on a full inbox", ["member"], registry=r
        )
        self.gossip_txs = Counter(
            "lendchain_gossip_txs", "transactions sent and received by gossip", ["direction"], registry=r
        )
        self.relayed_txs = Counter(
            "lendchain_relayed_txs",
            "transactions relayed straight to the primary (out) and received so (in)",
            ["direction"],
            registry=r,
        )
        self.relay_failures = Counter(
            "lendchain_relay_failures", "relays to the primary that failed or were dropped", registry=r
        )
        self.voting_members = Gauge(
            "lendchain_voting_members", "members that vote at the height in flight (n)", registry=r
        )
        self.voting = Gauge(
            "lendchain_voting", "1 when this node's member votes at the height in flight", registry=r
        )
        self.consortium_member = Gauge(
            "lendchain_consortium_member",
            "1 when this node's member is in the consortium; 0 while its admission is pending "
            "(join = true) or once it was removed",
            registry=r,
        )
        self.key_missing = Gauge(
            "lendchain_node_key_missing_height",
            "height from which this member's newest node key signs, when this node does not hold it "
            "(next_key_file); 0: it holds its keys",
            registry=r,
        )
        self.backup_height = Gauge(
            "lendchain_backup_height", "height of this node's newest backup (0: none found)", registry=r
        )
        self.backup_time = Gauge(
            "lendchain_backup_timestamp_seconds",
            "when this node's newest backup was written (Unix time; 0: none found)",
            registry=r,
        )
        self.backups_failed = Counter(
            "lendchain_backups_failed",
            "backups started and not written (name taken, disk, damage; see the log)",
            registry=r,
        )
        self._last_commit = 0.0
        self._last_view = 0
        self._last_request_timeouts = 0

    def attach(
        self,
        stats: Callable[[], dict[str, Any]],
        member_stats: Callable[[], dict[str, dict[str, int]]] | None = None,
        store_memory_bytes: Callable[[], int] | None = None,
        sync_status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """Export the network layer's counters, the store's memory and the sync state at scrape time."""
        self.registry.register(_NetworkCollector(stats, member_stats))
        if store_memory_bytes is not None:
            self.registry.register(_StoreCollector(store_memory_bytes))
        if sync_status is not None:
            self.registry.register(_SyncCollector(sync_status))

    def observe_replica(self, replica: Any) -> None:
        view = replica.view
        if view > self._last_view:
            self.view_changes.inc(view - self._last_view)
            self._last_view = view
        self.view.set(view)
        timeouts = replica.counters["request_timeouts"]
        if timeouts > self._last_request_timeouts:
            self.request_timeouts.inc(timeouts - self._last_request_timeouts)
            self._last_request_timeouts = timeouts

    def observe_backup(self, height: int, written_s: float) -> None:
        self.backup_height.set(height)
        self.backup_time.set(written_s)

    def observe_rules(self, reader: StateReader, height: int) -> None:
        rules = rules_status(reader, height)
        self.rules_version.set(rules["version"])
        self.upgrade_needed.set(rules["upgrade_needed_at"] or 0)

    def on_commit(self, height: int, app: Any, store_seconds: float) -> None:
        now = time.monotonic()
        if self._last_commit:
            self.block_time.observe(now - self._last_commit)
        self._last_commit = now
        self.height.set(height)
        self.blocks.inc()
        self.commit_seconds.observe(store_seconds)
        self.mempool_txs.set(len(app.mempool))
        self.mempool_bytes.set(app.mempool.size_bytes)
        self.observe_rules(app.store, height)
