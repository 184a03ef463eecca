"""Payload schemas: the stateless shape of each transaction kind's payload.

A schema is a tuple of ``Field``s. ``check_payload`` refuses missing and
unknown fields, wrong types and out-of-range values with ``bad_payload`` and
a message naming the field, so every kind gets the same checks for free.

A choice a later rules version added (``Field.choices_since``) is well-formed
under every version, as the stateless checks have no height; ``check_rules``
refuses it under an older version when a block is executed, as if it were
no choice at all (see ``rules``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from lendchain.ledger.errors import TxRejected

# The JSON-compatible type names a field may have; bool is not an int here.
_TYPES: dict[str, type] = {"int": int, "str": str, "bytes": bytes, "bool": bool}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = True
    min: int | None = None  # smallest int value, or shortest str/bytes length
    max: int | None = None  # largest int value, or longest str/bytes length
    choices: tuple[str, ...] = ()
    # (choice, rules version that added it): before that version it is no choice (``check_rules``)
    choices_since: tuple[tuple[str, int], ...] = ()
    pattern: str | None = None  # a full-match regex for str fields

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"field {self.name!r} has unknown type {self.type!r}")

    @cached_property
    def matcher(self) -> Callable[[str], re.Match[str] | None]:
        """``re.fullmatch`` with ``pattern``, compiled once (not looked up in re's cache per value)."""
        assert self.pattern is not None
        return re.compile(self.pattern).fullmatch


@dataclass(frozen=True)
class Schema:
    fields: tuple[Field, ...]

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    def field_names(self) -> frozenset[str]:
        return self.names

    @cached_property
    def versioned(self) -> tuple[Field, ...]:
        """The fields with a choice some rules version added (none for most kinds)."""
        return tuple(f for f in self.fields if f.choices_since)


def check_payload(kind: str, schema: Schema, payload: Any) -> None:
    """Raise ``TxRejected('bad_payload', …)`` unless ``payload`` matches ``schema``."""
    if not isinstance(payload, dict):
        raise TxRejected("bad_payload", f"{kind} payload must be a map, got {type(payload).__name__}")
    names = schema.names
    if not names.issuperset(payload):
        unknown = sorted(set(payload) - names)
        raise TxRejected("bad_payload", f"{kind} payload has unknown field {unknown[0]!r}")
    # Every tx runs this loop for each of its payload's fields, so the checks are written
    # out here rather than called per field; messages are only built for a refusal.
    for f in schema.fields:
        if f.name not in payload:
            if f.required:
                raise TxRejected("bad_payload", f"{kind} payload is missing field {f.name!r}")
            continue
        value = payload[f.name]
        expected = _TYPES[f.type]
        # bool is a subclass of int in Python; a payload must not pass True as an amount.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise TxRejected("bad_payload", f"{_where(kind, f)} must be {f.type}, got {type(value).__name__}")
        if expected is not bool:
            size = value if expected is int else len(value)
            if f.min is not None and size < f.min:
                raise TxRejected(
                    "bad_payload", f"{_where(kind, f)} must be at least {f.min}{_unit(f)}, got {size}"
                )
            if f.max is not None and size > f.max:
                raise TxRejected(
                    "bad_payload", f"{_where(kind, f)} must be at most {f.max}{_unit(f)}, got {size}"
                )
        if f.choices and value not in f.choices:
            raise _not_a_choice(_where(kind, f), f.choices, value)
        if f.pattern is not None and f.matcher(value) is None:
            raise TxRejected("bad_payload", f"{_where(kind, f)} must match {f.pattern}, got {value!r}")


def _where(kind: str, f: Field) -> str:
    return f"{kind} field {f.name!r}"


def _unit(f: Field) -> str:
    return "" if f.type == "int" else " long"


def check_rules(kind: str, schema: Schema, payload: dict[str, Any], rules: int) -> None:
    """Refuse a choice added after rules version ``rules`` as ``check_payload`` refuses an unknown one.

    ``payload`` already passed ``check_payload``.
    """
    for f in schema.versioned:
        since = dict(f.choices_since)
        if since.get(payload.get(f.name), 1) > rules:
            known = tuple(choice for choice in f.choices if since.get(choice, 1) <= rules)
            raise _not_a_choice(f"{kind} field {f.name!r}", known, payload[f.name])


def _not_a_choice(where: str, choices: tuple[str, ...], value: Any) -> TxRejected:
    return TxRejected("bad_payload", f"{where} must be one of {', '.join(choices)}, got {value!r}")
