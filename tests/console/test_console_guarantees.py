"""The console's pages of guarantees (rules 7) in a real browser: a loan's guarantees with what they
cover, and a guarantor's contingent exposure by lender on its party page.

Pages are served in flight from views a ledger test chain computed, as in ``test_console_collateral``.
Fixtures: ``conftest``.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from tests.console.conftest import skip_without_a_browser
from tests.console.test_console_collateral import serve
from tests.console.test_console_loans import euros
from tests.ledger.test_guarantees import GINA, act, guarantee_world, guaranteed_by
from tests.ledger.test_write_off import default

pytestmark = pytest.mark.slow
skip_without_a_browser()


def test_a_loans_guarantees_and_a_guarantors_contingent_exposure_show_on_their_pages(net, open_console):
    chain, members, borrower, loan_id = guarantee_world()
    bank1 = members[0]
    guarantee_id = guaranteed_by(chain, bank1, loan_id, amount=60_000)
    default(chain, loan_id)
    assert act(chain, bank1, "call", loan_id, guarantee_id, amount=20_000).ok
    answer = queries.lookup(chain.state, "loan", loan_id)
    node_did = net["bank1"].get("/status")["did"]
    answer["borrower"] = node_did  # a party the node knows: no 404 in the log
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", serve(answer))
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    summary = console.page.locator("#loan-guaranteed")
    summary.wait_for()
    assert summary.inner_text() == f"{euros(40_000)} of the principal at risk guaranteed"
    row = console.page.locator(f"#loan-guarantees tr[data-guarantee='{guarantee_id}'] td").all_inner_texts()
    assert row[1:6] == ["personal", "active", euros(60_000), euros(20_000), euros(40_000)]

    exposure = queries.lookup(chain.state, "exposure", GINA.did)
    party = {**queries.lookup(chain.state, "party", GINA.did), "did": node_did}
    console.page.route("**/parties/*", serve(party))
    console.page.route("**/exposure/*", serve(exposure))
    console.page.goto(net["bank1"].url + f"/console/#/party/{node_did}")
    lender = console.page.locator(f"#guarantor tr[data-lender='{bank1.did}'] td")
    lender.first.wait_for()
    assert lender.all_inner_texts() == ["bank1", "EUR", euros(40_000), euros(20_000), "1", "0"]
    assert console.errors == []
