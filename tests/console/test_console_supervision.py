"""The console for a supervisor (rules 7) in a real browser: the network page's table of every member's
record of answering the disputes of its credit reports, and a member's page with the bank guarantees it
gives (none asked for, and no error logged, for a member that gives none or funds nothing).

Views a ledger test chain computed are served in flight where the real network has nothing to show, as
in ``test_console_disputes``. Fixtures: ``conftest``.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.servicing import DAY_MS
from tests.console.conftest import skip_without_a_browser
from tests.console.test_console_loans import euros
from tests.ledger.test_disputes import answer, dispute, report, start
from tests.ledger.test_guarantees import guarantee_world, guaranteed_by

pytestmark = pytest.mark.slow
skip_without_a_browser()


def serve(answer):
    return lambda route: route.fulfill(json=answer)


def test_the_network_page_lists_each_members_dispute_record(net, open_console):
    """On a ledger chain bank2 lets one dispute pass its deadline and answers another late; the real
    network's bank2 is served that record, the other members answer for themselves (no disputes)."""
    chain, members, borrower, first = start(dispute_response_ms=DAY_MS)
    bank2 = members[1]
    assert dispute(chain, borrower, bank2, first).ok
    chain.head_ms += DAY_MS
    assert report(chain, bank2, borrower).ok
    second = chain.height
    assert dispute(chain, borrower, bank2, second).ok
    chain.head_ms += DAY_MS
    assert answer(chain, bank2, borrower, second, "confirmed").ok
    record = queries.lookup(chain.state, "disputes", bank2.did, as_of_ms=chain.head_ms)
    assert (record["overdue"], record["answered_late"]) == (1, 1)

    real_bank2 = net["bank2"].get("/status")["did"]
    console = open_console(net["bank1"].url + "/console/#/network")

    def disputes(route):
        if route.request.url.endswith(real_bank2.replace(":", "%3A")):
            return route.fulfill(json={**record, "did": real_bank2})
        return route.continue_()

    console.page.route("**/disputes/*", disputes)
    console.page.reload()  # the members' records are read with the members, at the first poll
    row = console.page.locator("#dispute-records tr[data-disputes-of='bank2'] td")
    row.first.wait_for()
    assert row.all_inner_texts() == ["bank2", "2", "0", "1", "0", "1"]
    for name in ("bank1", "bank3", "bank4"):
        cells = console.page.locator(f"#dispute-records tr[data-disputes-of='{name}'] td").all_inner_texts()
        assert cells == [name, "0", "0", "0", "0", "0"]
    assert console.page.locator("#dispute-records tr[data-disputes-of='bank2'] a").get_attribute(
        "href"
    ) == "#/party/" + real_bank2.replace(":", "%3A")
    console.shot("network-dispute-records")
    assert console.errors == []


def test_a_members_page_shows_the_bank_guarantees_it_gives_and_asks_nothing_of_one_that_gives_none(
    net, open_console
):
    chain, members, borrower, loan_id = guarantee_world()
    bank1, bank2 = members[0], members[1]
    guarantee_id = guaranteed_by(chain, bank1, loan_id, guarantor=bank2, kind="bank", amount=30_000)
    member = queries.lookup(chain.state, "party", bank2.did)
    assert (member["guarantees_proposed_to"], member["funder_loans"]) == (1, 0)

    console = open_console(net["bank1"].url + "/console/")
    for path, kind in (
        ("parties", "party"),
        ("exposure", "exposure"),
        ("portfolio", "portfolio"),
        ("disputes", "disputes"),
    ):
        console.page.route(f"**/{path}/*", serve(queries.lookup(chain.state, kind, bank2.did)))
    console.page.goto(net["bank1"].url + f"/console/#/party/{bank2.did}")
    lender = console.page.locator(f"#guarantor tr[data-lender='{bank1.did}'] td")
    lender.first.wait_for()
    assert console.text("#guarantor h3") == "Bank guarantees it gives"
    assert lender.all_inner_texts() == ["bank1", "EUR", euros(30_000), euros(0), "1", "0"]
    row = console.page.locator(f"#guarantor tr[data-guarantee='{guarantee_id}'] td").all_inner_texts()
    assert row[1:] == ["disbursed", "active", euros(30_000), euros(0), euros(30_000)]
    assert console.page.locator("#exposure").count() == 0  # it owes nothing as a borrower
    console.shot("member-bank-guarantees")
    console.page.unroute_all()

    # A real member that guarantees nothing and funds nothing: no exposure or positions asked for, so
    # no 404 logged.
    bank3 = net["bank3"].get("/status")["did"]
    asked = []
    console.page.on("request", lambda request: asked.append(request.url))
    console.page.goto(net["bank1"].url + f"/console/#/party/{bank3}")
    console.page.locator("#portfolio").wait_for()
    console.page.locator("#view h2").wait_for()
    assert console.page.locator("#guarantor").count() == 0
    assert not [url for url in asked if "/exposure/" in url or "/positions/" in url]
    assert console.errors == []
