"""Admitting an institution the genesis does not name (``member.admit``, rules 3; see ``ledger.admission``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.crypto import did_from_public_key
from lendchain.ledger import queries
from lendchain.ledger.admission import ADMISSION_TAG, admission_value, admitted_members, proof_body
from lendchain.ledger.governance import quorum
from lendchain.ledger.keyrotation import ROTATION_TAG
from lendchain.ledger.keyrotation import proof_body as rotation_body
from lendchain.ledger.membership import voting_changes, voting_dids_at
from lendchain.ledger.state import ADMITTED_KEY, read_value
from lendchain.node.keyschedule import key_schedule
from tests.ledger.chain import CHAIN_ID, Chain, make_genesis, seeded_key
from tests.ledger.test_membership import DELAY, advance_to, gov_voted, propose, vote, vote_through

ACTION = "member.admit"
ADDRESS = "/ip4/127.0.0.1/tcp/47105"


def request(key, name="bank5", address=ADDRESS, roles=("lender",), chain_id=CHAIN_ID, signer=None):
    """The value a joining bank hands the members: its key, the proof, roles and address."""
    body = proof_body(name, key.public_key, address, sorted(roles))
    proof = (signer or key).sign(ADMISSION_TAG, chain_id, body)
    return admission_value(key.public_key, proof, sorted(roles), address)


def rules_world(version=3):
    genesis, members = make_genesis()
    genesis = replace(genesis, app={"key_rotation_delay_blocks": DELAY, "rules_version": version})
    return Chain.start(genesis), members


@pytest.fixture
def world():
    return rules_world()


def test_an_admitted_member_is_a_member_at_once_and_votes_only_once_promoted(world):
    chain, members = world
    joiner = seeded_key(91)
    joiner_did = did_from_public_key(joiner.public_key)
    executed = vote_through(chain, members[0], members[1:3], ACTION, "bank5", request(joiner))
    admitted_at = chain.height
    assert {
        "event": "member.admitted",
        "member": "bank5",
        "did": joiner_did,
        "public_key": joiner.public_key.hex(),
        "roles": ["lender"],
        "address": ADDRESS,
        "proof": next(e for e in executed.events if e["event"] == "member.admitted")["proof"],
    } in executed.events
    assert read_value(chain.state, ADMITTED_KEY) == [joiner_did]
    [member] = admitted_members(chain.state)
    assert (member.name, member.public_key, member.address, member.roles, member.voting) == (
        "bank5",
        joiner.public_key,
        ADDRESS,
        ("lender",),
        False,
    )
    party = queries.lookup(chain.state, "party", joiner_did)
    assert party["kind"] == "member" and party["name"] == "bank5"
    assert party["admitted_height"] == admitted_at and party["address"] == ADDRESS
    # It does not vote: the voters and the quorum stay the genesis's.
    genesis_voters = [m.did for m in members]
    assert voting_dids_at(chain.state, chain.height + 100) == genesis_voters
    refused = propose(chain, joiner, "scorecard.set", "base", "310")
    assert refused.code == "forbidden" and joiner_did in refused.message
    # The node's key schedule knows it, last in member order, not voting.
    schedule = key_schedule(chain.genesis, chain.state, chain.height)
    assert schedule.names == ["bank1", "bank2", "bank3", "bank4", "bank5"]
    assert schedule.key_of("bank5", chain.height) == joiner.public_key
    assert not schedule.is_voter("bank5", chain.height + DELAY)

    # Promoted like any member: it votes from the change's effective height, after the genesis voters.
    vote_through(chain, members[0], members[1:3], "member.voting", joiner_did, "voter")
    effective = voting_changes(chain.state)["bank5"][0][0]
    assert voting_dids_at(chain.state, effective) == [*genesis_voters, joiner_did]
    schedule = key_schedule(chain.genesis, chain.state, chain.height)
    assert schedule.voters_at(effective) == ["bank1", "bank2", "bank3", "bank4", "bank5"]
    advance_to(chain, effective)
    proposed = propose(chain, joiner, "scorecard.set", "base", "320")
    assert proposed.ok, proposed.message
    assert gov_voted(proposed)["needed"] == quorum(5) == 3


def test_an_admitted_member_can_rotate_its_key(world):
    chain, members = world
    joiner = seeded_key(91)
    vote_through(chain, members[0], members[1:3], ACTION, "bank5", request(joiner))
    new_key = seeded_key(92)
    proof = new_key.sign(ROTATION_TAG, CHAIN_ID, rotation_body("bank5", new_key.public_key))
    joiner_did = did_from_public_key(joiner.public_key)
    value = f"{new_key.public_key.hex()}:{proof.hex()}"
    vote_through(chain, members[0], members[1:3], "member.rotate_key", joiner_did, value)
    schedule = key_schedule(chain.genesis, chain.state, chain.height)
    assert schedule.keys_of("bank5") == [joiner.public_key, new_key.public_key]


@pytest.mark.parametrize(
    ("name", "value_of", "message"),
    [
        ("bank1", lambda k: request(k, name="bank1"), "name 'bank1' is already a member's"),
        ("bank 5", lambda k: request(k, name="bank 5"), "field 'key' must be the new member's name"),
        ("bank5", lambda k: request(k, name="bank6"), "proof is not the new key's signature"),
        ("bank5", lambda k: request(k, chain_id="other-chain"), "proof is not the new key's signature"),
        ("bank5", lambda k: request(k, signer=seeded_key(5)), "proof is not the new key's signature"),
        ("bank5", lambda k: request(k, roles=("banker",)), "unknown role 'banker'"),
        ("bank5", lambda k: request(k, address="/ip4/300.1.1.1/tcp/1"), "invalid IP address '300.1.1.1'"),
        ("bank5", lambda k: request(k, address="/ip4/10.0.0.1/udp/1"), "must be a multiaddr like"),
        ("bank5", lambda k: "00" * 32, "must be '<public key, 64 hex>:<proof, 128 hex>:<roles>:<address>'"),
    ],
)
def test_a_bad_admission_is_refused_when_proposed_with_a_clear_error(world, name, value_of, message):
    chain, members = world
    result = propose(chain, members[0], ACTION, name, value_of(seeded_key(91)))
    assert result.code == "bad_payload"
    assert message in result.message
    assert read_value(chain.state, ADMITTED_KEY) is None


def test_a_key_a_member_holds_or_that_sent_transactions_is_refused(world):
    chain, members = world
    taken = propose(chain, members[0], ACTION, "bank5", request(members[3]))
    assert taken.code == "bad_payload" and "is already bank4's node key" in taken.message
    # A did:key with history of its own (here: a party that sent a tx) cannot become a member.
    party = seeded_key(93)
    chain.onboard(party, members[3])
    used = propose(chain, members[0], ACTION, "bank5", request(party))
    assert used.code == "bad_payload" and "the signer of" in used.message


def test_two_open_admissions_of_one_name_execute_once(world):
    chain, members = world
    first = propose(chain, members[0], ACTION, "bank5", request(seeded_key(91))).tx_id.hex()
    second = propose(chain, members[1], ACTION, "bank5", request(seeded_key(94))).tx_id.hex()
    for voter in members[1:3]:
        assert vote(chain, voter, first).ok
    assert vote(chain, members[2], second).ok  # two votes of three: not yet executing
    refused = vote(chain, members[3], second)
    assert refused.code == "duplicate"
    assert "name 'bank5' is already a member's (not so when it was proposed)" in refused.message
    assert len(read_value(chain.state, ADMITTED_KEY)) == 1


def test_under_rules_2_the_action_is_unknown():
    chain, members = rules_world(version=2)
    payload = {"action": ACTION, "key": "bank5", "value": request(seeded_key(91))}
    early = chain.tx(members[0], "gov.propose", payload)
    block, execution = chain.cut([early])
    assert len(block.txs) == 0
    [dropped] = execution.dropped
    assert dropped.code == "bad_payload" and "field 'action' must be one of" in dropped.message
    assert ACTION not in dropped.message.split("got")[0]
