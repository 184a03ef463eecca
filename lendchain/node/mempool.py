"""The mempool: signed transactions waiting for a block.

Owns three promises the API makes to a client:

- a transaction the node accepted is either committed, or reported as
  expired or rejected with a reason (``recent_outcome``) — never dropped
  silently;
- the pool is bounded in transactions and bytes; when it is full the API
  refuses new work (HTTP 503 with a retry hint) instead of accepting and
  dropping it;
- per sender, transactions leave in nonce order, so a block never carries
  a nonce gap (``candidates``).

It does not check signatures or state: callers check a tx before ``add``,
so every tx held here is one whose signature this node verified (``NodeApp``
relies on that to never verify a pooled tx twice). It holds the decoded
transactions, so a block cut from the pool, or checked against it, decodes
nothing again.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import NamedTuple

from lendchain.ledger.transactions import Transaction
from lendchain.node.config import MempoolConfig

# How many recent expiries/rejections are remembered for status queries.
OUTCOME_MEMORY = 100_000


class MempoolFull(Exception):
    """The pool is at its size limit; the client should retry later."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PendingTx(NamedTuple):
    """A pooled tx and when it came: immutable, as a frozen dataclass would be, but built in
    less than half the time (one per tx a node pools; the dataclass's ``__init__`` set each
    field with ``object.__setattr__``, and its instance carried a dict for the collector to walk)."""

    tx: Transaction  # signature already verified on this node
    added_ms: int

    @property
    def tx_id(self) -> bytes:
        return self.tx.id

    @property
    def sender(self) -> str:
        return self.tx.sender

    @property
    def nonce(self) -> int:
        return self.tx.nonce

    @property
    def raw(self) -> bytes:
        return self.tx.encode()


# ``new_pending((tx, added_ms))`` is ``PendingTx(tx, added_ms)`` without the Python frame of a
# named tuple's ``__new__``: admission builds one for every tx a node pools.
new_pending = partial(tuple.__new__, PendingTx)


@dataclass(frozen=True)
class Outcome:
    """Why a transaction the node once held is no longer pending."""

    status: str  # "expired" | "rejected"
    code: str
    message: str


@dataclass
class _Sender:
    by_nonce: dict[int, PendingTx] = field(default_factory=dict)
    # Every nonce in [run_from, run_end) is pending: ``next_free_nonce`` starts its walk at
    # run_end, so a sender with thousands of queued txs (a lender) costs O(1) per new tx.
    run_from: int = 0
    run_end: int = 0


class Mempool:
    def __init__(self, config: MempoolConfig) -> None:
        self.config = config
        self._by_id: dict[bytes, PendingTx] = {}
        # The pooled tx ids, a live view: ``tx_id in mempool.ids`` and ``len(mempool.ids)`` answer
        # what ``tx_id in mempool`` and ``len(mempool)`` do, without a Python call
        # (``Node._admit`` and ``CheckedSignatures`` ask for every tx a node takes in).
        self.ids = self._by_id.keys()
        # Arrival order across senders: the fairness order for block building.
        self._arrival: OrderedDict[bytes, None] = OrderedDict()
        self._senders: dict[str, _Sender] = {}
        self._bytes = 0
        self._outcomes: OrderedDict[bytes, Outcome] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._by_id

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, tx_id: bytes) -> PendingTx | None:
        return self._by_id.get(tx_id)

    def add(self, pending: PendingTx) -> bool:
        """Add a checked transaction; False if it was already pending.

        A second transaction for the same (sender, nonce) is refused: the
        first one seen wins, like a bank refusing a duplicate cheque number.
        """
        # The Transaction's own fields, each read once: this runs for every tx a node pools,
        # and PendingTx's fields are properties over the tx (a Python call each).
        tx = pending.tx
        tx_id = tx.id
        if tx_id in self._by_id:
            return False
        size = len(tx.encode())
        if len(self._by_id) >= self.config.max_txs or self._bytes + size > self.config.max_bytes:
            raise MempoolFull(f"mempool is full ({len(self._by_id)} txs, {self._bytes} bytes); retry shortly")
        did, nonce = tx.sender, tx.nonce
        sender = self._senders.get(did)
        if sender is None:
            sender = self._senders[did] = _Sender()
        existing = sender.by_nonce.get(nonce)
        if existing is not None:
            raise ValueError(f"nonce {nonce} of {did} is already taken by pending tx {existing.tx_id.hex()}")
        sender.by_nonce[nonce] = pending
        self._by_id[tx_id] = pending
        self._arrival[tx_id] = None
        self._bytes += size
        self._outcomes.pop(tx_id, None)
        return True

    def next_free_nonce(self, sender: str, committed: int) -> int:
        """The first nonce from ``committed`` (the sender's next committed nonce) not pending here."""
        entry = self._senders.get(sender)
        if entry is None:
            return committed
        by_nonce = entry.by_nonce
        nonce = entry.run_end if entry.run_from <= committed < entry.run_end else committed
        while nonce in by_nonce:
            nonce += 1
        entry.run_from, entry.run_end = committed, nonce
        return nonce

    def pending_run(self, sender: str, start: int, end: int) -> list[PendingTx]:
        """The sender's pending txs with nonces ``start``, ``start + 1``, … below ``end``, while unbroken."""
        entry = self._senders.get(sender)
        run: list[PendingTx] = []
        while entry is not None and start + len(run) < end and start + len(run) in entry.by_nonce:
            run.append(entry.by_nonce[start + len(run)])
        return run

    def pending_at(self, sender: str, nonce: int) -> PendingTx | None:
        entry = self._senders.get(sender)
        return entry.by_nonce.get(nonce) if entry is not None else None

    def candidates(
        self, next_nonce: Callable[[str], int], max_txs: int, max_bytes: int, scan: int | None = None
    ) -> Iterator[PendingTx]:
        """Transactions for the next block: per sender contiguous from its next nonce.

        Senders are visited in the arrival order of their oldest pending
        transaction; a sender whose next nonce is missing is skipped. With
        ``scan``, only the senders of the ``scan`` oldest arrivals are visited.
        """
        emitted = 0
        size = 0
        seen_senders: set[str] = set()
        for tx_id in self._arrival if scan is None else islice(self._arrival, scan):
            tx = self._by_id[tx_id]
            if tx.sender in seen_senders:
                continue
            seen_senders.add(tx.sender)
            by_nonce = self._senders[tx.sender].by_nonce
            nonce = next_nonce(tx.sender)
            while nonce in by_nonce:
                item = by_nonce[nonce]
                if emitted >= max_txs or size + len(item.raw) > max_bytes:
                    return
                yield item
                emitted += 1
                size += len(item.raw)
                nonce += 1

    def oldest(self, limit: int) -> list[bytes]:
        """The ids of the ``limit`` txs that arrived first."""
        return list(islice(self._arrival, limit))

    def oldest_ready(self, next_nonce: Callable[[str], int], scan: int = 64) -> PendingTx | None:
        """The tx ``candidates`` puts first, looking at the ``scan`` oldest arrivals only; None if
        none of their senders can go next (a bounded walk: it runs on a timer)."""
        return next(self.candidates(next_nonce, 1, sys.maxsize, scan), None)

    def remove(self, tx_ids: list[bytes]) -> None:
        """Drop transactions that were committed."""
        for tx_id in tx_ids:
            self._drop(tx_id)

    def prune_stale(self, sender: str, next_nonce: int) -> list[PendingTx]:
        """Reject this sender's pending txs whose nonce was used by a committed tx."""
        entry = self._senders.get(sender)
        if entry is None:
            return []
        stale = [tx for nonce, tx in entry.by_nonce.items() if nonce < next_nonce]
        for tx in stale:
            self._drop(tx.tx_id)
            self._remember(
                tx.tx_id,
                Outcome("rejected", "bad_nonce", f"nonce {tx.nonce} was used by another committed tx"),
            )
        return stale

    def expire(self, now_ms: int) -> list[PendingTx]:
        """Remove and report transactions older than the TTL."""
        cutoff = now_ms - self.config.tx_ttl_ms
        expired = []
        for tx_id in self._arrival:
            tx = self._by_id[tx_id]
            if tx.added_ms > cutoff:
                break
            expired.append(tx)
        for tx in expired:
            self._drop(tx.tx_id)
            self._remember(
                tx.tx_id,
                Outcome("expired", "expired", f"not committed within {self.config.tx_ttl_ms} ms"),
            )
        return expired

    def recent_outcome(self, tx_id: bytes) -> Outcome | None:
        return self._outcomes.get(tx_id)

    def reject(self, tx_id: bytes, code: str, message: str) -> None:
        """Drop a pending tx that can never commit, remembering why."""
        if tx_id in self._by_id:
            self._drop(tx_id)
        self._remember(tx_id, Outcome("rejected", code, message))

    def _drop(self, tx_id: bytes) -> None:
        pending = self._by_id.pop(tx_id, None)
        if pending is None:
            return
        self._arrival.pop(tx_id, None)
        # The Transaction's own fields, not PendingTx's properties: a block's commit drops
        # thousands of txs, and each property read is a Python call.
        tx = pending.tx
        self._bytes -= len(tx.encode())
        entry = self._senders[tx.sender]
        nonce = tx.nonce
        entry.by_nonce.pop(nonce, None)
        if not entry.by_nonce:
            del self._senders[tx.sender]
        elif nonce == entry.run_from:  # committed from the bottom: the rest of the run holds
            entry.run_from += 1
        elif entry.run_from < nonce < entry.run_end:  # a hole in the run: forget it
            entry.run_end = entry.run_from

    def _remember(self, tx_id: bytes, outcome: Outcome) -> None:
        self._outcomes[tx_id] = outcome
        while len(self._outcomes) > OUTCOME_MEMORY:
            self._outcomes.popitem(last=False)
