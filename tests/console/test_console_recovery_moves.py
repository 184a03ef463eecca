"""The console's pages of a written-off loan whose recovery changed servicer and ended (rules 6), in a
real browser: the loan page names who handed the recovery on and when it ended, the timeline shows
times as times, and each servicer's book shows what it took over or handed on.

Pages are served in flight from views a ledger test chain computed (a default takes months of block
time), as in ``test_console_loans``. Fixtures: ``conftest``.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from tests.console.conftest import skip_without_a_browser
from tests.console.test_console_loans import euros, utc
from tests.ledger.test_loan_transfer import with_borrower
from tests.ledger.test_recovery import recover, written_off
from tests.ledger.test_written_off_transfer import HOPELESS, end, hand_over

pytestmark = pytest.mark.slow
skip_without_a_browser()


def serve(answer):
    """A Playwright route handler that answers with ``answer`` (a handler takes the route alone)."""
    return lambda route: route.fulfill(json=answer)


def test_a_recovery_handed_on_and_ended_shows_on_the_loan_and_in_both_books(net, open_console):
    chain, members, borrower = with_borrower(version=6)
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    assert recover(chain, bank1, loan_id, 4_000).ok
    hand_over(chain, bank1, bank2, loan_id)
    assert recover(chain, bank2, loan_id, 1_000).ok
    assert end(chain, bank2, loan_id).ok
    answer = queries.lookup(chain.state, "loan", loan_id)
    handover, ended = answer["recovery_handovers"][0], answer["recovery_ended"]
    node_did = net["bank1"].get("/status")["did"]
    answer["borrower"] = node_did  # a party the node knows: no 404 in the log
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", serve(answer))
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    shown = console.page.locator(".recovery-handover")
    shown.wait_for()
    handed_on = (
        f"bank1 {bank1.did[:24]}… at block {handover['height']}, with {euros(4_000)} recovered by then"
    )
    assert shown.inner_text() == handed_on  # the view's member_names name it; a DID link shows 24 characters
    assert console.text("#loan-recovery-ended") == (
        f"at block {ended['height']}, {utc(ended['time_ms'])}: {HOPELESS}"
    )
    overdue = next(e for e in answer["history"] if e["event"] == "loan.overdue")
    entry = console.page.locator("#loan-timeline li[data-event='loan.overdue']").inner_text()
    assert f"due {utc(overdue['due_ms'])}" in entry and str(overdue["due_ms"]) not in entry  # a time, not ms

    books = {}
    for key, name in ((bank1, "bank1"), (bank2, "bank2")):
        books[name] = {**queries.lookup(chain.state, "portfolio", key.did), "did": node_did, "name": name}
    moved = {"bank1": ("handed_on", "taken_over"), "bank2": ("taken_over", "handed_on")}
    for name, (its_side, other_side) in moved.items():
        book = books[name]
        lost = book["written_off"]["EUR"]
        assert (
            lost[its_side] > 0 and lost[other_side] == 0 and lost["recovering_loans"] == 0
        )  # the recovery ended
        console.page.unroute("**/portfolio/*")
        console.page.route("**/portfolio/*", serve(book))
        console.page.goto(net["bank1"].url + "/console/#/")
        console.page.goto(net["bank1"].url + f"/console/#/party/{node_did}")
        row = console.page.locator("#portfolio tr[data-written-off='EUR']")
        row.wait_for()
        headers = console.page.locator("#portfolio table:has(tr[data-written-off]) th").all_inner_texts()
        assert headers[-3:] == ["taken over", "handed on", "recovering"]
        cells = row.locator("td").all_inner_texts()
        assert cells[-3:] == [euros(lost["taken_over"]), euros(lost["handed_on"]), "0"]
    # What bank1 handed on is what bank2 took over: the principal still lost when it moved.
    assert (
        books["bank1"]["written_off"]["EUR"]["handed_on"]
        == books["bank2"]["written_off"]["EUR"]["taken_over"]
    )
    assert console.errors == []
