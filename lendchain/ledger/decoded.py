"""State values decoded (or packed) lately, by their bytes, for the blocks that read them again.

A block reads what the blocks just before it wrote: the loan a repayment
changed comes back with the next one, a borrower's party record with its
application. Decoding a loan record's ~500 bytes costs about as much as the
rest of reading it, so ``BlockOverlay`` asks here first: the value of bytes
it read, or of bytes it packed for a block's changes, is kept by those bytes.

Keyed by the bytes themselves, a kept value is right whichever block, chain
or state the bytes came from: a proposal that never committed, a store
reopened after a crash, restored or synced, another fork. What it relies on
is the overlay's rule (``context``): nobody changes a value the overlay
hands out; handlers build new dicts and lists. A value changed in place
would now change what later blocks read on this node alone, so under
``LENDCHAIN_CHECK_TRUSTED_PACK=1`` (the test suite) every value found here is
packed again and must give back its bytes.

Bounded by values and by their bytes (a due-index page of 256 ids is ~9 KB
packed and several times that decoded): two generations, and when the newer
holds half of either bound it becomes the older one and the oldest is
dropped whole.
"""

from __future__ import annotations

import os
from typing import Any

from lendchain import codec

MEMORY_VALUES = 8_192
MEMORY_BYTES = 4 << 20  # packed; decoded, a few times that
MISSING: Any = object()

_VERIFY = os.environ.get(codec.CHECK_TRUSTED_ENV) == "1"


class ChangedInPlace(RuntimeError):
    """A value handed out to handlers was changed in place (a bug in a handler)."""


class DecodedValues:
    """Decoded state values by their canonical bytes (see the module docstring)."""

    def __init__(self, max_values: int = MEMORY_VALUES, max_bytes: int = MEMORY_BYTES) -> None:
        self._half_values = max(1, max_values // 2)
        self._half_bytes = max(1, max_bytes // 2)
        self._newer: dict[bytes, Any] = {}
        self._older: dict[bytes, Any] = {}
        self._newer_bytes = 0

    def get(self, raw: bytes) -> Any:
        """The value of ``raw`` if kept, else ``MISSING``."""
        value = self._newer.get(raw, MISSING)
        if value is MISSING:
            value = self._older.get(raw, MISSING)
        if _VERIFY and value is not MISSING and codec.pack(value) != raw:
            raise ChangedInPlace(f"a state value was changed in place after it was read: {value!r:.200}")
        return value

    def remember(self, raw: bytes, value: Any) -> None:
        """Keep ``value``, which ``raw`` decodes to (or is ``codec.pack(value)``)."""
        newer = self._newer
        newer[raw] = value
        self._newer_bytes += len(raw)
        if len(newer) >= self._half_values or self._newer_bytes >= self._half_bytes:
            self._older, self._newer, self._newer_bytes = newer, {}, 0

    def clear(self) -> None:
        self._newer, self._older, self._newer_bytes = {}, {}, 0

    def __len__(self) -> int:
        return len(self._newer) + len(self._older)


# The one memory of this process: state values are the same values on every chain it executes.
DECODED = DecodedValues()
