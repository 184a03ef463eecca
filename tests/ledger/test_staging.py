"""A loan's days past due and IFRS 9 stage, judged at a time (``staging``).

The chains start on rules 5. ``open_loan`` lends 120,000 EUR over 12 months
at 900 bps; its first instalment falls due a month (30 days) after the
disbursement, an instalment unpaid 5 days (``grace_days``) after its due
time makes the loan overdue, 90 days (``default_days``) defaulted. A view
read with ``as_of_ms`` judges at that time, as a node judges at its head
block's; DPD counts from due times, so a view may be read at a time the
chain has not reached (the loan's state is then as the last block left it).
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.due import SLOT_MS
from lendchain.ledger.forbearance import PROBATION_MS
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from lendchain.ledger.staging import AGEING_BUCKETS, ageing_bucket
from tests.ledger.test_forbearance import current_loan, restructure
from tests.ledger.test_forbearance_bytes import at, owed_now, pay_due, payoff_now
from tests.ledger.test_loan_transfer import APPLY, ok, open_loan, repay, with_borrower
from tests.ledger.test_restructure import overdue
from tests.ledger.test_write_off import default, write_off


@pytest.fixture
def world():
    return with_borrower(version=5)


def staged(chain, loan_id, as_of_ms=None):
    """The loan view's ``(days_past_due, stage, [rules of its reasons])`` at ``as_of_ms`` (the head's)."""
    view = queries.lookup(
        chain.state, "loan", loan_id, as_of_ms=chain.head_ms if as_of_ms is None else as_of_ms
    )
    return view["days_past_due"], view["stage"], [reason["rule"] for reason in view["stage_reasons"]]


def first_due(chain, loan_id):
    return queries.lookup(chain.state, "loan", loan_id)["schedule"][0]["due_ms"]


def test_a_loan_with_nothing_past_due_is_stage_1_and_says_so(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    due = first_due(chain, loan_id)
    assert staged(chain, loan_id) == (0, 1, ["current"])
    assert staged(chain, loan_id, due) == (0, 1, ["current"])  # due now, not past due
    assert staged(chain, loan_id, due + DAY_MS - 1) == (0, 1, ["current"])  # not a whole day yet
    view = queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
    assert view["stage_as_of_ms"] == chain.head_ms
    assert view["stage_reasons"] == [
        {
            "rule": "current",
            "stage": 1,
            "value": 0,
            "why": "nothing past due, not in default, not a forborne exposure",
            "source": "IFRS 9 5.5.5 (12-month expected credit losses)",
        }
    ]


@pytest.mark.parametrize(
    ("days", "ms_after", "expected"),
    [
        (1, 0, (1, 1, ["past_due"])),
        (30, 0, (30, 1, ["past_due"])),
        (31, -1, (30, 1, ["past_due"])),  # a millisecond short of the 31st day
        (31, 0, (31, 2, ["past_due_over_30"])),
        (90, 0, (90, 2, ["past_due_over_30"])),
        (91, -1, (90, 2, ["past_due_over_30"])),
        (91, 0, (91, 3, ["past_due_over_90"])),
    ],
)
def test_the_days_past_due_are_whole_days_and_the_30_and_90_day_presumptions_are_strict(
    world, days, ms_after, expected
):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    # Read ahead of the chain: the loan is still "disbursed" (no block evaluated it), and DPD and the
    # stage follow the due times, not the state the due-loan pass has reached.
    assert staged(chain, loan_id, first_due(chain, loan_id) + days * DAY_MS + ms_after) == expected


def test_a_partly_paid_instalment_is_unpaid_and_counts_from_its_own_due_time(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    due = first_due(chain, loan_id)
    instalment = queries.lookup(chain.state, "loan", loan_id)["schedule"][0]["payment"]
    assert repay(chain, bank1, loan_id, 1_000).ok  # before it is due: part of the first instalment
    assert staged(chain, loan_id, due + 40 * DAY_MS) == (40, 2, ["past_due_over_30"])
    assert repay(chain, bank1, loan_id, instalment - 1_001).ok  # one minor unit short
    assert staged(chain, loan_id, due + 40 * DAY_MS) == (40, 2, ["past_due_over_30"])
    assert repay(chain, bank1, loan_id, 1).ok  # paid: the oldest unpaid is the second, due a month later
    assert staged(chain, loan_id, due + 40 * DAY_MS) == (10, 1, ["past_due"])


def test_stages_follow_block_time_as_nobody_pays_until_default(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    due = first_due(chain, loan_id)
    steps = [
        (due - DAY_MS, "disbursed", (0, 1, ["current"])),
        (due + 3 * DAY_MS, "disbursed", (3, 1, ["past_due"])),  # within grace: not overdue yet
        (due + 10 * DAY_MS, "overdue", (10, 1, ["past_due"])),  # overdue is not stage 2 by itself
        (due + 31 * DAY_MS, "overdue", (31, 2, ["past_due_over_30"])),
        (due + 90 * DAY_MS, "overdue", (90, 2, ["past_due_over_30"])),
        # The chain's default at 90 days: the due-loan pass looks at the loan within the hour (``due``).
        (due + 90 * DAY_MS + SLOT_MS, "defaulted", (90, 3, ["defaulted", "past_due_over_30"])),
        (due + 100 * DAY_MS, "defaulted", (100, 3, ["defaulted", "past_due_over_90"])),
    ]
    for time_ms, state, expected in steps:
        at(chain, time_ms)
        assert queries.lookup(chain.state, "loan", loan_id)["state"] == state
        assert staged(chain, loan_id) == expected, (time_ms - due) // DAY_MS


def test_a_defaulted_loan_stays_stage_3_when_its_arrears_are_paid(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)  # 200 days after the disbursement: six instalments unpaid
    due = first_due(chain, loan_id)
    assert staged(chain, loan_id) == (170, 3, ["defaulted", "past_due_over_90"])
    defaulted_ms = queries.lookup(chain.state, "loan", loan_id)["defaulted_ms"]
    reason = queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)["stage_reasons"][0]
    assert (reason["value"], reason["why"]) == (
        defaulted_ms,
        f"in default since {time_text(defaulted_ms)} (unpaid past the chain's default_days)",
    )
    assert repay(chain, bank1, loan_id, owed_now(chain, loan_id)).ok  # the penalty and instalment 1
    assert staged(chain, loan_id) == (140, 3, ["defaulted", "past_due_over_90"])  # instalment 2's
    for _ in range(5):
        assert repay(chain, bank1, loan_id, owed_now(chain, loan_id)).ok
    assert queries.lookup(chain.state, "loan", loan_id)["state"] == "defaulted"
    assert staged(chain, loan_id) == (0, 3, ["defaulted"])  # no cure on chain: the default stands
    assert chain.head_ms < due + 6 * MONTH_MS  # instalment 7 is not due yet


def test_a_restructured_loan_counts_from_its_new_schedule_and_its_holiday_has_nothing_due(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    assert staged(chain, loan_id) == (10, 1, ["past_due"])
    t, _ = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=36, holiday_months=3)
    first_new = t + 4 * MONTH_MS  # the month after the three months of holiday
    assert queries.lookup(chain.state, "loan", loan_id)["schedule"][0]["due_ms"] == first_new
    # Its arrears were capitalised: nothing is past due, but it is a non-performing forborne exposure.
    assert staged(chain, loan_id) == (0, 3, ["forborne_non_performing"])
    assert staged(chain, loan_id, first_new) == (0, 3, ["forborne_non_performing"])  # the holiday's end
    assert staged(chain, loan_id, first_new + 45 * DAY_MS) == (
        45,
        3,
        ["forborne_non_performing", "past_due_over_30"],
    )


def test_a_loan_restructured_while_current_is_stage_2_on_probation_then_stage_1(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = current_loan(chain, members, borrower)
    t, _ = restructure(chain, bank1, borrower, loan_id, rate_bps=600, term_months=36)
    assert staged(chain, loan_id) == (0, 2, ["forborne_performing"])
    pay_due(chain, t + PROBATION_MS - 1_000, (bank1, loan_id))
    assert staged(chain, loan_id) == (0, 2, ["forborne_performing"])
    pay_due(chain, t + PROBATION_MS, (bank1, loan_id))
    view = queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
    assert view["forbearance"]["status"] == "ended"
    assert staged(chain, loan_id) == (0, 1, ["current"])


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ("applied", "not accepted yet: nobody is committed to lend"),
        ("cancelled", "cancelled before disbursement: nothing was lent"),
        ("unfunded", "unfunded: its funders' commitments were released, nothing was lent"),
        ("closed", "closed: repaid in full, no exposure is left"),
        ("written_off", "written off: no exposure is left on chain; the views report it under written_off"),
    ],
)
def test_a_loan_not_drawn_or_no_longer_outstanding_has_no_stage_and_says_why(world, state, why):
    chain, members, borrower = world
    bank1 = members[0]
    if state in ("applied", "cancelled"):
        loan_id = ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
        if state == "cancelled":
            ok(chain, borrower, "loan.cancel", {"loan_id": loan_id})
    elif state == "unfunded":
        loan_id = open_loan(chain, borrower, bank1, disburse=False, funding_window_ms=1)
        chain.run()
        ok(chain, bank1, "loan.fund_expire", {"loan_id": loan_id})
    else:
        loan_id = open_loan(chain, borrower, bank1)
        if state == "closed":
            ok(chain, bank1, "loan.prepay", {"loan_id": loan_id, "amount": payoff_now(chain, loan_id)})
        else:
            default(chain, loan_id)
            assert write_off(chain, bank1, loan_id).ok
    view = queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
    assert view["state"] == state
    assert (view["days_past_due"], view["stage"], view["stage_as_of_ms"]) == (None, None, None)
    assert [(r["rule"], r["stage"], r["why"]) for r in view["stage_reasons"]] == [("not_staged", None, why)]


def test_without_a_time_a_loan_is_judged_as_of_the_latest_time_its_record_shows(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    view = queries.lookup(chain.state, "loan", loan_id)
    assert (view["stage_as_of_ms"], view["days_past_due"]) == (view["disbursed_ms"], 0)
    due = first_due(chain, loan_id)
    at(chain, due + 40 * DAY_MS)  # the due-loan pass evaluated it then (it fell overdue at due + grace)
    view = queries.lookup(chain.state, "loan", loan_id)
    assert view["stage_as_of_ms"] == view["penalty_as_of_ms"]
    assert view["days_past_due"] == (view["penalty_as_of_ms"] - due) // DAY_MS
    assert view["days_past_due"] <= 40  # never ahead of the chain


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(0, "dpd_0"), (1, "dpd_1_30"), (30, "dpd_1_30"), (31, "dpd_31_60"), (60, "dpd_31_60")]
    + [(61, "dpd_61_90"), (90, "dpd_61_90"), (91, "dpd_over_90"), (4_000, "dpd_over_90")],
)
def test_the_ageing_buckets_bound_their_days_on_both_sides(days, bucket):
    assert ageing_bucket(days) == bucket
    assert [name for name, _, _ in AGEING_BUCKETS] == [
        "dpd_0",
        "dpd_1_30",
        "dpd_31_60",
        "dpd_61_90",
        "dpd_over_90",
    ]
