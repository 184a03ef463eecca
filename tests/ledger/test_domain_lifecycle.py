"""The extended lifecycle table: consistent with the registered kinds, and its refusals by state."""

from __future__ import annotations

import pytest

from lendchain.ledger import lifecycle as lc
from lendchain.ledger import queries
from lendchain.ledger.kinds import known_kinds
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from tests.ledger.chain import Chain, make_genesis, seeded_key

INTERNAL = {lc.PAID_OFF, lc.NEEDS_FUNDING, lc.FULLY_FUNDED, lc.FELL_OVERDUE, lc.WENT_DEFAULT, lc.CURED}
APPLY = {"amount": 60_000, "currency": "EUR", "term_months": 6, "purpose": "stock"}


def test_every_event_is_a_registered_kind_or_an_internal_event():
    events = {event for (_, event) in lc.TRANSITIONS}
    assert events - INTERNAL <= set(known_kinds())
    assert INTERNAL <= events
    # Internal events are the ledger's alone; transactions never are.
    for (_, event), (_, actor) in lc.TRANSITIONS.items():
        assert (actor == lc.LEDGER) == (event in INTERNAL), event


def test_every_state_is_reachable_and_terminal_states_have_no_way_out():
    reachable, frontier = {lc.NEW}, [lc.NEW]
    while frontier:
        state = frontier.pop()
        for (source, _), (target, _) in lc.TRANSITIONS.items():
            if source == state and target not in reachable:
                reachable.add(target)
                frontier.append(target)
    states = {s for (s, _) in lc.TRANSITIONS} | {t for t, _ in lc.TRANSITIONS.values()}
    assert reachable == states
    leaving = {s for (s, _), (t, _) in lc.TRANSITIONS.items() if t != s}
    terminal = states - leaving
    assert terminal == {lc.CLOSED, lc.CANCELLED, lc.UNFUNDED, lc.WRITTEN_OFF}
    # The events a terminal state takes leave it where it is: a recovery after a write-off (rules 5),
    # and from rules 6 the end of the recovery, the transfers that hand it to another lender and the
    # sale of a funder's share of it (from rules 7 its buyer's decline), and the upkeep of the collateral
    # that secures it, and from rules 7 the release and call of a guarantee of it.
    assert [row for row in lc.TRANSITIONS if row[0] in terminal] == [
        (lc.WRITTEN_OFF, "loan.recover"),
        *[
            (lc.WRITTEN_OFF, kind)
            for kind in ("loan.transfer", "loan.transfer_withdraw", "loan.transfer_accept")
        ],
        (lc.WRITTEN_OFF, "loan.recovery_end"),
        *[
            (lc.WRITTEN_OFF, kind)
            for kind in ("loan.share_assign", "loan.share_accept", "loan.share_withdraw")
        ],
        (lc.WRITTEN_OFF, "loan.share_decline"),
        (lc.WRITTEN_OFF, "collateral.release"),
        (lc.WRITTEN_OFF, "collateral.revalue"),
        (lc.WRITTEN_OFF, "loan.guarantee_release"),
        (lc.WRITTEN_OFF, "loan.guarantee_call"),
    ]
    assert set(lc.ROWS_SINCE) == {row for row in lc.TRANSITIONS if row[0] in terminal} - {
        (lc.WRITTEN_OFF, "loan.recover")
    }
    assert {row: since for row, since in lc.ROWS_SINCE.items() if since != 6} == {
        (lc.WRITTEN_OFF, "loan.share_decline"): 7,
        (lc.WRITTEN_OFF, "loan.guarantee_release"): 7,
        (lc.WRITTEN_OFF, "loan.guarantee_call"): 7,
    }


@pytest.fixture
def world():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower, investor = seeded_key(1), seeded_key(2)
    chain.onboard(borrower, members[3])
    chain.run_one(chain.tx(investor, "party.register", {"role": "investor"}))
    return chain, borrower, investor, members


def drive(world, state: str) -> str:
    """A fresh loan in ``state`` (funding, funded, unfunded, overdue, defaulted, closed)."""
    chain, borrower, investor, members = world
    lender = members[0]
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    offer = {"loan_id": loan_id, "rate_bps": 600}
    if state in ("funding", "funded", "unfunded"):
        offer["funding_window_ms"] = 5000
    offer_id = chain.run_one(chain.tx(lender, "loan.offer", offer)).tx_id.hex()
    chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id}))
    if state == "funded":
        chain.run_one(chain.tx(investor, "loan.fund", {"loan_id": loan_id, "amount": APPLY["amount"]}))
    if state == "unfunded":
        chain.head_ms += 5000
        chain.run_one(chain.tx(members[2], "loan.fund_expire", {"loan_id": loan_id}))
    if state in ("overdue", "defaulted", "closed"):
        chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id}))
        disbursed = queries.lookup(chain.state, "loan", loan_id)["disbursed_ms"]
        late = {"overdue": 10, "defaulted": 100}.get(state)
        if late:
            chain.head_ms = disbursed + MONTH_MS + late * DAY_MS
            chain.run_one(chain.tx(members[2], "loan.service", {"loan_id": loan_id}))
        else:
            owed = queries.lookup(chain.state, "loan", loan_id)["amount_owed"]
            chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": owed}))
    assert queries.lookup(chain.state, "loan", loan_id)["state"] == state
    return loan_id


# (state, who, kind, payload extra) -> expected code
REFUSED = [
    ("funding", "lender", "loan.repay", {"amount": 10}, "invalid_state"),
    ("funding", "lender", "loan.service", {}, "invalid_state"),
    ("funding", "borrower", "loan.fund", {"amount": 10}, "forbidden"),
    ("funding", "regulator", "loan.fund_expire", {}, "invalid_state"),  # deadline ahead
    ("funded", "investor", "loan.fund", {"amount": 1}, "invalid_state"),
    ("funded", "lender2", "loan.disburse", {}, "forbidden"),
    ("unfunded", "investor", "loan.fund", {"amount": 1}, "invalid_state"),
    ("unfunded", "lender", "loan.disburse", {}, "invalid_state"),
    ("overdue", "borrower", "loan.repay", {"amount": 10}, "forbidden"),
    ("overdue", "lender", "loan.offer", {"rate_bps": 1}, "invalid_state"),
    ("defaulted", "regulator", "loan.service", {}, "invalid_state"),
    ("defaulted", "lender2", "loan.repay", {"amount": 10}, "forbidden"),
    ("closed", "lender", "loan.prepay", {"amount": 1}, "invalid_state"),
    ("closed", "regulator", "loan.service", {}, "invalid_state"),
    ("closed", "investor", "loan.fund", {"amount": 1}, "invalid_state"),
]


@pytest.mark.parametrize(("state", "who", "kind", "extra", "code"), REFUSED)
def test_refused_domain_transitions_name_the_state(world, state, who, kind, extra, code):
    chain, borrower, investor, members = world
    loan_id = drive(world, state)
    signer = {
        "borrower": borrower,
        "investor": investor,
        "lender": members[0],
        "lender2": members[1],
        "regulator": members[2],
    }[who]
    result = chain.run_one(chain.tx(signer, kind, {"loan_id": loan_id, **extra}))
    assert result.code == code, result
    assert loan_id[:16] in result.message
    if code == "invalid_state" and kind != "loan.fund_expire":
        assert f"'{state}'" in result.message
