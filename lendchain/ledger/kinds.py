"""The registry of transaction kinds and block hooks.

A domain module adds its kinds at import time with ``register_kind``; the
stateless checks (``transactions.check_stateless``) and the executor look
kinds up here and know nothing else about them. ``lendchain.ledger``'s
``__init__`` imports every domain module, so importing any part of the
ledger registers every kind.

A block hook (``register_block_hook``) is work the ledger does by itself at
the start of every block, before its first transaction, with a context whose
``tx_id`` is ``LEDGER_TX_ID``: servicing's due-loan pass is one. Its writes
go into the block's state changes like a transaction's, and its events into
the block's results root (see ``execute``). A hook must be deterministic and
bounded, and must not refuse: it has no sender to refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lendchain.ledger.schema import Schema

if TYPE_CHECKING:
    from lendchain.ledger.context import TxContext
    from lendchain.ledger.transactions import Transaction

# A handler applies one transaction through its context and raises TxRejected
# to refuse it; writes made before the refusal are discarded by the executor.
Handler = Callable[["TxContext", "Transaction"], None]


@dataclass(frozen=True)
class TxKind:
    name: str
    schema: Schema
    handler: Handler
    since: int = 1  # the rules version that added the kind (see ``rules``): before it, no such kind


_KINDS: dict[str, TxKind] = {}

# The tx id a block hook's context carries (and its history entries record): no tx has it.
LEDGER_TX_ID = bytes(32)
BlockHook = Callable[["TxContext"], None]
_BLOCK_HOOKS: list[tuple[str, BlockHook]] = []


def register_kind(name: str, schema: Schema, handler: Handler, since: int = 1) -> None:
    """Add a transaction kind, executable from rules version ``since``; a name twice is a programming error."""
    if name in _KINDS:
        raise ValueError(f"transaction kind {name!r} is already registered")
    _KINDS[name] = TxKind(name, schema, handler, since)


# ``lookup_kind(name)``: the kind named ``name``, or None. The dict's own ``get``, without a
# Python frame: every tx a node takes in looks its kind up (``check_stateless``).
lookup_kind: Callable[[str], TxKind | None] = _KINDS.get


def known_kinds() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def register_block_hook(name: str, hook: BlockHook) -> None:
    """Run ``hook`` at the start of every block, after the hooks registered before it."""
    if any(existing == name for existing, _ in _BLOCK_HOOKS):
        raise ValueError(f"block hook {name!r} is already registered")
    _BLOCK_HOOKS.append((name, hook))


def block_hooks() -> tuple[BlockHook, ...]:
    return tuple(hook for _, hook in _BLOCK_HOOKS)
