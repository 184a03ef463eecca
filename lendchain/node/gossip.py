"""Tx gossip in and out of a node: ``GossipIntake`` is a mixin of ``Node`` (daemon.py).

In: py-libp2p runs the validator on every gossip message before delivery
(``_validate_gossip``), then delivers it (``_on_gossip``), which pools its
txs. A message is a msgpack array of raw txs; one bad tx refuses it whole.

The validator checks a message's signatures on the event loop, in one go:
~7 ms of Ed25519 for a message of ~120 txs on a quiet core. On ten nodes
sharing two cores a PRE-PREPARE reached the backups' replicas 1.2-1.7 s
after the primary sent it under the start-up burst (a probe logged both
ends), so two ways of letting the loop run during the checks were measured
(RESULTS.md, seventh session) and neither kept: a worker thread was worse
(it needs the GIL back after every signature while the loop holds it: n = 10
-12 % tx/s, +14 % CPU per tx), and slices of 16 signatures with a checkpoint
between them brought the first backups' PRE-PREPARE forward (0.6 s) but not
the last ones' (1.4-1.5 s), nor the throughput or the view changes.

Out: txs this node admitted from its API go to ``_gossip_outbox``; every
``GOSSIP_FLUSH_S`` the outbox leaves in messages of at most
``GOSSIP_MAX_BYTES``. Behind a backlog the flush waits longer, a tenth of
the time the pool takes to commit (``NodeApp.backlog_ms``, once the node has
measured a commit rate: before that the backlog is a guess), at most
``GOSSIP_FLUSH_MAX_S``: a tx that waits seconds in the queue loses nothing
by leaving a few hundred ms later, and each gossip message costs every
receiver a fixed amount (py-libp2p's signature check of the message, its
parse, decryption and hashing), which on ten nodes under load, where each
node admitted ~9 txs per 0.1 s, was paid for every few txs. An empty outbox
is not polled: the flusher waits for its first tx (``_queue_gossip``).
"""

from __future__ import annotations

import math
from typing import Any

import trio

from lendchain import codec
from lendchain.ledger.transactions import (
    Transaction,
    TxRejected,
    check_stateless,
    decode_transaction,
)
from lendchain.node.mempool import MempoolFull
from lendchain.node.network import NetworkError

GOSSIP_FLUSH_S = 0.1  # batch gossip: py-libp2p pays per message (measured: 0.02 s halves tx/s)
GOSSIP_FLUSH_MAX_S = 0.5
GOSSIP_FLUSH_BACKLOG_SHARE = 0.1  # of the backlog's time to commit
GOSSIP_MAX_TXS = 2000
GOSSIP_CHECKED_MEMORY = 64  # validated gossip messages waiting for their delivery
# py-libp2p's yamux splits a write into 64 KiB frames and locks per frame, so two
# tasks writing one pubsub stream can interleave a big RPC and the receiver dies on
# a protobuf DecodeError. A gossip message under one frame is written atomically.
GOSSIP_MAX_BYTES = 56 * 1024
MAX_GOSSIP_DECODE = 64 << 20


class GossipIntake:
    # -- in ------------------------------------------------------------------------

    def _validate_gossip(self: Any, data: bytes) -> bool:
        """Whether gossip message ``data`` holds only well-formed, signed txs (kept for delivery)."""
        try:
            items = codec.unpack(data, max_size=MAX_GOSSIP_DECODE)
        except codec.CodecError:
            return False
        txs = self._check_batch(items)
        if txs is None:
            return False
        self._gossip_checked.put(id(data), (data, txs))  # delivery follows validation: it takes them here
        return True

    def _check_batch(self: Any, items: object) -> list[Transaction] | None:
        """The txs of a batch from a peer (gossip, relay) if each decodes and its signature checks."""
        if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
            return None
        checked, chain_id = self.app.verified, self.genesis.chain_id
        try:
            txs = [decode_transaction(raw) for raw in items]
            for tx in checked.unchecked(txs):
                check_stateless(tx, chain_id)
        except TxRejected:
            return None
        checked.add_all([tx.id for tx in txs])
        return txs

    def _on_gossip(self: Any, data: bytes) -> None:
        if self.faults.drops_gossip():
            return
        # py-libp2p hands validation and delivery the same message object; an equal copy of a
        # validated message is validated again (then found here by its own id).
        checked = self._gossip_checked.pop(id(data), None)
        if checked is None:
            if not self._validate_gossip(data):
                return
            checked = self._gossip_checked.pop(id(data), None)
        txs = checked[1] if checked is not None else []
        self.metrics.gossip_txs.labels("in").inc(len(txs))
        answers: list[dict[str, Any] | None] = []  # None for each tx accepted
        try:
            self._admit(txs, "gossip", True, answers)
        except MempoolFull:
            self.log.warning("mempool full: dropping gossiped tx; its sender's node will re-gossip it")
        finally:
            accepted = answers.count(None)
            if accepted:  # one count per message: the counter takes a lock per ``inc``
                self.metrics.tx_accepted_from["gossip"].inc(accepted)

    # -- out -----------------------------------------------------------------------

    def _queue_gossip(self: Any, raw: bytes) -> None:
        if not self._gossip_outbox:
            self._gossip_queued.set()  # wakes an idle flusher
        self._gossip_outbox.append(raw)

    async def _gossip_flusher(self: Any) -> None:
        while True:
            step = self._gossip_flush_s()
            await trio.sleep(step)
            if not self._gossip_outbox:
                # Idle: wait for a tx, then flush when this loop's next poll would have come, so
                # a tx waits no longer than before, without ten empty wake-ups a second.
                polled = trio.current_time()
                self._gossip_queued = trio.Event()
                await self._gossip_queued.wait()
                polls = math.ceil((trio.current_time() - polled) / step)
                await trio.sleep_until(polled + polls * step)
            while self._gossip_outbox:
                batch = self._take_gossip_batch()
                if not self.faults.drops_gossip():
                    try:
                        await self.network.publish(codec.pack(batch))
                    except NetworkError as e:  # no host for a moment (a key rotation moves it)
                        self._gossip_outbox[:0] = batch  # first out on the next flush
                        self.log.info("gossip waits for the network: %s", e)
                        break
                self.metrics.gossip_txs.labels("out").inc(len(batch))

    def _gossip_flush_s(self: Any) -> float:
        """How long the outbox collects before the next flush: longer behind a backlog."""
        if self.app.sizer.rate is None:  # no commit rate measured yet: the backlog is a guess
            return GOSSIP_FLUSH_S
        behind_s = self.app.backlog_ms() * GOSSIP_FLUSH_BACKLOG_SHARE / 1000
        return min(GOSSIP_FLUSH_MAX_S, max(GOSSIP_FLUSH_S, behind_s))

    def _take_gossip_batch(self: Any) -> list[bytes]:
        """The oldest outbox txs that fit in one gossip message (at least one)."""
        size = count = 0
        for raw in self._gossip_outbox[:GOSSIP_MAX_TXS]:
            size += len(raw) + 5  # msgpack bin header
            if count and size > GOSSIP_MAX_BYTES:
                break
            count += 1
        batch = self._gossip_outbox[:count]
        del self._gossip_outbox[:count]
        return batch
