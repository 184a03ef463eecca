"""What the views say of a restructuring: the loan, its reminders, the borrower's exposure and
score (``restructuring``, rules 5; ``queries``, ``exposure``, ``scoring``)."""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.servicing import MONTH_MS
from tests.ledger.test_loan_transfer import loan, open_loan, with_borrower
from tests.ledger.test_restructure import TERMS, accept_terms, overdue, propose


@pytest.fixture
def world():
    return with_borrower(version=5)


def factors(chain, did):
    return {f["factor"]: f for f in queries.lookup(chain.state, "score", did)["factors"]}


def test_the_loan_view_shows_the_proposal_then_the_restructuring_and_every_rows_due_time(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    disbursed = loan(chain, loan_id)["disbursed_ms"]
    assert [row["due_ms"] for row in loan(chain, loan_id)["schedule"]] == [
        disbursed + n * MONTH_MS for n in range(1, 13)
    ]
    overdue(chain, loan_id)
    assert propose(chain, bank1, loan_id).ok
    pending = loan(chain, loan_id)
    assert pending["restructuring"]["status"] == "pending" and "restructurings" not in pending
    assert len(pending["schedule"]) == 12  # the old schedule until the borrower accepts
    accrued = pending["penalty_owed"]
    assert accrued > 0 and pending["penalty_due"] == accrued  # overdue: penalty accrued, none paid

    assert accept_terms(chain, borrower, loan_id).ok
    view = loan(chain, loan_id)
    [record] = view["restructurings"]
    assert "restructuring" not in view
    assert len(view["schedule"]) == 21 and view["term_months"] == 21
    assert view["schedule"][0]["due_ms"] == record["first_due_ms"] == chain.head_ms + 4 * MONTH_MS
    assert [e["event"] for e in view["history"][-2:]] == ["loan.restructure", "loan.restructure_accept"]
    # The penalty went into the new principal: none is due, though all that accrued stays on record.
    assert (view["penalty_owed"], view["penalty_capitalised"], view["penalty_due"]) == (
        record["penalty"],
        record["penalty"],
        0,
    )
    assert record["penalty"] >= accrued  # evaluated up to the acceptance first


def test_reminders_name_the_new_instalments_and_their_due_times(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    assert propose(chain, bank1, loan_id).ok and accept_terms(chain, borrower, loan_id).ok
    rows = loan(chain, loan_id)["schedule"]
    expected = [
        {"number": row["number"], "due_ms": row["due_ms"], "amount": row["payment"]} for row in rows[:3]
    ]
    for did, role in ((borrower.did, "borrower"), (bank1.did, "servicer")):
        [reminder] = queries.lookup(chain.state, "reminders", did)["loans"]
        assert (reminder["role"], reminder["state"], reminder["penalty_due"]) == (role, "repaying", 0)
        assert reminder["instalments"] == expected


def test_the_borrowers_exposure_counts_the_loan_current_with_its_new_principal(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    late = queries.lookup(chain.state, "exposure", borrower.did)["currencies"]["EUR"]
    assert (late["overdue_loans"], late["penalty_due"] > 0) == (1, True)
    assert propose(chain, bank1, loan_id).ok and accept_terms(chain, borrower, loan_id).ok
    principal = loan(chain, loan_id)["restructurings"][0]["new_principal"]
    eur = queries.lookup(chain.state, "exposure", borrower.did)["currencies"]["EUR"]
    assert (eur["outstanding"], eur["overdue_loans"], eur["penalty_due"], eur["loans"]) == (
        principal,
        0,
        0,
        1,
    )
    assert (
        queries.lookup(chain.state, "portfolio", bank1.did)["currencies"]["EUR"]["outstanding"] == principal
    )


def test_the_score_lists_restructurings_only_for_a_borrower_who_had_one_and_weighs_them_nothing(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert "restructurings" not in factors(chain, borrower.did)
    assert propose(chain, bank1, loan_id, **{**TERMS, "holiday_months": 0}).ok
    score = queries.lookup(chain.state, "score", borrower.did)["score"]
    assert accept_terms(chain, borrower, loan_id).ok  # a current loan: nothing was late
    shown = factors(chain, borrower.did)["restructurings"]
    assert (shown["value"], shown["points"]) == (1, 0)
    assert shown["source"] == "repayment history on this chain (shown, not weighed)"
    assert queries.lookup(chain.state, "score", borrower.did)["score"] == score
    history = queries.lookup(chain.state, "party", borrower.did)["repayment_history"]
    assert history == {
        "on_time": 0,
        "late": 0,
        "defaults": 0,
        "closed": 0,
        "written_off": 0,
        "restructurings": 1,
        "recovered": {},
    }
