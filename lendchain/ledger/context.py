"""What a transaction handler sees while it runs: reads, writes and events.

Two layers over the committed state: the block overlay (decoded values the
block has read or written so far) and, on top, one transaction's writes.
A handler's writes reach the block only if it returns without raising, so a
refused transaction leaves nothing behind but its consumed nonce.

Values are shared with the overlay's cache: a handler builds new dicts and
lists instead of mutating what ``get`` returned (``get`` copies the top
level of a map, which covers the common ``{**loan, "state": …}`` update).
"""

from __future__ import annotations

from typing import Any

import msgpack

from lendchain import codec
from lendchain.ledger.state import StateReader


def decode_state_value(raw: bytes) -> Any:
    """Decode a value read from committed state.

    State values were written canonically by this ledger (``pack_state_value``),
    so the re-encode check of ``codec.unpack`` is skipped here; it would double
    the cost of every read. Wire input (txs, blocks) always goes through
    ``codec.unpack``.
    """
    return msgpack.unpackb(raw, raw=False, strict_map_key=True)


def _sort_maps(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _sort_maps(value[key]) for key in sorted(value)}
    if kind is list or kind is tuple:
        return [_sort_maps(item) for item in value]
    if kind is int or kind is str or kind is bytes or kind is bool or value is None:
        return value
    # Anything else (a float, an object) is a handler bug; codec.pack names it.
    return codec.pack(value)


def pack_state_value(value: Any) -> bytes:
    """``codec.pack`` for values handlers build from decoded state and validated payloads.

    Same bytes as ``codec.pack`` (maps sorted by key, ints minimal, str/bytes
    kept apart) on the types handlers use, without its per-value checks.
    """
    return msgpack.packb(_sort_maps(value), use_bin_type=True)


class BlockOverlay:
    """Decoded reads and pending writes of one block over a StateReader."""

    def __init__(self, reader: StateReader) -> None:
        self._reader = reader
        self._values: dict[bytes, Any] = {}
        self._dirty: set[bytes] = set()

    def read(self, key: bytes) -> Any | None:
        if key in self._values:
            return self._values[key]
        raw = self._reader.get(key)
        value = None if raw is None else decode_state_value(raw)
        self._values[key] = value
        return value

    def write(self, key: bytes, value: Any | None) -> None:
        self._values[key] = value
        self._dirty.add(key)

    def changes(self) -> dict[bytes, bytes | None]:
        """The block's writes, encoded; ``None`` deletes a key."""
        return {
            key: None if self._values[key] is None else pack_state_value(self._values[key])
            for key in self._dirty
        }


class TxContext:
    """One transaction's view: the block so far plus its own uncommitted writes."""

    def __init__(
        self,
        overlay: BlockOverlay,
        tx_id: bytes,
        height: int,
        timestamp_ms: int,
        params: dict[str, Any],
    ) -> None:
        self.tx_id = tx_id
        self.height = height
        self.timestamp_ms = timestamp_ms
        self.params = params
        self.events: list[dict[str, Any]] = []
        self.writes: dict[bytes, Any | None] = {}
        # loan id -> (history length, hash of its last entry) for every loan whose history this
        # context extended; the executor turns them into ``loan.history`` receipt events.
        self.history_heads: dict[bytes, tuple[int, bytes]] = {}
        self._overlay = overlay

    def get(self, key: bytes) -> Any | None:
        value = self.writes[key] if key in self.writes else self._overlay.read(key)
        return dict(value) if isinstance(value, dict) else value

    def put(self, key: bytes, value: Any) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def emit(self, event: str, **fields: Any) -> None:
        """Record a small receipt event; values must be JSON-friendly (ids as hex)."""
        self.events.append({"event": event, **fields})

    def receipt_events(self) -> list[dict[str, Any]]:
        """The emitted events, then one ``loan.history`` commitment per loan whose history grew.

        The commitment (length and head hash of the loan's history after this tx)
        lands in the results root, so an audit export can prove no entry is missing.
        """
        commitments = [
            {"event": "loan.history", "loan_id": loan_id.hex(), "length": length, "head": head.hex()}
            for loan_id, (length, head) in self.history_heads.items()
        ]
        return [*self.events, *commitments]
