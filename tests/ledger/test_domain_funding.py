"""Funding by several funders, expiry, and pro-rata repayment shares (issue 6, item 5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain.ledger import queries
from lendchain.ledger.funding import pro_rata
from tests.ledger.chain import Chain, make_genesis, seeded_key

AMOUNT = 100_000
APPLY = {"amount": AMOUNT, "currency": "EUR", "term_months": 6, "purpose": "a shop fit-out"}
WINDOW = 10_000  # ms: ten test blocks


@pytest.fixture
def world():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower, alice, bob = seeded_key(1), seeded_key(2), seeded_key(3)
    chain.onboard(borrower, members[3])
    for investor in (alice, bob):
        assert chain.run_one(chain.tx(investor, "party.register", {"role": "investor"})).ok
    lender = members[0]
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    offer = {"loan_id": loan_id, "rate_bps": 900, "funding_window_ms": WINDOW}
    offer_id = chain.run_one(chain.tx(lender, "loan.offer", offer)).tx_id.hex()
    accepted = chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id}))
    assert accepted.ok and accepted.events[0]["event"] == "loan.funding"
    return chain, borrower, alice, bob, members, loan_id


def loan(chain, loan_id):
    return queries.lookup(chain.state, "loan", loan_id)


def fund(chain, key, loan_id, amount):
    return chain.run_one(chain.tx(key, "loan.fund", {"loan_id": loan_id, "amount": amount}))


def test_syndicated_loan_disburses_when_fully_funded_and_shares_repayments(world):
    chain, _, alice, bob, members, loan_id = world
    lender = members[0]
    assert loan(chain, loan_id)["state"] == "funding"
    refused = chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id}))
    assert refused.code == "invalid_state" and "'funding'" in refused.message
    assert fund(chain, alice, loan_id, 20_000).ok
    assert fund(chain, alice, loan_id, 13_333).ok  # a second commitment adds to the share
    assert fund(chain, members[1], loan_id, 33_333).ok  # a lender member may fund too
    last = fund(chain, bob, loan_id, AMOUNT - 66_666)
    assert last.ok and last.events[0]["state"] == "funded"
    assert chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id})).ok
    total = 0
    for payment in (100, 1, 17_001):
        assert chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": payment})).ok
        total += payment
    commitments = loan(chain, loan_id)["funding"]["commitments"]
    assert [c["funder"] for c in commitments] == [alice.did, members[1].did, bob.did]
    assert [c["amount"] for c in commitments] == [33_333, 33_333, 33_334]
    received = [c["received"] for c in commitments]
    assert sum(received) == total
    assert received == [
        pro_rata(100, [33_333, 33_333, 33_334])[i]
        + pro_rata(1, [33_333, 33_333, 33_334])[i]
        + pro_rata(17_001, [33_333, 33_333, 33_334])[i]
        for i in range(3)
    ]


def test_partial_funding_expires_and_releases_commitments(world):
    chain, _, alice, _, members, loan_id = world
    assert fund(chain, alice, loan_id, 40_000).ok
    early = chain.run_one(chain.tx(members[2], "loan.fund_expire", {"loan_id": loan_id}))
    assert early.code == "invalid_state" and "still ahead" in early.message
    chain.head_ms += WINDOW
    late = fund(chain, alice, loan_id, 1)
    assert late.code == "invalid_state" and "deadline" in late.message
    assert chain.run_one(chain.tx(members[2], "loan.fund_expire", {"loan_id": loan_id})).ok
    view = loan(chain, loan_id)
    assert view["state"] == "unfunded"
    assert [c["status"] for c in view["funding"]["commitments"]] == ["released"]
    assert chain.run_one(chain.tx(members[0], "loan.disburse", {"loan_id": loan_id})).code == "invalid_state"


@pytest.mark.parametrize(
    ("who", "amount", "code", "names"),
    [
        ("alice", AMOUNT + 1, "bad_payload", "'amount'"),
        ("borrower", 10, "forbidden", "investor"),
        ("stranger", 10, "forbidden", "investor"),
        ("regulator", 10, "forbidden", "investor"),
    ],
)
def test_fund_refusals(world, who, amount, code, names):
    chain, borrower, alice, _, members, loan_id = world
    key = {"alice": alice, "borrower": borrower, "stranger": seeded_key(9), "regulator": members[2]}[who]
    result = fund(chain, key, loan_id, amount)
    assert result.code == code and names in result.message


def test_funding_a_loan_that_is_not_syndicated_is_refused(world):
    chain, borrower, alice, _, members, _ = world
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    result = fund(chain, alice, loan_id, 10)
    assert result.code == "invalid_state" and "'applied'" in result.message


def test_pro_rata_rounding_examples():
    assert pro_rata(100, [1, 1, 1]) == [34, 33, 33]
    assert pro_rata(2, [1, 1, 1]) == [1, 1, 0]
    assert pro_rata(10, [1, 2]) == [3, 7]
    assert pro_rata(0, [5, 5]) == [0, 0]


@given(st.integers(0, 10**12), st.lists(st.integers(1, 10**9), min_size=1, max_size=20))
def test_pro_rata_is_exact_and_within_one_unit(amount, shares):
    parts = pro_rata(amount, shares)
    assert sum(parts) == amount
    total = sum(shares)
    for part, share in zip(parts, shares, strict=True):
        assert amount * share // total <= part <= amount * share // total + 1
