"""Undisbursed commitments staged from the borrower's other loans, and stages where loans are listed
one by one (``staging.commitment_stage``, ``exposure.book_page``, ``queries.get_reminders``).

The chains start on rules 5. A loan accepted (or a syndicated one funded) and not paid out is a loan
commitment, which IFRS 9 stages too (5.5.6): nothing is due on it, so the chain stages it by what
the borrower's other loans say of the borrower (stage 3 for one credit-impaired or written off with
a loss left, stage 2 for one in stage 2, else stage 1), and the views report it apart from the
drawn loans (``commitment_stages``).
"""

from __future__ import annotations

import pytest

from lendchain.ledger import exposure as exposure_module
from lendchain.ledger import queries, staging
from lendchain.ledger.exposure import book_page
from lendchain.ledger.funding import pro_rata
from lendchain.ledger.servicing import DAY_MS
from lendchain.ledger.staging import COMMITMENT_TOTALS, commitment_stage, credit_stage
from tests.ledger.test_forbearance_bytes import at
from tests.ledger.test_loan_transfer import open_loan, syndicated_loan, with_borrower
from tests.ledger.test_staging import first_due
from tests.ledger.test_write_off import default, write_off


def view(chain, kind, ref):
    return queries.lookup(chain.state, kind, ref, as_of_ms=chain.head_ms)


def rules(staged):
    return [reason["rule"] for reason in staged["stage_reasons"]]


@pytest.mark.parametrize(
    ("standing", "stage", "reasons"),
    [
        ({}, 1, ["commitment"]),
        ({"stage_2": 1}, 2, ["borrower_increased_risk"]),
        ({"stage_3": 2}, 3, ["borrower_credit_impaired"]),
        ({"written_off": 1}, 3, ["borrower_written_off"]),
        (
            {"stage_3": 1, "stage_2": 1, "written_off": 1},
            3,
            ["borrower_credit_impaired", "borrower_written_off", "borrower_increased_risk"],
        ),
    ],
)
def test_a_commitment_takes_the_highest_stage_its_borrowers_other_loans_give(standing, stage, reasons):
    counts = {"stage_3": 0, "stage_2": 0, "written_off": 0, **standing}
    staged = commitment_stage(counts, 1_000)
    assert (staged["stage"], staged["days_past_due"], staged["stage_as_of_ms"]) == (stage, None, 1_000)
    assert rules(staged) == reasons
    assert all(reason["source"].startswith(("IFRS 9", "CRR")) for reason in staged["stage_reasons"])
    assert [reason["value"] for reason in staged["stage_reasons"]] == [
        standing.get(name) for name in ("stage_3", "written_off", "stage_2") if standing.get(name)
    ] or [None]


def test_a_commitment_cannot_be_staged_without_its_borrowers_standing():
    with pytest.raises(TypeError, match="needs its borrower's standing"):
        credit_stage({"state": "accepted"}, None, 0)


@pytest.fixture
def world():
    """bank1 lent a loan (disbursed) and committed another, and bank2 leads a funded syndicate, to
    one borrower; (chain, members, borrower, drawn, committed, syndicated, its commitments)."""
    chain, members, borrower = with_borrower(version=5)
    drawn = open_loan(chain, borrower, members[0])
    committed = open_loan(chain, borrower, members[0], disburse=False)
    syndicated, commitments = syndicated_loan(chain, borrower, members[1])
    return chain, members, borrower, drawn, committed, syndicated, commitments


def commitment_stages_everywhere(chain, members, borrower, committed, syndicated, commitments):
    """The stage of each commitment in every view that shows it, checked to agree; that stage."""
    stage = view(chain, "loan", committed)["stage"]
    assert view(chain, "loan", syndicated)["stage"] == stage
    exposure = view(chain, "exposure", borrower.did)
    rows = {row["loan_id"]: row for row in exposure["loans"]}
    assert (rows[committed]["stage"], rows[committed]["days_past_due"]) == (stage, None)
    assert rows[syndicated]["stage"] == stage
    whole = {
        **dict.fromkeys(COMMITMENT_TOTALS, 0),
        f"stage_{stage}_loans": 2,
        f"stage_{stage}_committed": 120_000 + 120_000,
    }
    assert exposure["commitment_stages"] == {"EUR": whole}
    assert exposure["currencies"]["EUR"]["committed"] == 240_000
    books = [view(chain, "portfolio", bank.did)["commitment_stages"]["EUR"] for bank in members[:2]]
    assert [book[f"stage_{stage}_committed"] for book in books] == [120_000, 120_000]
    page = book_page(chain.state, members[0].did, 0, 10, as_of_ms=chain.head_ms)
    assert {row["loan_id"]: row["stage"] for row in page["loans"]}[committed] == stage
    shares = pro_rata(120_000, [amount for _, amount in commitments])
    for (funder, _), share in zip(commitments, shares, strict=True):
        positions = view(chain, "positions", funder.did)
        [position] = [p for p in positions["positions"] if p["loan_id"] == syndicated]
        assert (position["share_of"], position["stage"], position["days_past_due"]) == (
            "committed",
            stage,
            None,
        )
        assert positions["commitment_stages"]["EUR"][f"stage_{stage}_committed"] == share
    return stage


def test_commitments_follow_the_borrowers_drawn_loan_through_its_stages_in_every_view(world):
    chain, members, borrower, drawn, committed, syndicated, commitments = world
    check = (chain, members, borrower, committed, syndicated, commitments)
    assert commitment_stages_everywhere(*check) == 1
    assert rules(view(chain, "loan", committed)) == ["commitment"]
    drawn_stages = view(chain, "exposure", borrower.did)["stages"]  # unchanged by the commitments
    assert drawn_stages["EUR"]["stage_1_loans"] == 1 and drawn_stages["EUR"]["stage_1_outstanding"] == 120_000

    at(chain, first_due(chain, drawn) + 45 * DAY_MS)  # the drawn loan: 45 days past due, stage 2
    assert view(chain, "loan", drawn)["stage"] == 2
    assert commitment_stages_everywhere(*check) == 2
    reason = view(chain, "loan", committed)["stage_reasons"][0]
    assert (reason["rule"], reason["value"], reason["source"]) == (
        "borrower_increased_risk",
        1,
        "IFRS 9 5.5.6, 5.5.9 and B5.5.17 (the borrower's credit risk)",
    )

    default(chain, drawn)
    assert commitment_stages_everywhere(*check) == 3
    assert rules(view(chain, "loan", committed)) == ["borrower_credit_impaired"]

    assert write_off(chain, members[0], drawn).ok  # no exposure left on it, but a loss not recovered
    assert commitment_stages_everywhere(*check) == 3
    assert rules(view(chain, "loan", committed)) == ["borrower_written_off"]


def test_book_pages_and_reminders_give_each_drawn_loan_its_stage_and_days_past_due(world):
    chain, members, borrower, drawn, committed, _, _ = world
    at(chain, first_due(chain, drawn) + 45 * DAY_MS)
    loan = view(chain, "loan", drawn)
    assert (loan["stage"], loan["days_past_due"]) == (2, 45)
    page = book_page(chain.state, members[0].did, 0, 10, as_of_ms=chain.head_ms)
    rows = {row["loan_id"]: (row["stage"], row["days_past_due"]) for row in page["loans"]}
    assert rows == {drawn: (2, 45), committed: (2, None)}
    for did, role in ((borrower.did, "borrower"), (members[0].did, "servicer")):
        [row] = view(chain, "reminders", did)["loans"]
        assert (row["loan_id"], row["role"], row["stage"], row["days_past_due"]) == (drawn, role, 2, 45)
    [row] = view(chain, "party", borrower.did)["reminders"]  # what ``servicing reminders`` prints
    assert (row["stage"], row["days_past_due"]) == (2, 45)
    untimed = queries.lookup(chain.state, "reminders", borrower.did)["loans"][0]  # as of its record
    assert untimed["days_past_due"] <= 45


def test_a_commitment_judges_only_the_borrowers_newest_loans_in_every_view(world, monkeypatch):
    chain, members, borrower, drawn, committed, syndicated, _ = world
    default(chain, drawn)
    assert view(chain, "loan", committed)["stage"] == 3
    # Judging only the newest loan (the syndicated commitment itself) misses the older default.
    monkeypatch.setattr(staging, "BORROWER_LOANS_JUDGED", 1)
    monkeypatch.setattr(exposure_module, "BORROWER_LOANS_JUDGED", 1)
    assert view(chain, "loan", committed)["stage"] == 1
    rows = {row["loan_id"]: row["stage"] for row in view(chain, "exposure", borrower.did)["loans"]}
    assert (rows[committed], rows[syndicated], rows[drawn]) == (1, 1, 3)
