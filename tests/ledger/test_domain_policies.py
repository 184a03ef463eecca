"""Lender policies that offer automatically in the block of the application (issue 6, item 4)."""

from __future__ import annotations

import pytest

from lendchain import codec
from lendchain.ledger import queries
from lendchain.ledger.policies import AUTO_OFFER_TAG, parse_bands, rate_for
from tests.ledger.chain import GENESIS_MS, Chain, make_genesis, seeded_key

ROLES = [("lender",), ("lender", "bureau"), ("regulator",), ("kyc", "bureau")]
APPLY = {"amount": 50_000, "currency": "EUR", "term_months": 12, "purpose": "a van"}
POLICY = {
    "currency": "EUR",
    "min_amount": 10_000,
    "max_amount": 100_000,
    "max_term_months": 24,
    "bands": "600:900,300:1500",
    "max_exposure": 120_000,
}


@pytest.fixture
def world():
    genesis, members = make_genesis(ROLES)
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    return chain, borrower, members


def publish(chain, key, **change):
    result = chain.run_one(chain.tx(key, "policy.publish", {**POLICY, **change}))
    assert result.ok, result
    return result.tx_id


def apply(chain, borrower, **change):
    return chain.run_one(chain.tx(borrower, "loan.apply", {**APPLY, **change}))


def test_two_competing_policies_both_offer_in_the_application_block(world):
    chain, borrower, members = world
    first = publish(chain, members[0])
    second = publish(chain, members[1], bands="300:1300")
    result = apply(chain, borrower)
    assert result.ok
    assert [e["event"] for e in result.events] == [
        "loan.applied",
        "loan.offered",
        "loan.offered",
        "loan.history",
    ]
    loan_id = result.tx_id
    view = queries.lookup(chain.state, "loan", loan_id.hex())
    assert view["state"] == "offered"
    # Score 300 with no credit report: the 300 band of each policy applies.
    assert [(o["lender"], o["rate_bps"]) for o in view["offers"]] == [
        (members[0].did, 1500),
        (members[1].did, 1300),
    ]
    assert view["offers"][0]["offer_id"] == codec.sha256(AUTO_OFFER_TAG + loan_id + first).hex()
    assert view["offers"][1]["policy_id"] == second.hex()
    # The borrower picks the cheaper one.
    pick = {"loan_id": loan_id.hex(), "offer_id": view["offers"][1]["offer_id"]}
    assert chain.run_one(chain.tx(borrower, "loan.accept", pick)).ok
    view = queries.lookup(chain.state, "loan", loan_id.hex())
    assert view["lender"] == members[1].did and view["rate_bps"] == 1300
    assert [o["status"] for o in view["offers"]] == ["declined", "accepted"]


def test_better_score_gets_the_better_band(world):
    chain, borrower, members = world
    bureau = members[3]
    publish(chain, members[0])
    far = GENESIS_MS + 10**12
    chain.run_one(
        chain.tx(borrower, "consent.grant", {"member": bureau.did, "scopes": "credit", "until_ms": far})
    )
    report = {
        "income_band": 6,
        "dti_bps": 3000,
        "history_months": 40,
        "obligations": 1,
        "evidence_hash": "00" * 32,
    }
    assert chain.run_one(chain.tx(bureau, "credit.report", {"subject": borrower.did, **report})).ok
    result = apply(chain, borrower)
    assert result.events[1]["rate_bps"] == 900  # score 670 reaches the 600 band


@pytest.mark.parametrize(
    ("policy_change", "apply_change"),
    [
        ({"currency": "USD"}, {}),
        ({}, {"amount": 9_999}),
        ({}, {"amount": 100_001}),
        ({}, {"term_months": 25}),
        ({"bands": "301:900"}, {}),
        ({"max_exposure": 49_999}, {}),
        ({"min_kyc_level": 3}, {}),  # the borrower is attested at level 2
    ],
)
def test_policies_that_do_not_match_make_no_offer(world, policy_change, apply_change):
    chain, borrower, members = world
    publish(chain, members[0], **policy_change)
    result = apply(chain, borrower, **apply_change)
    assert result.ok and [e["event"] for e in result.events] == ["loan.applied", "loan.history"]


def test_exposure_counts_live_loans_of_the_same_lender(world):
    chain, borrower, members = world
    publish(chain, members[0], max_exposure=90_000)
    first = apply(chain, borrower)
    offer_id = first.events[1]["offer_id"]
    assert chain.run_one(
        chain.tx(borrower, "loan.accept", {"loan_id": first.tx_id.hex(), "offer_id": offer_id})
    ).ok
    second = apply(chain, borrower)
    assert [e["event"] for e in second.events] == ["loan.applied", "loan.history"]  # 50 000 + 50 000 > 90 000
    third = apply(chain, borrower, amount=40_000)
    assert [e["event"] for e in third.events] == ["loan.applied", "loan.offered", "loan.history"]


def test_withdrawn_policy_offers_no_more(world):
    chain, borrower, members = world
    policy_id = publish(chain, members[0]).hex()
    other = chain.run_one(chain.tx(members[1], "policy.withdraw", {"policy_id": policy_id}))
    assert other.code == "forbidden"
    assert chain.run_one(chain.tx(members[0], "policy.withdraw", {"policy_id": policy_id})).ok
    again = chain.run_one(chain.tx(members[0], "policy.withdraw", {"policy_id": policy_id}))
    assert again.code == "invalid_state"
    assert [e["event"] for e in apply(chain, borrower).events] == ["loan.applied", "loan.history"]


@pytest.mark.parametrize(
    ("signer", "change", "code", "names"),
    [
        (2, {}, "forbidden", "lender role"),
        (0, {"min_amount": 200_000}, "bad_payload", "'min_amount'"),
        (0, {"currency": "XYZ"}, "bad_payload", "'currency'"),
        (0, {"bands": "300:900,300:800"}, "bad_payload", "'bands'"),
    ],
)
def test_publish_refusals(world, signer, change, code, names):
    chain, _, members = world
    result = chain.run_one(chain.tx(members[signer], "policy.publish", {**POLICY, **change}))
    assert result.code == code and names in result.message


def test_bands():
    bands = parse_bands("300:1500,700:800,500:1100")
    assert bands == [[700, 800], [500, 1100], [300, 1500]]
    assert [rate_for(bands, s) for s in (299, 300, 499, 500, 700, 1000)] == [None, 1500, 1500, 1100, 800, 800]
