"""Rules versions scheduled through governance (``rules.upgrade``, see ``lendchain.ledger.rules``)."""

from __future__ import annotations

import pytest

from lendchain.ledger import kinds, rules
from lendchain.ledger.errors import InvalidBlock
from lendchain.ledger.kinds import TxKind
from lendchain.ledger.rules import (
    MIN_NOTICE_BLOCKS,
    UpgradeRequired,
    rules_at,
    rules_status,
    scheduled_upgrades,
)
from lendchain.ledger.schema import Schema
from tests.ledger.chain import Chain, make_genesis


@pytest.fixture
def world():
    genesis, members = make_genesis()
    return Chain.start(genesis), members


def propose(chain, proposer, version, height):
    payload = {"action": "rules.upgrade", "key": str(version), "value": str(height)}
    return chain.run_one(chain.tx(proposer, "gov.propose", payload))


def vote(chain, voter, proposal_id):
    return chain.run_one(chain.tx(voter, "gov.vote", {"proposal_id": proposal_id}))


def schedule(chain, members, version, height):
    """bank1 proposes the upgrade; bank2 and bank3 vote it through. Returns the executing result."""
    proposed = propose(chain, members[0], version, height)
    assert proposed.ok, proposed.message
    vote(chain, members[1], proposed.tx_id.hex())
    return vote(chain, members[2], proposed.tx_id.hex())


def test_an_upgrade_voted_through_is_scheduled_at_its_height(world):
    chain, members = world
    activation = chain.height + 50
    proposed = propose(chain, members[0], 2, activation)
    assert proposed.ok, proposed.message
    assert vote(chain, members[1], proposed.tx_id.hex()).ok
    assert scheduled_upgrades(chain.state) == []  # 2 of 3 votes
    executed = vote(chain, members[2], proposed.tx_id.hex())
    assert executed.ok, executed.message
    assert scheduled_upgrades(chain.state) == [[activation, 2]]
    event = next(e for e in executed.events if e["event"] == "rules.upgrade_scheduled")
    assert event == {"event": "rules.upgrade_scheduled", "version": 2, "height": activation}
    schedule_now = scheduled_upgrades(chain.state)
    assert rules_at(schedule_now, activation - 1) == (1, 0)
    assert rules_at(schedule_now, activation) == (2, activation)
    status = rules_status(chain.state, chain.height)
    assert status == {
        "version": 1,
        "software_version": rules.RULES_VERSION,
        "scheduled": [{"height": activation, "version": 2}],
        "upgrade_needed_at": None,  # this release executes rules 2
    }
    with pytest.MonkeyPatch.context() as older:
        older.setattr(rules, "RULES_VERSION", 1)  # the release before rules 2 must be replaced by then
        assert rules_status(chain.state, chain.height)["upgrade_needed_at"] == activation


@pytest.mark.parametrize(
    ("version", "offset", "names"),
    [
        ("3", 50, "the next rules version is 2"),
        ("1", 50, "the next rules version is 2"),
        ("02", 50, "a positive integer"),
        ("two", 50, "a positive integer"),
        ("2", MIN_NOTICE_BLOCKS - 1, "blocks' notice"),
        ("2", None, "a positive integer"),
    ],
)
def test_upgrades_that_could_not_apply_are_refused(world, version, offset, names):
    chain, members = world
    # The proposing block is chain.height + 1: the offset counts from there.
    height = "-5" if offset is None else str(chain.height + 1 + offset)
    payload = {"action": "rules.upgrade", "key": version, "value": height}
    result = chain.run_one(chain.tx(members[0], "gov.propose", payload))
    assert result.code == "bad_payload" and names in result.message, result.message
    assert scheduled_upgrades(chain.state) == []


def test_a_pending_upgrade_can_be_moved_but_not_one_in_force(world):
    chain, members = world
    assert schedule(chain, members, 2, chain.height + 30).ok
    later = chain.height + 60
    assert schedule(chain, members, 2, later).ok  # moved: still version 2, once
    assert scheduled_upgrades(chain.state) == [[later, 2]]
    assert propose(chain, members[0], 4, later + 10).code == "bad_payload"
    before = propose(chain, members[0], 3, later - 5)
    assert before.code == "bad_payload" and "must start after version 2 (height" in before.message

    while chain.height < later:
        chain.run()  # version 2 is in force from here
    moved = propose(chain, members[0], 2, chain.height + 40)
    assert moved.code == "bad_payload" and "the next rules version is 3" in moved.message
    assert schedule(chain, members, 3, chain.height + 40).ok
    assert [v for _, v in scheduled_upgrades(chain.state)] == [2, 3]


def test_the_vote_that_would_execute_an_upgrade_too_late_is_refused(world):
    chain, members = world
    proposed = propose(chain, members[0], 2, chain.height + 1 + MIN_NOTICE_BLOCKS)
    assert proposed.ok, proposed.message
    assert vote(chain, members[1], proposed.tx_id.hex()).ok
    chain.run()  # one block later the activation height is too close
    late = vote(chain, members[2], proposed.tx_id.hex())
    assert late.code == "invalid_state" and "propose it again" in late.message, late.message
    assert scheduled_upgrades(chain.state) == []


def test_a_block_at_the_activation_height_stops_software_that_is_too_old(world, monkeypatch):
    chain, members = world
    monkeypatch.setattr(rules, "RULES_VERSION", 1)  # a release from before rules 2
    activation = chain.height + 3 + MIN_NOTICE_BLOCKS
    assert schedule(chain, members, 2, activation).ok
    while chain.height < activation - 1:
        chain.run()  # rules 1 up to the block before
    with pytest.raises(UpgradeRequired) as raised:
        chain.cut([])
    assert raised.value.version == 2 and raised.value.height == activation
    assert f"from height {activation}" in str(raised.value) and "supports rules 2" in str(raised.value)
    # A peer proposing it (with a release that knows rules 2) does not make this one vote blind.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rules, "RULES_VERSION", 2)
        block, _ = chain.cut([])
    with pytest.raises(UpgradeRequired):
        chain.check_next(block.encode())


def test_a_kind_added_by_a_rules_version_exists_from_its_activation_height(world, monkeypatch):
    chain, members = world
    seen_rules = []

    def handler(ctx, tx):
        seen_rules.append(ctx.rules)
        ctx.emit("test.ran", rules=ctx.rules)

    monkeypatch.setitem(kinds._KINDS, "test.v2", TxKind("test.v2", Schema(()), handler, since=2))
    activation = chain.height + 3 + MIN_NOTICE_BLOCKS
    assert schedule(chain, members, 2, activation).ok

    early = chain.tx(members[3], "test.v2", {})
    block, execution = chain.cut([early])
    assert len(block.txs) == 0 and [(d.code, d.tx_id) for d in execution.dropped] == [
        ("unknown_kind", early.id)
    ]
    assert "exists from rules version 2" in execution.dropped[0].message
    # A block that includes it anyway is invalid under rules 1.
    monkeypatch.setitem(kinds._KINDS, "test.v2", TxKind("test.v2", Schema(()), handler, since=1))
    forced, _ = chain.cut([early])
    monkeypatch.setitem(kinds._KINDS, "test.v2", TxKind("test.v2", Schema(()), handler, since=2))
    with pytest.raises(InvalidBlock, match="exists from rules version 2"):
        chain.check_next(forced.encode())
    assert seen_rules == [1]  # only the forced cut ran it

    while chain.height < activation - 1:
        chain.run()
    result = chain.run_one(early)  # same tx, same nonce: never included before
    assert result.ok and result.events[0] == {"event": "test.ran", "rules": 2}


def test_a_scheduled_version_can_be_cancelled_before_it_starts_and_the_chain_goes_on_under_the_old(world):
    chain, members = world
    activation = chain.height + 3 + MIN_NOTICE_BLOCKS
    assert schedule(chain, members, 2, activation).ok
    nothing = propose(chain, members[0], 3, "cancel")
    assert (
        nothing.code == "bad_payload"
        and f"cancelled (version 2, from height {activation})" in nothing.message
    )
    cancelled = schedule(chain, members, 2, "cancel")
    assert cancelled.ok, cancelled.message
    assert {"event": "rules.upgrade_cancelled", "version": 2} in cancelled.events
    assert scheduled_upgrades(chain.state) == []
    while chain.height < activation + 1:
        chain.run()  # this release (rules 1) executes the blocks past the old activation height
    none_left = propose(chain, members[0], 2, "cancel")
    assert none_left.code == "bad_payload" and "none is now" in none_left.message
    # Version 2 is the next one again, and once in force it cannot be taken back.
    later = chain.height + 3 + MIN_NOTICE_BLOCKS
    assert schedule(chain, members, 2, later).ok
    while chain.height < later:
        chain.run()
    too_late = propose(chain, members[0], 2, "cancel")
    assert too_late.code == "bad_payload" and "none is now" in too_late.message
