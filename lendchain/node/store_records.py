"""A node's own records in its chain store, beside the chain: the txs it accepted and has not
seen committed, and the peers' node keys it refuses (split from store.py for size).

``NodeRecords`` is a mixin of ``ChainStore``: it writes through the store's ``_write`` (so a
failed write poisons the store as any other does) and reads with its ``_get`` and ``_scan``.
"""

from __future__ import annotations

from typing import Any

from lendchain import codec

# Accepted, not yet committed txs: written (unsynced: a process crash keeps them, the OS
# page cache holds them) before the API answers 202, reloaded into the mempool on start.
PENDING = b"p:"
# This node's own record, not chain data, under the store's meta prefix ``m:``: peers' node
# keys it refuses (see ``retire_keys``).
RETIRED_KEYS = b"m:retired_keys"


class NodeRecords:
    _pending_ids: set[bytes]
    _write: Any
    _get: Any
    _scan: Any

    def pending_put(self, txs: list[tuple[bytes, bytes]]) -> None:
        """Remember accepted txs (id, raw) so a restart does not lose them."""
        self._write([(PENDING + tx_id, raw) for tx_id, raw in txs], sync=False, what="accepted txs")
        self._pending_ids.update(tx_id for tx_id, _ in txs)

    def pending_delete(self, tx_ids: list[bytes]) -> None:
        """Forget accepted txs; ids this store never held cost nothing (most of a block's)."""
        held = [tx_id for tx_id in tx_ids if tx_id in self._pending_ids]
        if held:
            self._write([(PENDING + tx_id, None) for tx_id in held], sync=False, what="accepted txs")
            self._pending_ids.difference_update(held)

    def retired_keys(self) -> dict[str, list[bytes]]:
        """Member name -> the node keys this node refuses it for: it has proved a newer one."""
        raw = self._get(RETIRED_KEYS)
        return codec.unpack(raw) if raw else {}

    def retire_keys(self, name: str, keys: list[bytes]) -> None:
        """Add to ``name``'s refused keys (synced: a restart must not admit them again)."""
        retired = self.retired_keys()
        retired[name] = sorted({*retired.get(name, ()), *keys})
        self._write([(RETIRED_KEYS, codec.pack(retired))], sync=True, what="retired node keys")

    def pending_items(self) -> list[tuple[bytes, bytes]]:
        return [(key[len(PENDING) :], value) for key, value in self._scan(PENDING)]
