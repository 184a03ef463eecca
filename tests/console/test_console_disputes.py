"""The console's disputes of credit reports (rules 7) in a real browser: a borrower's page lists its
disputes with their deadlines and where each stands, and a furnishing member's page its record.

Pages are served in flight from views a ledger test chain computed, as in ``test_console_loans``.
Fixtures: ``conftest``.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.servicing import DAY_MS
from tests.console.conftest import skip_without_a_browser
from tests.console.test_console_loans import utc
from tests.ledger.test_disputes import REASON, dispute, report, start

pytestmark = pytest.mark.slow
skip_without_a_browser()


def serve(answer):
    return lambda route: route.fulfill(json=answer)


def test_a_borrowers_disputes_and_a_furnishers_record_show_on_their_pages(net, open_console):
    chain, members, borrower, reported = start(dispute_response_ms=DAY_MS)
    bank2, bank4 = members[1], members[3]
    assert dispute(chain, borrower, bank2, reported).ok
    overdue_deadline = chain.head_ms + DAY_MS
    chain.head_ms = overdue_deadline  # bank2 never answers: its dispute is overdue from here
    assert report(chain, bank4, borrower).ok
    newer = chain.height
    assert dispute(chain, borrower, bank4, newer).ok
    payload = {
        "subject": borrower.did,
        "report_height": newer,
        "outcome": "confirmed",
        "evidence_hash": REASON,
    }
    assert chain.run_one(chain.tx(bank4, "credit.dispute_answer", payload)).ok
    as_of = chain.head_ms

    node_did = net["bank1"].get("/status")["did"]
    party = {**queries.lookup(chain.state, "party", borrower.did, as_of_ms=as_of), "did": node_did}
    console = open_console(net["bank1"].url + "/console/")
    console.page.route("**/parties/*", serve(party))
    console.page.route("**/exposure/*", serve(queries.lookup(chain.state, "exposure", borrower.did)))
    console.page.goto(net["bank1"].url + f"/console/#/party/{node_did}")
    console.page.locator("#disputes-summary").wait_for()
    assert console.text("#disputes-summary") == "2 disputes: 0 open, 1 overdue, 1 answered on time, 0 late"
    overdue = console.page.locator(f"#disputes tr[data-height='{reported}'] td").all_inner_texts()
    assert overdue[1:] == [
        f"#{reported}",
        utc(overdue_deadline - DAY_MS),
        utc(overdue_deadline),
        "overdue",
        "replaced",
    ]
    assert overdue[0] == f"bank2 {bank2.did[:24]}…"  # its furnisher by the view's furnisher_name
    answered = console.page.locator(f"#disputes tr[data-height='{newer}'] td").all_inner_texts()
    assert answered[4:] == ["confirmed", "yes"]
    # the score's sources name the report by its furnisher's DID: the page adds the member's name
    assert f"credit report by bank4 ({bank4.did}) at height {newer}" in console.text("main")

    member = queries.lookup(chain.state, "party", bank2.did)
    console.page.route("**/parties/*", serve(member))
    console.page.route(
        "**/portfolio/*", serve(queries.lookup(chain.state, "portfolio", bank2.did, as_of_ms=as_of))
    )
    console.page.route(
        "**/disputes/*", serve(queries.lookup(chain.state, "disputes", bank2.did, as_of_ms=as_of))
    )
    console.page.goto(net["bank1"].url + f"/console/#/party/{bank2.did}")
    console.page.locator("#disputes tr[data-status='overdue']").wait_for()
    assert console.text("#disputes h3") == "Disputes of the credit reports it furnished"
    assert console.text("#disputes-summary") == "1 dispute: 0 open, 1 overdue, 0 answered on time, 0 late"
    console.shot("party-disputes")
    assert console.errors == []
