"""Removing a member (``member.remove``, rules 3; see ``ledger.removal``)."""

from __future__ import annotations

import pytest

from lendchain.crypto import did_from_public_key
from lendchain.ledger import queries
from lendchain.ledger.keyrotation import ROTATION_TAG
from lendchain.ledger.keyrotation import proof_body as rotation_body
from lendchain.ledger.membership import voting_changes, voting_dids_at
from lendchain.ledger.removal import removed_members
from tests.ledger.chain import CHAIN_ID, seeded_key
from tests.ledger.test_admission import request, rules_world
from tests.ledger.test_membership import advance_to, propose, vote, vote_through

ACTION = "member.remove"


@pytest.fixture
def world():
    return rules_world()


def demote(chain, members, member):
    """Make ``member`` an observer, and run until that is in force."""
    vote_through(chain, members[0], members[1:3], "member.voting", member.did, "observer")
    advance_to(chain, voting_changes(chain.state)[name_of(chain, member)][-1][0] + 1)


def name_of(chain, key):
    return queries.lookup(chain.state, "party", key.did)["name"]


def test_a_voting_member_is_demoted_first_then_removed_and_its_keys_sign_nothing_after(world):
    chain, members = world
    bank4 = members[3]
    refused = propose(chain, members[0], ACTION, bank4.did, "leaves the consortium")
    assert refused.code == "bad_payload"
    assert f"bank4 votes: demote it first (member.voting {bank4.did} observer)" in refused.message
    vote_through(chain, members[0], members[1:3], "member.voting", bank4.did, "observer")
    pending = propose(chain, members[0], ACTION, bank4.did, "leaves the consortium")
    assert pending.code == "bad_payload" and "changes who votes from height" in pending.message
    advance_to(chain, voting_changes(chain.state)["bank4"][-1][0] + 1)
    assert bank4.did not in voting_dids_at(chain.state, chain.height + 1)

    borrower = seeded_key(99)
    chain.onboard(borrower, bank4)  # an observer still acts with its roles (bank4 attests KYC)
    # Three voters now, f = 0: the proposal alone is the quorum.
    executed = vote_through(chain, members[0], [], ACTION, bank4.did, "leaves the consortium")
    removed_at = chain.height
    assert {
        "event": "member.removed",
        "member": "bank4",
        "did": bank4.did,
        "reason": "leaves the consortium",
    } in executed.events
    assert removed_members(chain.state) == {"bank4": removed_at}
    party = queries.lookup(chain.state, "party", bank4.did)
    assert (party["removed_height"], party["removal_reason"]) == (removed_at, "leaves the consortium")

    after = chain.run_one(chain.attest(bank4, borrower.did))
    assert after.code == "forbidden"
    assert f"removed from the consortium at height {removed_at}" in after.message


def test_a_removed_members_rotated_key_signs_nothing_either(world):
    chain, members = world
    bank4 = members[3]
    new_key = seeded_key(95)
    proof = new_key.sign(ROTATION_TAG, CHAIN_ID, rotation_body("bank4", new_key.public_key))
    value = f"{new_key.public_key.hex()}:{proof.hex()}"
    vote_through(chain, members[0], members[1:3], "member.rotate_key", bank4.did, value)
    demote(chain, members, bank4)
    vote_through(chain, members[0], [], ACTION, bank4.did, "expelled")
    for key in (bank4, new_key):
        result = chain.run_one(chain.tx(key, "party.register", {"role": "borrower"}))
        assert result.code == "forbidden" and "removed from the consortium" in result.message


def test_an_admitted_member_can_be_removed_and_its_name_stays_taken(world):
    chain, members = world
    joiner = seeded_key(91)
    vote_through(chain, members[0], members[1:3], "member.admit", "bank5", request(joiner))
    joiner_did = did_from_public_key(joiner.public_key)
    vote_through(chain, members[0], members[1:3], ACTION, joiner_did, "never went live")
    assert removed_members(chain.state) == {"bank5": chain.height}
    again = propose(chain, members[0], "member.admit", "bank5", request(seeded_key(96)))
    assert again.code == "bad_payload" and "name 'bank5' is already a member's" in again.message


def test_a_removed_member_cannot_be_promoted_rotated_or_removed_again(world):
    chain, members = world
    bank4 = members[3]
    demote(chain, members, bank4)
    vote_through(chain, members[0], [], ACTION, bank4.did, "expelled")
    removed_at = chain.height
    for action, value in (
        ("member.voting", "voter"),
        ("member.remove", "again"),
        ("member.rotate_key", f"{seeded_key(97).public_key.hex()}:{'00' * 64}"),
    ):
        result = propose(chain, members[0], action, bank4.did, value)
        assert result.code == "bad_payload", action
        assert f"bank4 was removed at height {removed_at}" in result.message, action


def test_the_reason_is_required_and_a_stranger_cannot_be_removed(world):
    chain, members = world
    demote(chain, members, members[3])
    empty = propose(chain, members[0], ACTION, members[3].did, "  ")
    assert empty.code == "bad_payload" and "must give the reason" in empty.message
    stranger = propose(chain, members[0], ACTION, seeded_key(98).did, "who?")
    assert stranger.code == "bad_payload" and "names no consortium member" in stranger.message


def test_under_rules_2_the_action_is_unknown():
    chain, members = rules_world(version=2)
    tx = chain.tx(members[0], "gov.propose", {"action": ACTION, "key": members[3].did, "value": "x"})
    _, execution = chain.cut([tx])
    assert execution.dropped[0].code == "bad_payload"
    assert "field 'action' must be one of" in execution.dropped[0].message


def test_the_members_view_shows_how_each_joined_votes_moved_and_left(world):
    chain, members = world
    joiner = seeded_key(91)
    vote_through(chain, members[0], members[1:3], "member.admit", "bank5", request(joiner))
    admitted_at = chain.height
    vote_through(chain, members[0], members[1:3], "member.address", members[1].did, "/dns4/b2.example/tcp/1")
    demote(chain, members, members[3])
    vote_through(chain, members[0], [], ACTION, members[3].did, "expelled")
    view = queries.lookup(chain.state, "members", "*")["members"]
    assert [m["name"] for m in view] == ["bank1", "bank2", "bank3", "bank4", "bank5"]
    bank1, bank2, _, bank4, bank5 = view
    assert bank1 == {
        "name": "bank1",
        "did": members[0].did,
        "roles": ["lender"],
        "voting": True,
        "voting_since": 0,
        "joined": "genesis",
    }
    assert bank2["address"] == "/dns4/b2.example/tcp/1"
    assert (bank4["voting"], bank4["removed_height"], bank4["removal_reason"]) == (
        False,
        chain.height,
        "expelled",
    )
    assert bank4["voting_since"] > 0  # its demotion
    assert bank5 | {"did": None} == {
        "name": "bank5",
        "did": None,
        "roles": ["lender"],
        "voting": False,
        "voting_since": 0,
        "joined": "admitted",
        "admitted_height": admitted_at,
        "address": "/ip4/127.0.0.1/tcp/47105",
    }
    # Asked for alone: its loans too
    alone = {**bank5, "open_loans_serviced": 0, "transfers_pending_to": 0, "written_off_recovering": 0}
    assert queries.lookup(chain.state, "members", "bank5")["members"] == [alone]
    assert queries.lookup(chain.state, "members", "nobody") is None


def test_a_promotion_or_rotation_voted_through_after_the_removal_is_refused(world):
    chain, members = world
    bank4 = members[3]
    demote(chain, members, bank4)  # three voters now: quorum(3) = 1, so each proposal needs no vote
    # Open proposals need a quorum again once bank5 is admitted and promoted: four voters, quorum 3.
    joiner = seeded_key(91)
    vote_through(chain, members[0], [], "member.admit", "bank5", request(joiner))
    vote_through(chain, members[0], [], "member.voting", did_from_public_key(joiner.public_key), "voter")
    advance_to(chain, voting_changes(chain.state)["bank5"][-1][0] + 1)
    promote = propose(chain, members[0], "member.voting", bank4.did, "voter").tx_id.hex()
    new_key = seeded_key(97)
    proof = new_key.sign(ROTATION_TAG, CHAIN_ID, rotation_body("bank4", new_key.public_key))
    rotate = propose(
        chain, members[0], "member.rotate_key", bank4.did, f"{new_key.public_key.hex()}:{proof.hex()}"
    )
    vote_through(chain, members[0], members[1:3], ACTION, bank4.did, "expelled")
    removed_at = chain.height
    for proposal_id in (promote, rotate.tx_id.hex()):
        assert vote(chain, members[1], proposal_id).ok  # two of three: still open
        refused = vote(chain, members[2], proposal_id)  # the deciding vote
        assert refused.code == "invalid_state"
        assert f"bank4 was removed at height {removed_at}" in refused.message
    assert [voting for _, voting in voting_changes(chain.state)["bank4"]] == [False]  # its demotion only
