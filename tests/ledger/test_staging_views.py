"""Stages and arrears ageing in the views a supervisor reads, and proof that they store nothing
(``staging``, ``exposure``).

One borrower, two lenders, two currencies, judged at the head block's time
45 days after the first instalments fell due: bank1 has a loan whose first
instalment was repaid (its second is 15 days past due: stage 1), one nobody
repaid (45 days: stage 2), one restructured while overdue (in its payment
holiday, nothing past due, but non-performing forborne: stage 3) and one
accepted but not paid out (a commitment: stage 3, for the borrower's
non-performing forborne loan; no days past due); bank2 a USD loan and a syndicated EUR
loan nobody repaid. Every total is checked against the loans' own views,
and each view's against the others'.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import pagedlist, queries
from lendchain.ledger.exposure import book_page
from lendchain.ledger.funding import pro_rata
from lendchain.ledger.servicing import DAY_MS
from lendchain.ledger.staging import AGEING_TOTALS, COMMITMENT_TOTALS, STAGE_TOTALS, ageing_bucket
from lendchain.ledger.state import borrower_loans_key, read_value
from tests.ledger import test_rules_before_5
from tests.ledger.chain import seeded_key
from tests.ledger.test_forbearance import restructure
from tests.ledger.test_forbearance_bytes import BEFORE_FORBEARANCE_VIEWS, at, owed_now, scenario
from tests.ledger.test_forbearance_views import usd_loan
from tests.ledger.test_loan_transfer import ok, open_loan, repay, syndicated_loan, with_borrower
from tests.ledger.test_restructure import overdue
from tests.ledger.test_staging import first_due

STAGED_STATES = ("disbursed", "repaying", "overdue", "defaulted")


def view(chain, kind, ref):
    return queries.lookup(chain.state, kind, ref, as_of_ms=chain.head_ms)


@pytest.fixture
def book():
    """The loans described above; (chain, members, borrower, {name: loan id}, funders of ``shared``)."""
    chain, members, borrower = with_borrower(version=5)
    bank1, bank2 = members[0], members[1]
    loans = {
        "current": open_loan(chain, borrower, bank1),
        "late": open_loan(chain, borrower, bank1),
        "forborne": open_loan(chain, borrower, bank1),
        "usd": usd_loan(chain, borrower, bank2),
    }
    loans["shared"], commitments = syndicated_loan(chain, borrower, bank2)
    ok(chain, bank2, "loan.disburse", {"loan_id": loans["shared"]})
    loans["committed"] = open_loan(chain, borrower, bank1, disburse=False)
    assert repay(chain, bank1, loans["current"], owed_now(chain, loans["current"])).ok
    overdue(chain, loans["forborne"])
    restructure(chain, bank1, borrower, loans["forborne"], rate_bps=600, term_months=36, holiday_months=3)
    at(chain, first_due(chain, loans["late"]) + 45 * DAY_MS)
    return chain, members, borrower, loans, [funder for funder, _ in commitments]


def expected_totals(shown):
    """Stage totals and ageing per currency, added up from the loans' own views."""
    stages, ageing = {}, {}
    for loan in shown:
        if loan["state"] not in STAGED_STATES:
            continue
        by_stage = stages.setdefault(loan["currency"], dict.fromkeys(STAGE_TOTALS, 0))
        by_stage[f"stage_{loan['stage']}_loans"] += 1
        by_stage[f"stage_{loan['stage']}_outstanding"] += loan["outstanding_principal"]
        by_age = ageing.setdefault(loan["currency"], dict.fromkeys(AGEING_TOTALS, 0))
        bucket = ageing_bucket(loan["days_past_due"])
        by_age[f"{bucket}_loans"] += 1
        by_age[f"{bucket}_outstanding"] += loan["outstanding_principal"]
    return stages, ageing


def test_each_view_totals_its_loans_by_stage_and_days_past_due_and_the_views_agree(book):
    chain, members, borrower, loans, _ = book
    shown = {name: view(chain, "loan", loan_id) for name, loan_id in loans.items()}
    assert {name: (v["stage"], v["days_past_due"]) for name, v in shown.items()} == {
        "current": (1, 15),
        "late": (2, 45),
        "forborne": (3, 0),
        "usd": (2, 44),  # disbursed a few blocks (seconds) later: a few seconds short of 45 days
        "shared": (2, 44),
        "committed": (3, None),
    }
    assert [r["rule"] for r in shown["committed"]["stage_reasons"]] == [
        "borrower_credit_impaired",
        "borrower_increased_risk",
    ]
    exposure = view(chain, "exposure", borrower.did)
    assert (exposure["stages"], exposure["ageing"]) == expected_totals(shown.values())
    for currency, totals in exposure["currencies"].items():  # every drawn loan in one stage, one bucket
        drawn = [v for v in shown.values() if v["currency"] == currency and v["state"] in STAGED_STATES]
        outstanding = sum(v["outstanding_principal"] for v in drawn)
        assert totals["outstanding"] == outstanding
        for split, names in ((exposure["stages"], STAGE_TOTALS), (exposure["ageing"], AGEING_TOTALS)):
            assert sum(split[currency][n] for n in names if n.endswith("_outstanding")) == outstanding
            assert sum(split[currency][n] for n in names if n.endswith("_loans")) == len(drawn)
    rows = {row["loan_id"]: (row["stage"], row["days_past_due"]) for row in exposure["loans"]}
    assert rows == {loans[name]: (v["stage"], v["days_past_due"]) for name, v in shown.items()}
    committed = shown["committed"]["amount"]  # apart from the drawn loans' stages, adding up to committed
    assert exposure["currencies"]["EUR"]["committed"] == committed
    assert exposure["commitment_stages"] == {
        "EUR": {**dict.fromkeys(COMMITMENT_TOTALS, 0), "stage_3_loans": 1, "stage_3_committed": committed}
    }

    books = [view(chain, "portfolio", bank.did) for bank in members[:2]]
    assert (books[0]["stages"], books[0]["ageing"]) == expected_totals(
        v for v in shown.values() if v["lender"] == members[0].did
    )
    assert books[0]["commitment_stages"] == exposure["commitment_stages"]
    assert books[1]["commitment_stages"] == {}
    for part in ("stages", "ageing"):  # the borrower's loans are these two books
        for currency, whole in exposure[part].items():
            for name, amount in whole.items():
                assert sum(b[part].get(currency, {}).get(name, 0) for b in books) == amount


def test_a_funders_positions_carry_its_pro_rata_share_and_the_shares_add_up_to_the_loan(book):
    chain, _, _, loans, funders = book
    loan = view(chain, "loan", loans["shared"])
    shares = pro_rata(loan["outstanding_principal"], [c["amount"] for c in loan["funding"]["commitments"]])
    bucket = ageing_bucket(loan["days_past_due"])
    added = dict.fromkeys(("stage", "ageing"), 0)
    for funder, share in zip(funders, shares, strict=True):
        positions = view(chain, "positions", funder.did)
        [position] = [p for p in positions["positions"] if p["loan_id"] == loans["shared"]]
        assert (position["share"], position["stage"], position["days_past_due"]) == (share, 2, 44)
        assert positions["stages"]["EUR"] == {
            **dict.fromkeys(STAGE_TOTALS, 0),
            "stage_2_loans": 1,
            "stage_2_outstanding": share,
        }
        assert positions["ageing"]["EUR"][f"{bucket}_outstanding"] == share
        added["stage"] += positions["stages"]["EUR"]["stage_2_outstanding"]
        added["ageing"] += positions["ageing"]["EUR"][f"{bucket}_outstanding"]
    assert added == dict.fromkeys(("stage", "ageing"), loan["outstanding_principal"])


def test_a_view_without_drawn_loans_has_no_stage_totals():
    chain, members, borrower = with_borrower(version=5)
    loan_id = open_loan(chain, borrower, members[0], disburse=False)
    exposure = view(chain, "exposure", borrower.did)
    assert exposure["currencies"]["EUR"]["committed"] > 0
    assert (exposure["stages"], exposure["ageing"]) == ({}, {})
    assert exposure["loans"][0]["loan_id"] == loan_id
    assert (exposure["loans"][0]["stage"], exposure["loans"][0]["days_past_due"]) == (1, None)
    committed = {**dict.fromkeys(COMMITMENT_TOTALS, 0), "stage_1_loans": 1, "stage_1_committed": 120_000}
    assert exposure["commitment_stages"] == {"EUR": committed}
    book = view(chain, "portfolio", members[0].did)
    assert (book["stages"], book["commitment_stages"]) == ({}, {"EUR": committed})


def read_every_view(chain, loans):
    """Read every loan and every exposure view at the head, with their stages; the state is as it was."""
    before = dict(chain.state.values)
    for loan_id in loans:
        assert "stage" in queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
        assert "stage" in queries.lookup(chain.state, "loan", loan_id)  # judged as of its record
    for kind, key in (("exposure", 1), ("portfolio", 100), ("portfolio", 101), ("positions", 2)):
        for as_of_ms in (chain.head_ms, None):
            assert "stages" in queries.lookup(chain.state, kind, seeded_key(key).did, as_of_ms=as_of_ms)
    for key in (100, 101):  # the rows that list loans one by one, with their stages
        for as_of_ms in (chain.head_ms, None):
            page = book_page(chain.state, seeded_key(key).did, 0, 100, True, as_of_ms)
            assert all("stage" in row for row in page["loans"])
            reminders = queries.lookup(chain.state, "reminders", seeded_key(key).did, as_of_ms=as_of_ms)
            assert all("stage" in row for row in reminders["loans"])
    assert chain.state.values == before


def test_a_rules_5_chain_read_with_its_stages_after_every_block_has_the_head_hash_it_had_without():
    chain, *_ = scenario(read_every_view)
    assert chain.head_hash.hex() == BEFORE_FORBEARANCE_VIEWS


def test_a_rules_4_chain_read_with_its_stages_has_the_head_hash_it_had_before_rules_5():
    chain = test_rules_before_5.scenario(4)  # it reads its loans' views as it goes, too
    index = pagedlist.items(lambda key: read_value(chain.state, key), borrower_loans_key(seeded_key(1).did))
    read_every_view(chain, [loan_id.hex() for loan_id in index])
    assert chain.head_hash.hex() == test_rules_before_5.BEFORE_RULES_5[4]
