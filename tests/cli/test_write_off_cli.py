"""``lendchain loan write-off`` and what ``loan show``, ``loan portfolio``, ``party exposure`` and
``fund positions`` say of a loan written off.

As in ``test_loan_transfer_cli``: the command's payload is executed on a ledger
test chain (rules 4), signed by the member the command would sign as, and the
chain answers the commands' reads as a node's API would.
"""

from __future__ import annotations

import json

import pytest

from lendchain.cli.domain import describe_positions
from lendchain.cli.reports import FORBORNE_COLUMNS, STAGE_COLUMNS
from lendchain.ledger import queries
from tests.cli import test_loan_transfer_cli as transfer_cli
from tests.cli.test_loan_transfer_cli import cli, execute, world
from tests.ledger.chain import seeded_key
from tests.ledger.test_loan_transfer import open_loan
from tests.ledger.test_write_off import default

REASON = "recovery ended"


@pytest.fixture
def defaulted(monkeypatch):
    """bank1's loan, defaulted; the CLI reads the chain, also at /exposure/{did}."""
    monkeypatch.setitem(transfer_cli.PATHS, "exposure", "exposure")
    chain, members, loan_id, sent = world(monkeypatch)
    default(chain, loan_id)
    return chain, members, loan_id, sent


def test_the_servicer_writes_a_loan_off_and_show_portfolio_and_exposure_report_it(defaulted):
    chain, members, loan_id, sent = defaulted
    bank1 = members[0]
    assert cli("loan", "write-off", loan_id, "--reason", REASON).exit_code == 0
    assert sent[-1] == ("loan.write_off", {"loan_id": loan_id, "reason": REASON})
    assert execute(chain, bank1, sent).ok
    lost = queries.lookup(chain.state, "loan", loan_id)["written_off"]
    amounts = f"principal {lost['principal']}, interest {lost['interest']}, penalty {lost['penalty']}"

    shown = cli("loan", "show", loan_id).output
    assert shown.splitlines()[0] == f"loan {loan_id}: written_off"
    assert f"  written off     at height {chain.height}: {amounts}" in shown
    assert f"  reason          {REASON}" in shown

    totals = (
        f"principal {lost['principal']}{{}}  interest {lost['interest']}  penalty {lost['penalty']}  loans 1"
    )
    whole = lost["principal"] + lost["interest"] + lost["penalty"]
    nothing_back = (
        f"  EUR  recovered since: 0 (principal 0)  net loss {whole} (principal {lost['principal']})"
    )
    book = cli("loan", "portfolio", bank1.did).output.splitlines()
    assert book == [
        "portfolio of bank1",
        "  no live loans",
        "  EUR  written off: " + totals.format(" (funded by others 0)"),
        nothing_back,
    ]
    borrower = queries.lookup(chain.state, "loan", loan_id)["borrower"]
    exposure = cli("party", "exposure", borrower).output.splitlines()
    assert exposure[1:] == [
        "  no live loans (nothing disbursed or committed)",
        "  EUR  written off: " + totals.format(""),
        nothing_back,
        "loans (1)",
        f"  {loan_id[:16]}  written_off EUR  written off {lost['principal']} of {lost['principal']}"
        f"  recovered 0, net loss {lost['principal']}",
    ]


def test_on_a_chain_before_rules_4_nothing_is_sent_and_the_upgrade_is_named(monkeypatch):
    _, _, loan_id, sent = world(monkeypatch, version=3)
    result = cli("loan", "write-off", loan_id, "--reason", REASON)
    assert result.exit_code == 1
    assert "this chain runs rules version 3 and loan.write_off needs version 4" in result.output
    assert "lendchain gov propose rules.upgrade 4 HEIGHT" in result.output
    assert "Traceback" not in result.output and sent == []


@pytest.mark.parametrize("reason", ["", "   ", "x" * 201])
def test_a_reason_that_is_blank_or_too_long_is_refused_before_anything_is_sent(defaulted, reason):
    _, _, loan_id, sent = defaulted
    result = cli("loan", "write-off", loan_id, "--reason", reason)
    assert result.exit_code == 2 and sent == []
    assert "Invalid value for '--reason': give the reason in 1 to 200 characters" in result.output


def test_write_off_needs_a_reason(defaulted):
    _, _, loan_id, sent = defaulted
    result = cli("loan", "write-off", loan_id)
    assert result.exit_code == 2 and "Missing option '--reason'" in result.output and sent == []


def test_fund_positions_prints_a_funders_share_of_what_was_written_off():
    view = {
        "did": "did:key:zAlice",
        "currencies": {
            "EUR": {
                "committed": 30_000,
                "received": 3_000,
                "outstanding": 0,
                "loans": 1,
                "overdue_loans": 0,
                "defaulted_loans": 0,
            }
        },
        "written_off": {"EUR": {"principal": 24_000, "loans": 1}},
        "positions": [
            {
                "loan_id": "ab" * 32,
                "state": "written_off",
                "status": "committed",
                "commitment": 30_000,
                "received": 3_000,
                "share": 24_000,
                "share_of": "written_off",
            }
        ],
    }
    assert describe_positions(view).splitlines() == [
        "EUR: committed 30000 in 1 loans, received 3000, outstanding share 0 (0 overdue, 0 defaulted)",
        "EUR: written off share 24000 in 1 loans",
        f"  {'ab' * 8}…  written_off  committed 30000, received 3000, share 24000 of written_off",
    ]


def test_loan_books_sets_every_lenders_book_side_by_side_with_the_totals(defaulted, monkeypatch):
    monkeypatch.setitem(transfer_cli.PATHS, "members", "members")
    chain, members, loan_id, sent = defaulted
    bank1, bank2 = members[0], members[1]
    assert cli("loan", "write-off", loan_id, "--reason", REASON).exit_code == 0
    assert execute(chain, bank1, sent).ok
    lost = queries.lookup(chain.state, "loan", loan_id)["written_off"]["principal"]
    live = open_loan(chain, seeded_key(1), bank2)  # the same borrower, at another lender
    outstanding = queries.lookup(chain.state, "loan", live)["outstanding_principal"]
    view = json.loads(cli("--json", "loan", "books").output)
    quiet = {"committed": 0, "overdue_loans": 0, "defaulted_loans": 0, "penalty_due": 0}
    quiet |= dict.fromkeys(FORBORNE_COLUMNS, 0)  # nothing restructured (rules 5)
    unmoved = {"recovery_taken_over": 0, "recovery_handed_on": 0}  # no recovery changed servicer (rules 6)
    quiet |= dict.fromkeys(STAGE_COLUMNS, 0)  # no drawn loan: no stage (bank2's is below)
    quiet |= {"secured": 0, "collateral_value": 0, "secured_loans": 0}  # nothing pledged (rules 6)
    current = {"stage_1_loans": 1, "stage_1_outstanding": outstanding, "dpd_0_loans": 1,
               "dpd_0_outstanding": outstanding}  # fmt: skip
    assert view["books"] == [
        {"member": "bank1", "currency": "EUR", "loans": 0, "outstanding": 0, "unsecured": 0, **quiet, "written_off": lost,
         "written_off_loans": 1, "recovered": 0, "net_written_off": lost, **unmoved, "recovering_loans": 1},
        {"member": "bank2", "currency": "EUR", "loans": 1, "outstanding": outstanding, "unsecured": outstanding,
         **quiet, **current,
         "written_off": 0, "written_off_loans": 0, "recovered": 0, "net_written_off": 0, **unmoved, "recovering_loans": 0},
    ]  # fmt: skip
    assert view["totals"] == {
        "EUR": {"loans": 1, "outstanding": outstanding, "unsecured": outstanding, **quiet, **current,
                "written_off": lost,
                "written_off_loans": 1, "recovered": 0, "net_written_off": lost, **unmoved,
                "recovering_loans": 1}
    }  # fmt: skip
    text = cli("loan", "books").output.splitlines()
    assert text[0].split() == ["member", "cur", "loans", "outstanding", "committed", "overdue", "default",
                               "penalty", "written", "off", "recovered", "net"]  # fmt: skip
    assert text[1].split() == ["bank1", "EUR", "0", "0", "0", "0", "0", "0", str(lost), "0", str(lost)]
    assert text[3].split() == ["all", "EUR", "1", str(outstanding), *"0000", str(lost), "0", str(lost)]
    assert cli("loan", "books", "--currency", "usd").output.strip() == (
        "no lender member has a loan on its books"
    )
