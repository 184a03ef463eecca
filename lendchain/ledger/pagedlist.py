"""An append-only list kept in state as bounded pages, so appending costs the same at any length.

A servicer's loan list grows with every loan it funds; kept as one value, each
append would read, copy, re-pack, hash and rewrite the whole list (1.5 MB for
a lender of 45,000 loans), and so would LevelDB's compaction after it.

Layout for a list under ``key``:

- ``key`` — ``{"count": n, "tail": [...]}``: the length, and the items after
  the last full page (fewer than ``PAGE_ITEMS``);
- ``key + b"/" + <page number, 4 bytes big-endian>`` — each full page of
  ``PAGE_ITEMS`` items, page 0 first.

An append rewrites the head only, plus one new page every ``PAGE_ITEMS``
appends; a short list (the usual borrower's) is read with one get, as before.
Reading a long list costs one get per page, so only queries and rare
handlers should walk one whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

PAGE_ITEMS = 256

Getter = Callable[[bytes], Any]


def page_key(key: bytes, number: int) -> bytes:
    return key + b"/" + number.to_bytes(4, "big")


def append(get: Getter, put: Callable[[bytes, Any], None], key: bytes, item: Any) -> None:
    """Add ``item`` at the end of the list under ``key`` (created empty when absent)."""
    head = get(key) or {"count": 0, "tail": []}
    tail = [*head["tail"], item]
    if len(tail) == PAGE_ITEMS:
        put(page_key(key, head["count"] // PAGE_ITEMS), tail)
        tail = []
    put(key, {"count": head["count"] + 1, "tail": tail})


def items(get: Getter, key: bytes) -> Iterator[Any]:
    """The list's items in the order they were appended (empty when absent)."""
    head = get(key)
    if head is None:
        return
    for number in range((head["count"] - len(head["tail"])) // PAGE_ITEMS):
        yield from get(page_key(key, number))
    yield from head["tail"]


def window(get: Getter, key: bytes, start: int, count: int) -> list[Any]:
    """The items at positions ``start`` … ``start + count - 1`` (fewer at the list's end).

    Reads only the pages the window covers: a client pages through a long
    list with a request per window, each costing about the same.
    """
    head = get(key)
    if head is None:
        return []
    in_pages = head["count"] - len(head["tail"])
    end = min(start + count, head["count"])
    found: list[Any] = []
    position = start
    while position < end:
        if position < in_pages:
            offset = position % PAGE_ITEMS
            part = get(page_key(key, position // PAGE_ITEMS))[offset : offset + end - position]
        else:
            part = head["tail"][position - in_pages : end - in_pages]
        found += part
        position += len(part)
    return found


def length(get: Getter, key: bytes) -> int:
    head = get(key)
    return 0 if head is None else head["count"]


def last(get: Getter, key: bytes) -> Any | None:
    """The item appended last (None for an empty list): one get, two when the tail is empty."""
    head = get(key)
    if head is None or not head["count"]:
        return None
    if head["tail"]:
        return head["tail"][-1]
    return get(page_key(key, head["count"] // PAGE_ITEMS - 1))[-1]
