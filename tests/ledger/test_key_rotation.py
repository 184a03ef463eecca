"""Node key rotation through governance (``member.rotate_key``, see ``lendchain.ledger.keyrotation``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.ledger import queries
from lendchain.ledger.block import Block, check_block
from lendchain.ledger.keyrotation import (
    NODE_KEYS_KEY,
    ROTATION_TAG,
    proof_body,
    rotation_value,
    scheduled_rotations,
)
from lendchain.ledger.params import PARAMS
from lendchain.ledger.state import institution_key, party_key, read_value
from tests.ledger.chain import CHAIN_ID, Chain, make_genesis, seeded_key

ACTION = "member.rotate_key"


@pytest.fixture
def world():
    genesis, members = make_genesis()
    return Chain.start(genesis), members


def proof(new_key, name="bank2", chain_id=CHAIN_ID):
    return new_key.sign(ROTATION_TAG, chain_id, proof_body(name, new_key.public_key))


def propose(chain, proposer, target_did, value):
    payload = {"action": ACTION, "key": target_did, "value": value}
    return chain.run_one(chain.tx(proposer, "gov.propose", payload))


def vote(chain, voter, proposal_id):
    return chain.run_one(chain.tx(voter, "gov.vote", {"proposal_id": proposal_id}))


def rotate_bank2(chain, members, new_key):
    """bank1 proposes bank2's rotation to ``new_key``; bank2 and bank3 vote it through."""
    proposal_id = propose(
        chain, members[0], members[1].did, rotation_value(new_key.public_key, proof(new_key))
    ).tx_id.hex()
    vote(chain, members[1], proposal_id)
    vote(chain, members[2], proposal_id)


def test_rotation_is_scheduled_at_execution_height_plus_delay(world):
    chain, members = world
    new_key = seeded_key(42)
    proposed = propose(chain, members[0], members[1].did, rotation_value(new_key.public_key, proof(new_key)))
    assert proposed.ok, proposed.message
    proposal_id = proposed.tx_id.hex()
    assert vote(chain, members[1], proposal_id).ok
    assert read_value(chain.state, NODE_KEYS_KEY) is None  # 2 of 3 votes: nothing scheduled
    executed = vote(chain, members[2], proposal_id)
    assert executed.ok
    effective = chain.height + PARAMS["key_rotation_delay_blocks"].default
    assert scheduled_rotations(chain.state) == {"bank2": [[effective, new_key.public_key]]}
    rotation = next(e for e in executed.events if e["event"] == "member.key_rotation")
    assert rotation["member"] == "bank2" and rotation["effective_height"] == effective
    assert rotation["proof"] == proof(new_key).hex()
    view = queries.lookup(chain.state, "node_keys", "bank2")["members"][0]
    assert view["genesis_key"] == members[1].public_key.hex()
    assert view["rotations"] == [
        {"effective_height": effective, "public_key": new_key.public_key.hex(), "did": new_key.did}
    ]
    assert len(queries.lookup(chain.state, "node_keys", "*")["members"]) == 4
    assert queries.lookup(chain.state, "node_keys", "nobody") is None


def test_delay_is_a_chain_parameter():
    genesis, members = make_genesis()
    chain = Chain.start(replace(genesis, app={"key_rotation_delay_blocks": 7}))
    new_key = seeded_key(42)
    rotate_bank2(chain, members, new_key)
    assert scheduled_rotations(chain.state)["bank2"] == [[chain.height + 7, new_key.public_key]]


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("other member's name", "proof is not"),
        ("other chain", "proof is not"),
        ("signed by old key", "proof is not"),
        ("genesis key of another member", "already bank3"),
        ("malformed", "must be"),
        ("not a member", "no consortium member"),
    ],
)
def test_bad_rotation_is_refused_when_proposed(world, case, needle):
    chain, members = world
    new_key = seeded_key(42)
    target = members[1].did
    value = rotation_value(new_key.public_key, proof(new_key))
    if case == "other member's name":
        value = rotation_value(new_key.public_key, proof(new_key, name="bank3"))
    elif case == "other chain":
        value = rotation_value(new_key.public_key, proof(new_key, chain_id="another-chain"))
    elif case == "signed by old key":
        signature = members[1].sign(ROTATION_TAG, CHAIN_ID, proof_body("bank2", new_key.public_key))
        value = rotation_value(new_key.public_key, signature)
    elif case == "genesis key of another member":
        value = rotation_value(members[2].public_key, proof(members[2]))
    elif case == "malformed":
        value = new_key.public_key.hex()
    elif case == "not a member":
        target = seeded_key(9).did
    result = propose(chain, members[0], target, value)
    assert result.code == "bad_payload" and needle in result.message, result.message
    assert read_value(chain.state, NODE_KEYS_KEY) is None


def test_a_scheduled_key_is_never_reused(world):
    chain, members = world
    new_key = seeded_key(42)
    value = rotation_value(new_key.public_key, proof(new_key))
    first = propose(chain, members[0], members[1].did, value).tx_id.hex()
    second = propose(chain, members[2], members[1].did, value).tx_id.hex()  # both open: both pass
    vote(chain, members[1], first)
    assert vote(chain, members[2], first).ok
    vote(chain, members[0], second)
    conflicting = vote(chain, members[1], second)
    assert conflicting.code == "duplicate" and "bank2" in conflicting.message
    assert len(scheduled_rotations(chain.state)["bank2"]) == 1
    again = propose(chain, members[3], members[1].did, value)
    assert again.code == "bad_payload" and "already bank2" in again.message


def test_rotation_replays_identically(world):
    """Determinism: a peer replaying the blocks reaches the same state root (``Chain.run`` checks)."""
    chain, members = world
    new_key = seeded_key(42)
    rotate_bank2(chain, members, new_key)
    other = Chain.start(chain.genesis)
    for encoded, execution in chain.blocks:
        block = Block.decode(encoded)
        checked, replay = check_block(
            encoded,
            expected_height=other.height + 1,
            parent_hash=other.head_hash,
            parent_timestamp_ms=other.head_ms,
            reader=other.state,
            now_ms=block.header.timestamp_ms,
            max_skew_ms=5000,
            chain_id=CHAIN_ID,
        )
        assert replay.state_root == execution.state_root
        other.apply(checked, replay)
    assert scheduled_rotations(other.state) == scheduled_rotations(chain.state)


def advance_to(chain, height):
    while chain.height < height - 1:
        chain.run()


def roles_proposal(chain, signer, member_did):
    payload = {"action": "member.roles", "key": member_did, "value": "lender,bureau"}
    return chain.run_one(chain.tx(signer, "gov.propose", payload))


def test_the_new_key_signs_for_the_member_from_the_effective_height_and_the_old_one_no_longer(world):
    chain, members = world
    bank2_old, new_key = members[1], seeded_key(42)
    rotate_bank2(chain, members, new_key)
    effective = scheduled_rotations(chain.state)["bank2"][0][0]

    # Before the effective height the old key still acts for bank2, the new one not yet.
    early = roles_proposal(chain, new_key, bank2_old.did)
    assert early.code == "forbidden" and f"from height {effective}" in early.message, early.message
    still = roles_proposal(chain, bank2_old, bank2_old.did)
    assert still.ok, still.message

    advance_to(chain, effective)
    # From the effective height the new key's transactions are bank2's: the proposal it
    # signs counts as bank2's vote, under bank2's genesis DID (the identity did not move).
    proposed = roles_proposal(chain, new_key, bank2_old.did)
    assert chain.height == effective
    assert proposed.ok, proposed.message
    voted = next(e for e in proposed.events if e["event"] == "gov.voted")
    assert voted["voter"] == bank2_old.did
    assert read_value(chain.state, institution_key(new_key.did)) is None
    assert queries.lookup(chain.state, "party", new_key.did) == {
        "did": new_key.did,
        "kind": "member_key",
        "member": "bank2",
        "member_did": bank2_old.did,
        "signs_from_height": effective,
        "signs_until_height": None,
        "nonce": 2,
    }
    # ... and the old key, whoever holds it now, no longer acts for bank2.
    stale = vote(chain, bank2_old, proposed.tx_id.hex())
    assert stale.code == "forbidden" and "replaced key" in stale.message, stale.message
    assert f"from height {effective}" in stale.message
    # bank2 voted once, through its new key; the vote counted is the genesis DID's.
    again = vote(chain, new_key, proposed.tx_id.hex())
    assert again.code == "duplicate" and bank2_old.did in again.message
    # A member's signer is never a party of its own.
    party = chain.run_one(chain.tx(new_key, "party.register", {"role": "borrower"}))
    assert party.code == "forbidden" and "consortium member" in party.message
    assert read_value(chain.state, party_key(new_key.did)) is None


def test_a_second_rotation_retires_the_first_new_key(world):
    chain, members = world
    first, second = seeded_key(42), seeded_key(43)
    rotate_bank2(chain, members, first)
    advance_to(chain, scheduled_rotations(chain.state)["bank2"][0][0])
    value = rotation_value(second.public_key, proof(second))
    payload = {"action": ACTION, "key": members[1].did, "value": value}
    proposal = chain.run_one(chain.tx(first, "gov.propose", payload))
    assert proposal.ok, proposal.message  # proposed by bank2 through its current key
    assert vote(chain, members[0], proposal.tx_id.hex()).ok
    assert vote(chain, members[2], proposal.tx_id.hex()).ok
    second_at = scheduled_rotations(chain.state)["bank2"][1][0]
    advance_to(chain, second_at)
    retired = roles_proposal(chain, first, members[1].did)
    assert retired.code == "forbidden" and f"from height {second_at}" in retired.message, retired.message
    current = roles_proposal(chain, second, members[1].did)
    assert current.ok, current.message
    assert next(e for e in current.events if e["event"] == "gov.voted")["voter"] == members[1].did


def test_a_key_whose_did_has_transacted_cannot_become_a_member_key(world):
    chain, members = world
    used = seeded_key(42)
    chain.run_one(chain.tx(used, "party.register", {"role": "borrower"}))
    refused = propose(chain, members[0], members[1].did, rotation_value(used.public_key, proof(used)))
    assert refused.code == "bad_payload" and f"signer of {used.did}'s own transactions" in refused.message
