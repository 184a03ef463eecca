"""A restructured loan's status as a forborne exposure, over time (``forbearance``'s rules 1 to 5).

The chains start on rules 5. ``open_loan`` lends 120,000 EUR over 12 months
at 900 bps; an instalment unpaid 5 days (``grace_days``) after its due time
makes the loan overdue, 90 days (``default_days``) defaulted. The status is
judged at the head block's time, as a node judges it; the loan is repaid a
day before each instalment falls due unless a test says otherwise
(``pay_due``).
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.forbearance import CURE_MS, PROBATION_MS
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from tests.ledger.test_forbearance_bytes import at, cure, first_unpaid_due, owed_now, pay_due, payoff_now
from tests.ledger.test_loan_transfer import loan, ok, open_loan, repay, with_borrower
from tests.ledger.test_restructure import accept_terms, overdue, propose
from tests.ledger.test_write_off import default, write_off

GRACE_MS = 5 * DAY_MS


@pytest.fixture
def world():
    return with_borrower(version=5)


def status(chain, loan_id):
    return queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)["forbearance"]


def restructure(chain, servicer, borrower, loan_id, **terms):
    """Propose ``terms`` and accept them; the restructuring's (time, height)."""
    assert propose(chain, servicer, loan_id, **terms).ok
    assert accept_terms(chain, borrower, loan_id).ok
    record = loan(chain, loan_id)["restructurings"][-1]
    return record["time_ms"], record["height"]


def current_loan(chain, members, borrower):
    """bank1's loan with its first instalment repaid: repaying, nothing past due."""
    loan_id = open_loan(chain, borrower, members[0])
    assert repay(chain, members[0], loan_id, owed_now(chain, loan_id)).ok
    return loan_id


def miss_one(chain, loan_id):
    """Leave the loan's next instalment unpaid until 10 days after it fell due: it is overdue. When
    it fell past due (its due time plus grace), and its number."""
    view = loan(chain, loan_id)
    number = view["instalments_paid"] + 1
    due = first_unpaid_due(chain, loan_id)
    at(chain, due + 10 * DAY_MS)
    assert loan(chain, loan_id)["state"] == "overdue"
    return due + GRACE_MS, number


def test_a_loan_never_restructured_has_no_forbearance(world):
    chain, members, borrower = world
    loan_id = current_loan(chain, members, borrower)
    assert status(chain, loan_id) is None
    overdue_id = open_loan(chain, borrower, members[0])
    overdue(chain, overdue_id)
    assert status(chain, overdue_id) is None  # overdue, but not forborne


def test_restructured_while_overdue_it_is_non_performing_then_cured_then_on_probation_then_ended(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    t, height = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=60, holiday_months=3)
    cure_ends = t + 3 * MONTH_MS + CURE_MS  # a year from the holiday's end (rule 3)
    probation_ends = cure_ends + PROBATION_MS
    assert status(chain, loan_id) == {
        "status": "non_performing",
        "since_ms": t,
        "restructurings": 1,
        "cure_ends_ms": cure_ends,
        "probation_ends_ms": probation_ends,
        "as_of_ms": t,
        "why": f"non-performing (restructured at height {height} while overdue): cured after a year with "
        "nothing past due, then two years on probation",
    }

    pay_due(chain, cure_ends - 1000, (bank1, loan_id))
    assert status(chain, loan_id)["status"] == "non_performing"  # a second short of the year
    pay_due(chain, cure_ends, (bank1, loan_id))
    cured = status(chain, loan_id)
    assert (cured["status"], cured["since_ms"], cured["cure_ends_ms"], cured["probation_ends_ms"]) == (
        "performing",
        cure_ends,
        None,
        probation_ends,
    )
    assert cured["why"] == (
        f"performing, on probation (cured: restructured at height {height} while overdue): forborne for two "
        "years unless it falls past due or is restructured again"
    )

    pay_due(chain, probation_ends - 1000, (bank1, loan_id))
    assert status(chain, loan_id)["status"] == "performing"
    pay_due(chain, probation_ends, (bank1, loan_id))
    ended = status(chain, loan_id)
    assert (ended["status"], ended["since_ms"], ended["probation_ends_ms"]) == ("ended", probation_ends, None)
    assert ended["why"] == (
        "probation passed: two years performing with nothing past due "
        f"(cured: restructured at height {height} while overdue)"
    )

    # Rule 5: an arrear after the forbearance ended is an ordinary one, not forbearance again.
    miss_one(chain, loan_id)
    assert status(chain, loan_id)["status"] == "ended"
    cure(chain, bank1, loan_id)
    again, again_height = restructure(chain, bank1, borrower, loan_id, rate_bps=500, term_months=24)
    fresh = status(chain, loan_id)
    assert (fresh["status"], fresh["since_ms"], fresh["restructurings"], fresh["probation_ends_ms"]) == (
        "performing",
        again,
        2,
        again + PROBATION_MS,
    )
    assert f"(restructured at height {again_height} while repaying)" in fresh["why"]


def test_restructured_while_current_it_is_performing_and_an_arrear_in_probation_makes_it_non_performing(
    world,
):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = current_loan(chain, members, borrower)
    t, height = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=48)
    performing = status(chain, loan_id)
    assert (performing["status"], performing["since_ms"], performing["cure_ends_ms"]) == (
        "performing",
        t,
        None,
    )
    assert performing["probation_ends_ms"] == t + PROBATION_MS
    assert f"(restructured at height {height} while repaying)" in performing["why"]

    pay_due(chain, t + 4 * MONTH_MS, (bank1, loan_id))
    fell, number = miss_one(chain, loan_id)
    cure_ends = fell + CURE_MS  # the cure counts from the arrear (rule 3)
    late = status(chain, loan_id)
    assert (late["status"], late["since_ms"], late["cure_ends_ms"], late["probation_ends_ms"]) == (
        "non_performing",
        fell,
        cure_ends,
        cure_ends + PROBATION_MS,
    )
    assert late["why"] == (
        f"non-performing: overdue now, after: instalment {number} fell past due after the restructuring at "
        f"height {height}; cured once nothing is past due and a year has passed"
    )
    cure(chain, bank1, loan_id)
    paid_up = status(chain, loan_id)
    assert (paid_up["status"], paid_up["since_ms"], paid_up["cure_ends_ms"]) == (
        "non_performing",
        fell,
        cure_ends,
    )
    assert paid_up["why"].startswith(
        f"non-performing (instalment {number} fell past due after the restructuring"
    )

    pay_due(chain, cure_ends, (bank1, loan_id))
    cured = status(chain, loan_id)
    assert (cured["status"], cured["since_ms"], cured["probation_ends_ms"]) == (
        "performing",
        cure_ends,
        cure_ends + PROBATION_MS,
    )


def test_an_arrear_while_non_performing_starts_its_cure_year_again(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    t, _ = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=36)
    assert status(chain, loan_id)["cure_ends_ms"] == t + CURE_MS  # no holiday: a year from the restructuring
    pay_due(chain, t + 3 * MONTH_MS, (bank1, loan_id))
    fell, _ = miss_one(chain, loan_id)
    cure(chain, bank1, loan_id)
    after = status(chain, loan_id)
    assert (after["status"], after["since_ms"], after["cure_ends_ms"]) == (
        "non_performing",
        t,
        fell + CURE_MS,
    )
    pay_due(chain, t + CURE_MS, (bank1, loan_id))
    assert status(chain, loan_id)["status"] == "non_performing"  # the first year alone is not enough
    pay_due(chain, fell + CURE_MS, (bank1, loan_id))
    assert status(chain, loan_id)["status"] == "performing"


def test_a_forborne_loan_that_defaults_again_is_non_performing_until_nothing_is_past_due(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    t, height = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=24)
    fell = t + MONTH_MS + GRACE_MS  # its first new instalment is never paid
    at(chain, t + 150 * DAY_MS)
    assert loan(chain, loan_id)["state"] == "defaulted"
    defaulted = status(chain, loan_id)
    assert (defaulted["status"], defaulted["since_ms"], defaulted["cure_ends_ms"]) == (
        "non_performing",
        t,  # non-performing since the restructuring: the arrear moved its cure on
        fell + CURE_MS,
    )
    assert defaulted["why"] == (
        f"non-performing: defaulted now, after: instalment 1 fell past due after the restructuring at "
        f"height {height}; cured once nothing is past due and a year has passed"
    )
    at(chain, fell + CURE_MS + 30 * DAY_MS)  # a year on, still defaulted: no date can be given
    later = status(chain, loan_id)
    assert (later["status"], later["cure_ends_ms"], later["probation_ends_ms"]) == (
        "non_performing",
        None,
        None,
    )
    assert later["why"] == defaulted["why"]  # its fields, not its words, say that no date can be given


def test_a_loan_restructured_after_default_is_non_performing(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    t, height = restructure(chain, bank1, borrower, loan_id, rate_bps=300, term_months=36, holiday_months=2)
    workout = status(chain, loan_id)
    assert (workout["status"], workout["since_ms"], workout["cure_ends_ms"]) == (
        "non_performing",
        t,
        t + 2 * MONTH_MS + CURE_MS,
    )
    assert f"(restructured at height {height} while defaulted)" in workout["why"]
    assert loan(chain, loan_id)["state"] == "repaying"  # current again, but not performing yet


def test_restructured_again_while_still_forborne_it_is_non_performing(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = current_loan(chain, members, borrower)
    first, _ = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=48, holiday_months=2)
    performing = status(chain, loan_id)
    assert (performing["status"], performing["probation_ends_ms"]) == ("performing", first + PROBATION_MS)
    pay_due(chain, first + 5 * MONTH_MS, (bank1, loan_id))
    t, height = restructure(chain, bank1, borrower, loan_id, rate_bps=400, term_months=60, holiday_months=1)
    again = status(chain, loan_id)
    assert (again["status"], again["since_ms"], again["restructurings"], again["cure_ends_ms"]) == (
        "non_performing",
        t,
        2,
        t + MONTH_MS + CURE_MS,
    )
    assert f"(restructured again at height {height} while still forborne (performing))" in again["why"]


def test_a_closed_loan_is_no_longer_a_forborne_exposure(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=24)
    ok(chain, bank1, "loan.prepay", {"loan_id": loan_id, "amount": payoff_now(chain, loan_id)})
    closed = status(chain, loan_id)
    assert closed == {
        "status": "ended",
        "since_ms": chain.head_ms,  # the payoff's time (prepaid_ms)
        "restructurings": 1,
        "cure_ends_ms": None,
        "probation_ends_ms": None,
        "as_of_ms": chain.head_ms,
        "why": "closed: repaid in full, no exposure is left",
    }
    exposure = queries.lookup(chain.state, "exposure", borrower.did, as_of_ms=chain.head_ms)
    assert exposure["forborne"] == {} and exposure["loans"] == []


def test_a_written_off_loan_is_reported_as_written_off_not_as_forborne(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    t, _ = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=24)
    at(chain, t + 150 * DAY_MS)
    assert write_off(chain, bank1, loan_id).ok
    lost = loan(chain, loan_id)["written_off"]
    gone = status(chain, loan_id)
    assert (gone["status"], gone["since_ms"], gone["why"]) == (
        "ended",
        lost["time_ms"],
        f"written off at height {lost['height']}: reported as written off, not as forborne",
    )
    exposure = queries.lookup(chain.state, "exposure", borrower.did, as_of_ms=chain.head_ms)
    assert exposure["forborne"] == {} and exposure["written_off"]["EUR"]["loans"] == 1
    [row] = exposure["loans"]
    assert (row["state"], row["forbearance"]) == ("written_off", "ended")


def test_without_a_time_the_status_is_judged_as_of_the_latest_time_its_record_shows(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = current_loan(chain, members, borrower)
    t, _ = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=48)
    at(chain, t + 3 * PROBATION_MS)  # long after its probation would have ended, had it been paid
    assert status(chain, loan_id)["status"] == "non_performing"  # it was not: defaulted
    bare = loan(chain, loan_id)["forbearance"]  # no as_of_ms: the last arrear's time
    assert (bare["as_of_ms"], bare["status"]) == (t + MONTH_MS + GRACE_MS, "non_performing")
    other = current_loan(chain, members, borrower)
    u, _ = restructure(chain, bank1, borrower, other, rate_bps=600, term_months=48)
    assert loan(chain, other)["forbearance"]["as_of_ms"] == u  # nothing since the restructuring
