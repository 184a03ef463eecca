"""Transactions sent straight to the primary, around gossip.

Gossip can fail between two members for a long time without anyone seeing
it (py-libp2p can lose a subscription; see ``Network._repair_gossip``). If
it fails on the path to the primary, the primary never orders those
transactions while it commits everyone else's. So a backup whose request
timer (consensus/timers.py) has waited for its oldest transaction longer
than an honest primary would need sends it to the primary (``RelayRequest``),
with the pool's other oldest transactions: a primary that missed one tx from
a member has likely missed the others it sent then. It sends the request
alone to the other members too, as a PBFT client broadcasts a request it
retransmits: should the primary leave it out on purpose, every backup's
request timer then runs for it, and enough of them ask for a view change.
(The oldest txs went to every member at first: at n = 10 on two cores a
backup's relay then cost the network 18,000 tx receptions.) The relay goes
over a request stream (``/lendchain/request/1``, the catch-up protocol),
which does not depend on gossip, and it goes before the no-progress timer
would depose a primary that has heard of nothing.

A relay is one request ``{"txs": [raw tx, ...]}``; the answer counts the
receiver's verdicts (``{"accepted": n, "known": n, ...}``). The receiver
checks relayed transactions exactly as gossip: a batch with one bad
signature is refused whole. A member whose node predates relays answers
``{"error": "bad sync request"}``; nothing else changes for it.

Relays are best effort: the queue is bounded, a failed relay is logged and
counted, and a primary that still leaves the transaction out is deposed by
the request timer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from lendchain import codec
from lendchain.ledger.transactions import Transaction
from lendchain.node.mempool import Mempool, MempoolFull

RELAY_QUEUE = 64  # relays waiting to be sent; beyond this they are dropped (and counted)
RELAY_TIMEOUT_S = 5.0
RELAY_MAX_BYTES = 1 << 20  # raw tx bytes per relay request
RELAY_OLDEST = 2000  # the pool's oldest txs that go with a request the timer relays


def encode_relay(raw_txs: list[bytes]) -> bytes:
    return codec.pack({"txs": raw_txs})


def decode_relay(payload: bytes, max_size: int) -> list[bytes] | None:
    """The raw txs of a relay request, or None when ``payload`` is some other request."""
    try:
        request = codec.unpack(payload, max_size=max_size)
    except codec.CodecError:
        return None
    if not isinstance(request, dict) or set(request) != {"txs"}:
        return None
    txs = request["txs"]
    if not isinstance(txs, list) or not all(isinstance(raw, bytes) for raw in txs):
        return None
    return txs


class Relay:
    def __init__(
        self,
        request: Callable[[str, bytes, float], Awaitable[bytes]],
        check: Callable[[list[bytes]], list[Transaction] | None],
        accept: Callable[[Transaction], dict[str, Any]],
        mempool: Mempool,
        voters: list[str],
        metrics: Any,
        log: logging.Logger,
    ) -> None:
        self._request, self._check, self._accept = request, check, accept
        self._mempool, self.voters = mempool, voters  # the other voting members (``roles`` updates it)
        self.metrics, self.log = metrics, log
        self._out, self._queue = trio.open_memory_channel(RELAY_QUEUE)

    # -- sending -----------------------------------------------------------------------

    def send_request(self, primary: str, request: bytes) -> None:
        """What the request timer relays: ``request`` and the pool's oldest txs to the primary,
        then ``request`` alone to the other voting members."""
        ids = dict.fromkeys([request, *self._mempool.oldest(RELAY_OLDEST)])
        self.send(primary, [tx.raw for tx in map(self._mempool.get, ids) if tx is not None])
        pending = self._mempool.get(request)
        if pending is not None:
            for to in self.voters:
                if to != primary:
                    self.send(to, [pending.raw])

    def send(self, to: str, raw_txs: list[bytes]) -> None:
        """Queue ``raw_txs`` for member ``to``, in requests of at most RELAY_MAX_BYTES; never blocks."""
        batch: list[bytes] = []
        size = 0
        for raw in raw_txs:
            if batch and size + len(raw) > RELAY_MAX_BYTES:
                self._put(to, batch)
                batch, size = [], 0
            batch.append(raw)
            size += len(raw)
        if batch:
            self._put(to, batch)

    def _put(self, to: str, batch: list[bytes]) -> None:
        try:
            self._out.send_nowait((to, batch))
        except trio.WouldBlock:
            self.metrics.relay_failures.inc()

    async def run(self) -> None:
        async for to, batch in self._queue:
            try:
                answer = codec.unpack(await self._request(to, encode_relay(batch), RELAY_TIMEOUT_S))
            except Exception as e:  # NetworkError, a timeout, an answer that is not msgpack
                self.metrics.relay_failures.inc()
                self.log.info("could not relay %d txs to %s: %s", len(batch), to, e)
                continue
            if not isinstance(answer, dict) or "error" in answer:
                self.metrics.relay_failures.inc()
                self.log.info("%s refused %d relayed txs: %r", to, len(batch), answer)
                continue
            self.metrics.relayed_txs.labels("out").inc(len(batch))
            # Txs new to the receiver are what gossip lost on the way: worth an operator's eye.
            level = logging.INFO if answer.get("accepted") else logging.DEBUG
            self.log.log(level, "relayed %d txs to %s: %s", len(batch), to, answer)

    # -- receiving ---------------------------------------------------------------------

    def receive(self, member: str, raw_txs: list[bytes]) -> bytes:
        """Pool the txs ``member`` relayed here; the answer counts what became of them."""
        txs = self._check(raw_txs)
        if txs is None:
            self.log.warning("%s relayed %d txs and one does not check; refused them", member, len(raw_txs))
            return codec.pack({"error": "a relayed transaction does not decode or its signature is wrong"})
        verdicts: Counter[str] = Counter()
        for index, tx in enumerate(txs):
            try:
                verdicts[self._accept(tx)["status"]] += 1
            except MempoolFull:
                verdicts["mempool_full"] += len(txs) - index
                break
        self.metrics.relayed_txs.labels("in").inc(len(txs))
        return codec.pack(dict(verdicts))
