"""How far ahead the due-loan index reaches, and how long ``due/slots`` gets (``ledger.due``'s docstring).

A 12-month payment holiday (``restructuring``) files a loan's first check 13
months and ``grace_days`` after the acceptance: the farthest any loan is
filed on a chain with the default parameters. ``due/slots`` has one entry
per hour holding a loan, so it stays within the hours of that horizon even
when every hour holds one.
"""

from __future__ import annotations

from lendchain import codec
from lendchain.ledger.context import BlockOverlay, TxContext
from lendchain.ledger.due import SLOT_MS, SLOTS_KEY, index_size, page_key, reschedule, slot_key, slot_of
from lendchain.ledger.params import PARAMS
from lendchain.ledger.restructuring import MAX_HOLIDAY_MONTHS
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from lendchain.ledger.state import MemoryState, read_value
from tests.ledger.chain import GENESIS_MS
from tests.ledger.test_loan_transfer import loan, open_loan, with_borrower
from tests.ledger.test_restructure import accept_terms, propose, stored

GRACE_MS = PARAMS["grace_days"].default * DAY_MS
# The farthest check after a block: the first instalment after the longest holiday, plus grace.
HORIZON_MS = (MAX_HOLIDAY_MONTHS + 1) * MONTH_MS + GRACE_MS + 1
HORIZON_HOURS = -(-HORIZON_MS // SLOT_MS)  # the hour slots a check in (now, now + HORIZON_MS] can fall in


def test_the_longest_holiday_files_the_loan_no_farther_than_the_horizon():
    chain, members, borrower = with_borrower(version=6)
    loan_id = open_loan(chain, borrower, members[0])
    longest = {"rate_bps": 600, "term_months": MAX_HOLIDAY_MONTHS + 12, "holiday_months": MAX_HOLIDAY_MONTHS}
    assert propose(chain, members[0], loan_id, **longest).ok
    assert accept_terms(chain, borrower, loan_id).ok
    check = stored(chain, loan_id)["next_check_ms"]
    assert check == chain.head_ms + HORIZON_MS  # 395 days and a millisecond
    assert loan(chain, loan_id)["state"] == "disbursed"
    assert read_value(chain.state, SLOTS_KEY) == [slot_of(check)]


def saturated_index(filled_hour) -> tuple[MemoryState, list[int]]:
    """A state whose due-loan index holds one loan in each hour ``n`` of the horizon for which
    ``filled_hour(n)`` (written as ``due`` writes it); the horizon's hours."""
    first = slot_of(GENESIS_MS)
    hours = [first + n * SLOT_MS for n in range(HORIZON_HOURS)]
    filled = [slot for n, slot in enumerate(hours) if filled_hour(n)]
    state = MemoryState({SLOTS_KEY: codec.pack(filled)})
    for n, slot in enumerate(filled):
        state.values[slot_key(slot)] = codec.pack({"first": 0, "last": 0})
        state.values[page_key(slot, 0)] = codec.pack([n.to_bytes(32, "big")])
    return state, hours


def test_due_slots_stays_under_ten_thousand_entries_and_90_kb_with_every_hour_of_the_horizon_filled():
    state, hours = saturated_index(lambda n: True)
    assert len(hours) == HORIZON_HOURS == 9_481
    assert len(state.values[SLOTS_KEY]) < 90_000  # 9 bytes an hour
    assert index_size(lambda key: read_value(state, key)) == HORIZON_HOURS
    # An hour later the first hour's loan has been looked at and one is filed in the hour after the
    # last: the list moves on by an hour and keeps its length.
    overlay = BlockOverlay(state)
    ctx = TxContext(overlay, bytes(32), 1, GENESIS_MS, {}, rules=6)
    reschedule(ctx, (0).to_bytes(32, "big"), {"next_check_ms": hours[0], "due_page": 0}, None)
    moved = reschedule(ctx, b"\xff" * 32, {}, hours[-1] + SLOT_MS)
    assert (moved["next_check_ms"], moved["due_page"]) == (hours[-1] + SLOT_MS, 0)
    ctx.commit()
    state.apply(overlay.changes())
    assert read_value(state, SLOTS_KEY) == [*hours[1:], hours[-1] + SLOT_MS]


def test_a_block_that_opens_many_new_hours_keeps_the_list_sorted_and_complete():
    """The costliest block for ``due/slots``: each of its transactions files a loan in an hour of its
    own among the horizon's (``due``'s docstring measures it: 1,897 of them among 7,584 hours already
    filled cost 35 ms)."""
    state, hours = saturated_index(lambda n: n % 5 != 0)
    empty = hours[::5]
    assert (len(empty), len(read_value(state, SLOTS_KEY))) == (1_897, 7_584)
    overlay = BlockOverlay(state)
    for n, slot in enumerate(empty):
        ctx = TxContext(overlay, bytes(32), 1, GENESIS_MS, {}, rules=6)
        reschedule(ctx, (10**6 + n).to_bytes(32, "big"), {}, slot)
        ctx.commit()
    state.apply(overlay.changes())
    assert read_value(state, SLOTS_KEY) == hours
    assert index_size(lambda key: read_value(state, key)) == HORIZON_HOURS
