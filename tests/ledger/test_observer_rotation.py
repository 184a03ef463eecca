"""An observer (a non-voting member, a regulator's read-only node) rotates its node key.

Its key signs no consensus message, only its transactions, and is its libp2p
identity: the rotation moves both, and stays out of the consensus key
schedule and the audit's certificate keys.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from lendchain.genesis import Member
from lendchain.ledger import queries
from lendchain.ledger.audit import AuditError, export_loan, verify_export
from lendchain.ledger.keyrotation import (
    ROTATION_TAG,
    member_signers,
    proof_body,
    rotation_value,
    scheduled_rotations,
)
from lendchain.ledger.state import OBSERVERS_KEY, read_value
from lendchain.node.keyschedule import key_schedule, keys_learned, member_keys, unheld_rotation
from tests.ledger.chain import CHAIN_ID, Chain, make_genesis, seeded_key
from tests.ledger.test_domain_audit import CertifiedBlocks, applied_loan, lend_once_rotated

KYC = {"level": 2, "expires_ms": 10**14, "evidence_hash": "ab" * 32}


def observer_world():
    genesis, members = make_genesis()
    observer_key = seeded_key(77)
    observer = Member(
        "regulator", observer_key.public_key, "/ip4/127.0.0.1/tcp/47190", ("kyc",), voting=False
    )
    genesis = replace(genesis, observers=(observer,))
    return Chain.start(genesis), members, observer_key


def rotate(chain, members, target_did, name, new_key):
    proof = new_key.sign(ROTATION_TAG, CHAIN_ID, proof_body(name, new_key.public_key))
    payload = {
        "action": "member.rotate_key",
        "key": target_did,
        "value": rotation_value(new_key.public_key, proof),
    }
    proposed = chain.run_one(chain.tx(members[0], "gov.propose", payload))
    assert proposed.ok, proposed.message
    for voter in members[1:3]:
        assert chain.run_one(chain.tx(voter, "gov.vote", {"proposal_id": proposed.tx_id.hex()})).ok


def attest(chain, signer, subject):
    return chain.run_one(chain.tx(signer, "kyc.attest", {"subject": subject, **KYC}))


def test_an_observers_new_key_signs_for_it_from_the_effective_height():
    chain, members, old = observer_world()
    new = seeded_key(78)
    borrower = seeded_key(5)
    assert chain.run_one(chain.tx(borrower, "party.register", {"role": "borrower"})).ok
    before = queries.lookup(chain.state, "node_keys", "regulator")["members"]
    assert before == [{"name": "regulator", "genesis_key": old.public_key.hex(), "rotations": []}]
    rotate(chain, members, old.did, "regulator", new)
    effective = scheduled_rotations(chain.state)["regulator"][0][0]
    assert read_value(chain.state, OBSERVERS_KEY) == [old.did]

    early = attest(chain, new, borrower.did)
    assert early.code == "forbidden" and f"from height {effective}" in early.message
    assert attest(chain, old, borrower.did).ok
    while chain.height < effective - 1:
        chain.run()
    attested = attest(chain, new, borrower.did)
    assert attested.ok, attested.message
    assert chain.height == effective
    stale = attest(chain, old, borrower.did)
    assert stale.code == "forbidden" and "replaced key" in stale.message
    assert member_signers(chain.state)[new.did].member_did == old.did

    view = queries.lookup(chain.state, "node_keys", "regulator")["members"][0]
    assert view["genesis_key"] == old.public_key.hex()
    assert [r["public_key"] for r in view["rotations"]] == [new.public_key.hex()]
    everyone = queries.lookup(chain.state, "node_keys", "*")["members"]
    assert [m["name"] for m in everyone] == ["bank1", "bank2", "bank3", "bank4", "regulator"]


def test_an_observers_rotation_is_in_the_consensus_keys_as_a_non_voters_and_in_the_allow_list():
    chain, members, old = observer_world()
    new = seeded_key(78)
    rotate(chain, members, chain.genesis.observers[0].did, "regulator", new)
    # The replica learns it (an observer may be promoted to vote later), but it signs nothing now.
    learned = keys_learned(chain.state, chain.height).rotations
    assert [(name, key) for name, _, key in learned] == [("regulator", new.public_key)]
    effective = learned[0][1]
    schedule = key_schedule(chain.genesis, chain.state, chain.height)
    assert schedule.names == ["bank1", "bank2", "bank3", "bank4", "regulator"]
    assert schedule.key_of("regulator", effective) == new.public_key
    assert schedule.voters_at(effective) == ["bank1", "bank2", "bank3", "bank4"]
    assert [name for name, _ in schedule.members_at(effective)] == ["bank1", "bank2", "bank3", "bank4"]
    allowed = member_keys(key_schedule(chain.genesis, chain.state))
    assert allowed["regulator"] == [new.public_key, old.public_key]
    assert allowed["bank1"] == [members[0].public_key]


def test_a_genesis_without_observers_gets_no_observers_key_so_its_state_root_is_unchanged():
    genesis, _ = make_genesis()
    assert read_value(Chain.start(genesis).state, OBSERVERS_KEY) is None


def test_an_audit_export_ties_an_observing_lenders_rotated_key_to_it():
    """A non-voting lender rotates its key and lends with the new one: the export proves whose key
    it is, though no certificate needs it; evidence that names someone else is refused."""
    old, new = seeded_key(77), seeded_key(78)
    platform = Member("platform", old.public_key, "/ip4/127.0.0.1/tcp/47190", ("lender",), voting=False)
    genesis, members, chain, borrower, loan_hex = applied_loan(observers=[platform])
    rotate(chain, members, old.did, "platform", new)
    effective = lend_once_rotated(chain, "platform", new, borrower, loan_hex)

    blocks = CertifiedBlocks(chain, members)  # the voting members' keys never changed
    document = json.loads(json.dumps(export_loan(chain.state, blocks, bytes.fromhex(loan_hex))))
    assert document["format"] == "lendchain/audit/6"
    assert [r["member"] for r in document["key_rotations"]] == ["platform"]
    summary = verify_export(document, genesis)
    assert summary["member_signers"] == {new.did: "platform"}
    assert summary["key_rotations"] == [
        {"member": "platform", "effective_height": effective, "public_key": new.public_key.hex()}
    ]
    # Without the evidence every certificate still checks (an observer signs none), but nothing
    # ties the new key to the platform.
    bare = verify_export({**document, "key_rotations": []}, genesis)
    assert bare["member_signers"] == {} and new.did in bare["signers"]
    for member, refusal in [("bank3", "the rotation's member"), ("stranger", "the rotation's member")]:
        lie = copy.deepcopy(document)
        lie["key_rotations"][0]["member"] = member
        with pytest.raises(AuditError, match=f"key rotation 0: {refusal}"):
            verify_export(lie, genesis)


def test_a_node_learns_when_its_members_next_key_is_one_it_does_not_hold():
    chain, members, old = observer_world()
    assert unheld_rotation(chain.state, "regulator", [old.public_key]) is None  # nothing scheduled
    new = seeded_key(78)
    rotate(chain, members, old.did, "regulator", new)
    effective = scheduled_rotations(chain.state)["regulator"][0][0]
    assert unheld_rotation(chain.state, "regulator", [old.public_key]) == (effective, new.public_key)
    assert unheld_rotation(chain.state, "regulator", [old.public_key, new.public_key]) is None
    assert unheld_rotation(chain.state, "bank1", [members[0].public_key]) is None
