"""The node daemon: store, mempool, replica, network and API in one trio nursery.

``Node.run`` owns every task the node starts; cancelling it (SIGINT/SIGTERM)
stops them all, closes the store and returns, so the process exits 0.
Voting members run a PBFT replica; observers (e.g. a regulator) follow the
chain read-only, verifying every commit certificate against the members that
voted at its height. A member promoted or demoted by governance switches
between the two at the change's height (``roles.py``).
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections import deque
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from lendchain import codec
from lendchain.bounded import BoundedCache
from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger.keyrotation import member_signers, scheduled_rotations
from lendchain.ledger.removal import cut_off, removed_members
from lendchain.ledger.rules import UpgradeRequired
from lendchain.ledger.state import next_nonce
from lendchain.ledger.transactions import Transaction
from lendchain.node.admission import TxAdmission
from lendchain.node.api import build_app
from lendchain.node.app import ExecutionDiverged, NodeApp
from lendchain.node.backup import NodeBackups
from lendchain.node.byzantine import ByzantineSender
from lendchain.node.config import NodeConfig, genesis_warnings, read_api_token
from lendchain.node.driver import SyncServer, now_ms
from lendchain.node.faults import Faults
from lendchain.node.gossip import GOSSIP_CHECKED_MEMORY, GOSSIP_MAX_TXS, GossipIntake
from lendchain.node.keyschedule import key_schedule, member_keys, unheld_rotation
from lendchain.node.logs import setup_logging
from lendchain.node.mempool import Mempool
from lendchain.node.metrics import NodeMetrics
from lendchain.node.network import Network, NetworkError
from lendchain.node.regossip import RegossipSchedule
from lendchain.node.relay import Relay, decode_relay
from lendchain.node.roles import MemberRoles, consensus_peers
from lendchain.node.store import ChainStore, StoreError
from lendchain.node.views import NodeViews

REGOSSIP_AFTER_MS = 3000  # then 6 s, 12 s, ... up to REGOSSIP_MAX_MS (see regossip.py)
REGOSSIP_MAX_MS = 12_000
REGOSSIP_MAX_BACKLOG_WAIT_MS = 60_000  # the most a backlog delays a tx's first re-gossip
MAINTENANCE_S = 1.0
# Senders whose committed nonce admission remembers until the next commit (then it forgets all).
NONCE_MEMORY = 65_536


class Node(NodeViews, TxAdmission, GossipIntake, MemberRoles):
    def __init__(self, config: NodeConfig, key: SigningKey, *, next_key: SigningKey | None = None):
        self.store = ChainStore.open(
            config.data_dir,
            config.genesis,
            create=True,
            compression=config.store.compression,
            key_filter=True,
        )
        try:
            self._build(config, key, next_key)
        except BaseException:
            self.store.close()  # its checksum thread too (``start --check`` goes on after this)
            raise

    def _build(self, config: NodeConfig, key: SigningKey, next_key: SigningKey | None) -> None:
        """Everything after the store is open (``__init__`` closes it if this raises)."""
        genesis = config.genesis
        schedule = key_schedule(genesis, self.store)  # every member's keys and votes at the head
        self._check_key(config, key, schedule)
        if next_key is None and config.next_key_file:  # `lendchain start` reads it with the passphrase
            next_key = read_key_file(config.next_key_file)
        self.config = config
        self.api_token = read_api_token(config.api_token_file) if config.api_token_file else None
        self.genesis = genesis
        self.log = logging.getLogger(f"lendchain.{config.name}")
        for warning in genesis_warnings(genesis, config.genesis_path):  # at every start: see node.config
            self.log.warning("%s", warning)
        # Once this member's rotation to next_key is in effect, the node shows its peers the new
        # key (at once, or on a start after it), and they retire the old one.
        self._next_key = next_key
        signing_keys = [key, *([next_key] if next_key else [])]
        self._signing_keys = signing_keys
        if next_key is not None and self._next_key_effective(self.store.head().height):
            key = next_key
        self.key = key
        self.metrics = NodeMetrics()
        self.metrics_registry = self.metrics.registry
        self.mempool = Mempool(config.mempool)
        self.app = NodeApp(genesis, config.name, self.store, self.mempool, self.log)
        self.metrics.observe_rules(self.store, self.store.head().height)
        self.metrics.height.set(self.store.head().height)  # from the start, not from the first commit
        self._check_rotation_key()
        self.backups = NodeBackups(config, self.store, self.metrics, self.log)
        self.voters = schedule.voters_at(self.store.head().height + 1)  # at the height in flight
        self.voting = config.name in self.voters  # governance may have changed the genesis role
        self.metrics.voting_members.set(len(self.voters))
        self.metrics.voting.set(int(self.voting))
        self.consensus_peers = consensus_peers(schedule, self.store.head().height + 1) - {config.name}
        self.network = Network(
            key=key,
            me=config.name,
            members=self._consortium_members(key),
            member_keys={config.name: [key.public_key], **self.member_keys},  # before its admission too
            retired_keys=self.store.retired_keys(),
            on_retire=self.store.retire_keys,
            listen=self._own_listen_address(),
            chain_id=genesis.chain_id,
            on_frame=self._on_frame,
            on_request=self._on_request,
            validate_gossip=self._validate_gossip,
            on_gossip=self._on_gossip,
            log=self.log,
        )
        self.network.set_consensus_peers(self.consensus_peers)
        self._remember_let_go(schedule)
        self._note_removals(removed_members(self.store))  # a removed member's node says so at every start
        self.metrics.attach(
            self.network.stats, self.network.member_stats, self.store.memory_bytes, self.sync_status
        )
        self.faults = Faults.from_env()
        if self.faults.active:
            self.store.block_write_fault = self.faults.block_write_fault
            self.app.censored_senders = self.faults.censor
        self._sync_server = SyncServer(self.store)
        self.relay = Relay(
            self._request,
            self._check_batch,
            lambda tx: self._accept(tx, source="relay", verified=True),
            self.mempool,
            sorted(self.consensus_peers),
            self.metrics,
            self.log,
        )
        self.replica = self.driver = None
        if self.voting:
            self._start_replica()
        else:
            self._forget_votes()  # a demotion the node did not finish clearing before it stopped
        self.byzantine: ByzantineSender | None = None
        if self.faults.active and self.replica is not None:
            self.byzantine = ByzantineSender(
                self.config.name,
                self.key,
                self.genesis.chain_id,
                self.app,
                self.network.send,
                self.network.send_unchecked,
                self.network.options["max_frame_size"],
            )
        self._gossip_outbox: list[bytes] = []
        self._gossip_queued = trio.Event()  # set when the outbox gets its first tx
        self._regossip = RegossipSchedule(REGOSSIP_AFTER_MS, REGOSSIP_MAX_MS, REGOSSIP_MAX_BACKLOG_WAIT_MS)
        # Validated gossip messages' txs by the message object's id, holding the message (so no
        # other object can take its id): a key of ~56 KiB of bytes was hashed once per message.
        self._gossip_checked: BoundedCache[int, tuple[bytes, list[Transaction]]] = BoundedCache(
            GOSSIP_CHECKED_MEMORY
        )
        # When each pooled tx was accepted, for the commit-latency metric. Bounded: a tx that
        # leaves the pool without committing (dropped from a proposal, stale) is never popped.
        self._accepted_at: BoundedCache[bytes, float] = BoundedCache(self.config.mempool.max_txs)
        self._committed_nonces: dict[str, int] = {}
        self._committed_nonces_head = self.store.head()
        self._commit_event = trio.Event()
        self._started = time.monotonic()
        self._recent_commits: deque[float] = deque(maxlen=512)
        self._ready = False
        self._catch_up_asks = {}
        self._role_changed = trio.Event()
        # Test-only traffic delay (fault file "delay_ms"): frames wait here.
        self._delayed, self._delayed_out = trio.open_memory_channel(math.inf)

    def _check_key(self, config: NodeConfig, key: SigningKey, schedule: KeySchedule) -> None:
        self.member_keys = member_keys(schedule, cut_off(self.store, self.store.head().height))
        self.signers = member_signers(self.store)  # members' rotated keys, by did:key
        if config.name not in self.member_keys:  # join = true and not admitted yet, or removed
            return
        if key.public_key not in self.member_keys[config.name]:
            first = self.member_keys[config.name][-1]
            source = "the genesis" if config.genesis.member(config.name) else "its admission (member.admit)"
            raise ValueError(
                f"key file {config.key_file} holds public key {key.public_key.hex()[:16]}…, but {source} "
                f"lists {first.hex()[:16]}… for {config.name} (and no rotation to it is executed); "
                f"use {config.name}'s key"
            )

    def _next_key_effective(self, height: int) -> bool:
        """Whether this member's rotation to ``next_key_file``'s key is in effect at ``height``."""
        assert self._next_key is not None
        rotations = scheduled_rotations(self.store).get(self.config.name, [])
        return any(key == self._next_key.public_key and at <= height for at, key in rotations)

    def _check_rotation_key(self) -> None:
        held = [self.key.public_key, *([self._next_key.public_key] if self._next_key else [])]
        missing = unheld_rotation(self.store, self.config.name, held)
        self.metrics.key_missing.set(missing[0] if missing else 0)
        if missing:
            self.log.error(
                "%s's node key becomes %s… at height %d, which this node does not hold: set next_key_file "
                "to that key and restart before then, or it stops signing there",
                self.config.name, missing[1].hex()[:16], missing[0],
            )  # fmt: skip

    def _note_rotation(self, height: int) -> None:
        """Move this node's network identity to its next key once that key's rotation is in effect."""
        if self._next_key is None or self.key.public_key == self._next_key.public_key:
            return
        if self._next_key_effective(height):
            self.log.warning(
                "%s's node key rotation is in effect from height %d: moving the network identity "
                "to the new key (next_key_file); peers retire the old one when they see it",
                self.config.name,
                height,
            )
            self.network.rekey(self._next_key)
            self.key = self._next_key

    # -- lifecycle -------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.network.run)
                await nursery.start(self._run_role)
                self._restore_pending()
                nursery.start_soon(self._gossip_flusher)
                nursery.start_soon(self._learn_peer_heights)
                nursery.start_soon(self._maintenance)
                store = self.config.store
                if store.backup_interval_s:
                    nursery.start_soon(self.backups.run_schedule, store.backup_interval_s, store.backup_keep)
                if self.faults.active:
                    self.log.warning("fault injection enabled from %s (tests only)", self.faults.path)
                    nursery.start_soon(self.faults.watch, self.log)
                    if self.byzantine is not None:
                        nursery.start_soon(self._flood_as_byzantine)
                    nursery.start_soon(self._send_delayed, self._delayed_out)
                api_urls = await nursery.start(self._serve_api)
                self._ready = True
                self.log.info(
                    "node %s up: height %d, p2p %s, api %s",
                    self.config.name,
                    self.store.head().height,
                    self.network.listen_address,
                    ", ".join(api_urls),
                )
                task_status.started()
        finally:
            self.store.close()

    async def _serve_api(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        cfg = HypercornConfig()
        host = self.config.api_host
        cfg.bind = [f"[{host}]:{self.config.api_port}" if ":" in host else f"{host}:{self.config.api_port}"]
        cfg.accesslog = None
        cfg.errorlog = logging.getLogger("hypercorn.error")
        cfg.keep_alive_timeout = 30
        # hypercorn closes a /txs/stream WebSocket (code 1009) on a message over the body limit.
        cfg.websocket_max_message_size = self.config.api_limits.max_body_bytes
        app = build_app(self, self.api_token, self.config.api_limits)
        await serve(app, cfg, task_status=task_status)

    async def backup(self, name: str | None, keep: int | None = None) -> dict[str, Any]:
        return await self.backups.take(name, keep)

    def is_ready(self) -> bool:
        """Up, and caught up: at the height its peers showed it (not before it heard one)."""
        return self._ready and self.sync_target() == self.store.head().height

    def _committed_nonce(self, sender: str) -> int:
        """``next_nonce(self.store, sender)``, read from LevelDB once per sender and head.

        A sender's txs come in runs (a borrower registers and applies in one batch; a lender
        offers, disburses and is repaid for many loans), and only a commit changes the state:
        ``ChainStore`` writes state in ``commit_block`` alone, which replaces its head, so the
        nonces read at one head hold until the head changes.
        """
        nonces = self._nonce_memory()
        nonce = nonces.get(sender)
        if nonce is None:
            if len(nonces) >= NONCE_MEMORY:
                nonces.clear()
            nonce = nonces[sender] = next_nonce(self.store, sender)
        return nonce

    def _nonce_memory(self) -> dict[str, int]:
        """The committed nonces read at the current head, by sender (emptied when the head moves).

        A hit is the sender's committed nonce; on a miss ask ``_committed_nonce``.
        """
        head = self.store.head()
        if head is not self._committed_nonces_head:
            self._committed_nonces.clear()
            self._committed_nonces_head = head
        return self._committed_nonces

    def _next_nonce(self, sender: str) -> int:
        return self.mempool.next_free_nonce(sender, next_nonce(self.store, sender))

    async def _maintenance(self) -> None:
        """Sync a quiet network's last block, expire old txs, re-gossip unconfirmed ones, refresh gauges."""
        while True:
            await trio.sleep(MAINTENANCE_S)
            self.store.raise_if_write_failed()  # e.g. an API write hit a full disk: stop now
            self.store.sync_committed()  # a quiet network's last block: no WAL write follows it
            now = now_ms()
            expired = self.mempool.expire(now)
            for tx in expired:
                self.log.info("tx %s expired after %d ms", tx.tx_id.hex(), self.config.mempool.tx_ttl_ms)
                self._accepted_at.pop(tx.tx_id, None)
            if expired:
                self.store.pending_delete([tx.tx_id for tx in expired])
            for tx_id in self._regossip.due(now, self.mempool.__contains__, GOSSIP_MAX_TXS):
                self._queue_gossip(self.mempool.get(tx_id).raw)
            self.metrics.peers.set(len(self.network.connected_members()))
            self.metrics.mempool_txs.set(len(self.mempool))
            self.metrics.mempool_bytes.set(self.mempool.size_bytes)

    # -- commits -------------------------------------------------------------

    def _on_frame(self, sender: str, frame: bytes) -> None:
        if self.driver is not None and not self.faults.cuts(sender):
            self.driver.on_frame(sender, frame)

    async def _on_request(self, sender: str, payload: bytes) -> bytes:
        if self.faults.cuts(sender):
            await trio.sleep_forever()  # a partitioned peer's request times out, as on a real cut
        relayed = decode_relay(payload, self.network.options["max_frame_size"])
        removed_at = self._removals_seen.get(sender)
        if removed_at is not None:  # its node may read its removal, and nothing after it
            if relayed is not None:
                return codec.pack(
                    {"error": f"{sender} was removed from the consortium at height {removed_at}"}
                )
            return await self._sync_server.handle(sender, payload, up_to=removed_at)
        if relayed is not None:
            return self.relay.receive(sender, relayed)
        self.note_catch_up(sender, payload)
        return await self._sync_server.handle(sender, payload)

    def _send(self, to: str, payload: bytes) -> bool:
        if self.faults.delay_ms:
            self._delayed.send_nowait((trio.current_time() + self.faults.delay_ms / 1000, to, payload))
            return True
        return self._send_now(to, payload)

    def _broadcast(self, payload: bytes) -> None:
        if self.faults.delay_ms:
            self._delayed.send_nowait((trio.current_time() + self.faults.delay_ms / 1000, None, payload))
            return
        self._broadcast_now(payload)

    async def _send_delayed(self, delayed: trio.MemoryReceiveChannel) -> None:
        """Test-only traffic delay: frames leave in order, each ``delay_ms`` after it was sent."""
        async for due, to, payload in delayed:
            await trio.sleep_until(due)
            if to is None:
                self._broadcast_now(payload)
            else:
                self._send_now(to, payload)

    def _send_now(self, to: str, payload: bytes) -> bool:
        if self.faults.cuts(to):
            return False
        liar = self._liar()
        if liar is not None:
            liar.send(to, payload)
            return True
        return self.network.send(to, payload)

    def _broadcast_now(self, payload: bytes) -> None:
        if not self.faults.active:
            self.network.broadcast(payload)
            return
        others = [name for name in sorted(self.consensus_peers) if not self.faults.cuts(name)]
        liar = self._liar()
        if liar is not None:
            liar.broadcast(payload, others)
            return
        for name in others:
            self.network.send(name, payload)

    async def _flood_as_byzantine(self) -> None:
        while True:
            await trio.sleep(0.01)
            liar = self._liar()
            if liar is not None:
                liar.flood_tick(sorted(self.consensus_peers))

    def _liar(self) -> ByzantineSender | None:
        """The Byzantine sender when a test's fault file makes this member lie."""
        if self.byzantine is None or not self.faults.byzantine:
            return None
        if self.byzantine.kind != self.faults.byzantine:
            self.byzantine.set_kind(self.faults.byzantine)
        return self.byzantine

    async def _request(self, to: str, payload: bytes, timeout_s: float) -> bytes:
        if self.faults.cuts(to):
            await trio.sleep(timeout_s)
            raise TimeoutError(f"request to {to} timed out (fault injection)")
        return await self.network.request(to, payload, timeout_s)

    def _on_commit(self, height: int) -> None:
        roster = self.app.roster  # the commit just before kept it current
        schedule, removed = roster.schedule, roster.removed
        gone = cut_off(self.store, height, removed)
        keys = member_keys(schedule, gone)
        if keys != self.member_keys:  # a rotation or admission executed, or a removed member is let go
            self.member_keys, self.signers = keys, member_signers(self.store)
            self._follow_roster(gone)
            self.network.allow_keys(keys)
            self._check_rotation_key()
        self._note_removals(removed)
        self._follow_addresses()
        self._note_rotation(height)
        self._review_role(height, schedule)
        tx_ids = self.app.last_committed_tx_ids  # block ``height``'s: its commit came just before
        now = time.monotonic()
        self.metrics.txs_committed.inc(len(tx_ids))
        for tx_id in tx_ids:
            accepted = self._accepted_at.pop(tx_id, None)
            if accepted is not None:
                self.metrics.commit_latency.observe(now - accepted)
        self._recent_commits.append(now)
        self._commit_event.set()
        self._commit_event = trio.Event()

    async def wait_for_height(self, height: int, timeout_s: float) -> None:
        with trio.move_on_after(timeout_s):
            while self.store.head().height < height:
                await self._commit_event.wait()

    async def wait_tx(self, tx_id: bytes, timeout_s: float) -> dict[str, Any]:
        with trio.move_on_after(timeout_s):
            while self.tx_status(tx_id)["status"] == "pending":
                await self._commit_event.wait()
        return self.tx_status(tx_id)


async def serve_node(node: Node) -> None:
    """Run ``node`` until SIGINT or SIGTERM, then shut it down cleanly."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.run)
            async for signum in signals:
                node.log.info("received %s, shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def run_node(config: NodeConfig, key: SigningKey, next_key: SigningKey | None = None) -> int:
    """The ``lendchain start`` process: returns its exit code."""
    setup_logging(config.name, config.log_level, config.log_format)
    log = logging.getLogger(f"lendchain.{config.name}")
    try:
        node = Node(config, key, next_key=next_key)
    except (StoreError, ValueError) as e:
        log.error("cannot start: %s", e)
        return 1
    except UpgradeRequired as e:
        log.critical("cannot start: %s", e)
        return 4
    try:
        trio.run(serve_node, node)
    except Exception as e:  # trio wraps task errors in exception groups: find the cause
        diverged = _first(e, ExecutionDiverged)
        if diverged is not None:
            log.error("stopped: %s", diverged)
            return 3
        upgrade = _first(e, UpgradeRequired)
        if upgrade is not None:
            log.critical("stopped: %s", upgrade)
            return 4
        cause = _first(e, (NetworkError, StoreError, OSError))
        if cause is None:
            raise
        log.error("stopped: %s", cause)
        return 1
    log.info("stopped cleanly")
    return 0


def _first(error: BaseException, kinds: type | tuple[type, ...]) -> BaseException | None:
    """The first exception of ``kinds`` in ``error`` or, depth first, in its exception groups."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first(inner, kinds)
            if found is not None:
                return found
        return None
    return error if isinstance(error, kinds) else None
