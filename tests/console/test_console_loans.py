"""The console's pages of a loan's later life in a real browser (rules 5 and 6): a write-off and its
recoveries, a restructuring, funders' consent to one (and its withdrawal), a proposal's expiry,
forborne exposures.

Each page is served in flight (Playwright routes) from views a ledger test
chain computed, so no block time has to pass on the real nodes; the nodes
serve the console itself. Fixtures: ``conftest``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from lendchain.ledger import queries
from tests.console.conftest import skip_without_a_browser
from tests.ledger.chain import seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_loan_transfer import open_loan
from tests.ledger.test_restructure import accept_terms, overdue, propose
from tests.ledger.test_restructure_consent import ALICE, BOB, funders_world, syndicate
from tests.ledger.test_write_off import default, write_off

pytestmark = pytest.mark.slow
skip_without_a_browser()


def euros(minor: int) -> str:
    """``money`` of console.js, for EUR."""
    return f"{minor // 100:,}.{minor % 100:02d} EUR"


def utc(ms: int) -> str:
    """``time`` of console.js."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_a_written_off_loan_its_recoveries_and_a_lenders_totals_show_on_their_pages(net, open_console):
    """A loan written off on a ledger test chain (default takes months of block time), then a recovery
    recorded on it (rules 5), served in flight."""
    chain, members = rules_world(version=5)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, members[0])
    default(chain, loan_id)
    assert write_off(chain, members[0], loan_id).ok
    recovery = {"loan_id": loan_id, "amount": 2_000, "note": "guarantor paid"}
    assert chain.run_one(chain.tx(members[0], "loan.recover", recovery)).ok
    answer = queries.lookup(chain.state, "loan", loan_id)
    lost, recovered, net_loss = answer["written_off"], answer["recovered"], answer["net_loss"]
    bank1 = net["bank1"].get("/status")["did"]
    answer["borrower"] = bank1  # a party the node knows: no 404 in the log
    sender = {"did": bank1, "name": "bank1"}
    answer["history"] = [
        {**answer["history"][-2], "timestamp_ms": lost["time_ms"], "tx_kind": "loan.write_off",
         "tx_sender": sender, "signer": sender},
        {**answer["history"][-1], "timestamp_ms": recovered["time_ms"], "tx_kind": "loan.recover",
         "tx_sender": sender, "signer": sender},
    ]  # fmt: skip
    book = {**queries.lookup(chain.state, "portfolio", members[0].did), "did": bank1, "name": "bank1"}
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", lambda route: route.fulfill(json=answer))
    console.page.route("**/portfolio/*", lambda route: route.fulfill(json=book))  # the DID is URL-encoded
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    shown = console.page.locator("#loan-written-off")
    shown.wait_for()
    assert f"at block {lost['height']}" in shown.inner_text()
    assert f"principal {euros(lost['principal'])}, interest {euros(lost['interest'])}" in shown.inner_text()
    assert "not recorded on chain" not in console.text("#view")
    assert lost["reason"] in console.text("#view")
    assert console.text("#loan-recovered") == (
        f"{euros(2_000)} in 1 recovery, the last at block {recovered['height']}, "
        f"{utc(recovered['time_ms'])}: principal {euros(2_000)}, "
        f"interest {euros(0)}, penalty {euros(0)}"
    )
    assert console.text("#loan-net-loss") == (
        f"{euros(net_loss['total'])}: principal {euros(lost['principal'] - 2_000)}, "
        f"interest {euros(lost['interest'])}, penalty {euros(lost['penalty'])}"
    )
    assert console.text("#loan-net-loss-card") == euros(net_loss["total"])
    assert (
        console.page.locator("#loan-timeline li[data-event='loan.write_off']").get_attribute("class") == "bad"
    )
    recovery_entry = console.page.locator("#loan-timeline li[data-event='loan.recover']")
    assert recovery_entry.get_attribute("class") is None  # money came back: not marked bad
    assert f"amount {euros(2_000)}" in recovery_entry.inner_text()
    console.shot("loan-recovered")
    assert "written off" in console.text("tr[data-instalment='12']")
    console.page.goto(net["bank1"].url + f"/console/#/party/{bank1}")
    row = console.page.locator("#portfolio tr[data-written-off='EUR']")
    row.wait_for()
    assert euros(lost["principal"]) in row.inner_text() and "no live loans" in console.text("#portfolio")
    cells = row.locator("td").all_inner_texts()
    assert cells[-3:] == [euros(2_000), euros(lost["principal"] - 2_000), euros(net_loss["total"])]
    console.shot("loan-written-off")
    # The borrower's page: its repayment history shows the recovery, its exposure the net loss.
    party = queries.lookup(chain.state, "party", borrower.did)
    exposure = queries.lookup(chain.state, "exposure", borrower.did)
    console.page.route("**/parties/*", lambda route: route.fulfill(json=party))
    console.page.route("**/exposure/*", lambda route: route.fulfill(json=exposure))
    console.page.goto(net["bank1"].url + f"/console/#/party/{borrower.did}")
    row = console.page.locator("#exposure tr[data-written-off='EUR']")
    row.wait_for()
    assert row.locator("td").all_inner_texts()[-3:] == cells[-3:]
    assert f"1 defaults (1 written off, {euros(2_000)} recovered after write-offs)" in console.text("main")
    assert console.errors == []


def test_a_restructured_loan_shows_what_was_capitalised_its_new_schedule_and_a_new_proposal(
    net, open_console
):
    """A loan restructured on a ledger test chain (it was overdue: a month of block time), served in flight."""
    chain, members = rules_world(version=5)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, members[0])
    overdue(chain, loan_id)
    assert propose(chain, members[0], loan_id).ok and accept_terms(chain, borrower, loan_id).ok
    assert propose(chain, members[0], loan_id, rate_bps=500, term_months=30).ok
    answer = queries.lookup(chain.state, "loan", loan_id)
    [record] = answer["restructurings"]
    bank1 = net["bank1"].get("/status")["did"]
    answer["borrower"] = bank1  # a party the node knows: no 404 in the log
    sender = {"did": bank1, "name": "bank1"}
    answer["history"] = [
        {**entry, "timestamp_ms": record["time_ms"], "tx_kind": entry["event"], "tx_sender": sender, "signer": sender}
        for entry in answer["history"][-2:]
    ]  # fmt: skip
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", lambda route: route.fulfill(json=answer))
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    proposal = console.page.locator("#loan-restructuring")
    proposal.wait_for()
    assert "500 bps over 30 months (0 of holiday)" in proposal.inner_text()
    assert "the borrower may accept it" in proposal.inner_text()
    done = console.text("[data-restructuring='0']")
    assert (
        f"from overdue: principal {euros(record['principal'])} + interest {euros(record['interest'])}" in done
    )
    assert f"= {euros(record['new_principal'])}; 21 instalments at 600 bps (was 900)" in done
    assert record["penalty"] > 0 and console.text("#loan-penalty-due") == (
        f"{euros(0)} ({euros(record['penalty'])} capitalised by restructuring)"
    )
    first = console.text("tr[data-instalment='1']")
    assert euros(answer["schedule"][0]["payment"]) in first and "due next" in first
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", first)  # its due time
    timeline = console.page.locator("#loan-timeline li[data-event='loan.restructure_accept']").inner_text()
    assert f"new_principal {euros(record['new_principal'])}" in timeline
    console.shot("loan-restructured")
    assert console.errors == []


def test_a_syndicated_loans_proposal_shows_its_funders_consents_and_the_restructuring_who_consented(
    net, open_console
):
    """A syndicated loan's proposal on a ledger test chain, one funder short of the majority, then accepted
    once alice consented, each served in flight."""
    chain, members, borrower = funders_world()
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    answers = [queries.lookup(chain.state, "loan", loan_id)]
    assert chain.run_one(chain.tx(ALICE, "loan.restructure_consent", {"loan_id": loan_id})).ok
    assert accept_terms(chain, borrower, loan_id).ok
    answers.append(queries.lookup(chain.state, "loan", loan_id))
    for answer in answers:
        answer["borrower"] = net["bank1"].get("/status")["did"]  # a party the node knows: no 404 in the log
        answer["history"] = []
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", lambda route: route.fulfill(json=answers[0]))
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    consent = console.page.locator("#loan-restructuring-consent")
    consent.wait_for()
    assert consent.inner_text() == (
        f"{euros(40_000)} of {euros(120_000)} committed (33.33 %); a majority needs more than half, at least "
        f"{euros(60_001)}: missing {euros(20_001)} (16.67 %)"
    )
    assert console.text("#loan-restructuring").endswith(
        "the borrower may accept it once its funders' consents are a majority"
    )
    servicer = console.page.locator("[data-consent='0']")
    assert servicer.inner_text().endswith(f" {euros(40_000)} at block {offered_at}, by proposing")
    assert servicer.locator("a").get_attribute("title") == bank1.did
    console.shot("loan-restructuring-consent")

    console.page.unroute(f"**/loans/{loan_id}")
    console.page.route(f"**/loans/{loan_id}", lambda route: route.fulfill(json=answers[1]))
    console.page.reload()
    done = console.page.locator("[data-restructuring='0']")
    done.wait_for()
    assert done.inner_text().endswith(f"; consented by 2 funders holding {euros(70_000)}")
    assert console.page.locator("#loan-restructuring-consent").count() == 0


def test_a_proposal_shows_until_when_it_may_be_accepted_and_then_that_it_expired(net, open_console):
    """A syndicated loan's proposal (rules 6) with a consent given and withdrawn, judged before and at its
    expiry, each served in flight."""
    chain, members, borrower = funders_world(version=6)
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    assert propose(chain, bank1, loan_id).ok
    for kind in ("loan.restructure_consent", "loan.restructure_consent_withdraw"):
        assert chain.run_one(chain.tx(ALICE, kind, {"loan_id": loan_id})).ok
    expires_ms = queries.lookup(chain.state, "loan", loan_id)["restructuring"]["expires_ms"]
    answers = [
        queries.lookup(chain.state, "loan", loan_id, as_of_ms=ms) for ms in (chain.head_ms, expires_ms)
    ]
    bank1_did = net["bank1"].get("/status")["did"]
    sender = {"did": bank1_did, "name": "bank1"}
    for answer in answers:
        answer["borrower"] = bank1_did  # a party the node knows: no 404 in the log
        answer["history"] = [
            {**entry, "timestamp_ms": chain.head_ms, "tx_kind": entry["event"], "tx_sender": sender, "signer": sender}
            for entry in answer["history"][-1:]
        ]  # fmt: skip
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", lambda route: route.fulfill(json=answers[0]))
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    proposal = console.page.locator("#loan-restructuring")
    proposal.wait_for()
    assert proposal.get_attribute("data-status") == "pending"
    assert proposal.inner_text().endswith(
        f"the borrower may accept it until {utc(expires_ms)} once its funders' consents are a majority"
    )
    assert console.page.locator("[data-consent]").count() == 1  # alice took hers back: bank1's is left
    withdrawn = console.page.locator("#loan-timeline li[data-event='loan.restructure_consent_withdraw']")
    assert "amount 300.00 EUR" in withdrawn.inner_text()
    console.page.unroute(f"**/loans/{loan_id}")
    console.page.route(f"**/loans/{loan_id}", lambda route: route.fulfill(json=answers[1]))
    console.page.reload()
    expired = console.page.locator("#loan-restructuring[data-status='expired']")
    expired.wait_for()
    assert expired.inner_text().endswith(f": expired {utc(expires_ms)}; the servicer may propose again")
    assert "restructuring expired" in console.text("#view")
    assert console.page.locator("#loan-restructuring-consent").count() == 0
    console.shot("loan-restructuring-expired")
    assert console.errors == []


def test_a_forborne_loan_shows_its_status_and_the_books_their_forborne_totals(net, open_console):
    """A loan restructured while overdue (non-performing forborne) on a ledger test chain, judged at its
    head block, served in flight with the lender's book and the borrower's exposure."""
    chain, members = rules_world(version=5)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, members[0])
    overdue(chain, loan_id)
    assert propose(chain, members[0], loan_id).ok and accept_terms(chain, borrower, loan_id).ok
    answer = queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
    status, principal = answer["forbearance"], answer["outstanding_principal"]
    bank1 = net["bank1"].get("/status")["did"]
    answer["borrower"] = bank1  # a party the node knows: no 404 in the log
    answer["history"] = []
    book = {**queries.lookup(chain.state, "portfolio", members[0].did, as_of_ms=chain.head_ms), "did": bank1}
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", lambda route: route.fulfill(json=answer))
    console.page.route("**/portfolio/*", lambda route: route.fulfill(json=book))
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    shown = console.page.locator("#loan-forbearance")
    shown.wait_for()
    assert shown.get_attribute("data-status") == "non_performing"
    assert console.text("#loan-forbearance .pill") == "non-performing"
    assert shown.inner_text().splitlines() == [
        f"non-performing since {utc(status['since_ms'])} · 1 restructuring · cured no earlier than "
        f"{utc(status['cure_ends_ms'])} · forborne until {utc(status['probation_ends_ms'])} at the earliest",
        status["why"],
    ]
    console.shot("loan-forborne")
    console.page.goto(net["bank1"].url + f"/console/#/party/{bank1}")
    row = console.page.locator("#portfolio tr[data-forborne='EUR']")
    row.wait_for()
    assert row.locator("td").all_inner_texts() == [
        "EUR",
        "1",
        euros(principal),
        "0",
        euros(0),
        "1",
        euros(principal),
    ]
    exposure = queries.lookup(chain.state, "exposure", borrower.did, as_of_ms=chain.head_ms)
    console.page.route(
        "**/parties/*", lambda route: route.fulfill(json=queries.lookup(chain.state, "party", borrower.did))
    )
    console.page.route("**/exposure/*", lambda route: route.fulfill(json=exposure))
    console.page.goto(net["bank1"].url + f"/console/#/party/{borrower.did}")
    row = console.page.locator("#exposure tr[data-forborne='EUR']")
    row.wait_for()
    assert row.locator("td").all_inner_texts()[-2:] == ["1", euros(principal)]
    console.shot("exposure-forborne")
    assert console.errors == []
