"""``TxContext.receipt_events``'s one-loan path gives the list the general path gives."""

from __future__ import annotations

import pytest

from lendchain.ledger.context import BlockOverlay, TxContext
from lendchain.ledger.state import MemoryState


def reference_receipt_events(context):
    if not context.history_heads:
        return list(context.events)
    commitments = [
        {"event": "loan.history", "loan_id": loan_id.hex(), "length": length, "head": head.hex()}
        for loan_id, (length, head) in context.history_heads.items()
    ]
    return [*context.events, *commitments]


@pytest.mark.parametrize("loans", [0, 1, 2, 3])
@pytest.mark.parametrize("events", [0, 1, 2])
def test_receipt_events_are_the_events_then_one_commitment_per_loan(loans, events):
    context = TxContext(BlockOverlay(MemoryState()), b"\x01" * 32, 3, 0, {})
    for number in range(events):
        context.emit("loan.repaid", number=number)
    for number in range(loans):
        context.history_heads[bytes([number]) * 32] = (number + 4, bytes([9 - number]) * 32)
    got = context.receipt_events()
    assert got == reference_receipt_events(context)
    assert len(got) == events + loans
    assert got is not context.events  # a new list: the events stay the context's own
