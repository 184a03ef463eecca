"""Governance: scorecard and role changes applied only at a 2f+1 quorum (issue 6, item 7)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.ledger import queries
from lendchain.ledger.governance import quorum
from lendchain.ledger.scoring import DEFAULT_SCORECARD, SCORECARD_KEY
from lendchain.ledger.state import read_value
from tests.ledger.chain import Chain, make_genesis, seeded_key

ROLES = [("lender",), ("lender", "bureau"), ("regulator",), ("kyc", "bureau")]


@pytest.fixture
def world():
    genesis, members = make_genesis(ROLES)
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    return chain, borrower, members


def propose(chain, key, action, target, value):
    return chain.run_one(chain.tx(key, "gov.propose", {"action": action, "key": target, "value": value}))


def vote(chain, key, proposal_id):
    return chain.run_one(chain.tx(key, "gov.vote", {"proposal_id": proposal_id}))


@pytest.mark.parametrize(("n", "needed"), [(1, 1), (3, 1), (4, 3), (7, 5), (10, 7)])
def test_quorum_is_two_f_plus_one(n, needed):
    assert quorum(n) == needed


def test_scorecard_change_applies_only_at_quorum(world):
    chain, borrower, members = world
    score = queries.lookup(chain.state, "score", borrower.did)["score"]
    proposed = propose(chain, members[0], "scorecard.set", "base", "350")
    assert proposed.ok and proposed.events[-1]["needed"] == 3
    proposal_id = proposed.tx_id.hex()
    assert vote(chain, members[1], proposal_id).ok
    assert queries.lookup(chain.state, "score", borrower.did)["score"] == score  # 2 of 3 votes
    duplicate = vote(chain, members[1], proposal_id)
    assert duplicate.code == "duplicate"
    executed = vote(chain, members[2], proposal_id)
    assert [e["event"] for e in executed.events] == ["gov.executed", "gov.voted"]
    assert queries.lookup(chain.state, "score", borrower.did)["score"] == score + 50
    record = queries.lookup(chain.state, "proposal", proposal_id)
    assert record["status"] == "executed" and record["executed_height"] == chain.height
    assert record["votes"] == [members[0].did, members[1].did, members[2].did]
    late = vote(chain, members[3], proposal_id)
    assert late.code == "invalid_state" and "executed" in late.message


def test_score_table_change(world):
    chain, borrower, members = world
    proposal_id = propose(chain, members[0], "scorecard.set", "tables.income_band", "10:7").tx_id.hex()
    vote(chain, members[1], proposal_id)
    vote(chain, members[3], proposal_id)
    assert queries.lookup(chain.state, "proposal", proposal_id)["parsed"] == [[10, 7]]
    card = read_value(chain.state, SCORECARD_KEY)
    assert card["tables"]["income_band"] == [[10, 7]]
    assert card["tables"]["dti_bps"] == DEFAULT_SCORECARD["tables"]["dti_bps"]


def test_member_roles_change_takes_effect(world):
    chain, borrower, members = world
    regulator = members[2]
    apply = {"amount": 1000, "currency": "EUR", "term_months": 6, "purpose": "tools"}
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", apply)).tx_id.hex()
    offer = {"loan_id": loan_id, "rate_bps": 500}
    assert chain.run_one(chain.tx(regulator, "loan.offer", offer)).code == "forbidden"
    proposal_id = propose(chain, members[0], "member.roles", regulator.did, "lender,regulator").tx_id.hex()
    vote(chain, members[1], proposal_id)
    vote(chain, members[3], proposal_id)
    assert queries.lookup(chain.state, "party", regulator.did)["roles"] == ["lender", "regulator"]
    assert chain.run_one(chain.tx(regulator, "loan.offer", offer)).ok


@pytest.mark.parametrize(
    ("action", "target", "value", "names"),
    [
        ("scorecard.set", "base", "high", "'value'"),
        ("scorecard.set", "min", "2000", "max"),
        ("scorecard.set", "weights", "1", "'key'"),
        ("scorecard.set", "tables.dti_bps", "10:1,5:2", "increasing"),
        ("member.roles", "did:key:z6MkunknownunknownunknownunknownunknownXXXX", "lender", "'key'"),
        ("member.roles", None, "lender,king", "'king'"),
    ],
)
def test_proposals_that_could_not_apply_are_refused(world, action, target, value, names):
    chain, _, members = world
    result = propose(chain, members[0], action, target or members[2].did, value)
    assert result.code == "bad_payload" and names in result.message


def test_only_voting_members_propose_and_vote(world):
    chain, borrower, members = world
    refused = propose(chain, borrower, "scorecard.set", "base", "1")
    assert refused.code == "forbidden"
    proposal_id = propose(chain, members[0], "scorecard.set", "base", "1").tx_id.hex()
    assert vote(chain, borrower, proposal_id).code == "forbidden"
    assert vote(chain, members[1], "00" * 32).code == "not_found"


def test_a_proposal_expires_after_the_voting_period_and_is_never_executed(world):
    chain, borrower, members = world
    score = queries.lookup(chain.state, "score", borrower.did)["score"]
    proposed = propose(chain, members[0], "scorecard.set", "base", "350")
    proposal_id = proposed.tx_id.hex()
    record = queries.lookup(chain.state, "proposal", proposal_id)
    assert record["status"] == "open" and record["expires_ms"] == chain.head_ms + 7 * 86_400_000
    chain.head_ms = record["expires_ms"] - 2000  # the next block is 1 ms before expiry
    assert vote(chain, members[1], proposal_id).ok
    chain.head_ms = record["expires_ms"] - 1000  # the next block is at the expiry time
    late = vote(chain, members[2], proposal_id)
    assert late.code == "expired" and "'proposal_id'" in late.message and "expired at" in late.message
    assert chain.ledger_events == (
        {"event": "gov.expired", "proposal_id": proposal_id, "expires_ms": record["expires_ms"], "votes": 2},
    )
    record = queries.lookup(chain.state, "proposal", proposal_id)
    assert record["status"] == "expired" and record["expired_height"] == chain.height
    assert record["votes"] == [members[0].did, members[1].did]
    assert queries.lookup(chain.state, "score", borrower.did)["score"] == score
    assert read_value(chain.state, b"gov/open") == []
    assert vote(chain, members[3], proposal_id).code == "expired"


def test_the_voting_period_is_a_chain_parameter_and_executed_proposals_leave_the_open_list():
    genesis, members = make_genesis(ROLES)
    chain = Chain.start(replace(genesis, app={"voting_period_ms": 60_000}))
    first = propose(chain, members[0], "scorecard.set", "base", "310").tx_id.hex()
    second = propose(chain, members[0], "scorecard.set", "base", "320").tx_id.hex()
    expiry = queries.lookup(chain.state, "proposal", first)["expires_ms"]
    assert expiry == chain.head_ms - 1000 + 60_000
    vote(chain, members[1], second)
    assert vote(chain, members[2], second).events[0]["event"] == "gov.executed"
    assert [entry[1].hex() for entry in read_value(chain.state, b"gov/open")] == [first]
    chain.head_ms += 60_000
    chain.run()
    assert [e["event"] for e in chain.ledger_events] == ["gov.expired"]
    assert queries.lookup(chain.state, "proposal", first)["status"] == "expired"
    assert queries.lookup(chain.state, "proposal", second)["status"] == "executed"


def test_the_open_proposals_are_listed_with_their_votes_until_executed_or_expired():
    genesis, members = make_genesis(ROLES)
    chain = Chain.start(replace(genesis, app={"voting_period_ms": 60_000}))
    assert queries.lookup(chain.state, "proposal", "open") == {"open": 0, "needed": 3, "proposals": []}
    first = propose(chain, members[0], "scorecard.set", "base", "310").tx_id.hex()
    second = propose(chain, members[1], "scorecard.set", "base", "320").tx_id.hex()
    vote(chain, members[2], second)
    listed = queries.lookup(chain.state, "proposal", "open")
    assert (listed["open"], listed["needed"]) == (2, 3)
    assert [(p["proposal_id"], p["proposer"], len(p["votes"])) for p in listed["proposals"]] == [
        (first, members[0].did, 1),
        (second, members[1].did, 2),
    ]
    shown = dict(listed["proposals"][0])
    assert shown.pop("counted_votes") == shown["votes"]  # every voter still votes
    assert shown == queries.lookup(chain.state, "proposal", first)
    vote(chain, members[3], second)  # executed: no longer open
    assert [p["proposal_id"] for p in queries.lookup(chain.state, "proposal", "open")["proposals"]] == [first]
    chain.head_ms += 60_000
    chain.run()  # expired
    assert queries.lookup(chain.state, "proposal", "open")["proposals"] == []
    assert queries.lookup(chain.state, "proposal", "OPEN") is None
