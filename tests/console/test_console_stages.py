"""The console's days past due and IFRS 9 stages in a real browser: a loan's page, a lender's book and a
borrower's exposure (``staging``).

The pages are served in flight (Playwright routes) from views of
``test_staging_views``'s book, judged at its head block 45 days after the
first instalments fell due, so no block time has to pass on the real nodes;
the nodes serve the console itself. Fixtures: ``conftest``.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from tests.console.conftest import skip_without_a_browser
from tests.console.test_console_loans import euros, utc
from tests.ledger.test_staging_views import book  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow
skip_without_a_browser()


def test_a_loans_stage_and_the_books_stage_and_ageing_tables_show(net, open_console, book):  # noqa: F811
    chain, members, borrower, loans, _ = book

    def view(kind, ref):
        return queries.lookup(chain.state, kind, ref, as_of_ms=chain.head_ms)

    bank1 = net["bank1"].get("/status")["did"]
    answers = {}
    for name in ("late", "committed"):
        answers[loans[name]] = {
            **view("loan", loans[name]),
            "borrower": bank1,
            "history": [],
        }  # no 404 logged
    console = open_console(net["bank1"].url + "/console/")
    console.page.route("**/loans/*", lambda route: route.fulfill(json=answers[route.request.url[-64:]]))

    console.page.goto(net["bank1"].url + f"/console/#/loan/{loans['late']}")
    stage = console.page.locator("#loan-stage")
    stage.wait_for()
    assert stage.get_attribute("data-stage") == "2"
    assert console.text("#loan-stage .pill") == "stage 2"
    assert console.text("#loan-days-past-due") == f"45 days as of {utc(chain.head_ms)}"
    reason = answers[loans["late"]]["stage_reasons"][0]
    assert console.text("#loan-stage [data-reason='past_due_over_30']") == (
        f"past_due_over_30 (stage 2): {reason['why']} — {reason['source']}"
    )
    console.shot("loan-stage")

    console.page.goto(net["bank1"].url + f"/console/#/loan/{loans['committed']}")
    console.page.locator("#loan-stage[data-stage='3']").wait_for()  # its borrower's forborne loan's stage
    assert console.text("#loan-days-past-due") == (
        f"none: an undisbursed commitment, nothing is due yet as of {utc(chain.head_ms)}"
    )
    assert console.page.locator("#loan-stage [data-reason='borrower_credit_impaired']").count() == 1

    book_view = {**view("portfolio", members[0].did), "did": bank1}
    console.page.route("**/portfolio/*", lambda route: route.fulfill(json=book_view))
    console.page.goto(net["bank1"].url + f"/console/#/party/{bank1}")
    row = console.page.locator("#portfolio tr[data-stages='EUR']")
    row.wait_for()
    stages = book_view["stages"]["EUR"]
    assert row.locator("td").all_inner_texts() == [
        "EUR",
        *[
            cell
            for n in (1, 2, 3)
            for cell in (str(stages[f"stage_{n}_loans"]), euros(stages[f"stage_{n}_outstanding"]))
        ],
    ]
    ageing = book_view["ageing"]["EUR"]
    buckets = ("dpd_0", "dpd_1_30", "dpd_31_60", "dpd_61_90", "dpd_over_90")
    assert console.page.locator("#portfolio tr[data-ageing='EUR'] td").all_inner_texts() == [
        "EUR",
        *[f"{ageing[f'{b}_loans']} · {euros(ageing[f'{b}_outstanding'])}" for b in buckets],
    ]
    console.shot("portfolio-stages")

    exposure = view("exposure", borrower.did)
    console.page.route("**/parties/*", lambda route: route.fulfill(json=view("party", borrower.did)))
    console.page.route("**/exposure/*", lambda route: route.fulfill(json=exposure))
    console.page.goto(net["bank1"].url + f"/console/#/party/{borrower.did}")
    usd = console.page.locator("#exposure tr[data-stages='USD'] td")
    usd.first.wait_for()
    usd_principal = exposure["stages"]["USD"]["stage_2_outstanding"]
    assert usd.all_inner_texts()[3:5] == ["1", euros(usd_principal).replace("EUR", "USD")]
    assert console.page.locator("#exposure tr[data-ageing]").count() == 2  # EUR and USD
    assert console.errors == []
