"""What a node shows: tx status, blocks with certificates, chain queries, status.

Mixed into ``Node``; everything here only reads the store, the mempool and
the replica.
"""

from __future__ import annotations

import time
from typing import Any

from lendchain.crypto import did_from_public_key
from lendchain.ledger import queries
from lendchain.ledger.state import next_nonce
from lendchain.ledger.transactions import decode_transaction
from lendchain.node.driver import verify_certificate


class NodeViews:
    def tx_status(self, tx_id: bytes) -> dict[str, Any]:
        location = self.store.tx_location(tx_id)
        if location is not None:
            height, index, result = location
            return {
                "id": tx_id.hex(),
                "status": "committed",
                "height": height,
                "index": index,
                "block_hash": self.store.block(height).hash().hex(),
                "result": result.to_json(),
            }
        if tx_id in self.mempool:
            return {"id": tx_id.hex(), "status": "pending"}
        outcome = self.mempool.recent_outcome(tx_id)
        if outcome is not None:
            return {
                "id": tx_id.hex(),
                "status": outcome.status,
                "code": outcome.code,
                "message": outcome.message,
            }
        return {"id": tx_id.hex(), "status": "unknown"}

    def _block_json(self, height: int) -> dict[str, Any] | None:
        block = self.store.block(height)
        if block is None:
            return None
        doc = block.to_json()
        certificate = self.store.certificate(height)
        if certificate is not None:
            cert = verify_certificate(self.genesis.chain_id, self.members, certificate)
            doc["certificate"] = {
                "view": cert.view,
                "signers": cert.signers(self.members),
                "hex": certificate.hex(),
            }
        return doc

    def block(self, ref: str) -> dict[str, Any] | None:
        if ref == "head":
            return self._block_json(self.store.head().height)
        if ref.isdigit():
            return self._block_json(int(ref))
        try:
            height = self.store.height_of_hash(bytes.fromhex(ref))
        except ValueError:
            return None
        return None if height is None else self._block_json(height)

    def blocks(self, start: int, limit: int) -> list[dict[str, Any]]:
        head = self.store.head().height
        return [b for h in range(start, min(head, start + limit - 1) + 1) if (b := self._block_json(h))]

    def commits_since(self, height: int, limit: int) -> dict[str, Any]:
        head = self.store.head().height
        out = []
        for h in range(height + 1, min(head, height + limit) + 1):
            block = self.store.block(h)
            out.append(
                {
                    "height": h,
                    "hash": block.hash().hex(),
                    "timestamp_ms": block.header.timestamp_ms,
                    "txs": [decode_transaction(raw).id.hex() for raw in block.txs],
                }
            )
        return {"head": head, "commits": out}

    def query(self, kind: str, ref: str) -> dict[str, Any] | None:
        if kind == "nonce":
            return {
                "did": ref,
                "committed_nonce": next_nonce(self.store, ref),
                "next_nonce": self._next_nonce(ref),
            }
        return queries.lookup(self.store, kind, ref)

    def status(self) -> dict[str, Any]:
        head = self.store.head()
        replica = self.replica
        target = self.driver.sync_target if self.driver else self._observer_target
        return {
            "name": self.config.name,
            "did": did_from_public_key(self.key.public_key),
            "chain_id": self.genesis.chain_id,
            "role": "member" if self.voting else "observer",
            "height": head.height,
            "head_hash": head.hash.hex(),
            "state_root": head.state_root.hex(),
            "view": replica.view if replica else None,
            "primary": replica.primary if replica else None,
            "in_view_change": replica.in_view_change if replica else False,
            "stable_checkpoint": replica.stable_checkpoint if replica else None,
            "members": [m.name for m in self.genesis.members],
            "peers": sorted(self.network.connected_members()),
            "mempool": {"txs": len(self.mempool), "bytes": self.mempool.size_bytes},
            "sync": {
                "state": "catching_up" if target > head.height else "synced",
                "target": max(target, head.height),
                "blocks_per_s": self._commit_rate(),
            },
            "uptime_s": round(time.monotonic() - self._started, 1),
        }

    def _commit_rate(self, window_s: float = 10.0) -> float:
        """Blocks committed per second over the last ``window_s`` (catch-up progress)."""
        now = time.monotonic()
        recent = [t for t in self._recent_commits if now - t <= window_s]
        return round(len(recent) / window_s, 1)
