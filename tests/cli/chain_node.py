"""A ledger test chain behind the ``NodeClient`` calls the book commands make.

Reads answer from the chain's state as the node's API would (``/status``,
``/parties/{did}``, ``/portfolio/{did}/loans``, ``/nonces``, ``/txs/{id}``).
Each batch sent on the stream joins a mempool and a block is cut from it at
once, a sender's txs taken in nonce order: a tx behind a missing nonce waits,
as on a node. A test can have the node refuse a batch once (mempool full), or
close the stream after some batches (an interrupted run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lendchain.client import NodeError
from lendchain.crypto import SigningKey
from lendchain.ledger import queries
from lendchain.ledger.exposure import book_page
from lendchain.ledger.rules import rules_status
from lendchain.ledger.state import next_nonce
from lendchain.ledger.transactions import Transaction, build_transaction, decode_transaction
from tests.ledger.chain import CHAIN_ID, GENESIS_MS, Chain


class ChainNode:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.mempool: dict[bytes, Transaction] = {}
        self.statuses: dict[bytes, dict[str, Any]] = {}
        self.batches: list[list[str]] = []  # every batch the node took, in order
        self.full_once: set[int] = set()  # batch numbers refused once as if the mempool were full
        self.close_after: int | None = None  # the stream closes after this many batches
        self.before_block: list[Callable[[], None]] = []  # run once, before the next block is cut

    def __enter__(self) -> ChainNode:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    # -- reads ------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        parts = path.strip("/").split("/")
        state = self.chain.state
        if parts == ["status"]:
            return {"height": self.chain.height, "rules": rules_status(state, self.chain.height)}
        if parts[0] == "parties":
            found = queries.lookup(state, "party", parts[1])
        elif parts[0] == "portfolio" and parts[2:] == ["loans"]:
            found = book_page(
                state, parts[1], params["from"], params["limit"], bool(params.get("written_off", 0))
            )
        else:
            raise AssertionError(f"the book commands do not read {path}")
        if found is None:
            raise NodeError(f"nothing at {path}", 404, "not_found")
        return found

    def next_nonce(self, did: str) -> int:
        nonce = next_nonce(self.chain.state, did)
        while any(tx.sender == did and tx.nonce == nonce for tx in self.mempool.values()):
            nonce += 1
        return nonce

    def build(self, key: SigningKey, kind: str, payload: dict[str, Any], nonce: int) -> Transaction:
        return build_transaction(key, CHAIN_ID, kind, nonce, payload, GENESIS_MS)

    def tx(self, tx_id: str) -> dict[str, Any]:
        raw = bytes.fromhex(tx_id)
        if raw in self.mempool:
            return {"id": tx_id, "status": "pending"}
        if raw not in self.statuses:
            raise NodeError(f"no transaction {tx_id} is known to this node", 404, "not_found")
        return self.statuses[raw]

    def wait_tx(self, tx_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        status = self.tx(tx_id)
        if status["status"] == "pending":
            raise NodeError(f"tx {tx_id} still pending after {timeout_s:.0f} s")
        return status

    # -- the stream ---------------------------------------------------------------------

    def stream(self) -> ChainNode:
        return self

    def submit_pipelined(self, batches: Iterable[list[str]], window: int = 8) -> Iterator[Any]:
        for number, items in enumerate(batches):
            if number == self.close_after:
                raise NodeError("the stream ws://node/txs/stream closed (1006)")
            if number in self.full_once:
                self.full_once.discard(number)
                error = NodeError("mempool is full (9 txs, 9 bytes); retry shortly", 503, "mempool_full")
                error.retry_after_s = 0
                yield error
                continue
            yield self.submit_hex(items)

    def submit_hex(self, items: list[str]) -> list[dict[str, Any]]:
        self.batches.append(items)
        txs = [decode_transaction(bytes.fromhex(item)) for item in items]
        for tx in txs:
            self.mempool[tx.id] = tx
        self._cut()
        return [{"id": tx.id.hex(), "status": "accepted"} for tx in txs]

    def _cut(self) -> None:
        """A block of what the mempool holds, each sender's txs in nonce order up to a missing one."""
        for hook in self.before_block:
            hook()
        self.before_block.clear()
        ready = []
        for tx in sorted(self.mempool.values(), key=lambda tx: (tx.sender, tx.nonce)):
            if tx.nonce == next_nonce(self.chain.state, tx.sender) + sum(
                t.sender == tx.sender for t in ready
            ):
                ready.append(tx)
        if not ready:
            return
        block, execution = self.chain.cut(ready)
        self.chain.apply(block, execution)
        for result in execution.results:
            tx = self.mempool.pop(result.tx_id)
            self.chain.nonces[tx.sender] = tx.nonce + 1
            self.statuses[result.tx_id] = {
                "id": result.tx_id.hex(),
                "status": "committed",
                "height": self.chain.height,
                "result": result.to_json(),
            }
