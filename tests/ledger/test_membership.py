"""Who votes, by governance (``member.voting``, rules version 2; see ``lendchain.ledger.membership``).

The chains here have four genesis voters (bank1..bank4) and one observer
(``regulator``), and move to rules 2 through ``rules.upgrade`` as a real
chain would. Governance quorums are ``quorum(n)`` = 2f+1 with f = (n-1)//3.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.genesis import Member
from lendchain.ledger import queries
from lendchain.ledger.errors import InvalidBlock
from lendchain.ledger.governance import quorum
from lendchain.ledger.membership import VOTING_CHANGES_KEY, voting_changes, voting_dids_at
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS, rules_status, scheduled_upgrades
from lendchain.ledger.state import OBSERVERS_KEY, RULES_KEY, VOTING_MEMBERS_KEY, read_value
from tests.ledger.chain import Chain, make_genesis, seeded_key

ACTION = "member.voting"
DELAY = 5  # key_rotation_delay_blocks of these chains


def genesis_with_observer(roles=None, delay=DELAY):
    genesis, members = make_genesis(roles)
    observer_key = seeded_key(77)
    observer = Member(
        "regulator", observer_key.public_key, "/ip4/127.0.0.1/tcp/47190", ("regulator",), voting=False
    )
    genesis = replace(genesis, observers=(observer,), app={"key_rotation_delay_blocks": delay})
    return genesis, members, observer_key


def propose(chain, proposer, action, key, value):
    payload = {"action": action, "key": key, "value": value}
    return chain.run_one(chain.tx(proposer, "gov.propose", payload))


def vote(chain, voter, proposal_id):
    return chain.run_one(chain.tx(voter, "gov.vote", {"proposal_id": proposal_id}))


def vote_through(chain, proposer, voters, action, key, value):
    """``proposer`` proposes, each of ``voters`` votes; returns the last result (the executing one)."""
    result = propose(chain, proposer, action, key, value)
    assert result.ok, result.message
    proposal_id = result.tx_id.hex()
    for voter in voters:
        result = vote(chain, voter, proposal_id)
        assert result.ok, result.message
    return result


def upgrade_to_rules_2(chain, members):
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    voters = members[1 : quorum(len(members))]
    vote_through(chain, members[0], voters, "rules.upgrade", "2", str(activation))
    advance_to(chain, activation)


def advance_to(chain, height):
    """Run empty blocks until the next block is at ``height``."""
    while chain.height < height - 1:
        chain.run()


def rules2_world(roles=None, delay=DELAY):
    genesis, members, observer = genesis_with_observer(roles, delay)
    chain = Chain.start(genesis)
    upgrade_to_rules_2(chain, members)
    return chain, members, observer


@pytest.fixture
def world():
    return rules2_world()


def gov_voted(result):
    return next(e for e in result.events if e["event"] == "gov.voted")


def test_under_rules_1_the_action_is_unknown_and_from_rules_2_it_is_accepted():
    genesis, members, observer = genesis_with_observer()
    chain = Chain.start(genesis)
    early = chain.tx(members[3], "gov.propose", {"action": ACTION, "key": observer.did, "value": "voter"})
    block, execution = chain.cut([early])
    assert len(block.txs) == 0
    [dropped] = execution.dropped
    assert (dropped.tx_id, dropped.code) == (early.id, "bad_payload")
    # The refusal an unknown action gets, listing the actions of rules 1.
    assert dropped.message == (
        "gov.propose field 'action' must be one of scorecard.set, member.roles, member.rotate_key, "
        f"rules.upgrade, got '{ACTION}'"
    )
    unknown = chain.tx(members[3], "gov.propose", {"action": "member.bogus", "key": "k", "value": "v"}, 0)
    _, unknown_execution = chain.cut([unknown])
    assert unknown_execution.dropped[0].code == "bad_payload"
    assert "field 'action' must be one of" in unknown_execution.dropped[0].message
    # A block that includes it anyway is invalid under rules 1.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("lendchain.ledger.execute.check_rules", lambda *args: None)
        forced, _ = chain.cut([early])
    assert len(forced.txs) == 1
    with pytest.raises(InvalidBlock, match="field 'action' must be one of"):
        chain.check_next(forced.encode())

    upgrade_to_rules_2(chain, members)
    assert scheduled_upgrades(chain.state)[0][1] == 2
    accepted = chain.run_one(early)  # the same tx, never included: its nonce is still free
    assert accepted.ok, accepted.message
    assert gov_voted(accepted)["votes"] == 1


def test_promoting_an_observer_schedules_it_at_the_executing_height_plus_the_delay(world):
    chain, members, observer = world
    genesis_voters = [m.did for m in members]
    executed = vote_through(chain, members[0], members[1:3], ACTION, observer.did, "voter")
    effective = chain.height + DELAY
    assert voting_changes(chain.state) == {"regulator": [[effective, True]]}
    assert {
        "event": ACTION,
        "member": "regulator",
        "did": observer.did,
        "voting": True,
        "effective_height": effective,
    } in executed.events
    assert voting_dids_at(chain.state, effective - 1) == genesis_voters
    assert voting_dids_at(chain.state, effective) == [*genesis_voters, observer.did]
    # The founding roster does not move.
    assert read_value(chain.state, VOTING_MEMBERS_KEY) == genesis_voters
    assert read_value(chain.state, OBSERVERS_KEY) == [observer.did]
    assert queries.lookup(chain.state, "voting", "*") == {
        "voters_after_changes": ["bank1", "bank2", "bank3", "bank4", "regulator"],
        "changes": [{"member": "regulator", "voting": True, "effective_height": effective}],
    }
    assert queries.lookup(chain.state, "voting", "bank1")["changes"] == []
    assert queries.lookup(chain.state, "voting", "nobody") is None
    member = queries.lookup(chain.state, "party", observer.did)
    assert member["voting"] is False  # the genesis's role, and the change that follows it:
    assert member["voting_changes"] == [{"effective_height": effective, "voting": True}]

    # Not a voter before the effective height ...
    early = propose(chain, observer, "scorecard.set", "base", "310")
    assert early.code == "forbidden" and observer.did in early.message
    advance_to(chain, effective)
    # ... a voter from it, and quorums count five voters.
    proposed = propose(chain, observer, "scorecard.set", "base", "320")
    assert chain.height == effective
    assert proposed.ok, proposed.message
    assert quorum(5) == 3
    assert gov_voted(proposed) | {"proposal_id": None} == {
        "event": "gov.voted",
        "proposal_id": None,
        "voter": observer.did,
        "votes": 1,
        "needed": 3,
    }
    assert queries.lookup(chain.state, "proposal", "open")["needed"] == 3
    assert vote(chain, members[3], proposed.tx_id.hex()).ok
    executing = vote(chain, members[0], proposed.tx_id.hex())
    assert [e["event"] for e in executing.events] == ["gov.executed", "gov.voted"]


def test_a_demoted_voter_can_no_longer_propose_or_vote_and_quorums_count_the_smaller_set(world):
    chain, members, _ = world
    bank4 = members[3]
    vote_through(chain, members[0], members[1:3], ACTION, bank4.did, "observer")
    effective = voting_changes(chain.state)["bank4"][0][0]
    open_id = propose(chain, members[0], "scorecard.set", "base", "310").tx_id.hex()
    assert vote(chain, bank4, open_id).ok  # still a voter before the effective height
    advance_to(chain, effective)
    refused = propose(chain, bank4, "scorecard.set", "base", "320")
    assert refused.code == "forbidden" and bank4.did in refused.message
    assert vote(chain, bank4, open_id).code == "forbidden"
    assert voting_dids_at(chain.state, chain.height) == [m.did for m in members[:3]]
    # Three voters: f = 0, so one vote is a quorum.
    assert quorum(3) == 1
    alone = propose(chain, members[1], "scorecard.set", "base", "330")
    assert gov_voted(alone)["needed"] == 1
    assert [e["event"] for e in alone.events] == ["gov.executed", "gov.voted"]


def test_a_vote_counts_only_while_its_voter_votes(world):
    chain, members, observer = world
    bank2, bank3, bank4 = members[1:]
    open_id = propose(chain, bank4, "scorecard.set", "base", "310").tx_id.hex()
    assert gov_voted(vote(chain, bank3, open_id))["votes"] == 2
    vote_through(chain, members[0], [bank2, bank3], ACTION, observer.did, "voter")
    vote_through(chain, members[0], [bank2, bank3], ACTION, bank4.did, "observer")
    advance_to(chain, voting_changes(chain.state)["bank4"][0][0])
    # Voters now bank1, bank2, bank3 and the regulator: quorum 3. bank4's vote no longer counts.
    third = vote(chain, bank2, open_id)
    assert gov_voted(third) | {"proposal_id": None} == {
        "event": "gov.voted",
        "proposal_id": None,
        "voter": bank2.did,
        "votes": 2,
        "needed": 3,
    }
    assert queries.lookup(chain.state, "proposal", open_id)["status"] == "open"
    listed = queries.lookup(chain.state, "proposal", "open")
    shown = next(p for p in listed["proposals"] if p["proposal_id"] == open_id)
    assert shown["counted_votes"] == [bank3.did, bank2.did] and len(shown["votes"]) == 3
    assert listed["needed"] == 3
    executed = vote(chain, observer, open_id)
    assert [e["event"] for e in executed.events] == ["gov.executed", "gov.voted"]
    assert queries.lookup(chain.state, "proposal", open_id)["votes"] == [
        bank4.did,
        bank3.did,
        bank2.did,
        observer.did,
    ]


@pytest.mark.parametrize(
    ("target", "value", "needle"),
    [
        ("stranger", "voter", "field 'key' names no consortium member"),
        ("regulator", "voters", "field 'value' must be 'voter' or 'observer', got 'voters'"),
        ("regulator", "observer", "regulator is already an observer"),
        ("bank1", "voter", "bank1 is already a voter"),
    ],
)
def test_changes_that_could_not_apply_are_refused_when_proposed(world, target, value, needle):
    chain, members, observer = world
    did = {"stranger": seeded_key(9).did, "regulator": observer.did, "bank1": members[0].did}[target]
    result = propose(chain, members[0], ACTION, did, value)
    assert result.code == "bad_payload" and result.message.startswith(f"gov.propose {ACTION} ")
    assert needle in result.message, result.message
    assert read_value(chain.state, VOTING_CHANGES_KEY) is None


def test_one_pending_change_per_member(world):
    chain, members, observer = world
    vote_through(chain, members[0], members[1:3], ACTION, observer.did, "voter")
    effective = voting_changes(chain.state)["regulator"][0][0]
    again = propose(chain, members[0], ACTION, observer.did, "voter")
    assert again.code == "bad_payload"
    assert f"regulator is already a voter from height {effective}" in again.message
    back = propose(chain, members[0], ACTION, observer.did, "observer")
    assert back.code == "bad_payload"
    assert f"regulator already has a change scheduled from height {effective}" in back.message
    advance_to(chain, effective)
    # Once in force, the member may change again.
    vote_through(chain, members[0], members[1:3], ACTION, observer.did, "observer")
    assert [voting for _, voting in voting_changes(chain.state)["regulator"]] == [True, False]


def test_a_change_that_would_leave_no_voter_is_refused():
    # Two voters: quorum(2) = 1, so each proposal executes as it is proposed.
    chain, members, _ = rules2_world(roles=[("lender",), ("lender",)])
    executed = propose(chain, members[0], ACTION, members[1].did, "observer")
    assert executed.ok and any(e["event"] == ACTION for e in executed.events)
    # bank2's demotion is not yet effective, but counts: bank1 is the last voter after it.
    last = propose(chain, members[0], ACTION, members[0].did, "observer")
    assert last.code == "bad_payload"
    assert "would leave no voting member once bank1 is an observer" in last.message


def test_a_delay_below_the_minimum_refuses_the_change():
    genesis, members, observer = genesis_with_observer(delay=1)
    chain = Chain.start(genesis)
    upgrade_to_rules_2(chain, members)
    result = propose(chain, members[0], ACTION, observer.did, "voter")
    assert result.code == "bad_payload" and "key_rotation_delay_blocks >= 2" in result.message


def test_the_vote_that_would_execute_a_change_made_moot_meanwhile_is_refused(world):
    chain, members, observer = world
    first = propose(chain, members[0], ACTION, observer.did, "voter").tx_id.hex()
    second = propose(chain, members[1], ACTION, observer.did, "voter").tx_id.hex()  # both open
    vote(chain, members[1], first)
    assert vote(chain, members[2], first).ok
    vote(chain, members[0], second)
    moot = vote(chain, members[2], second)
    assert moot.code == "duplicate", moot.message
    assert "regulator is already a voter from height" in moot.message and "propose it again" in moot.message
    assert len(voting_changes(chain.state)["regulator"]) == 1
    assert queries.lookup(chain.state, "proposal", second)["status"] == "open"


def test_the_vote_that_would_execute_a_change_emptying_the_voters_is_refused(world):
    chain, members, _ = world
    # Four open demotions, each fine alone; the fourth to execute would leave nobody voting.
    # Votes in one block: no demotion takes effect before the last one executes.
    proposals = [
        chain.tx(members[0], "gov.propose", {"action": ACTION, "key": m.did, "value": "observer"})
        for m in members
    ]
    assert all(result.ok for result in chain.run(*proposals))
    votes = [
        chain.tx(voter, "gov.vote", {"proposal_id": proposal.id.hex()})
        for proposal in proposals
        for voter in members[1:3]
    ]
    results = chain.run(*votes)
    assert [result.code for result in results] == ["ok"] * 7 + ["invalid_state"]
    emptied = results[-1]
    assert "would leave no voting member once bank4 is an observer" in emptied.message
    assert sorted(voting_changes(chain.state)) == ["bank1", "bank2", "bank3"]


def test_a_chain_that_changes_no_voter_has_no_voting_changes_key(world):
    """The key is absent until a change executes, so state roots of such chains are as before."""
    chain, members, _ = world
    vote_through(chain, members[0], members[1:3], "scorecard.set", "base", "320")
    assert read_value(chain.state, VOTING_CHANGES_KEY) is None
    assert all(VOTING_CHANGES_KEY not in execution.changes for _, execution in chain.blocks)
    assert voting_dids_at(chain.state, chain.height + 100) == [m.did for m in members]


def test_a_genesis_can_start_the_chain_on_rules_2_without_a_vote():
    genesis, members, observer = genesis_with_observer()
    newest = replace(genesis, app={**genesis.app, "rules_version": 2})
    chain = Chain.start(newest)
    assert read_value(chain.state, RULES_KEY) == [[1, 2]]
    assert rules_status(chain.state, 0)["scheduled"] == [{"height": 1, "version": 2}]
    executed = vote_through(chain, members[0], members[1:3], ACTION, observer.did, "voter")
    assert executed.ok and voting_changes(chain.state) == {"regulator": [[chain.height + DELAY, True]]}
    assert rules_status(chain.state, chain.height)["version"] == 2
    # The next version is 3: a rules.upgrade to 2 is refused as not the next one.
    again = propose(chain, members[0], "rules.upgrade", "2", str(chain.height + 50))
    assert again.code == "bad_payload" and "3" in again.message
    # A genesis without it is the rules-1 chain it always was (same state root as before).
    assert Chain.start(genesis).state.get(RULES_KEY) is None
