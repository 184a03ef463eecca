"""Transactions in: ``TxAdmission`` is the ``Node`` mixin (daemon.py) that admits txs to the mempool.

A tx comes from the API (``submit``), from gossip (``GossipIntake._on_gossip``),
from a relay or from the txs this node kept on disk before a restart
(``_restore_pending``). Each goes through ``_admit``, a stream or gossip
message's txs in one loop, a relayed or restored tx through ``_accept``:
pending already, committed already, a replaced member key, its signature
(unless just checked), its nonce, then the mempool.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from lendchain.ledger.transactions import Transaction, TxRejected, check_stateless, decode_transaction
from lendchain.node.driver import now_ms
from lendchain.node.mempool import MempoolFull, new_pending

# A sender may queue at most this many nonces ahead of its committed one.
MAX_NONCE_GAP = 10_000


class TxAdmission:
    def submit(self: Any, raw_txs: list[bytes]) -> list[dict[str, Any]]:
        """The API's answer for each of ``raw_txs``, in order: accepted, known or rejected.

        All are decoded first, then admitted in one batch (``_admit``).
        """
        results: list[dict[str, Any] | None] = []  # None: decoded, its answer is admission's
        txs: list[Transaction] = []
        for raw in raw_txs:
            try:
                txs.append(decode_transaction(raw))
            except TxRejected as e:
                self.metrics.tx_rejected.labels(e.code).inc()
                results.append({"id": None, "status": "rejected", "code": e.code, "message": e.message})
            else:
                results.append(None)
        answers: list[dict[str, Any] | None] = []
        try:
            self._admit(txs, "api", False, answers)
        finally:
            # Kept in LevelDB until it commits, expires or is rejected: a crash does not lose it.
            # One batch per request (a MempoolFull part-way still keeps what was accepted), and
            # one count: the counter takes a lock per ``inc``.
            kept = [(tx.id, tx.encode()) for tx, answer in zip(txs, answers, strict=False) if answer is None]
            if kept:
                self.store.pending_put(kept)
                self.metrics.tx_accepted_from["api"].inc(len(kept))
        admitted = [
            answer or {"id": tx.id.hex(), "status": "accepted"}
            for tx, answer in zip(txs, answers, strict=True)
        ]
        if len(admitted) == len(results):  # every tx decoded: the usual request
            return admitted
        answered = iter(admitted)
        return [result or next(answered) for result in results]

    def _accept(self: Any, tx: Transaction, source: str, verified: bool = False) -> dict[str, Any]:
        """Admit one decoded tx (``_admit``) and count it if accepted; its answer as the API gives it."""
        answers: list[dict[str, Any] | None] = []
        self._admit((tx,), source, verified, answers)
        if answers[0] is None:
            self.metrics.tx_accepted_from[source].inc()
            return {"id": tx.id.hex(), "status": "accepted"}
        return answers[0]

    def _admit(
        self: Any,
        txs: Iterable[Transaction],
        source: str,
        verified: bool,
        answers: list[dict[str, Any] | None],
    ) -> None:
        """Admit decoded txs to the mempool in order; ``verified`` when their signatures were just checked.

        Appends to ``answers`` one entry per tx: None for a tx accepted, else the API's answer
        (known, or rejected with its code and sentence). On ``MempoolFull`` the txs before
        stay admitted and answered, and the error goes up. Counting accepted txs in
        ``lendchain_tx_accepted`` is the caller's: one ``inc`` per batch (it takes a lock).
        One loop for a whole batch (a gossip message holds ~100 txs, a stream message
        hundreds): what every tx needs is looked up once, and the clocks are read once, so
        a batch's txs share one arrival time (for expiry and the commit-latency metric).
        """
        pooled = self.mempool.ids  # ``in`` and ``len`` without a Python call
        pool_add, next_free_nonce = self.mempool.add, self.mempool.next_free_nonce
        nonces = self._nonce_memory()  # a synchronous loop: the head does not move under it
        signers, checked, chain_id = self.signers, self.app.verified, self.genesis.chain_id
        rejected = self.metrics.tx_rejected
        outgoing = source in ("api", "restore")
        backlog_ms = self.app.backlog_ms() if outgoing else 0  # the batch's wait: regossip.py
        added_ms = now_ms()
        accepted: list[bytes] = []
        try:
            for tx in txs:
                tx_id = tx.id
                # Pending here first, before any state read: gossip repeats and relays bring those.
                if tx_id in pooled:
                    answers.append({"id": tx_id.hex(), "status": "known", "state": "pending"})
                    continue
                sender, nonce = tx.sender, tx.nonce
                committed = nonces.get(sender)
                if committed is None:
                    committed = self._committed_nonce(sender)
                # Every committed tx used up its nonce (execution advances it whatever the tx's
                # result), so a tx at or above its sender's next nonce is not in the tx index: a
                # new tx, the common case, skips that LevelDB read (4.6 % of a backup's CPU in a
                # py-spy profile).
                if nonce < committed and self.store.has_tx(tx_id):
                    answers.append({"id": tx_id.hex(), "status": "known", "state": "committed"})
                    continue
                try:
                    if sender in signers:  # a member's key: a rotation may have replaced it
                        self._refuse_replaced_key(tx, self.store.head().height + 1)  # now, not in a block
                    if not verified and tx_id not in checked:
                        check_stateless(tx, chain_id)
                        checked.add(tx_id)
                    expected = next_free_nonce(sender, committed)
                    if nonce < committed:
                        raise TxRejected(
                            "bad_nonce", f"nonce {nonce} of {sender} is already used; next is {expected}"
                        )
                    if nonce > expected + MAX_NONCE_GAP:
                        raise TxRejected(
                            "bad_nonce", f"nonce {nonce} is more than {MAX_NONCE_GAP} ahead of {expected}"
                        )
                    pool_add(new_pending((tx, added_ms)))
                except TxRejected as e:
                    rejected.labels(e.code).inc()
                    answers.append(
                        {"id": tx_id.hex(), "status": "rejected", "code": e.code, "message": e.message}
                    )
                    continue
                except MempoolFull:
                    rejected.labels("mempool_full").inc()
                    raise
                except ValueError as e:  # same sender and nonce already pending
                    rejected.labels("duplicate_nonce").inc()
                    refusal = {"id": tx_id.hex(), "status": "rejected", "code": "duplicate_nonce"}
                    answers.append({**refusal, "message": str(e)})
                    continue
                if len(pooled) == 1 and self.driver is not None:
                    self.driver.nudge()  # the first tx of an idle pool: the primary proposes at once
                answers.append(None)
                accepted.append(tx_id)
                if outgoing:
                    self._queue_gossip(tx.encode())
                    self._regossip.add(tx_id, added_ms, backlog_ms)
        finally:
            if accepted:  # for the commit-latency metric
                self._accepted_at.put_all(accepted, time.monotonic())

    def _restore_pending(self: Any) -> None:
        """Put back the txs this node accepted before a crash or restart and had not committed."""
        restored = gone = 0
        items = [(tx_id, decode_transaction(raw)) for tx_id, raw in self.store.pending_items()]
        items.sort(key=lambda item: item[1].nonce)
        for tx_id, tx in items:
            # Accepted: its record stays as it is (the store read it, and knows its id).
            if self._accept(tx, source="restore")["status"] == "accepted":
                restored += 1
            else:
                self.store.pending_delete([tx_id])
                gone += 1
        if restored or gone:
            self.log.info(
                "restored %d accepted txs into the mempool (%d had committed or lapsed)", restored, gone
            )
