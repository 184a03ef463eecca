"""The due-loan index: which disbursed loans the ledger must look at, and when.

Servicing (``servicing.py``) keeps every loan it services here under the
time at which its state may next change by itself (an instalment falling
overdue, a default); the due-loan pass at the start of every block takes the
entries whose time has come, in key order. This module only keeps the index.

Layout. State readers only ``get`` keys (no range scans), so the index is
two kinds of keys rather than one key per entry:

- ``due/<slot>`` (slot: 8-byte big-endian ms) — the sorted ids of the loans
  whose next check falls in ``(slot − SLOT_MS, slot]``. A check time is
  rounded up to its slot, so a loan is looked at by the first block at or
  after the end of the hour its check falls in: an hour late at most, which
  changes no amount (penalty accrues by block time, see ``servicing``).
- ``due/slots`` — the sorted list of slots that hold at least one loan, so
  the pass finds due entries without walking empty hours.

Key order is (slot, loan id). The loan keeps its own ``next_check_ms`` so
that moving it removes exactly its old entry. Cost of a move: one small list
per slot touched, plus ``due/slots`` when a slot fills or empties; it has at
most a few thousand entries, since checks fall within the next few months.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from lendchain.ledger.context import TxContext

SLOT_MS = 3_600_000  # one hour
SLOTS_KEY = b"due/slots"


def slot_key(slot: int) -> bytes:
    return b"due/" + slot.to_bytes(8, "big")


def slot_of(check_ms: int) -> int:
    """The end of the hour ``check_ms`` falls in (a time already on the hour is its own slot)."""
    return -(-check_ms // SLOT_MS) * SLOT_MS


def _add(ctx: TxContext, slot: int, loan_id: bytes) -> None:
    loan_ids = list(ctx.get(slot_key(slot)) or [])
    if not loan_ids:
        slots = list(ctx.get(SLOTS_KEY) or [])
        insort(slots, slot)
        ctx.put(SLOTS_KEY, slots)
    position = bisect_left(loan_ids, loan_id)
    if position == len(loan_ids) or loan_ids[position] != loan_id:
        loan_ids.insert(position, loan_id)
    ctx.put(slot_key(slot), loan_ids)


def _remove(ctx: TxContext, slot: int, loan_id: bytes) -> None:
    loan_ids = list(ctx.get(slot_key(slot)) or [])
    position = bisect_left(loan_ids, loan_id)
    if position < len(loan_ids) and loan_ids[position] == loan_id:
        del loan_ids[position]
    if loan_ids:
        ctx.put(slot_key(slot), loan_ids)
        return
    ctx.delete(slot_key(slot))
    ctx.put(SLOTS_KEY, [other for other in ctx.get(SLOTS_KEY) or [] if other != slot])


def reschedule(ctx: TxContext, loan_id: bytes, loan: dict[str, Any], check_ms: int | None) -> dict[str, Any]:
    """The loan filed under ``check_ms`` (None: taken out of the index); the caller stores it."""
    old = loan.get("next_check_ms")
    if old == check_ms:
        return loan
    old_slot = None if old is None else slot_of(old)
    new_slot = None if check_ms is None else slot_of(check_ms)
    if old_slot != new_slot:
        if old_slot is not None:
            _remove(ctx, old_slot, loan_id)
        if new_slot is not None:
            _add(ctx, new_slot, loan_id)
    return {**loan, "next_check_ms": check_ms}


def due_loans(ctx: TxContext, limit: int) -> list[bytes]:
    """Up to ``limit`` loan ids filed at or before the block time, in key order."""
    picked: list[bytes] = []
    for slot in ctx.get(SLOTS_KEY) or []:
        if slot > ctx.timestamp_ms or len(picked) >= limit:
            break
        picked.extend(ctx.get(slot_key(slot))[: limit - len(picked)])
    return picked


def index_size(get: Any) -> int:
    """How many loans the index holds (tests and queries; reads every slot)."""
    return sum(len(get(slot_key(slot)) or []) for slot in get(SLOTS_KEY) or [])
