"""What a party's page shows of its views in a real browser: a borrower's KYC, consents, credit report,
the loans it is repaying and its loans across lenders with the part guarantees cover; what a guarantor
was ever called for (rules 8), on guarantees released since too; and a lender's pending servicing
transfers.

Before, the page printed the KYC attestation as a JSON object, dropped the consents, the credit report,
the loans and the guarantor's ``called_total`` / ``called_guarantees``. Pages are served in flight from
views a ledger test chain computed, as in ``test_console_guarantees``. Fixtures: ``conftest``.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from tests.console.conftest import skip_without_a_browser
from tests.console.test_console_collateral import serve
from tests.console.test_console_loans import euros, utc
from tests.ledger.test_domain_identity import REPORT
from tests.ledger.test_guarantees import GINA, act, guarantee_world, guaranteed_by
from tests.ledger.test_loan_transfer import ok, transfer
from tests.ledger.test_write_off import default

pytestmark = pytest.mark.slow
skip_without_a_browser()


def party_page(net, open_console, answers):
    """The console on bank1 at the party page of bank1's own DID, ``answers`` served for each route."""
    node_did = net["bank1"].get("/status")["did"]  # a DID the node knows: no 404 in the log
    console = open_console(net["bank1"].url + "/console/")
    for pattern, answer in answers.items():
        console.page.route(pattern, serve({**answer, "did": node_did}))
    console.page.goto(net["bank1"].url + f"/console/#/party/{node_did}")
    return console


def test_a_borrowers_page_shows_its_kyc_consents_credit_report_and_loans(net, open_console):
    chain, members, borrower, loan_id = guarantee_world(version=8)
    bank1, bank2, bank3 = members[0], members[1], members[2]
    far = chain.head_ms + 10**9
    ok(chain, borrower, "consent.grant", {"member": bank2.did, "scopes": "kyc,credit", "until_ms": far})
    soon = chain.head_ms + 1500
    ok(chain, borrower, "consent.grant", {"member": bank3.did, "scopes": "documents", "until_ms": soon})
    ok(chain, bank2, "credit.report", {"subject": borrower.did, **REPORT})
    guaranteed_by(chain, bank1, loan_id, amount=50_000)
    party = queries.lookup(chain.state, "party", borrower.did, as_of_ms=chain.head_ms)
    exposure = queries.lookup(chain.state, "exposure", borrower.did, as_of_ms=chain.head_ms)
    kyc, report, (reminder,) = party["kyc"], party["credit_report"], party["reminders"]

    console = party_page(net, open_console, {"**/parties/*": party, "**/exposure/*": exposure})
    shown = console.page.locator("#party-kyc")
    shown.wait_for()
    assert shown.inner_text() == (
        f"level 2, attested by bank4 {members[3].did[:24]}… at #{kyc['height']}, expires {utc(kyc['expires_ms'])},"
        f" evidence {kyc['evidence_hash'][:16]}…"
    )
    consents = {c["name"]: c for c in party["consents"]}
    assert console.text(f"#party-record [data-consent='{bank2.did}']") == (
        f"bank2: credit, kyc until {utc(far)}, given at #{consents['bank2']['height']} in force"
    )
    assert console.text(f"#party-record [data-consent='{bank3.did}']") == (
        f"bank3: documents until {utc(soon)}, given at #{consents['bank3']['height']} expired"
    )
    assert console.text("#party-credit-report") == (
        "income band 6, debt-to-income 30.00 %, 40 months of credit history, 1 obligations; reported by "
        f"bank2 {bank2.did[:24]}… at #{report['height']}"
    )
    assert "{" not in console.text("#party-record")

    due = console.page.locator(f"#reminders tr[data-reminder='{loan_id}'] td").all_inner_texts()
    first = reminder["instalments"][0]
    assert due[1:5] == ["disbursed", "stage 1", "0", "0.00"]
    assert due[5].splitlines()[0] == f"#1 due {utc(first['due_ms'])}: {euros(first['amount'])[:-4]}"

    totals = console.page.locator("#exposure tr[data-currency='EUR'] td").all_inner_texts()
    assert totals[-1] == euros(50_000)  # the part guarantees cover
    row = console.page.locator(f"#exposure tr[data-exposure-loan='{loan_id}'] td").all_inner_texts()
    assert row[1:] == ["disbursed", euros(120_000), euros(0), "stage 1", "0", euros(50_000)]
    assert console.errors == []


def test_a_guarantors_page_shows_what_it_was_ever_called_for_once_the_guarantee_is_released(
    net, open_console
):
    chain, members, borrower, loan_id = guarantee_world(version=8)
    bank1 = members[0]
    guarantee_id = guaranteed_by(chain, bank1, loan_id, amount=60_000)
    default(chain, loan_id)
    assert act(chain, bank1, "call", loan_id, guarantee_id, amount=15_000).ok
    assert act(chain, bank1, "call", loan_id, guarantee_id, amount=5_000).ok
    assert act(chain, bank1, "release", loan_id, guarantee_id).ok
    party = queries.lookup(chain.state, "party", GINA.did, as_of_ms=chain.head_ms)
    exposure = queries.lookup(chain.state, "exposure", GINA.did, as_of_ms=chain.head_ms)

    console = party_page(net, open_console, {"**/parties/*": party, "**/exposure/*": exposure})
    row = console.page.locator("#guarantor tr[data-guarantor-currency='EUR'] td")
    row.first.wait_for()
    assert row.all_inner_texts() == ["EUR", euros(0), euros(0), euros(20_000), "1", "0", "0"]
    assert console.page.locator("#guarantor tr[data-lender]").count() == 0  # nothing live at any lender
    released = console.page.locator(f"#guarantor tr[data-guarantee='{guarantee_id}'] td").all_inner_texts()
    assert released[2:5] == ["released", euros(60_000), euros(20_000)]
    assert console.errors == []


def test_a_lenders_page_shows_the_servicing_transfers_pending(net, open_console):
    chain, members, borrower, loan_id = guarantee_world(version=8)
    bank1, bank2 = members[0], members[1]
    assert transfer(chain, bank1, loan_id, bank2).ok
    member = queries.lookup(chain.state, "party", bank1.did)
    book = queries.lookup(chain.state, "portfolio", bank1.did, as_of_ms=chain.head_ms)
    assert book["pending_transfers"]

    console = party_page(net, open_console, {"**/parties/*": member, "**/portfolio/*": book})
    row = console.page.locator(f"#portfolio tr[data-transfer='{loan_id}'] td")
    row.first.wait_for()
    offered = book["pending_transfers"][0]["offered_height"]
    # each member by the name the view gives and its DID
    assert row.all_inner_texts() == [
        f"{loan_id[:12]}…",
        f"bank1 {bank1.did[:24]}…",
        f"bank2 {bank2.did[:24]}…",
        f"#{offered}",
    ]
    assert console.text("#party-voting") == "votes"
    assert console.errors == []
