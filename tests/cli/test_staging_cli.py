"""What ``loan show``, ``loan portfolio``, ``party exposure``, ``loan books`` and ``fund positions``
print of days past due and IFRS 9 stages (``staging``, ``cli.reports``).

The book is ``test_staging_views``'s (45 days after the first instalments
fell due: bank1's loans in stage 1, 2 and 3 and one not paid out, bank2's
USD loan and syndicated loan in stage 2); as in ``test_loan_transfer_cli``,
the chain answers the commands' reads as a node's API would, as of its head
block's time.
"""

from __future__ import annotations

import json

import pytest

from lendchain.cli import loans as loans_cli
from lendchain.cli.domain import describe_positions, describe_reminders
from lendchain.cli.reports import STAGE_COLUMNS
from lendchain.ledger import queries
from lendchain.ledger.dispute_records import time_text
from tests.cli import test_loan_transfer_cli as transfer_cli
from tests.cli.test_loan_transfer_cli import ChainClient, cli
from tests.ledger.test_staging_views import book  # noqa: F401 (the fixture)


@pytest.fixture
def staged_book(monkeypatch, book):  # noqa: F811
    """``book``, read by the CLI, also at /exposure/{did} and /members/*."""
    chain = book[0]
    monkeypatch.setattr(loans_cli, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setitem(transfer_cli.PATHS, "exposure", "exposure")
    monkeypatch.setitem(transfer_cli.PATHS, "members", "members")
    return book


def test_loan_show_prints_the_days_past_due_the_stage_and_each_reason_with_its_source(staged_book):
    chain, _, _, loans, _ = staged_book
    late = cli("loan", "show", loans["late"]).output.splitlines()
    at = late.index(f"  days past due   45 (as of {time_text(chain.head_ms)})")
    assert late[at + 1 : at + 3] == [
        "  stage           2 (credit risk increased significantly)",
        "                  past_due_over_30 (stage 2): 45 days past due, more than 30: credit risk presumed "
        "increased significantly [IFRS 9 5.5.11 (significant increase when more than 30 days past due, "
        "rebuttable)]",
    ]
    forborne = cli("loan", "show", loans["forborne"]).output.splitlines()
    at = forborne.index("  stage           3 (credit-impaired)")
    assert (
        forborne[at - 1] == f"  days past due   0 (as of {time_text(chain.head_ms)})"
    )  # in its payment holiday
    assert forborne[at + 1].startswith(
        "                  forborne_non_performing (stage 3): a non-performing"
    )
    assert forborne[-2].startswith("  forbearance     non_performing")  # the forbearance lines stay last
    committed = cli("loan", "show", loans["committed"]).output.splitlines()
    at = committed.index(
        f"  days past due   none: an undisbursed commitment, nothing is due yet (as of {time_text(chain.head_ms)})"
    )
    assert committed[at + 1 : at + 3] == [
        "  stage           3 (credit-impaired)",
        "                  borrower_credit_impaired (stage 3): 1 of the borrower's other loans is credit-impaired: "
        "the obligor is in default [CRR Art. 178(1) (default of the obligor); IFRS 9 5.5.6, Appendix A]",
    ]
    as_json = json.loads(cli("--json", "loan", "show", loans["late"]).output)
    assert (as_json["days_past_due"], as_json["stage"], as_json["stage_as_of_ms"]) == (45, 2, chain.head_ms)


def test_portfolio_and_exposure_print_the_stages_and_the_arrears_ageing_per_currency(staged_book):
    chain, members, borrower, loans, _ = staged_book
    principal = {
        name: queries.lookup(chain.state, "loan", loan_id)["outstanding_principal"]
        for name, loan_id in loans.items()
    }
    current, late, forborne, usd = (
        principal["current"],
        principal["late"],
        principal["forborne"],
        principal["usd"],
    )
    book_lines = cli("loan", "portfolio", members[0].did).output.splitlines()
    assert book_lines[-3:] == [
        f"  EUR  stage 1: loans 1 ({current})  stage 2: loans 1 ({late})  stage 3: loans 1 ({forborne})",
        f"  EUR  days past due 0: 1 ({forborne})  1-30: 1 ({current})  31-60: 1 ({late})  61-90: 0 (0)  >90: 0 (0)",
        "  EUR  commitments stage 1: loans 0 (0)  stage 2: loans 0 (0)  stage 3: loans 1 (120000)",
    ]
    exposure = cli("party", "exposure", borrower.did).output.splitlines()
    at = exposure.index("carried by")
    eur_late = late + principal["shared"]
    assert (
        exposure[at - 1]
        == "  EUR  commitments stage 1: loans 0 (0)  stage 2: loans 0 (0)  stage 3: loans 1 (120000)"
    )
    assert exposure[at - 5 : at - 1] == [
        f"  EUR  stage 1: loans 1 ({current})  stage 2: loans 2 ({eur_late})  stage 3: loans 1 ({forborne})",
        f"  USD  stage 1: loans 0 (0)  stage 2: loans 1 ({usd})  stage 3: loans 0 (0)",
        f"  EUR  days past due 0: 1 ({forborne})  1-30: 1 ({current})  31-60: 2 ({eur_late})  61-90: 0 (0)  "
        ">90: 0 (0)",
        f"  USD  days past due 0: 0 (0)  1-30: 0 (0)  31-60: 1 ({usd})  61-90: 0 (0)  >90: 0 (0)",
    ]


def test_loan_books_adds_the_stage_and_ageing_columns_and_tables(staged_book):
    chain = staged_book[0]
    view = json.loads(cli("--json", "loan", "books").output)
    dids = {m["name"]: m["did"] for m in queries.lookup(chain.state, "members", "*")["members"]}
    for row in view["books"]:
        portfolio = queries.lookup(chain.state, "portfolio", dids[row["member"]], as_of_ms=chain.head_ms)
        whole = {**portfolio["stages"][row["currency"]], **portfolio["ageing"][row["currency"]]}
        assert {column: row[column] for column in STAGE_COLUMNS} == whole
    for currency, total in view["totals"].items():
        rows = [row for row in view["books"] if row["currency"] == currency]
        assert all(total[column] == sum(row[column] for row in rows) for column in STAGE_COLUMNS)
    eur = view["totals"]["EUR"]
    assert eur["outstanding"] == sum(eur[f"stage_{n}_outstanding"] for n in (1, 2, 3))

    text = cli("loan", "books").output.splitlines()
    at = text.index(
        "IFRS 9 stages of the loans above, as of the head block: 1 performing, 2 credit risk increased "
        "significantly, 3 credit-impaired"
    )
    assert text[at + 1].split() == ["member", "cur", *["stage", "1", "principal", "stage", "2", "principal"],
                                    "stage", "3", "principal"]  # fmt: skip
    cells = [str(eur[f"stage_{n}_{what}"]) for n in (1, 2, 3) for what in ("loans", "outstanding")]
    assert text[at + 5].split() == ["all", "EUR", *cells]  # after bank1 EUR, bank2 EUR, bank2 USD
    assert text[at + 7] == "days past due of their oldest unpaid instalment (arrears ageing)"
    assert text[at + 8].split() == ["member", "cur", "0", "principal", "1-30", "principal", "31-60", "principal",
                                    "61-90", "principal", ">90", "principal"]  # fmt: skip
    buckets = ("dpd_0", "dpd_1_30", "dpd_31_60", "dpd_61_90", "dpd_over_90")
    cells = [str(eur[f"{bucket}_{what}"]) for bucket in buckets for what in ("loans", "outstanding")]
    assert text[at + 12].split() == ["all", "EUR", *cells]
    assert len(text) == at + 14


def test_fund_positions_prints_a_funders_shares_by_stage_and_days_past_due(staged_book):
    chain, _, _, loans, funders = staged_book
    view = queries.lookup(chain.state, "positions", funders[0].did, as_of_ms=chain.head_ms)
    share = view["positions"][0]["share"]
    assert describe_positions(view).splitlines()[1:] == [
        f"EUR: shares by stage: stage 1 0 in 0, stage 2 {share} in 1, stage 3 0 in 0",
        f"EUR: shares by days past due: 0 days 0 in 0, 1-30 days 0 in 0, 31-60 days {share} in 1, 61-90 days "
        "0 in 0, >90 days 0 in 0",
        f"  {loans['shared'][:16]}…  overdue  committed 30000, received 0, share {share} of outstanding, "
        "stage 2, 44 days past due",
    ]


def test_reminders_print_each_loans_stage_and_a_funders_positions_its_commitments_by_stage(staged_book):
    chain, _, borrower, loans, funders = staged_book
    party = queries.lookup(chain.state, "party", borrower.did, as_of_ms=chain.head_ms)
    text = describe_reminders({"did": borrower.did, "reminders": party["reminders"]}).splitlines()
    late = [line for line in text if line.startswith(f"  loan {loans['late'][:16]}")]
    assert late[0].endswith(", stage 2, 45 days past due")
    forborne = [line for line in text if line.startswith(f"  loan {loans['forborne'][:16]}")]
    assert forborne[0].endswith(", stage 3, 0 days past due")
    view = {  # a funder's share of a commitment in stage 2, and a position on it
        "did": funders[0].did,
        "currencies": {},
        "commitment_stages": {"EUR": {"stage_1_loans": 0, "stage_1_committed": 0, "stage_2_loans": 1,
                                      "stage_2_committed": 30_000, "stage_3_loans": 0, "stage_3_committed": 0}},
        "positions": [],
    }  # fmt: skip
    assert "EUR: shares of commitments by stage: stage 1 0 in 0, stage 2 30000 in 1, stage 3 0 in 0" in (
        describe_positions(view).splitlines()
    )


def test_party_exposure_writes_each_loans_stage_as_party_show_and_fund_positions_do(staged_book):
    """One helper writes a loan's stage for every line (``reports.stage_text``): ``party exposure``
    wrote its own "45 days past due  stage 2" cells, and a commitment's stage without saying it was one."""
    chain, _, borrower, loans, _ = staged_book
    exposure = cli("party", "exposure", borrower.did).output.splitlines()
    shown = cli("party", "show", borrower.did).output.splitlines()

    def cells(loan: str) -> list[str]:
        (line,) = [line for line in exposure if line.startswith(f"  {loans[loan][:16]}  ")]
        return line.split("  ")

    def party_line(loan: str) -> str:
        (line,) = [line for line in shown if line.strip().startswith(loans[loan])]
        return line

    assert "stage 2, 45 days past due" in cells("late")
    assert ", stage 2, 45 days past due, penalty due " in party_line("late")
    assert "stage 3, 0 days past due" in cells("forborne")
    assert ", stage 3, 0 days past due, penalty due " in party_line("forborne")
    assert "stage 3 (commitment)" in cells("committed")  # nothing is due on it yet
    assert not any("days past due" in cell for cell in cells("committed"))
