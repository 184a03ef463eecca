"""What a transaction handler sees while it runs: reads, writes and events.

Two layers over the committed state: the block overlay (decoded values the
block has read or written so far) and, on top, one transaction's writes.
A handler's writes reach the block only if it returns without raising, so a
refused transaction leaves nothing behind but its consumed nonce.

Values are shared with the overlay's cache: a handler builds new dicts and
lists instead of mutating what ``get`` returned (``get`` copies the top
level of a map, which covers the common ``{**loan, "state": …}`` update).
``peek`` hands out the block's value itself, without that copy, to code that
only reads it (the actor check, the lifecycle handlers that rebuild a loan).

Canonical bytes are packed at most once per value: a value read from the
store keeps the bytes it was read as, and a value written with
``put_encoded`` (a history entry, hashed as it is written) keeps the bytes it
was hashed as, so neither is packed again to be hashed or to be stored.
"""

from __future__ import annotations

from typing import Any

import ormsgpack

from lendchain import codec
from lendchain.ledger.state import StateReader


def decode_state_value(raw: bytes) -> Any:
    """Decode a value read from committed state.

    State values were written canonically by this ledger (``codec.pack``),
    so the re-encode check of ``codec.unpack`` is skipped here; it would double
    the cost of every read. Wire input (txs, blocks) always goes through
    ``codec.unpack``. (``codec.unpack_trusted``, called here without its own frame: once per
    first read of a key in a block.)
    """
    return ormsgpack.unpackb(raw)


class BlockOverlay:
    """Decoded reads and pending writes of one block over a StateReader."""

    def __init__(self, reader: StateReader) -> None:
        self._reader = reader
        self._values: dict[bytes, Any] = {}
        # The canonical bytes of a value, where known without packing: as read from the
        # reader (the ledger wrote them with codec.pack) or as written with put_encoded.
        self._encoded: dict[bytes, bytes] = {}
        self._dirty: set[bytes] = set()

    def read(self, key: bytes) -> Any | None:
        values = self._values
        if key in values:
            return values[key]
        raw = self._encoded.get(key)  # ``_stored``, inlined: every first read of a key comes here
        if raw is None:
            raw = self._reader.get(key)
            if raw is not None:
                self._encoded[key] = raw
        value = values[key] = None if raw is None else decode_state_value(raw)
        return value

    def _stored(self, key: bytes) -> bytes | None:
        """The reader's bytes for a key not yet in ``_values``, read once (kept in ``_encoded``)."""
        raw = self._encoded.get(key)  # read by read_encoded, not decoded yet
        if raw is None:
            raw = self._reader.get(key)
            if raw is not None:
                self._encoded[key] = raw
        return raw

    def read_encoded(self, key: bytes) -> bytes:
        """The canonical bytes of ``read(key)`` (nil for a missing key), packed only if not known.

        Bytes read from the reader are not decoded here: the one caller hashes
        a loan's previous history entry, whose value it never looks at.
        """
        if key not in self._values:
            raw = self._stored(key)
            if raw is not None:
                return raw
            self._values[key] = None
        value = self.read(key)
        encoded = self._encoded.get(key)
        if encoded is None:
            encoded = self._encoded[key] = codec.pack_trusted(value)
        return encoded

    def write(self, key: bytes, value: Any | None, encoded: bytes | None = None) -> None:
        """Set ``key``; ``encoded``, when given, must be ``codec.pack(value)``."""
        self._values[key] = value
        self._dirty.add(key)
        if encoded is None:
            self._encoded.pop(key, None)
        else:
            self._encoded[key] = encoded

    def write_all(self, writes: dict[bytes, Any | None], encoded: dict[bytes, bytes]) -> None:
        """``write`` of every item of ``writes``; ``encoded`` holds the known bytes of some of them."""
        self._values.update(writes)
        self._dirty.update(writes)
        known = self._encoded
        for key in writes:
            if key in encoded:
                known[key] = encoded[key]
            else:
                known.pop(key, None)

    def changes(self) -> dict[bytes, bytes | None]:
        """The block's writes, encoded; ``None`` deletes a key."""
        changes: dict[bytes, bytes | None] = {}
        for key in self._dirty:
            value = self._values[key]
            if value is None:
                changes[key] = None
            elif key in self._encoded:
                changes[key] = self._encoded[key]
            else:
                changes[key] = codec.pack_trusted(value)
        return changes


class TxContext:
    """One transaction's view: the block so far plus its own uncommitted writes."""

    def __init__(
        self,
        overlay: BlockOverlay,
        tx_id: bytes,
        height: int,
        timestamp_ms: int,
        params: dict[str, Any],
        rules: int = 1,
    ) -> None:
        self.tx_id = tx_id
        self.height = height
        self.timestamp_ms = timestamp_ms
        self.params = params
        self.rules = rules  # the rules version the block executes under (see ``rules``)
        self.events: list[dict[str, Any]] = []
        self.writes: dict[bytes, Any | None] = {}
        # The canonical bytes of the writes made with put_encoded (until overwritten).
        self.encoded_writes: dict[bytes, bytes] = {}
        # loan id -> (history length, hash of its last entry) for every loan whose history this
        # context extended; the executor turns them into ``loan.history`` receipt events.
        self.history_heads: dict[bytes, tuple[int, bytes]] = {}
        self._overlay = overlay
        self._block_values = overlay._values  # what the block read or wrote: looked up here first

    def get(self, key: bytes) -> Any | None:
        writes = self.writes
        if key in writes:
            value = writes[key]
        else:
            values = self._block_values
            value = values[key] if key in values else self._overlay.read(key)
        return dict(value) if isinstance(value, dict) else value

    def peek(self, key: bytes) -> Any | None:
        """``get`` without its copy, for a caller that only reads the value (never changes it)."""
        writes = self.writes
        if key in writes:
            return writes[key]
        values = self._block_values
        return values[key] if key in values else self._overlay.read(key)

    def get_encoded(self, key: bytes) -> bytes:
        """The canonical bytes of ``get(key)`` (the stored bytes when this block has not changed it)."""
        if key in self.writes:
            if key in self.encoded_writes:
                return self.encoded_writes[key]
            return codec.pack_trusted(self.writes[key])
        return self._overlay.read_encoded(key)

    def put(self, key: bytes, value: Any) -> None:
        self.writes[key] = value
        if key in self.encoded_writes:  # rare (a value written with put_encoded, rewritten)
            del self.encoded_writes[key]

    def put_encoded(self, key: bytes, value: Any) -> bytes:
        """``put``, keeping the value's canonical bytes (for a value that is hashed now); returns them."""
        encoded = codec.pack_trusted(value)
        self.writes[key] = value
        self.encoded_writes[key] = encoded
        return encoded

    def delete(self, key: bytes) -> None:
        self.writes[key] = None
        self.encoded_writes.pop(key, None)

    def commit(self) -> None:
        """Hand this context's writes to the block overlay (the handler returned normally)."""
        self._overlay.write_all(self.writes, self.encoded_writes)

    def emit(self, event: str, **fields: Any) -> None:
        """Record a small receipt event; values must be JSON-friendly (ids as hex)."""
        self.events.append({"event": event, **fields})

    def receipt_events(self) -> list[dict[str, Any]]:
        """The emitted events, then one ``loan.history`` commitment per loan whose history grew.

        The commitment (length and head hash of the loan's history after this tx)
        lands in the results root, so an audit export can prove no entry is missing.
        """
        heads = self.history_heads
        if not heads:  # party and KYC txs: no loan history
            return list(self.events)
        if len(heads) == 1:  # a lifecycle tx: one loan, without a comprehension's frame
            ((loan_id, (length, head)),) = heads.items()
            commitment = {
                "event": "loan.history",
                "loan_id": loan_id.hex(),
                "length": length,
                "head": head.hex(),
            }
            return [*self.events, commitment]
        commitments = [
            {"event": "loan.history", "loan_id": loan_id.hex(), "length": length, "head": head.hex()}
            for loan_id, (length, head) in heads.items()
        ]
        return [*self.events, *commitments]
