"""``lendchain loan restructure | accept-restructure | withdraw-restructure`` and what ``loan show``
says of a restructuring.

As in ``test_loan_transfer_cli``: the commands' payloads are executed on a
ledger test chain (rules 5), signed by the member or party the command would
sign as, and the chain answers the commands' reads as a node's API would.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.dispute_records import time_text
from tests.cli.test_loan_transfer_cli import cli, execute, world
from tests.ledger.chain import seeded_key
from tests.ledger.test_restructure import overdue
from tests.ledger.test_write_off import default

BORROWER = seeded_key(1)  # the borrower ``world`` onboards


@pytest.fixture
def late(monkeypatch):
    """bank1's loan, overdue, on a rules-5 chain; the CLI reads it and records what it would send."""
    chain, members, loan_id, sent = world(monkeypatch, version=5)
    overdue(chain, loan_id)
    return chain, members, loan_id, sent


def test_the_servicer_proposes_the_borrower_accepts_and_show_prints_both(late):
    chain, members, loan_id, sent = late
    bank1 = members[0]
    args = [
        "loan",
        "restructure",
        loan_id,
        "--rate-bps",
        "600",
        "--term-months",
        "24",
        "--holiday-months",
        "3",
    ]
    assert cli(*args).exit_code == 0
    terms = {"loan_id": loan_id, "rate_bps": 600, "term_months": 24, "holiday_months": 3}
    assert sent[-1] == ("loan.restructure", terms)
    assert execute(chain, bank1, sent).ok
    offered_at = chain.height
    shown = cli("loan", "show", loan_id).output
    assert (
        f"  restructuring   600 bps over 24 months (3 of holiday), offered at height {offered_at} (pending)"
    ) in shown

    assert cli("loan", "accept-restructure", loan_id).exit_code == 0
    assert sent[-1] == ("loan.restructure_accept", {"loan_id": loan_id})
    assert execute(chain, BORROWER, sent).ok
    record = queries.lookup(chain.state, "loan", loan_id)["restructurings"][0]
    shown = cli("loan", "show", loan_id).output.splitlines()
    assert shown[0] == f"loan {loan_id}: repaying"
    assert "  term_months     21" in shown and "  rate_bps        600" in shown
    assert (
        f"  restructured    at height {chain.height} (overdue): principal {record['principal']} + interest "
        f"{record['interest']} + penalty {record['penalty']} + holiday interest "
        f"{sum(record['holiday_interest'])} = {record['new_principal']}; 21 instalments at 600 bps after 3 "
        f"months of holiday, the first due at {time_text(record['first_due_ms'])}"
    ) in shown
    assert not any(line.startswith("  restructuring ") for line in shown)


def test_without_holiday_months_none_is_granted(late):
    chain, members, loan_id, sent = late
    assert cli("loan", "restructure", loan_id, "--rate-bps", "700", "--term-months", "18").exit_code == 0
    assert sent[-1] == (
        "loan.restructure",
        {"loan_id": loan_id, "rate_bps": 700, "term_months": 18, "holiday_months": 0},
    )
    assert execute(chain, members[0], sent).ok


def test_withdraw_restructure_takes_the_proposal_back(late):
    chain, members, loan_id, sent = late
    cli("loan", "restructure", loan_id, "--rate-bps", "600", "--term-months", "24")
    assert execute(chain, members[0], sent).ok
    assert cli("loan", "withdraw-restructure", loan_id).exit_code == 0
    assert sent[-1] == ("loan.restructure_withdraw", {"loan_id": loan_id})
    assert execute(chain, members[0], sent).ok
    assert "restructur" not in cli("loan", "show", loan_id).output


def test_show_says_why_a_proposal_lapsed(late):
    chain, members, loan_id, sent = late
    cli("loan", "restructure", loan_id, "--rate-bps", "600", "--term-months", "24")
    assert execute(chain, members[0], sent).ok
    default(chain, loan_id)
    assert (
        "(lapsed: the loan defaulted after it was offered (in state overdue))"
        in cli("loan", "show", loan_id).output
    )


@pytest.mark.parametrize(
    "args",
    [
        ["loan", "restructure", "LOAN", "--rate-bps", "600", "--term-months", "24"],
        ["loan", "accept-restructure", "LOAN"],
        ["loan", "withdraw-restructure", "LOAN"],
    ],
)
def test_on_a_chain_before_rules_5_nothing_is_sent_and_the_upgrade_is_named(monkeypatch, args):
    _, _, loan_id, sent = world(monkeypatch, version=4)
    result = cli(*[loan_id if a == "LOAN" else a for a in args])
    assert result.exit_code == 1
    kind = {"restructure": "loan.restructure", "accept-restructure": "loan.restructure_accept"}.get(
        args[1], "loan.restructure_withdraw"
    )
    assert f"this chain runs rules version 4 and {kind} needs version 5" in result.output
    assert "lendchain gov propose rules.upgrade 5 HEIGHT" in result.output
    assert "Traceback" not in result.output and sent == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--term-months", "24"], "Missing option '--rate-bps'"),
        (["--rate-bps", "600"], "Missing option '--term-months'"),
        (["--rate-bps", "-1", "--term-months", "24"], "Invalid value for '--rate-bps'"),
        (["--rate-bps", "100001", "--term-months", "24"], "Invalid value for '--rate-bps'"),
        (["--rate-bps", "600", "--term-months", "0"], "Invalid value for '--term-months'"),
        (
            ["--rate-bps", "600", "--term-months", "24", "--holiday-months", "13"],
            "Invalid value for '--holiday-months'",
        ),
        (
            ["--rate-bps", "600", "--term-months", "6", "--holiday-months", "6"],
            "Invalid value for '--holiday-months': a new schedule of 6 months needs at least one month with an "
            "instalment after the holiday",
        ),
    ],
)
def test_terms_the_chain_would_refuse_are_refused_before_anything_is_sent(late, options, expected):
    _, _, loan_id, sent = late
    result = cli("loan", "restructure", loan_id, *options)
    assert result.exit_code == 2 and sent == []
    assert expected in result.output
