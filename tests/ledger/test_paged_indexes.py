"""The ledger's growing indexes are kept in bounded pages (issue 7: cost per tx flat with chain length)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendchain import codec
from lendchain.ledger import due, pagedlist


class Recorder:
    """A state of decoded values that records every write, in the shape the handlers use."""

    def __init__(self, timestamp_ms: int = 0) -> None:
        self.values: dict[bytes, Any] = {}
        self.writes: list[tuple[bytes, int]] = []  # (key, encoded size)
        self.timestamp_ms = timestamp_ms

    def get(self, key: bytes) -> Any:
        return self.values.get(key)

    def put(self, key: bytes, value: Any) -> None:
        self.values[key] = value
        self.writes.append((key, len(codec.pack(value))))

    def delete(self, key: bytes) -> None:
        self.values.pop(key, None)
        self.writes.append((key, 0))


def loan_id(n: int) -> bytes:
    return n.to_bytes(32, "big")


# -- paged lists (a servicer's and a borrower's loan ids) --------------------------------


def test_a_paged_list_keeps_order_and_each_append_writes_at_most_one_page_and_the_head():
    state = Recorder()
    count = 3 * pagedlist.PAGE_ITEMS + 7
    biggest = 0
    for n in range(count):
        state.writes.clear()
        pagedlist.append(state.get, state.put, b"lloans/x", loan_id(n))
        assert len(state.writes) <= 2
        biggest = max(biggest, *(size for _, size in state.writes))
    assert list(pagedlist.items(state.get, b"lloans/x")) == [loan_id(n) for n in range(count)]
    assert pagedlist.length(state.get, b"lloans/x") == count
    assert state.values[b"lloans/x"]["count"] == count and len(state.values[b"lloans/x"]["tail"]) == 7
    # No write grows with the list: one page of 32-byte ids and a little framing.
    assert biggest < pagedlist.PAGE_ITEMS * 35


def test_a_short_paged_list_is_read_with_one_get_and_an_absent_one_is_empty():
    state = Recorder()
    for n in range(3):
        pagedlist.append(state.get, state.put, b"bloans/y", loan_id(n))
    gets = []

    def counting_get(key: bytes) -> Any:
        gets.append(key)
        return state.get(key)

    assert list(pagedlist.items(counting_get, b"bloans/y")) == [loan_id(0), loan_id(1), loan_id(2)]
    assert gets == [b"bloans/y"]
    assert list(pagedlist.items(state.get, b"bloans/nobody")) == []
    assert pagedlist.length(state.get, b"bloans/nobody") == 0


@pytest.mark.parametrize(
    ("start", "count"),
    [(0, 10), (250, 10), (256, 256), (500, 300), (768, 7), (770, 100), (775, 5), (0, 10_000)],
)
def test_a_window_of_a_paged_list_is_its_slice_and_reads_only_the_pages_it_covers(start, count):
    state = Recorder()
    length = 3 * pagedlist.PAGE_ITEMS + 7
    for n in range(length):
        pagedlist.append(state.get, state.put, b"lloans/x", loan_id(n))
    gets = []

    def counting_get(key: bytes) -> Any:
        gets.append(key)
        return state.get(key)

    window = pagedlist.window(counting_get, b"lloans/x", start, count)
    assert window == [loan_id(n) for n in range(length)][start : start + count]
    end = min(start + count, length)
    pages = {n // pagedlist.PAGE_ITEMS for n in range(start, end) if n < 3 * pagedlist.PAGE_ITEMS}
    assert gets == [b"lloans/x", *(pagedlist.page_key(b"lloans/x", page) for page in sorted(pages))]
    assert pagedlist.window(state.get, b"lloans/nobody", 0, 10) == []


# -- the due-loan index --------------------------------------------------------------------


HOUR = due.SLOT_MS


def file(state: Recorder, loans: dict[int, dict], n: int, check_ms: int | None) -> None:
    loans[n] = due.reschedule(state, loan_id(n), loans.get(n, {}), check_ms)


def test_loans_sharing_an_hour_fill_pages_and_a_move_rewrites_only_the_page_holding_the_loan(monkeypatch):
    monkeypatch.setattr(due, "PAGE_ITEMS", 4)
    state, loans = Recorder(), {}
    for n in range(10):
        file(state, loans, n, 5 * HOUR)
    assert [loans[n]["due_page"] for n in range(10)] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    state.writes.clear()
    file(state, loans, 5, 9 * HOUR)
    written = {key for key, _ in state.writes}
    assert due.page_key(5 * HOUR, 1) in written and due.page_key(5 * HOUR, 0) not in written
    assert due.page_key(5 * HOUR, 2) not in written
    state.timestamp_ms = 5 * HOUR
    assert due.due_loans(state, 100) == [loan_id(n) for n in (0, 1, 2, 3, 4, 6, 7, 8, 9)]
    assert due.due_loans(state, 5) == [loan_id(n) for n in (0, 1, 2, 3, 4)]
    assert due.index_size(state.get) == 10


def test_emptied_pages_are_deleted_and_the_slot_goes_with_its_last_loan(monkeypatch):
    monkeypatch.setattr(due, "PAGE_ITEMS", 2)
    state, loans = Recorder(), {}
    for n in range(6):  # pages 0: [0, 1], 1: [2, 3], 2: [4, 5]
        file(state, loans, n, HOUR)
    for n in (2, 3):  # the middle page empties
        file(state, loans, n, None)
    assert due.page_key(HOUR, 1) not in state.values
    assert state.values[due.slot_key(HOUR)] == {"first": 0, "last": 2}
    for n in (0, 1):  # the first page empties: the slot starts at page 2 now
        file(state, loans, n, None)
    assert state.values[due.slot_key(HOUR)] == {"first": 2, "last": 2}
    state.timestamp_ms = HOUR
    assert due.due_loans(state, 10) == [loan_id(4), loan_id(5)]
    for n in (4, 5):
        file(state, loans, n, None)
    assert state.values == {due.SLOTS_KEY: []}
    assert all(loans[n]["next_check_ms"] is None and loans[n]["due_page"] is None for n in range(6))


@settings(max_examples=150, deadline=None)
@given(
    page_items=st.integers(min_value=1, max_value=4),
    moves=st.lists(
        st.tuples(st.integers(min_value=0, max_value=11), st.sampled_from([None, 1, 2, 3])), max_size=60
    ),
)
def test_the_paged_due_index_matches_a_plain_model_under_any_moves(page_items, moves):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(due, "PAGE_ITEMS", page_items)
        state, loans = Recorder(), {}
        model: dict[int, list[int]] = {}  # slot -> loans in filing order
        for n, hour in moves:
            check = None if hour is None else hour * HOUR - 10  # inside the hour ending at hour * HOUR
            old = loans.get(n, {}).get("next_check_ms")
            old_slot = None if old is None else due.slot_of(old)
            new_slot = None if check is None else due.slot_of(check)
            if old_slot != new_slot:
                if old_slot is not None:
                    model[old_slot].remove(n)
                if new_slot is not None:
                    model.setdefault(new_slot, []).append(n)
            file(state, loans, n, check)
            for until_hour in (1, 2, 3):
                state.timestamp_ms = until_hour * HOUR
                expected = [
                    loan_id(i) for slot in sorted(model) if slot <= state.timestamp_ms for i in model[slot]
                ]
                assert due.due_loans(state, 1000) == expected
                assert due.due_loans(state, 3) == expected[:3]
        assert due.index_size(state.get) == sum(len(v) for v in model.values())
        live = {slot for slot, ids in model.items() if ids}
        assert state.values.get(due.SLOTS_KEY, []) == sorted(live)
        pages_kept = {key for key in state.values if key.startswith(b"due/") and len(key) == 4 + 8 + 1 + 4}
        assert all(state.values[key] for key in pages_kept)  # no empty page is left behind
