"""Members' names for the views, read when a view is asked for, never stored.

The ledger's records name a member by its DID (a loan's lender, a funder, the member a share or
a transfer is offered to, a credit report's furnisher, a proposal's voters); the member's name is
in its ``inst/<did>`` record, which a member keeps when removed. A view adds the names so that a
reader (the CLI, the console, a point-in-time report) needs no member list of its own:

- a flat row gets ``<field>_name`` beside the field (``named``), as ``lender_name`` beside
  ``lender``: None when the DID is no member's (a registered party: parties have no names on chain);
- a view whose member DIDs are spread over nested records (a loan's funding, history and
  guarantees; a funder's positions; a proposal's votes) gets one ``member_names`` map,
  ``{did: name}`` for every member DID anywhere in it (``names_in``).

Nothing here is part of what a block does: the records, their encoding and the state root are
unchanged, and so is every view field that was there before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lendchain.ledger.state import institution_key

Getter = Callable[[bytes], Any]
_DID_PREFIX = "did:key:"


class MemberNames:
    """The names of the members ``get`` reads, each DID read at most once per view."""

    def __init__(self, get: Getter) -> None:
        self._get = get
        self._known: dict[str, str | None] = {}

    def __call__(self, did: str | None) -> str | None:
        """The name of the member ``did`` is; None for no DID or no member's."""
        if did is None:
            return None
        if did not in self._known:
            institution = self._get(institution_key(did))
            self._known[did] = institution["name"] if institution else None
        return self._known[did]

    def named(self, record: dict[str, Any], *fields: str) -> dict[str, Any]:
        """``record`` with ``<field>_name`` added after each of ``fields`` it has (a copy)."""
        return {**record, **{f"{field}_name": self(record[field]) for field in fields if field in record}}

    def names_in(self, value: Any) -> dict[str, str]:
        """``{did: name}`` of every member whose DID is a string anywhere in ``value`` (JSON-ready)."""
        names = ((did, self(did)) for did in dids_in(value))
        return {did: name for did, name in names if name is not None}


def member_name(get: Getter, did: str | None) -> str | None:
    """The name of the member ``did`` is; None for no DID or no member's."""
    return MemberNames(get)(did)


def dids_in(value: Any) -> list[str]:
    """The strings in ``value`` (JSON-ready) that are DIDs, keys of a map too, each once.

    A view of a loan holds some 500 values, most of them numbers: one walk with no recursion and
    no copies, about 50 us for such a view.
    """
    found: dict[str, None] = {}
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            if item.startswith(_DID_PREFIX):
                found[item] = None
        elif kind is dict:
            push(item.values())
            found.update((key, None) for key in item if type(key) is str and key.startswith(_DID_PREFIX))
        elif kind is list:
            push(item)
    return list(found)
