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
from pathlib import Path

import pytest

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.cluster import wait_for
from tests.console.conftest import KYC_NODE, TOKEN_NODE, skip_without_a_browser

pytestmark = pytest.mark.slow
skip_without_a_browser()


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
    # The chain parameters in force, as GET /params/* gives them: defaults on a fresh test network.
    page.wait_for_selector("[data-param=voting_period_ms]")
    for row in net["bank1"].get("/params/*")["parameters"]:
        cells = page.locator(f"[data-param={row['name']}] td").all_inner_texts()
        assert cells[0] == row["name"] and cells[3] in ("the default", "set by the genesis"), cells
        assert cells[4] == ("params.set" if row["changeable"] else "fixed")
    assert page.locator("[data-param=voting_period_ms] td").all_inner_texts()[1] == "604800000"

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
    transferred = cli("loan", "transfer", loan_id, "--to", bank1_did, "--key", lender, node="bank2")
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
    assert f"bank1 {bank1_did[:24]}" in console.text("main")  # the member offered it, by name and DID
    # the history entry names it too, by the loan view's member_names
    assert "to bank1" in console.text("#loan-timeline li[data-event='loan.transfer']")
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
    carrier = console.text(f"#exposure tr[data-carrier='{bank2_did}']")
    assert carrier.startswith(f"bank2 {bank2_did[:24]}")  # the member's name and its DID's link
    console.shot("party")
    # bank2's page: the loans it services, with the borrower as its largest.
    page.fill("#search-input", bank2_did)
    page.press("#search-input", "Enter")
    page.wait_for_selector("#portfolio tr[data-currency='EUR']")
    assert f"{outstanding // 100:,}.{outstanding % 100:02d} EUR" in console.text(
        "#portfolio tr[data-currency='EUR']"
    )
    assert borrower_did[:24] in console.text("#portfolio")
    # the servicing it offered bank1, both members by name and DID (portfolio's lender_name, to_name)
    pending = console.page.locator(f"#portfolio tr[data-transfer='{loan_id}'] td").all_inner_texts()
    assert pending[1:3] == [f"bank2 {bank2_did[:24]}…", f"bank1 {bank1_did[:24]}…"]
    console.shot("member")
    # a tx's events hold DIDs only: the page names a member by the consortium's list the poll keeps
    page.goto(net["bank3"].url + f"/console/#/tx/{transferred['id']}")
    page.wait_for_selector(f"text=to=bank1 ({bank1_did})")
    assert f"lender=bank2 ({bank2_did})" in console.text("main")
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
