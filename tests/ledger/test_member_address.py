"""A member's node moves (``member.address``, rules 3; see ``ledger.addresses``)."""

from __future__ import annotations

import pytest

from lendchain.crypto import did_from_public_key
from lendchain.ledger import queries
from lendchain.ledger.addresses import current_addresses
from lendchain.ledger.admission import admitted_members
from tests.ledger.chain import seeded_key
from tests.ledger.test_admission import ADDRESS, request, rules_world
from tests.ledger.test_membership import propose, vote_through
from tests.ledger.test_removal import demote

ACTION = "member.address"
MOVED = "/dns4/node2.bank4.example/tcp/47101"


@pytest.fixture
def world():
    return rules_world()


def test_a_moved_node_is_recorded_and_an_admitted_members_address_follows(world):
    chain, members = world
    executed = vote_through(chain, members[0], members[1:3], ACTION, members[3].did, MOVED)
    assert current_addresses(chain.state) == {"bank4": MOVED}
    assert queries.lookup(chain.state, "party", members[3].did)["address"] == MOVED
    assert "address" not in queries.lookup(chain.state, "party", members[2].did)  # in the genesis only
    assert {"event": ACTION, "member": "bank4", "did": members[3].did, "address": MOVED} in executed.events
    again = propose(chain, members[0], ACTION, members[3].did, MOVED)
    assert again.code == "bad_payload" and f"{MOVED} is bank4's address already" in again.message

    joiner = seeded_key(91)
    vote_through(chain, members[0], members[1:3], "member.admit", "bank5", request(joiner))
    joiner_did = did_from_public_key(joiner.public_key)
    same = propose(chain, members[0], ACTION, joiner_did, ADDRESS)
    assert same.code == "bad_payload" and "is bank5's address already" in same.message
    vote_through(chain, members[0], members[1:3], ACTION, joiner_did, "/ip4/10.1.2.3/tcp/47105")
    [bank5] = admitted_members(chain.state)
    assert bank5.address == "/ip4/10.1.2.3/tcp/47105"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.1:47101", "field 'value' must be a multiaddr like"),
        ("/ip4/10.0.0.300/tcp/1", "field 'value' has an invalid IP address"),
        ("/ip4/10.0.0.1/tcp/0", "field 'value' has an invalid TCP port"),
    ],
)
def test_a_bad_address_is_refused(world, value, message):
    chain, members = world
    result = propose(chain, members[0], ACTION, members[3].did, value)
    assert result.code == "bad_payload" and message in result.message
    assert current_addresses(chain.state) == {}


def test_a_removed_or_unknown_member_has_no_address_to_move(world):
    chain, members = world
    stranger = propose(chain, members[0], ACTION, seeded_key(98).did, MOVED)
    assert stranger.code == "bad_payload" and "names no consortium member" in stranger.message
    demote(chain, members, members[3])
    vote_through(chain, members[0], [], "member.remove", members[3].did, "expelled")
    removed = propose(chain, members[0], ACTION, members[3].did, MOVED)
    assert removed.code == "bad_payload" and "bank4 was removed at height" in removed.message


def test_under_rules_2_the_action_is_unknown():
    chain, members = rules_world(version=2)
    tx = chain.tx(members[0], "gov.propose", {"action": ACTION, "key": members[3].did, "value": MOVED})
    _, execution = chain.cut([tx])
    assert execution.dropped[0].code == "bad_payload"
    assert "field 'action' must be one of" in execution.dropped[0].message
