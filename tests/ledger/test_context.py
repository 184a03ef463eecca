"""TxContext and BlockOverlay: canonical bytes are reused, never stale."""

from lendchain import codec
from lendchain.ledger import context as context_module
from lendchain.ledger.context import BlockOverlay, TxContext
from lendchain.ledger.state import MemoryState

STORED = {"b": [1, b"x"], "a": "first"}


def _context(overlay: BlockOverlay) -> TxContext:
    return TxContext(overlay, b"\x01" * 32, 1, 1_700_000_000_000, {})


def test_a_stored_value_is_hashed_from_the_bytes_it_was_read_as():
    raw = codec.pack(STORED)
    overlay = BlockOverlay(MemoryState({b"k": raw}))
    assert _context(overlay).get_encoded(b"k") is raw
    assert overlay.read(b"k") == STORED
    assert _context(overlay).get_encoded(b"missing") == codec.pack(None)


def test_put_encoded_bytes_are_what_the_block_stores():
    overlay = BlockOverlay(MemoryState())
    context = _context(overlay)
    encoded = context.put_encoded(b"k", {"z": 1, "a": [True, None]})
    assert encoded == codec.pack({"a": [True, None], "z": 1})
    assert context.get_encoded(b"k") is encoded
    context.commit()
    assert overlay.changes() == {b"k": encoded}


def test_a_later_plain_write_replaces_the_kept_bytes():
    overlay = BlockOverlay(MemoryState({b"k": codec.pack(STORED)}))
    first = _context(overlay)
    first.put_encoded(b"k", {"v": 1})
    first.put(b"k", {"v": 2})
    assert first.get_encoded(b"k") == codec.pack({"v": 2})
    first.commit()
    second = _context(overlay)
    assert second.get_encoded(b"k") == codec.pack({"v": 2})
    second.put_encoded(b"other", {"v": 3})
    second.delete(b"other")
    assert second.get_encoded(b"other") == codec.pack(None)
    second.commit()
    assert overlay.changes() == {b"k": codec.pack({"v": 2}), b"other": None}


def test_writes_of_a_context_that_is_not_committed_leave_nothing():
    overlay = BlockOverlay(MemoryState())
    _context(overlay).put_encoded(b"k", {"v": 1})
    assert overlay.changes() == {}
    assert overlay.read_encoded(b"k") == codec.pack(None)


class CountingState(MemoryState):
    """A MemoryState that counts its gets."""

    def __init__(self, values: dict[bytes, bytes]) -> None:
        super().__init__(values)
        self.gets = 0

    def get(self, key: bytes) -> bytes | None:
        self.gets += 1
        return super().get(key)


def test_hashing_a_stored_value_reads_it_once_and_decodes_it_only_when_read(monkeypatch):
    decoded = []
    real = context_module.decode_state_value
    monkeypatch.setattr(context_module, "decode_state_value", lambda raw: decoded.append(raw) or real(raw))
    raw = codec.pack(STORED)
    state = CountingState({b"k": raw})
    overlay = BlockOverlay(state)
    assert _context(overlay).get_encoded(b"k") is raw
    assert _context(overlay).get_encoded(b"k") is raw
    assert (state.gets, decoded) == (1, [])
    assert _context(overlay).get(b"k") == STORED  # the kept bytes are decoded, not read again
    assert (state.gets, decoded) == (1, [raw])
    assert _context(overlay).get_encoded(b"missing") == codec.pack(None)
    assert _context(overlay).get(b"missing") is None
    assert state.gets == 2


def test_a_value_hashed_then_rewritten_in_the_block_is_stored_as_rewritten():
    overlay = BlockOverlay(MemoryState({b"k": codec.pack(STORED)}))
    first = _context(overlay)
    first.get_encoded(b"k")
    first.put(b"k", {**first.get(b"k"), "a": "second"})
    first.commit()
    assert _context(overlay).get_encoded(b"k") == codec.pack({"a": "second", "b": [1, b"x"]})
    assert overlay.changes() == {b"k": codec.pack({"a": "second", "b": [1, b"x"]})}


def test_get_hands_out_a_copy_and_peek_the_value_the_block_holds():
    overlay = BlockOverlay(MemoryState({b"k": codec.pack(STORED)}))
    context = _context(overlay)
    copy, held = context.get(b"k"), context.peek(b"k")
    assert copy == held == STORED and copy is not held and held is overlay.read(b"k")
    copy["a"] = "changed"  # a handler may change what get gave it: the block does not see it
    assert context.peek(b"k") == STORED and overlay.changes() == {}
    context.put(b"k", {"a": "written"})
    assert context.peek(b"k") == {"a": "written"} and context.peek(b"missing") is None
    assert _context(overlay).peek(b"k") == STORED  # not committed: another tx sees the block's value
