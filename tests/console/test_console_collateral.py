"""The console's pages of the collateral register (rules 6) in a real browser: a loan's collateral with
the liens ahead of it, its loan-to-value and its combined loan-to-value, an asset's page with its liens by rank, and a borrower's
exposure with the coverage of what is outstanding.

Pages are served in flight from views a ledger test chain computed, as in ``test_console_loans``.
Fixtures: ``conftest``.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.funder_consent import percent
from tests.console.conftest import skip_without_a_browser
from tests.console.test_console_loans import euros
from tests.ledger.test_collateral import HOUSE, VAN, pledge
from tests.ledger.test_loan_transfer import open_loan, with_borrower

pytestmark = pytest.mark.slow
skip_without_a_browser()


def serve(answer):
    return lambda route: route.fulfill(json=answer)


def test_a_loans_collateral_an_assets_liens_and_a_borrowers_coverage_show_on_their_pages(net, open_console):
    chain, members, borrower = with_borrower(version=6)
    bank1, bank2 = members[0], members[1]
    senior = open_loan(chain, borrower, bank2)
    loan_id = open_loan(chain, borrower, bank1)
    assert pledge(chain, bank2, senior, value=50_000).ok
    assert pledge(chain, bank1, loan_id, value=30_000, rank=2).ok
    assert pledge(chain, bank1, loan_id, asset=HOUSE, kind="real_estate", value=100_000).ok
    answer = queries.lookup(chain.state, "loan", loan_id)
    node_did = net["bank1"].get("/status")["did"]
    answer["borrower"] = node_did  # a party the node knows: no 404 in the log
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", serve(answer))
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    summary = console.page.locator("#loan-collateral-summary")
    summary.wait_for()
    assert summary.inner_text() == (
        f"{euros(130_000)} pledged in 2 assets · loan-to-value {percent(answer['ltv_bps'])}"
        f" · combined with the liens ahead {percent(answer['combined_ltv_bps'])}"  # bank2's rank 1
    )
    assert answer["combined_ltv_bps"] == -(-240_000 * 10_000 // 180_000)
    van = console.page.locator(f"#loan-collateral tr[data-asset='{VAN}'] td").all_inner_texts()
    assert van[:4] == [f"{VAN[:16]}…", "vehicle", "2", euros(30_000)]
    assert van[5] == f"rank 1: {senior[:12]}… bank2 · {euros(50_000)} · disbursed"
    house = console.page.locator(f"#loan-collateral tr[data-asset='{HOUSE}'] td").all_inner_texts()
    assert (house[2], house[5]) == ("1", "none")
    entry = console.page.locator("#loan-timeline li[data-event='collateral.pledge']").first.inner_text()
    assert f"value {euros(30_000)}" in entry and "rank 2" in entry  # an amount, shown as money

    liens = queries.lookup(chain.state, "collateral", VAN)
    console.page.route(f"**/collateral/{VAN}", serve(liens))
    console.page.locator(f"#loan-collateral tr[data-asset='{VAN}'] a[href='#/collateral/{VAN}']").click()
    console.page.locator("#asset-liens tr[data-rank='2']").wait_for()
    ranks = [
        console.page.locator(f"#asset-liens tr[data-rank='{rank}'] td").all_inner_texts() for rank in (1, 2)
    ]
    assert [(row[0], row[1], row[2], row[4], row[5]) for row in ranks] == [
        ("1", f"{senior[:12]}…", "bank2", "disbursed", euros(50_000)),
        ("2", f"{loan_id[:12]}…", "bank1", "disbursed", euros(30_000)),
    ]

    exposure = queries.lookup(chain.state, "exposure", borrower.did)
    party = {**queries.lookup(chain.state, "party", borrower.did), "did": node_did}
    console.page.route("**/parties/*", serve(party))
    console.page.route("**/exposure/*", serve(exposure))
    console.page.goto(net["bank1"].url + f"/console/#/party/{node_did}")
    row = console.page.locator("#exposure tr[data-collateral='EUR'] td")
    row.first.wait_for()
    coverage = exposure["collateral"]["EUR"]
    assert row.all_inner_texts() == [
        "EUR",
        euros(coverage["secured"]),
        euros(coverage["unsecured"]),
        euros(coverage["collateral_value"]),
        "2",
    ]
    assert console.errors == []
