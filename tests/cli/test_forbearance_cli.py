"""What ``loan show``, ``loan portfolio``, ``party exposure``, ``loan books`` and ``fund positions``
print of a forborne (restructured) loan (``forbearance``, ``cli.reports``).

As in ``test_loan_transfer_cli``: a ledger test chain (rules 5) answers the
commands' reads as a node's API would, judging forbearance at its head
block's time.
"""

from __future__ import annotations

import json

import pytest

from lendchain.cli.domain import describe_positions
from lendchain.ledger import queries
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.forbearance import CURE_MS, PROBATION_MS
from tests.cli import test_loan_transfer_cli as transfer_cli
from tests.cli.test_loan_transfer_cli import cli, world
from tests.ledger.chain import seeded_key
from tests.ledger.test_restructure import accept_terms, overdue, propose

BORROWER = seeded_key(1)  # the borrower ``world`` onboards


@pytest.fixture
def forborne(monkeypatch):
    """bank1's loan, restructured while overdue (non-performing); the CLI reads the chain, also at
    /exposure/{did} and /members/*."""
    monkeypatch.setitem(transfer_cli.PATHS, "exposure", "exposure")
    monkeypatch.setitem(transfer_cli.PATHS, "members", "members")
    chain, members, loan_id, _ = world(monkeypatch, version=5)
    overdue(chain, loan_id)
    assert propose(chain, members[0], loan_id, rate_bps=600, term_months=36).ok
    assert accept_terms(chain, BORROWER, loan_id).ok
    return chain, members, loan_id


def test_loan_show_prints_the_status_since_when_and_why(forborne):
    chain, _, loan_id = forborne
    t = chain.head_ms
    height = queries.lookup(chain.state, "loan", loan_id)["restructurings"][0]["height"]
    shown = cli("loan", "show", loan_id).output.splitlines()
    assert shown[-2:] == [
        f"  forbearance     non_performing since {time_text(t)} (restructured 1 time; cured at "
        f"{time_text(t + CURE_MS)} at "
        f"the earliest; forborne until {time_text(t + CURE_MS + PROBATION_MS)} at the earliest; as of {time_text(t)})",
        f"                  non-performing (restructured at height {height} while overdue): cured after a "
        "year with nothing past due, then two years on probation",
    ]


def test_loan_show_prints_no_forbearance_for_a_loan_never_restructured(monkeypatch):
    _, _, loan_id, _ = world(monkeypatch, version=5)
    assert "forbearance" not in cli("loan", "show", loan_id).output


def test_portfolio_and_exposure_print_the_forborne_totals_per_currency(forborne):
    chain, members, loan_id = forborne
    principal = queries.lookup(chain.state, "loan", loan_id)["outstanding_principal"]
    line = (
        f"  EUR  forborne: loans 1  outstanding {principal}  performing 0 (0)  non-performing 1 ({principal})"
    )
    book = cli("loan", "portfolio", members[0].did).output.splitlines()
    assert (
        book[1].startswith(f"  EUR  outstanding {principal} ") and book[3] == line
    )  # after the largest borrower
    exposure = cli("party", "exposure", BORROWER.did).output.splitlines()
    assert exposure[1].startswith(f"  EUR  outstanding {principal} ") and exposure[2] == line
    as_json = json.loads(cli("--json", "party", "exposure", BORROWER.did).output)
    assert as_json["forborne"]["EUR"]["non_performing_outstanding"] == principal
    assert as_json["loans"][0]["forbearance"] == "non_performing"


def test_loan_books_adds_the_forborne_columns_and_table(forborne):
    chain, _, loan_id = forborne
    principal = queries.lookup(chain.state, "loan", loan_id)["outstanding_principal"]
    view = json.loads(cli("--json", "loan", "books").output)
    [row] = view["books"]
    forborne_columns = {
        "forborne_loans": 1,
        "forborne": principal,
        "forborne_performing_loans": 0,
        "forborne_performing": 0,
        "forborne_non_performing_loans": 1,
        "forborne_non_performing": principal,
    }
    assert {column: row[column] for column in forborne_columns} == forborne_columns
    assert {column: view["totals"]["EUR"][column] for column in forborne_columns} == forborne_columns
    text = cli("loan", "books").output.splitlines()
    assert text[3].startswith("amounts in minor units")  # the books as before, then the forborne loans
    assert text[4] == (
        "forborne exposures: restructured loans under cure (non-performing) or probation (performing), "
        "among the loans above"
    )
    assert text[5].split() == ["member", "cur", "loans", "outstanding", "performing", "principal", "non-perf.",
                               "principal"]  # fmt: skip
    assert text[6].split() == ["bank1", "EUR", "1", str(principal), "0", "0", "1", str(principal)]
    assert text[7].split() == ["all", "EUR", "1", str(principal), "0", "0", "1", str(principal)]
    assert text[8].startswith("IFRS 9 stages of the loans above")  # then its stage (``test_staging_cli``)


def test_fund_positions_prints_a_funders_forborne_share_and_each_loans_status():
    totals = {"committed": 40_000, "received": 4_000, "outstanding": 36_000, "loans": 1}
    view = {
        "did": "did:key:zAlice",
        "currencies": {"EUR": {**totals, "overdue_loans": 0, "defaulted_loans": 0}},
        "written_off": {},
        "forborne": {
            "EUR": {
                "loans": 1,
                "outstanding": 36_000,
                "performing_loans": 1,
                "performing_outstanding": 36_000,
                "non_performing_loans": 0,
                "non_performing_outstanding": 0,
            }
        },
        "positions": [
            {
                "loan_id": "cd" * 32,
                "state": "repaying",
                "status": "committed",
                "commitment": 40_000,
                "received": 4_000,
                "share": 36_000,
                "share_of": "outstanding",
                "recovered": 0,
                "forbearance": "performing",
            }
        ],
    }
    assert describe_positions(view).splitlines() == [
        "EUR: committed 40000 in 1 loans, received 4000, outstanding share 36000 (0 overdue, 0 defaulted)",
        "EUR: forborne share 36000 in 1 loans (performing 36000 in 1, non-performing 0 in 0)",
        f"  {'cd' * 8}…  repaying  committed 40000, received 4000, share 36000 of outstanding, "
        "forbearance performing",
    ]


def test_fund_positions_names_a_restructuring_waiting_for_the_funders_consent():
    position = {
        "loan_id": "ef" * 32,
        "state": "overdue",
        "status": "committed",
        "commitment": 30_000,
        "received": 0,
        "share": 30_000,
        "share_of": "outstanding",
        "recovered": 0,
        "forbearance": None,
        "consent_requested": {"height": 41, "rate_bps": 600, "term_months": 24, "holiday_months": 2},
    }
    view = {
        "did": "did:key:zAlice",
        "currencies": {},
        "positions": [position],
        "consents_requested": ["ef" * 32],
    }
    assert describe_positions(view).splitlines()[1:] == [
        "    restructuring proposed at height 41 (600 bps over 24 months, 2 of holiday) waits for your consent: "
        f"lendchain loan consent-restructure {'ef' * 32}"
    ]
    assert (
        len(describe_positions({**view, "positions": [{**position, "consent_requested": None}]}).splitlines())
        == 1
    )
