"""The registry of transaction kinds: kind name -> (payload schema, handler).

A domain module adds its kinds at import time with ``register_kind``; the
stateless checks (``transactions.check_stateless``) and the executor look
kinds up here and know nothing else about them. ``lendchain.ledger``'s
``__init__`` imports every domain module, so importing any part of the
ledger registers every kind.
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


_KINDS: dict[str, TxKind] = {}


def register_kind(name: str, schema: Schema, handler: Handler) -> None:
    """Add a transaction kind; registering one name twice is a programming error."""
    if name in _KINDS:
        raise ValueError(f"transaction kind {name!r} is already registered")
    _KINDS[name] = TxKind(name, schema, handler)


def lookup_kind(name: str) -> TxKind | None:
    return _KINDS.get(name)


def known_kinds() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))
