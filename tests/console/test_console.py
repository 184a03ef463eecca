"""The web console in a real browser against four real nodes on 127.0.0.1 (issue 9).

Headless Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright's
Python package; browsers cannot be downloaded here. bank4 guards its API with
a bearer token so the console's token handling runs against the real guard.
Screenshots go to ``tests/console/artifacts/`` (not committed). Every wait is
on a condition in the page or the cluster, with a deadline.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli_w

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger import queries
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet
from tests.ledger.chain import seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_loan_transfer import open_loan
from tests.ledger.test_restructure import accept_terms, overdue, propose
from tests.ledger.test_restructure_consent import ALICE, BOB, funders_world, syndicate
from tests.ledger.test_write_off import default, write_off

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN_NODE = "bank4"
KYC_NODE = "bank1"  # generate_testnet gives the first member the lender, kyc and bureau roles
WAIT_MS = 60_000

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed (pip install playwright)"
)
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install -y chromium); Playwright cannot download a browser here",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    out = tmp_path_factory.mktemp("console-net")
    p2p = free_port_block(8)
    api = free_port_block(8, start=p2p + 20)
    layout = generate_testnet(
        out / "net", 4, p2p_base_port=p2p, api_base_port=api, rules_version=RULES_VERSION
    )
    token = secrets.token_hex(16)
    token_path = out / "net" / "api.token"
    token_path.write_text(token + "\n")
    config_path = out / "net" / f"{TOKEN_NODE}.toml"
    config = tomllib.loads(config_path.read_text())
    config["api"]["token_file"] = str(token_path)
    config_path.write_text(tomli_w.dumps(config))
    cluster = Cluster(list(layout.configs), out / "logs")
    cluster.token = token
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
        cluster.wait_agree([n for n in cluster.names if n != TOKEN_NODE], timeout_s=60)
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


class ConsolePage:
    """One browser tab on one node's console, recording every console error and page error."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_console(browser):
    opened: list[ConsolePage] = []

    def open_(url: str) -> ConsolePage:
        page = ConsolePage(browser, url)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        page.close()


def register_borrowers(url: str, count: int) -> None:
    with NodeClient(url, timeout=10) as client:
        for _ in range(count):
            client.submit(
                client.build(SigningKey.generate(), "party.register", {"role": "borrower"}, nonce=0)
            )


def test_network_view_shows_members_peers_and_updates_without_reload(net, open_console):
    console = open_console(net["bank1"].url + "/console")
    page = console.page
    for name in net.names:
        page.wait_for_selector(f"[data-member={name}][data-connected=true]")
    assert "this node" in console.text("[data-member=bank1]")
    primary = net["bank1"].get("/status")["primary"]
    assert "primary" in console.text(f"[data-member={primary}]")
    assert page.locator("#chart-rate").is_visible() and page.locator("#chart-blocktime").is_visible()
    assert console.text("#stat-rules").startswith("version 1")
    assert console.text("#stat-voters") == "4 · tolerates 1 faulty"
    page.wait_for_function("document.getElementById('stat-peers')?.textContent === '3 of 3'")
    # The consortium as the chain records it: every genesis member votes, at its genesis address.
    page.wait_for_selector("[data-consortium=bank4]")
    genesis = net["bank1"].config.genesis
    for member in genesis.members:
        cells = page.locator(f"[data-consortium={member.name}] td").all_inner_texts()
        assert cells[:3] == [member.name, "genesis", "votes"] and cells[4] == member.address

    height = int(console.text("#stat-height"))
    register_borrowers(net["bank2"].url, 5)
    page.wait_for_function(
        f"Number(document.getElementById('stat-height').textContent) > {height} && poll.polls >= 3"
    )
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    # Every member voted for the new blocks, so each one's signed messages name a height past them.
    committed = net["bank1"].get("/status")["height"]
    page.wait_for_function(
        "[...document.querySelectorAll('tr[data-member]')]"
        f".filter(row => Number(row.dataset.height) >= {committed}).length === 4"
    )
    for name in net.names:
        row = page.locator(f"[data-member={name}]")
        assert row.get_attribute("data-state") == ("self" if name == "bank1" else "up")
        assert re.search(r"#\d+", row.locator("td >> nth=3").inner_text())
        if name != "bank1":
            assert re.fullmatch(r"[\d.]+ s ago", row.locator("td >> nth=4").inner_text())
    console.shot("network")
    assert console.errors == []


def test_chain_view_lists_blocks_and_a_block_shows_its_txs_with_results(net, open_console):
    register_borrowers(net["bank1"].url, 3)
    console = open_console(net["bank1"].url + "/console/#/chain")
    page = console.page
    page.wait_for_selector("tr[data-height]")
    newest = page.locator("tr[data-height]").first
    cells = newest.locator("td").all_inner_texts()
    assert cells[3] in net.names  # proposer
    assert len(cells[6].split(", ")) >= 3  # a commit certificate holds a quorum of signers
    console.shot("chain")

    with_txs = next(
        b for b in net["bank1"].get("/blocks?from=1&limit=50")["blocks"] if b["header"]["tx_count"]
    )
    page.locator(f"tr[data-height='{with_txs['header']['height']}']").click()
    page.wait_for_selector("#block-txs td")
    assert f"{len(with_txs['txs'])} transactions" in console.text("#block-txs")
    assert "ok" in console.text("#block-txs")
    assert "party.register" in console.text("#block-txs")

    for query, expected in ((str(with_txs["header"]["height"]), "#/block/"), (with_txs["txs"][0], "#/tx/")):
        page.fill("#search-input", query)
        page.press("#search-input", "Enter")
        page.wait_for_url(re.compile(re.escape(expected)))
    page.wait_for_selector("text=committed")
    assert console.errors == []


def test_a_loan_sent_with_the_cli_appears_on_its_loan_page_with_its_timeline(net, open_console, tmp_path):
    from click.testing import CliRunner

    from lendchain.cli import main

    runner = CliRunner()

    def cli(*args: str, node: str) -> dict:
        result = runner.invoke(main, ["--json", *args, "--node", net[node].url])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    borrower = str(tmp_path / "borrower.key")
    lender = str(net["bank2"].config.key_file)
    assert runner.invoke(main, ["keys", "new", borrower]).exit_code == 0
    borrower_did = read_key_file(Path(borrower)).did
    cli("party", "register", "--role", "borrower", "--key", borrower, node="bank1")
    # bank1 holds the kyc role in a generated testnet; loan.apply may require an attestation.
    attested = cli(
        "kyc",
        "attest",
        borrower_did,
        "--level",
        "2",
        "--evidence-hash",
        hashlib.sha256(b"passport checked at the branch").hexdigest(),
        "--key",
        str(net[KYC_NODE].config.key_file),
        node="bank1",
    )
    assert attested["result"]["ok"], attested
    apply_args = ["--amount", "2400000", "--currency", "EUR", "--term", "12", "--purpose", "a bakery oven"]
    applied = cli("loan", "apply", *apply_args, "--key", borrower, node="bank1")
    loan_id = applied["id"]
    offered = cli("loan", "offer", loan_id, "--rate-bps", "700", "--key", lender, node="bank2")
    accepted = cli("loan", "accept", loan_id, offered["id"], "--key", borrower, node="bank3")
    disbursed = cli("loan", "disburse", loan_id, "--key", lender, node="bank1")
    loan = cli("loan", "show", loan_id, node="bank1")
    payment = str(loan["schedule"][0]["payment"])
    repaid = cli("loan", "repay", loan_id, "--amount", payment, "--key", lender, node="bank2")
    bank1_did = net["bank1"].get("/status")["did"]  # bank2 offers bank1 the loan's servicing
    cli("loan", "transfer", loan_id, "--to", bank1_did, "--key", lender, node="bank2")
    net.wait_agree(["bank1", "bank2", "bank3"], timeout_s=60)
    signed = [(applied, borrower_did), (offered, "bank2"), (accepted, borrower_did), (disbursed, "bank2")]
    signed.append((repaid, "bank2"))

    console = open_console(net["bank3"].url + "/console/")
    page = console.page
    page.fill("#search-input", loan_id)
    page.press("#search-input", "Enter")
    page.wait_for_url(re.compile("#/loan/" + loan_id))
    page.wait_for_selector("#loan-timeline li[data-event='loan.transfer']")
    events = page.locator("#loan-timeline li").evaluate_all("items => items.map(i => i.dataset.event)")
    assert events == [
        "loan.apply",
        "loan.offer",
        "loan.accept",
        "loan.disburse",
        "loan.repay",
        "loan.transfer",
    ]
    assert "transfer offered to" in console.text("main") and "lapsed" not in console.text("main")
    first = console.text("#loan-timeline li >> nth=0")
    assert "block #" in first and "UTC" in first and "24,000.00 EUR" in first
    bank2_did = net["bank2"].get("/status")["did"]
    for n, (tx, signer) in enumerate(signed):
        item = page.locator(f"#loan-timeline li >> nth={n}")
        text = item.inner_text()
        assert item.get_attribute("data-height") == str(tx["height"]) and f"block #{tx['height']}" in text
        assert item.get_attribute("data-signer") == (bank2_did if signer == "bank2" else borrower_did)
        assert "signed by" in text and "UTC" in text
        assert (signer if signer == "bank2" else borrower_did[:24]) in text
    assert "paid" in console.text("tr[data-instalment='1']")
    assert "due next" in console.text("tr[data-instalment='2']")
    assert "repaying" in console.text("h2")
    assert "Credit score" in page.content()
    console.shot("loan")

    page.fill("#search-input", borrower_did)
    page.press("#search-input", "Enter")
    page.wait_for_selector("text=repayments")
    assert "1 on time" in console.text("main")
    # Its debt across lenders: the loan's outstanding principal, carried by bank2.
    outstanding = 2_400_000 - cli("loan", "show", loan_id, node="bank3")["principal_paid"]
    eur = console.text("#exposure tr[data-currency='EUR']")
    assert eur.startswith("EUR") and f"{outstanding // 100:,}.{outstanding % 100:02d} EUR" in eur
    assert "bank2" in console.text(f"#exposure tr[data-carrier='{bank2_did}']")
    console.shot("party")
    # bank2's page: the loans it services, with the borrower as its largest.
    page.fill("#search-input", bank2_did)
    page.press("#search-input", "Enter")
    page.wait_for_selector("#portfolio tr[data-currency='EUR']")
    assert f"{outstanding // 100:,}.{outstanding % 100:02d} EUR" in console.text(
        "#portfolio tr[data-currency='EUR']"
    )
    assert borrower_did[:24] in console.text("#portfolio")
    console.shot("member")
    assert console.errors == []


def test_an_event_the_chain_made_by_itself_shows_the_chain_as_its_signer(net, open_console):
    """An instalment falls overdue months after disbursal, so the node's answer is extended in flight."""
    loan_id = "ab" * 32
    height = net["bank1"].get("/status")["height"]
    answer = {
        "loan_id": loan_id,
        "state": "overdue",
        "borrower": net["bank1"].get("/status")["did"],  # a party the node knows: no 404 in the log
        "currency": "EUR",
        "amount": 100_000,
        "term_months": 12,
        "history": [
            {
                "event": "loan.overdue",
                "height": height,
                "tx_id": "cd" * 32,
                "instalment": 2,
                "timestamp_ms": 1_700_000_000_000,
                "tx_kind": "loan.service",
                "tx_sender": {"did": net["bank2"].get("/status")["did"], "name": "bank2"},
                "signer": None,
            }
        ],
    }
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/loans/{loan_id}", lambda route: route.fulfill(json=answer))
    console.page.goto(net["bank1"].url + f"/console/#/loan/{loan_id}")
    item = console.page.locator("#loan-timeline li[data-event='loan.overdue']")
    item.wait_for()
    assert item.get_attribute("data-signer") == "chain"
    assert f"chain (block {height}) during loan.service by bank2" in item.inner_text()
    assert console.errors == []


def test_a_block_page_shows_what_the_chain_did_at_its_start(net, open_console):
    """A block's ledger_events (here added in flight: no instalment falls due in a test's minutes)."""
    register_borrowers(net["bank1"].url, 1)
    wait_for(lambda: net["bank1"].get("/status")["height"] >= 1, 60, "a first block")
    height = net["bank1"].get("/status")["height"]
    answer = net["bank1"].get(f"/blocks/{height}")
    assert answer["ledger_events"] == []
    answer["ledger_events"] = [{"event": "loan.overdue", "loan_id": "ab" * 32, "instalment": 2}]
    console = open_console(net["bank1"].url + "/console/")
    console.page.route(f"**/blocks/{height}", lambda route: route.fulfill(json=answer))
    console.page.goto(net["bank1"].url + f"/console/#/block/{height}")
    panel = console.page.locator("#block-ledger-events")
    panel.wait_for()
    text = panel.inner_text()
    assert f"chain (block {height}): 1 event before its transactions" in text
    assert "loan.overdue" in text and "instalment=2" in text
    assert console.errors == []


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


def test_a_token_protected_node_takes_the_token_from_the_url_once(net, open_console):
    url = net[TOKEN_NODE].url
    locked = open_console(url + "/console/")
    locked.page.wait_for_selector("#banner:not([hidden])")
    assert "needs its API token" in locked.text("#banner")

    console = open_console(f"{url}/console/?token={net.token}#/chain")
    page = console.page
    page.wait_for_selector("tr[data-height]")
    assert "token=" not in page.url
    assert page.evaluate("sessionStorage.getItem('lendchain.console.token')") == net.token
    page.reload()
    page.wait_for_selector("tr[data-height]")
    assert console.errors == []


def test_a_scheduled_rules_upgrade_this_release_cannot_run_shows_on_the_network_view(net, open_console):
    keys_dir = net["bank1"].config_path.parent / "keys"
    keys = {name: read_key_file(keys_dir / f"{name}.key") for name in ("bank1", "bank2", "bank4")}
    unknown = RULES_VERSION + 1  # the chain runs the newest rules: the next one is no release's yet
    with NodeClient(net["bank1"].url, timeout=10) as client:
        first = client.get("/status")["height"] + 100_000  # far beyond anything this module does
        upgrade = {"action": "rules.upgrade", "key": str(unknown), "value": str(first)}
        proposal = client.build(keys["bank1"], "gov.propose", upgrade)
        client.submit(proposal)
        assert client.wait_tx(proposal.id.hex(), 60)["result"]["code"] == "ok"
        for voter in ("bank2", "bank4"):
            vote = client.build(keys[voter], "gov.vote", {"proposal_id": proposal.id.hex()})
            client.submit(vote)
            assert client.wait_tx(vote.id.hex(), 60)["result"]["code"] == "ok"
    console = open_console(net["bank1"].url + "/console/#/network")
    expected = f"version {RULES_VERSION} · v{unknown} from #{first} · upgrade this node before #{first}"
    console.page.wait_for_function(
        f"document.getElementById('stat-rules')?.textContent === {json.dumps(expected)}"
    )
    console.shot("network-rules-upgrade")
    assert console.errors == []


def test_a_killed_node_shows_as_not_connected_on_another_nodes_network_view(net, open_console):
    console = open_console(net["bank1"].url + "/console/#/network")
    page = console.page
    page.wait_for_selector("[data-member=bank3][data-connected=true]")
    net.kill("bank3")
    page.wait_for_selector("[data-member=bank3][data-connected=false][data-state=down]")
    assert "not connected" in console.text("[data-member=bank3]")
    assert "down" in console.text("[data-member=bank3]")
    for name in ("bank2", "bank4"):
        assert page.locator(f"[data-member={name}]").get_attribute("data-connected") == "true"
        assert page.locator(f"[data-member={name}]").get_attribute("data-state") == "up"
    console.shot("network-node-down")
    assert console.errors == []
