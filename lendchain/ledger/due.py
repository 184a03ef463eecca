"""The due-loan index: which disbursed loans the ledger must look at, and when.

Servicing (``servicing.py``) keeps every loan it services here under the
time at which its state may next change by itself (an instalment falling
overdue, a default); the due-loan pass at the start of every block takes the
entries whose time has come, in key order. This module only keeps the index.

Layout. State readers only ``get`` keys (no range scans), so the index is
a few kinds of keys rather than one key per entry:

- ``due/slots`` — the sorted list of slots that hold at least one loan, so
  the pass finds due entries without walking empty hours. A slot (8-byte
  big-endian ms) holds the loans whose next check falls in
  ``(slot − SLOT_MS, slot]``. A check time is rounded up to its slot, so a
  loan is looked at by the first block at or after the end of the hour its
  check falls in: an hour late at most, which changes no amount (penalty
  accrues by block time, see ``servicing``).
- ``due/<slot>`` — ``{"first": f, "last": l}``: the slot's pages in use;
- ``due/<slot>/<page, 4 bytes>`` — up to ``PAGE_ITEMS`` loan ids in the order
  they were filed. A loan is filed on the slot's last page (a new page when
  that one is full) and keeps ``next_check_ms`` and ``due_page``, so that
  moving it rewrites exactly the one page that holds it. A page that
  empties is deleted; the slot goes when its last page does.

Key order is (slot, page, order of filing). Cost of a move: one page of at
most ``PAGE_ITEMS`` ids per slot touched, however many loans share the hour
(at 500 tx/s one hour of chain files ~160,000 loans in a slot), plus
``due/<slot>`` when its pages change and ``due/slots`` when a slot fills or
empties.

How long ``due/slots`` gets. It holds one entry per hour that has a loan
filed in it, so its length is bounded by the hours between the block time
and the farthest check, plus the hours the pass has not reached yet (a
backlog only past ``max_evaluations_per_block`` loans due at once). A loan
is filed at most one instalment ahead (a month and ``grace_days``), or,
overdue on its last instalment, ``default_days`` ahead (90 by default),
except after a restructuring with a payment holiday: its first check is
``holiday_months + 1`` months and ``grace_days`` after the acceptance, at
most 12 + 1 months and 5 days, 395 days (``restructuring``). So the list
never has more than 9,481 entries on a chain with the default parameters
(``tests/ledger/test_due_horizon.py`` files a loan in every hour of that
horizon and checks it): 85 KB packed. Measured on the development machine:
decoding it takes 0.3 ms, packing and hashing it 0.3 ms, a block that opens
one new hour costs 0.6 ms more, and a block of 1,897 transactions that each
open a new hour among 7,584 filled ones 35 ms (18 microseconds per transaction, a
copy and an insertion of the list each). That is small beside a
transaction's other work, so the one-list layout stays; a chain that set
``default_days`` far beyond a year would grow the list in proportion.
"""

from __future__ import annotations

from bisect import insort
from contextlib import suppress
from typing import Any

from lendchain.ledger.context import TxContext

SLOT_MS = 3_600_000  # one hour
SLOTS_KEY = b"due/slots"
PAGE_ITEMS = 256


def slot_key(slot: int) -> bytes:
    return b"due/" + slot.to_bytes(8, "big")


def page_key(slot: int, page: int) -> bytes:
    return _page_under(slot_key(slot), page)


def _page_under(head_key: bytes, page: int) -> bytes:
    """``page_key`` from the slot's key, for a move that has built it already."""
    return head_key + b"/" + page.to_bytes(4, "big")


def slot_of(check_ms: int) -> int:
    """The end of the hour ``check_ms`` falls in (a time already on the hour is its own slot)."""
    return -(-check_ms // SLOT_MS) * SLOT_MS


def _add(ctx: TxContext, slot: int, loan_id: bytes) -> int:
    """File ``loan_id`` on the slot's last page; returns that page's number."""
    head_key = slot_key(slot)
    pages = ctx.get(head_key)
    if pages is None:
        slots = list(ctx.get(SLOTS_KEY) or [])
        insort(slots, slot)
        ctx.put(SLOTS_KEY, slots)
        pages = {"first": 0, "last": 0}
        ctx.put(head_key, pages)
    page = pages["last"]
    key = _page_under(head_key, page)
    loan_ids = ctx.get(key) or []
    if len(loan_ids) >= PAGE_ITEMS:
        page += 1
        key = _page_under(head_key, page)
        loan_ids = []
        ctx.put(head_key, {**pages, "last": page})
    ctx.put(key, [*loan_ids, loan_id])
    return page


def _remove(ctx: TxContext, slot: int, page: int, loan_id: bytes) -> None:
    head_key = slot_key(slot)
    key = _page_under(head_key, page)
    loan_ids = list(ctx.get(key) or [])  # a copy: get shares the stored list
    # Filed once (reschedule takes it off its old page before filing it). One scan of the
    # page, not an ``in`` test and then another scan to remove it.
    with suppress(ValueError):
        loan_ids.remove(loan_id)
    if loan_ids:
        ctx.put(key, loan_ids)
        return
    ctx.delete(key)
    pages = ctx.get(head_key)
    first, last = pages["first"], pages["last"]
    if page == first:  # the slot now starts at its next page still holding loans
        first += 1
        while first <= last and ctx.get(_page_under(head_key, first)) is None:
            first += 1
    if first <= last:
        if first != pages["first"]:
            ctx.put(head_key, {**pages, "first": first})
        return
    ctx.delete(head_key)
    ctx.put(SLOTS_KEY, [other for other in ctx.get(SLOTS_KEY) or [] if other != slot])


def reschedule(
    ctx: TxContext, loan_id: bytes, loan: dict[str, Any], check_ms: int | None, *, own: bool = False
) -> dict[str, Any]:
    """The loan filed under ``check_ms`` (None: taken out of the index); the caller stores it.

    With ``own`` the caller built ``loan`` itself (it is nobody else's value), so it is updated in
    place rather than copied; state values are packed with sorted keys, so the bytes are the same.
    """
    old = loan.get("next_check_ms")
    if old == check_ms:
        return loan
    old_slot = None if old is None else slot_of(old)
    new_slot = None if check_ms is None else slot_of(check_ms)
    page = loan.get("due_page")
    if old_slot != new_slot:
        if old_slot is not None:
            _remove(ctx, old_slot, page, loan_id)
        page = None if new_slot is None else _add(ctx, new_slot, loan_id)
    if own:
        loan["next_check_ms"] = check_ms
        loan["due_page"] = page
        return loan
    return {**loan, "next_check_ms": check_ms, "due_page": page}


def due_loans(ctx: TxContext, limit: int) -> list[bytes]:
    """Up to ``limit`` loan ids filed at or before the block time, in key order."""
    picked: list[bytes] = []
    for slot in ctx.get(SLOTS_KEY) or []:
        if slot > ctx.timestamp_ms or len(picked) >= limit:
            break
        picked.extend(_slot_loans(ctx.get, slot, limit - len(picked)))
    return picked


def _slot_loans(get: Any, slot: int, limit: int) -> list[bytes]:
    pages = get(slot_key(slot))
    picked: list[bytes] = []
    for page in range(pages["first"], pages["last"] + 1):
        if len(picked) >= limit:
            break
        picked.extend((get(page_key(slot, page)) or [])[: limit - len(picked)])
    return picked


def index_size(get: Any) -> int:
    """How many loans the index holds (tests and queries; reads every page)."""
    return sum(len(_slot_loans(get, slot, 1 << 62)) for slot in get(SLOTS_KEY) or [])
