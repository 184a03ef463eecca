"""The node's side of the consensus ``BlockApp`` contract: mempool + ledger + store.

The replica orders opaque blocks; this module gives them meaning. A block is
executed once per node: when it is proposed here or validated as a
proposal, its execution is kept by digest, and committing it writes that
same execution. Only a block learnt through catch-up (never validated here)
is executed at commit time — after its commit certificate was checked.

Signatures are checked once per node: ``verified`` holds every tx in the
mempool (only checked txs enter it) and the last ``VERIFIED_MEMORY`` tx ids
that passed a check anywhere (API, gossip, a validated proposal); block
validation skips those and checks the rest. Txs are decoded once per node
too: the mempool holds them decoded, and a block built or checked here gets
those same objects back (``transactions.decode_transaction``); its commit
takes them from the execution. A proposal is decoded once, when ``digest``
hashes its header, and ``validate`` checks that same decoded block.

Blocks are sized to the network (``BlockSizer``): with one height in flight,
a block that takes longer than the view-change timeout to go round makes the
backups depose an honest primary, so a proposal carries what this network
has been committing in half that timeout (``BLOCK_ROUND_TIMEOUTS``), up to
the genesis's ``max_block_txs``. A block that is not full waits until ``block_interval_ms``
after this node's previous proposal, so the wait batches txs only when the
rounds are faster than the interval: a round that took longer is followed at
once by what arrived during it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from lendchain.bounded import BoundedCache
from lendchain.genesis import Genesis
from lendchain.ledger.block import Block, InvalidBlock, check_block, make_block
from lendchain.ledger.rules import RULES_KEY, RULES_VERSION, active_rules, pending_upgrade
from lendchain.ledger.state import BlockExecution, OverlayReader, StateReader, next_nonce
from lendchain.ledger.transactions import Transaction
from lendchain.node.keyschedule import CommittedRoster
from lendchain.node.mempool import Mempool
from lendchain.node.store import ChainStore

# Bounds on the caches that make "once per node" true.
VERIFIED_MEMORY = 65_536  # ~20 s at 3,000 tx/s: a validated proposal commits well within it
# Blocks whose digest is kept, keyed by the block's bytes. Only the proposer's own block is
# asked for again (by its replica, right after ``propose`` built and hashed it); others are
# hashed once as they arrive. 256 kept ~75 MB of old blocks per node at 3,000 tx/s.
DIGEST_MEMORY = 8
# Blocks kept decoded after ``digest`` hashed them, for ``validate``, which the replica calls
# next on the same proposal: a block is decoded once per node, not twice.
DECODED_MEMORY = 2


class ExecutionDiverged(RuntimeError):
    """A committed block cannot be executed here: this node's state is wrong."""


class CheckedSignatures:
    """Tx ids whose signature this node has verified.

    The mempool's txs are all here however long they wait (the daemon checks
    a tx before it pools it); beyond those, the last ``limit`` ids checked.
    """

    def __init__(self, mempool: Mempool, limit: int) -> None:
        self._pooled = mempool.ids
        self._recent: BoundedCache[bytes, None] = BoundedCache(limit)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._recent or tx_id in self._pooled

    def add(self, tx_id: bytes) -> None:
        self._recent.put(tx_id)

    def unchecked(self, txs: list[Transaction]) -> list[Transaction]:
        """The txs whose id is not here, in order: ``tx.id not in self`` for each, in one call."""
        recent, pooled = self._recent, self._pooled
        return [tx for tx in txs if tx.id not in recent and tx.id not in pooled]

    def add_all(self, tx_ids: list[bytes]) -> None:
        self._recent.put_all(tx_ids)


# The share of the view-change timeout a full block's round is sized to (``BlockSizer.target_s``).
# A round costs a fixed time whatever the block's size (votes, WAL writes, ten processes taking
# turns on two cores) plus a time per tx, and sizing to the commit rate settles where the round
# takes ``target_s``: with a fixed part near a quarter timeout (10 nodes on 2 cores: ~0.45 s of
# 0.5 s) blocks drifted down to 100-150 txs, per-block costs per tx doubled, and the commit rate
# halved mid-run. Half a timeout still leaves a round twice its time before a backup gives up.
BLOCK_ROUND_TIMEOUTS = 0.5


class BlockSizer:
    """How many txs the next proposal carries: the measured commit rate times ``target_s``.

    The rate is measured between consecutive commits while the mempool stayed
    non-empty (an idle wait is not a slow network) and smoothed; the cap
    stays between ``min_txs`` and ``max_txs``. Blocks settle at the size whose
    round takes ``target_s``: a round's fixed time must stay well under it.
    """

    SMOOTHING = 0.3

    def __init__(self, max_txs: int, target_s: float, min_txs: int = 100, start_txs: int = 500) -> None:
        self.max_txs, self.target_s = max_txs, target_s
        self.min_txs = min(min_txs, max_txs)
        self.cap = max(self.min_txs, min(start_txs, max_txs))
        self.rate: float | None = None
        self._last: float | None = None  # time of the last commit that left work behind

    def on_commit(self, txs: int, now_s: float, work_left: bool) -> None:
        if self._last is not None and txs > 0 and now_s > self._last:
            sample = txs / (now_s - self._last)
            self.rate = sample if self.rate is None else self.rate + self.SMOOTHING * (sample - self.rate)
            self.cap = max(self.min_txs, min(self.max_txs, int(self.rate * self.target_s)))
        self._last = now_s if work_left else None


@dataclass(frozen=True)
class _Pending:
    """A block this node built or validated, waiting to commit."""

    height: int
    block: Block
    execution: BlockExecution


class NodeApp:
    def __init__(
        self, genesis: Genesis, me: str, store: ChainStore, mempool: Mempool, log: logging.Logger
    ) -> None:
        self.genesis = genesis
        self.me = me
        self.store = store
        self.mempool = mempool
        self.log = log
        self.verified = CheckedSignatures(mempool, VERIFIED_MEMORY)
        self._pending: dict[bytes, _Pending] = {}
        self._digests: BoundedCache[bytes, bytes] = BoundedCache(DIGEST_MEMORY)
        self._decoded: BoundedCache[bytes, Block] = BoundedCache(DECODED_MEMORY)
        # When this node last proposed a block with txs: a block that is not full waits until
        # ``block_interval_ms`` after that, so a round that took longer than the interval is
        # followed at once by the txs that arrived during it.
        self.last_proposal_ms = 0
        # Senders whose txs this node's proposals leave out: only a test's fault file fills it.
        self.censored_senders: set[str] = set()
        params = genesis.consensus
        self.sizer = BlockSizer(
            params.max_block_txs, BLOCK_ROUND_TIMEOUTS * params.view_change_timeout_ms / 1000
        )
        self._warned_upgrade: list[int] | None = None
        # The ids of the txs of the block the last ``commit`` stored, in block order: the
        # daemon's commit listener reads them rather than the block back from the store.
        self.last_committed_tx_ids: list[bytes] = []
        # The members' keys and votes at the store's head, which ``commit`` keeps current.
        self.roster = CommittedRoster(genesis, store)
        self.warn_if_upgrade_needed()
        active_rules(store, store.head().height + 1)  # UpgradeRequired: this release cannot go on

    # -- BlockApp -----------------------------------------------------------

    def has_pending_work(self) -> bool:
        return len(self.mempool) > 0

    def oldest_request(self) -> tuple[bytes, int] | None:
        # The backlog an honest primary may order first is at most its pool, which gossip keeps
        # close to ours.
        oldest = self.mempool.oldest_ready(lambda did: next_nonce(self.store, did))
        if oldest is None:
            return None
        return oldest.tx_id, self.backlog_ms()

    def backlog_ms(self) -> int:
        """How long the pool takes to commit at the rate measured here (before any measurement:
        the starting block size per target interval)."""
        rate = self.sizer.rate or self.sizer.cap / self.sizer.target_s
        return int(1000 * len(self.mempool) / max(rate, 1.0))

    def digest(self, block: bytes) -> bytes:
        found = self._digests.get(block)
        if found is None:
            decoded = Block.decode(block)
            found = decoded.hash()
            self._digests.put(block, found)
            self._decoded.put(block, decoded)
        return found

    def propose(self, height: int, prev_digest: bytes, now_ms: int) -> bytes | None:
        # Batch: wait for a full block or until the block interval since the last proposal.
        due = self.proposal_due_ms()
        if due is None or now_ms < due:
            return None
        block = self._build(height, prev_digest, now_ms, with_txs=True)
        if block is not None:
            self.last_proposal_ms = now_ms
        return block

    def proposal_due_ms(self) -> int | None:
        """When ``propose`` stops waiting for more txs (0: now), or None with nothing to propose."""
        if not self.mempool:
            return None
        if len(self.mempool) >= self.sizer.cap:
            return 0
        return self.last_proposal_ms + self.genesis.consensus.block_interval_ms

    def empty_block(self, height: int, prev_digest: bytes, now_ms: int) -> bytes:
        raw = self._build(height, prev_digest, now_ms, with_txs=False)
        assert raw is not None
        return raw

    def validate(self, height: int, prev_digest: bytes, block: bytes, now_ms: int) -> str | None:
        parent = self._parent(prev_digest)
        if parent is None:
            return f"parent {prev_digest.hex()[:16]} of height {height} is unknown here"
        reader, parent_ts = parent
        try:
            decoded, execution = check_block(
                block,
                expected_height=height,
                parent_hash=prev_digest,
                parent_timestamp_ms=parent_ts,
                reader=reader,
                now_ms=now_ms,
                max_skew_ms=self.genesis.consensus.max_clock_skew_ms,
                chain_id=self.genesis.chain_id,
                verified_tx_ids=self.verified,
                decoded=self._decoded.pop(block, None),
            )
        except InvalidBlock as e:
            return str(e)
        for tx_id in execution.tx_ids:
            self.verified.add(tx_id)
        digest = decoded.hash()
        self._digests.put(block, digest)
        self._pending[digest] = _Pending(height, decoded, execution)
        return None

    # -- commit ------------------------------------------------------------

    def commit(
        self,
        height: int,
        block: bytes,
        digest: bytes,
        certificate: bytes,
        wal: list[tuple[bytes, bytes]] | None = None,
        durable: bool = True,
    ) -> bytes:
        """Execute (if needed) and store a committed block (with ``wal`` records); returns its root.

        ``durable=False``: the block is durable at the store's next synced write, not at once
        (``ChainStore.commit_block``)."""
        pending = self._pending.pop(digest, None)
        head = self.store.head()
        if pending is None or head.hash != pending.block.header.prev_hash:
            try:
                decoded, execution = check_block(
                    block,
                    expected_height=height,
                    parent_hash=head.hash,
                    parent_timestamp_ms=head.timestamp_ms,
                    reader=self.store,
                    now_ms=None,
                    max_skew_ms=self.genesis.consensus.max_clock_skew_ms,
                    chain_id=self.genesis.chain_id,
                    verified_tx_ids=self.verified,
                )
            except InvalidBlock as e:
                raise ExecutionDiverged(
                    f"committed block {height} ({digest.hex()[:16]}) does not execute on this node's "
                    f"state: {e}; stop this node and resync its data directory from a peer"
                ) from None
        else:
            decoded, execution = pending.block, pending.execution
        self.store.commit_block(block, certificate, execution, wal, block=decoded, durable=durable)
        self.roster.after_commit(execution.changes, height)
        self.last_committed_tx_ids = execution.tx_ids
        tx_ids = list(execution.tx_ids)
        # Every included tx used up its nonce, whatever its result, and a sender's txs are
        # included in nonce order: its last one gives its next nonce, without a state read.
        next_nonces = {tx.sender: tx.nonce + 1 for tx in execution.txs}
        self.mempool.remove(tx_ids)
        for sender, nonce in next_nonces.items():
            stale = self.mempool.prune_stale(sender, nonce)
            tx_ids.extend(tx.tx_id for tx in stale)
        self.store.pending_delete(tx_ids)
        self._pending = {d: p for d, p in self._pending.items() if p.height > height}
        self.sizer.on_commit(len(decoded.txs), time.monotonic(), work_left=len(self.mempool) > 0)
        if RULES_KEY in execution.changes:
            self.warn_if_upgrade_needed()
        # Stop after the last block this release can execute, not stuck without a quorum at the next.
        active_rules(self.store, height + 1)
        return execution.state_root

    def warn_if_upgrade_needed(self) -> None:
        """Log (once per scheduled upgrade) that this software cannot go on past a coming height."""
        pending = pending_upgrade(self.store, self.store.head().height)
        if pending is None or pending == self._warned_upgrade:
            return
        self._warned_upgrade = pending
        height, version = pending
        self.log.warning(
            "the members scheduled rules version %d from height %d; this lendchain release executes "
            "rules up to version %d and will stop before block %d: install a release that supports "
            "rules %d before then",
            version,
            height,
            RULES_VERSION,
            height,
            version,
        )

    # -- helpers -------------------------------------------------------------

    def _parent(self, prev_digest: bytes) -> tuple[StateReader, int] | None:
        """The state and timestamp a block on top of ``prev_digest`` executes against."""
        head = self.store.head()
        if prev_digest == head.hash:
            return self.store, head.timestamp_ms
        pending = self._pending.get(prev_digest)
        if pending is None:
            return None
        parent = self._parent(pending.block.header.prev_hash)
        if parent is None:
            return None
        return OverlayReader(parent[0], pending.execution.changes), pending.block.header.timestamp_ms

    def _build(self, height: int, prev_digest: bytes, now_ms: int, with_txs: bool) -> bytes | None:
        parent = self._parent(prev_digest)
        if parent is None:
            return None
        reader, parent_ts = parent
        params = self.genesis.consensus
        candidates = []
        if with_txs:
            candidates = [
                pending.tx
                for pending in self.mempool.candidates(
                    lambda did: next_nonce(reader, did), self.sizer.cap, params.max_block_bytes
                )
            ]
            if self.censored_senders:  # a test's fault file only
                candidates = [tx for tx in candidates if tx.sender not in self.censored_senders]
        block, execution = make_block(
            parent_hash=prev_digest,
            parent_timestamp_ms=parent_ts,
            height=height,
            proposer=self.me,
            candidate_txs=candidates,
            reader=reader,
            now_ms=now_ms,
            chain_id=self.genesis.chain_id,
        )
        if reader is self.store:
            # Against committed state a dropped tx can never commit: tell its sender why.
            # (On top of an uncommitted block a "used nonce" may be that block's own tx.)
            for dropped in execution.dropped:
                self.mempool.reject(dropped.tx_id, dropped.code, dropped.message)
            if execution.dropped:
                self.store.pending_delete([d.tx_id for d in execution.dropped])
        if with_txs and not block.txs:
            return None
        raw = block.encode()
        digest = block.hash()
        self._digests.put(raw, digest)
        self._pending[digest] = _Pending(height, block, execution)
        return raw
