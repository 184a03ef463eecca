"""``lendchain loan recover`` and what ``loan show``, ``loan portfolio``, ``party exposure``,
``loan books`` and ``fund positions`` say of recoveries after a write-off.

As in ``test_write_off_cli``: the command's payload is executed on a ledger
test chain (rules 5 unless a test says otherwise), signed by the member the
command would sign as, and the chain answers the commands' reads as a node's
API would.
"""

from __future__ import annotations

import json

import pytest

from lendchain.cli.domain import describe_positions
from lendchain.ledger import queries
from tests.cli import test_loan_transfer_cli as transfer_cli
from tests.cli.test_loan_transfer_cli import cli, execute, world
from tests.ledger.test_write_off import default, write_off

NOTE = "guarantor paid"


@pytest.fixture
def written_off(monkeypatch):
    """bank1's loan, defaulted and written off on a rules-5 chain; the CLI reads the chain."""
    for kind in ("exposure", "members"):
        monkeypatch.setitem(transfer_cli.PATHS, kind, kind)
    chain, members, loan_id, sent = world(monkeypatch, version=5)
    default(chain, loan_id)
    assert write_off(chain, members[0], loan_id).ok
    return chain, members, loan_id, sent


def test_the_servicer_records_recoveries_and_show_portfolio_exposure_and_books_report_them(written_off):
    chain, members, loan_id, sent = written_off
    bank1 = members[0]
    assert cli("loan", "recover", loan_id, "--amount", "5000", "--note", NOTE).exit_code == 0
    assert sent[-1] == ("loan.recover", {"loan_id": loan_id, "amount": 5000, "note": NOTE})
    assert execute(chain, bank1, sent).ok
    first = chain.height
    assert cli("loan", "recover", loan_id, "--amount", "700").exit_code == 0
    assert sent[-1] == ("loan.recover", {"loan_id": loan_id, "amount": 700})  # no note: none is sent
    assert execute(chain, bank1, sent).ok
    lost = queries.lookup(chain.state, "loan", loan_id)["written_off"]
    principal, whole = lost["principal"], lost["principal"] + lost["interest"] + lost["penalty"]

    shown = cli("loan", "show", loan_id).output.splitlines()
    assert shown[0] == f"loan {loan_id}: written_off"
    assert shown[-3:] == [
        f"  recovered       5000 at height {first}: principal 5000, interest 0, penalty 0 ({NOTE})",
        f"  recovered       700 at height {chain.height}: principal 700, interest 0, penalty 0",
        f"  net loss        {whole - 5700}: principal {principal - 5700}, interest {lost['interest']}, "
        f"penalty {lost['penalty']}",
    ]

    back = f"  EUR  recovered since: 5700 (principal 5700)  net loss {whole - 5700} (principal {principal - 5700})"
    assert cli("loan", "portfolio", bank1.did).output.splitlines()[-1] == back
    borrower = queries.lookup(chain.state, "loan", loan_id)["borrower"]
    exposure = cli("party", "exposure", borrower).output.splitlines()
    assert exposure[-3:] == [
        back,
        "loans (1)",
        f"  {loan_id[:16]}  written_off EUR  written off {principal} of {principal}"
        f"  recovered 5700, net loss {principal - 5700}",
    ]

    view = json.loads(cli("--json", "loan", "books").output)
    [row] = view["books"]
    assert (row["member"], row["written_off"], row["recovered"], row["net_written_off"]) == (
        "bank1",
        principal,
        5700,
        principal - 5700,
    )
    assert view["totals"]["EUR"]["recovered"] == 5700
    text = cli("loan", "books").output.splitlines()
    assert text[1].split()[-3:] == [str(principal), "5700", str(principal - 5700)]
    assert text[-1] == (
        "amounts in minor units (cents); written off, recovered since and net: principal "
        "(recoveries cover principal first)"
    )


def test_on_a_chain_before_rules_5_nothing_is_sent_and_the_upgrade_is_named(monkeypatch):
    _, _, loan_id, sent = world(monkeypatch, version=4)
    result = cli("loan", "recover", loan_id, "--amount", "5000")
    assert result.exit_code == 1
    assert "this chain runs rules version 4 and loan.recover needs version 5" in result.output
    assert "lendchain gov propose rules.upgrade 5 HEIGHT" in result.output
    assert "Traceback" not in result.output and sent == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--amount", "0"], "Invalid value for '--amount': 0 is not in the range x>=1"),
        (["--amount", "-5"], "Invalid value for '--amount': -5 is not in the range x>=1"),
        (["--amount", "many"], "Invalid value for '--amount': 'many' is not a valid integer"),
        ([], "Missing option '--amount'"),
        (
            ["--amount", "5", "--note", "  "],
            "Invalid value for '--note': give the note in 1 to 200 characters",
        ),
        (["--amount", "5", "--note", "n" * 201], "Invalid value for '--note': give the note in 1 to 200"),
    ],
)
def test_a_bad_amount_or_note_is_refused_before_anything_is_sent(written_off, args, expected):
    _, _, loan_id, sent = written_off
    result = cli("loan", "recover", loan_id, *args)
    assert result.exit_code == 2 and sent == []
    assert expected in result.output


def test_loan_show_of_a_written_off_loan_without_recoveries_gives_the_whole_loss_as_net(written_off):
    chain, _, loan_id, _ = written_off
    lost = queries.lookup(chain.state, "loan", loan_id)["written_off"]
    whole = lost["principal"] + lost["interest"] + lost["penalty"]
    shown = cli("loan", "show", loan_id).output.splitlines()
    assert shown[-1] == (
        f"  net loss        {whole}: principal {lost['principal']}, interest {lost['interest']}, "
        f"penalty {lost['penalty']}"
    )
    assert not any(line.startswith("  recovered") for line in shown)


def test_fund_positions_prints_a_funders_share_of_the_recoveries():
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
        "written_off": {
            "EUR": {"principal": 24_000, "loans": 1, "recovered": 2_500, "net_principal": 21_500}
        },
        "positions": [
            {
                "loan_id": "ab" * 32,
                "state": "written_off",
                "status": "committed",
                "commitment": 30_000,
                "received": 3_000,
                "share": 24_000,
                "share_of": "written_off",
                "recovered": 2_500,
            }
        ],
    }
    assert describe_positions(view).splitlines()[1:] == [
        "EUR: written off share 24000 in 1 loans, recovered since 2500, net principal 21500",
        f"  {'ab' * 8}…  written_off  committed 30000, received 3000, share 24000 of written_off, recovered 2500",
    ]
