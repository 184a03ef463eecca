"""The console's pages of a syndicated loan whose shares were offered and sold (rules 6), in a real
browser: the loan page lists its holders, the shares offered and sold, and an investor's page its
positions with what it bought and sold and the shares offered to it; from rules 7 the offers declined,
a lender member's own positions, and a share sold whole shown as sold rather than staged.

Pages are served in flight from views a ledger test chain computed, as in ``test_console_loans``
(the nodes serve the console itself). Fixtures: ``conftest``.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from tests.console.conftest import skip_without_a_browser
from tests.console.test_console_loans import euros
from tests.ledger.test_loan_transfer import repay
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL
from tests.ledger.test_share_assignment import offer, sell, share_world
from tests.ledger.test_share_decline import decline, decline_world

pytestmark = pytest.mark.slow
skip_without_a_browser()

KINDS = {
    "parties": "party",
    "exposure": "exposure",
    "positions": "positions",
    "loans": "loan",
    "portfolio": "portfolio",
    "disputes": "disputes",  # a member's page asks for its dispute record (rules 7)
}


def serve_chain(console, chain):
    """Answer the console's reads of parties, exposures, positions, loans, books and disputes from ``chain``."""

    def answer(route):
        kind, ref = route.request.url.split("/")[-2:]
        found = queries.lookup(chain.state, KINDS[kind], ref.replace("%3A", ":"), as_of_ms=chain.head_ms)
        if found is None and kind == "disputes":  # the poll asks for the real members' records
            route.continue_()
        elif found is None:
            route.fulfill(status=404, json={"message": f"{ref} is not known"})
        else:
            route.fulfill(json=found)

    for kind in KINDS:
        console.page.route(f"**/{kind}/*", answer)


def test_the_loan_page_lists_holders_offers_and_sales_and_an_investors_page_its_positions(net, open_console):
    chain, members, borrower, loan_id = share_world()
    bank1 = members[0]
    assert repay(chain, bank1, loan_id, 12_000).ok
    sell(chain, ALICE, CAROL, loan_id, 30_000, price=27_500)
    sold_at = chain.height
    assert offer(chain, BOB, loan_id, CAROL, 10_000, price=9_800).ok
    offered_at = chain.height

    console = open_console(net["bank1"].url + "/console/")
    serve_chain(console, chain)
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    holders = console.page.locator("#funders tr[data-funder]")
    holders.first.wait_for()
    # a member funder by its name (the loan's member_names) and DID, an investor by its DID alone
    assert [row.locator("td").first.inner_text() for row in holders.all()][:2] == [
        f"{ALICE.did[:24]}…",
        f"bank1 {bank1.did[:24]}…",
    ]
    assert [row.locator("td").all_inner_texts()[1:] for row in holders.all()] == [
        [euros(0), euros(3_000), "assigned"],
        [euros(40_000), euros(4_000), "committed"],
        [euros(50_000), euros(5_000), "committed"],
        [euros(30_000), euros(0), "committed"],
    ]
    pending = console.page.locator("#funders tr[data-share-offer]").locator("td").all_inner_texts()
    assert pending[2:] == [euros(10_000), euros(9_800), f"#{offered_at}", "pending"]
    sale = console.page.locator("#funders tr[data-assignment='0']").locator("td").all_inner_texts()
    assert sale[2:] == [euros(30_000), euros(27_500), f"#{sold_at}"]
    accepted = console.page.locator("#loan-timeline li[data-event='loan.share_accept']").inner_text()
    assert f"price {euros(27_500)}" in accepted
    console.shot("share-assignment-loan")

    console.page.goto(net["bank1"].url + f"/console/#/party/{CAROL.did}")
    row = console.page.locator(f"#positions tr[data-position='{loan_id}'] td")
    row.first.wait_for()
    cells = row.all_inner_texts()
    assert cells[1:5] == ["repaying", euros(30_000), "committed", euros(0)]
    assert cells[-2:] == [euros(30_000), euros(0)]  # bought, sold
    offered = console.page.locator(f"#positions tr[data-offered-from='{BOB.did}'] td").all_inner_texts()
    assert offered[2:] == [euros(10_000), euros(9_800), f"#{offered_at}"]
    console.shot("share-assignment-investor")

    console.page.goto(net["bank1"].url + "/console/#/")
    console.page.goto(net["bank1"].url + f"/console/#/party/{ALICE.did}")
    row = console.page.locator(f"#positions tr[data-position='{loan_id}'] td")
    row.first.wait_for()
    cells = row.all_inner_texts()
    assert cells[2:5] == [euros(0), "assigned", euros(3_000)] and cells[-2:] == [euros(0), euros(30_000)]
    assert console.errors == []


def test_a_declined_offer_a_members_own_positions_and_a_share_sold_whole_show(net, open_console):
    chain, members, borrower, loan_id = decline_world()
    bank1, bank2 = members[0], members[1]
    sell(chain, ALICE, CAROL, loan_id, 30_000)
    assert offer(chain, BOB, loan_id, bank2, 10_000, price=9_900).ok
    offered_at = chain.height
    assert decline(chain, bank2, loan_id, note="not this quarter").ok
    declined_at = chain.height

    console = open_console(net["bank1"].url + "/console/")
    serve_chain(console, chain)
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    row = console.page.locator("#funders tr[data-declined='0'] td")
    row.first.wait_for()
    assert row.all_inner_texts()[2:] == [
        euros(10_000),
        euros(9_900),
        f"#{offered_at}",
        f"#{declined_at}",
        "not this quarter",
    ]
    declined = console.page.locator("#loan-timeline li[data-event='loan.share_decline']").inner_text()
    assert "note not this quarter" in declined

    console.page.goto(net["bank1"].url + f"/console/#/party/{BOB.did}")
    row = console.page.locator(f"#positions tr[data-declined-by='{bank2.did}'] td")
    row.first.wait_for()
    assert row.all_inner_texts()[2:] == [
        euros(10_000),
        euros(9_900),
        f"#{offered_at}",
        f"#{declined_at}",
        "not this quarter",
    ]
    console.shot("share-declined-seller")

    # A lender member's page shows its own positions (bank1 funds 40,000 of the loan it services).
    console.page.goto(net["bank1"].url + f"/console/#/party/{bank1.did}")
    row = console.page.locator(f"#positions tr[data-position='{loan_id}'] td")
    row.first.wait_for()
    cells = row.all_inner_texts()
    assert cells[1:5] == ["disbursed", euros(40_000), "committed", euros(0)]
    assert cells[6] == "stage 1"
    console.shot("share-member-positions")

    console.page.goto(net["bank1"].url + f"/console/#/party/{ALICE.did}")
    row = console.page.locator(f"#positions tr[data-position='{loan_id}'] td")
    row.first.wait_for()
    assert row.all_inner_texts()[3:7] == ["assigned", euros(0), "—", "sold"]
    assert console.errors == []
