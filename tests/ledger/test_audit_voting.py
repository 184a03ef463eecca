"""Audit exports prove ``member.voting`` changes, so later certificates check from the genesis alone.

After a change takes effect, blocks are certified by the members that vote at
their height (``KeySchedule.members_at``), with a quorum over that set. The
chains here have four genesis voters (bank1..bank4) and an observer
(``regulator``), move to rules 2 and change who votes; their certificates
are signed like a network's would be, by the voters of each height.
"""

from __future__ import annotations

import copy
import json

import pytest

from lendchain import codec
from lendchain.consensus.certificate import CommitCertificate
from lendchain.consensus.quorum import quorum, tag
from lendchain.ledger import merkle
from lendchain.ledger.audit import AuditError, export_loan, verify_export
from lendchain.ledger.block import Block
from lendchain.ledger.keyrotation import scheduled_rotations
from lendchain.ledger.membership import voting_changes
from tests.ledger.chain import CHAIN_ID, Chain, seeded_key
from tests.ledger.test_domain_audit import CertifiedBlocks, applied_loan, cli_verify
from tests.ledger.test_membership import advance_to, genesis_with_observer, upgrade_to_rules_2, vote_through
from tests.ledger.test_observer_rotation import rotate

VOTING = "member.voting"


class VotersBlocks(CertifiedBlocks):
    """Certificates by the members that vote at each height, each signing with its key valid there.

    ``keys``: name -> [(from height, signing key), ...]; ``changes``: (effective height, name,
    votes). A certificate holds the signatures of the LAST quorum of that height's voters, so one
    after a promotion carries the promoted member's, and one after a demotion is too small a
    quorum for the set before it.
    """

    def __init__(self, chain: Chain, keys: dict, changes: list) -> None:
        super().__init__(chain, [])
        self.signing_keys, self.changes = keys, changes

    def voters_at(self, height: int) -> list[str]:
        genesis = self.chain.genesis
        votes = {m.name: True for m in genesis.members} | {m.name: False for m in genesis.observers}
        for effective, name, voting in sorted(self.changes):
            if effective <= height:
                votes[name] = voting
        return [name for name, voting in votes.items() if voting]

    def certificate(self, height: int) -> bytes | None:
        return self.certify(height, Block.decode(self.block_bytes(height)).hash())

    def certify(self, height: int, digest: bytes) -> bytes:
        """A certificate of the block ``digest`` at ``height`` by that height's voters."""
        voters = self.voters_at(height)
        signatures = []
        for name in voters[-quorum(len(voters)) :]:
            key = [key for since, key in self.signing_keys[name] if since <= height][-1]
            signatures.append((name, key.sign(tag("commit"), CHAIN_ID, [0, height, digest])))
        return CommitCertificate(0, height, digest, tuple(signatures)).encode()


def voting_world():
    """A rules-2 chain with the regulator observing, and a loan applied for."""
    genesis, members, regulator = genesis_with_observer()
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    apply = {"amount": 9000, "currency": "EUR", "term_months": 3, "purpose": "a laptop"}
    loan_hex = chain.run_one(chain.tx(borrower, "loan.apply", apply)).tx_id.hex()
    upgrade_to_rules_2(chain, members)
    keys = {f"bank{i + 1}": [(0, key)] for i, key in enumerate(members)} | {"regulator": [(0, regulator)]}
    return chain, members, regulator, borrower, loan_hex, keys


def change_voting(chain, members, member, value: str) -> int:
    """bank1 proposes, bank2 and bank3 vote it through; the effective height."""
    executed = vote_through(chain, members[0], members[1:3], VOTING, member.did, value)
    return next(e for e in executed.events if e["event"] == VOTING)["effective_height"]


def lend(chain, lender, borrower, loan_hex: str) -> None:
    offer = chain.run_one(chain.tx(lender, "loan.offer", {"loan_id": loan_hex, "rate_bps": 700}))
    accept = {"loan_id": loan_hex, "offer_id": offer.tx_id.hex()}
    assert chain.run_one(chain.tx(borrower, "loan.accept", accept)).ok
    assert chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_hex})).ok


@pytest.fixture(scope="module")
def promoted():
    """The regulator is promoted; the loan is offered and disbursed in blocks its vote certifies."""
    chain, members, regulator, borrower, loan_hex, keys = voting_world()
    effective = change_voting(chain, members, regulator, "voter")
    advance_to(chain, effective)
    lend(chain, members[0], borrower, loan_hex)
    blocks = VotersBlocks(chain, keys, [(effective, "regulator", True)])
    document = json.loads(json.dumps(export_loan(chain.state, blocks, bytes.fromhex(loan_hex))))
    return chain.genesis, chain, document, effective


def test_an_export_proves_a_promotion_and_checks_the_blocks_the_larger_set_certified(promoted):
    genesis, chain, document, effective = promoted
    assert document["format"] == "lendchain/audit/6"
    [evidence] = document["voting_changes"]
    assert (evidence["member"], evidence["effective_height"], evidence["voting"]) == (
        "regulator",
        effective,
        True,
    )
    assert evidence["height"] == effective - 5  # the block of the executing vote: effective - the delay
    late = [entry for entry in document["entries"] if entry["height"] >= effective]
    assert len(late) == 3  # offer, accept, disburse: certified by bank2..bank4 and the regulator
    for entry in late:
        certificate = CommitCertificate.decode(bytes.fromhex(entry["certificate"]))
        assert [name for name, _ in certificate.signatures] == ["bank2", "bank3", "bank4", "regulator"]

    summary = verify_export(document, genesis)
    assert summary["voting_changes"] == [
        {"member": "regulator", "effective_height": effective, "voting": True}
    ]
    assert summary["complete_to_height"] == chain.height > effective
    assert summary["key_rotations"] == []


def test_cli_verify_names_the_proven_voting_change(promoted, tmp_path):
    genesis, _, document, effective = promoted
    result = cli_verify(genesis, document, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"; regulator votes from block {effective} (proven)" in result.output


def test_without_the_voting_evidence_later_certificates_are_refused(promoted):
    genesis, _, document, effective = promoted
    first_late = next(n for n, entry in enumerate(document["entries"]) if entry["height"] >= effective)
    with pytest.raises(
        AuditError,
        match=rf"entry {first_late}: block {effective}'s commit certificate does not verify under the "
        r"genesis keys and the admissions, key rotations and voting changes the export proves "
        r"\(commit certificate holds a signature by non-member 'regulator'\)",
    ):
        verify_export({**document, "voting_changes": []}, genesis)
    # Passed off as a format-4 export (which cannot carry voting changes), it fails the same way.
    old = {key: value for key, value in document.items() if key not in ("voting_changes", "admissions")}
    with pytest.raises(AuditError, match="non-member 'regulator'"):
        verify_export({**old, "format": "lendchain/audit/4"}, genesis)
    with pytest.raises(AuditError, match="field 'voting_changes' needs format 'lendchain/audit/5' or later"):
        verify_export({**document, "format": "lendchain/audit/4"}, genesis)


def with_receipt_event(item: dict, **changes) -> None:
    """Rewrite the item's receipt with its member.voting event changed (its proof left as it was)."""
    receipt = codec.unpack(bytes.fromhex(item["receipt"]))
    receipt[3] = [event | changes if event.get("event") == VOTING else event for event in receipt[3]]
    item["receipt"] = codec.pack(receipt).hex()


@pytest.mark.parametrize(
    ("tamper", "names"),
    [
        (
            lambda item: item.update(effective_height=item["effective_height"] + 1),
            "voting change 0: the voting change's effective height or voting is not the one the receipt names",
        ),
        (
            lambda item: item.update(voting=False),
            "voting change 0: the voting change's effective height or voting is not the one the receipt names",
        ),
        (
            lambda item: item.update(member="bank4"),
            "voting change 0: the voting change's member or effective height is not the one the receipt names",
        ),
        (
            lambda item: with_receipt_event(item, effective_height=item["effective_height"] - 3),
            "voting change 0: the receipt proof does not lead to block",
        ),
        (lambda item: item.update(height=item["height"] + 1), "voting change 0: the block header's height"),
        (lambda item: item.update(certificate="00"), "voting change 0"),
        (lambda item: item.pop("receipt"), "voting change 0: field 'receipt' is missing"),
    ],
)
def test_tampered_voting_evidence_is_refused_naming_it(promoted, tamper, names):
    genesis, _, document, _ = promoted
    forged = copy.deepcopy(document)
    tamper(forged["voting_changes"][0])
    with pytest.raises(AuditError, match=names):
        verify_export(forged, genesis)


def test_a_receipt_with_a_rewritten_effective_height_and_a_matching_proof_still_needs_the_certificate(
    promoted,
):
    """A forger who rewrites the event to take effect sooner and rebuilds the results root gets
    a header whose hash no certificate covers."""
    genesis, _, document, _ = promoted
    forged = copy.deepcopy(document)
    item = forged["voting_changes"][0]
    with_receipt_event(item, effective_height=item["effective_height"] - 3)
    header = codec.unpack(bytes.fromhex(item["header"]))
    leaves = [bytes.fromhex(item["receipt"])] * item["receipt_count"]
    header[8] = merkle.merkle_root(leaves)  # results_root
    item["header"] = codec.pack(header).hex()
    item["receipt_proof"] = [node.hex() for node in merkle.inclusion_proof(leaves, item["receipt_index"])]
    with pytest.raises(AuditError, match="voting change 0: the commit certificate covers another block"):
        verify_export(forged, genesis)


def test_a_format_4_export_of_a_chain_that_never_changed_its_voters_still_verifies():
    genesis, members, chain, _, loan_hex = applied_loan()
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_hex))
    assert document["voting_changes"] == []
    old = {key: value for key, value in document.items() if key not in ("voting_changes", "admissions")}
    summary = verify_export(json.loads(json.dumps({**old, "format": "lendchain/audit/4"})), genesis)
    assert summary["voting_changes"] == [] and summary["complete_to_height"] == chain.height


def test_an_export_proves_a_demotion_and_checks_the_smaller_sets_certificates():
    chain, members, _, borrower, loan_hex, keys = voting_world()
    effective = change_voting(chain, members, members[3], "observer")
    advance_to(chain, effective)
    lend(chain, members[0], borrower, loan_hex)
    blocks = VotersBlocks(chain, keys, [(effective, "bank4", False)])
    document = json.loads(json.dumps(export_loan(chain.state, blocks, bytes.fromhex(loan_hex))))
    last = CommitCertificate.decode(bytes.fromhex(document["entries"][-1]["certificate"]))
    assert [name for name, _ in last.signatures] == ["bank2", "bank3"]  # quorum(3) = 2
    genesis = chain.genesis
    summary = verify_export(document, genesis)
    assert summary["voting_changes"] == [{"member": "bank4", "effective_height": effective, "voting": False}]
    # Without the demotion, two signatures are no quorum of the four genesis voters.
    with pytest.raises(AuditError, match="commit certificate has 2 signatures, a quorum needs 3"):
        verify_export({**document, "voting_changes": []}, genesis)


def test_rotations_and_voting_changes_replay_in_block_order():
    """The regulator rotates its key while observing, is promoted, and then votes for bank2's
    rotation: that rotation's block is certified by the five voters, the regulator with its new
    key, so the verifier must apply the promotion (and the regulator's rotation) before it."""
    chain, members, regulator, borrower, loan_hex, keys = voting_world()
    regulator_new, bank2_new = seeded_key(78), seeded_key(250)
    rotate(chain, members, regulator.did, "regulator", regulator_new)
    regulator_from = scheduled_rotations(chain.state)["regulator"][0][0]
    advance_to(chain, regulator_from)
    promoted_from = change_voting(chain, members, regulator, "voter")
    advance_to(chain, promoted_from)
    rotate(chain, members, members[1].did, "bank2", bank2_new)
    bank2_from = scheduled_rotations(chain.state)["bank2"][0][0]
    advance_to(chain, bank2_from)
    offer = chain.run_one(chain.tx(bank2_new, "loan.offer", {"loan_id": loan_hex, "rate_bps": 700}))
    assert offer.ok, offer.message
    keys["regulator"].append((regulator_from, regulator_new))
    keys["bank2"].append((bank2_from, bank2_new))
    blocks = VotersBlocks(chain, keys, [(promoted_from, "regulator", True)])
    document = json.loads(json.dumps(export_loan(chain.state, blocks, bytes.fromhex(loan_hex))))
    assert voting_changes(chain.state) == {"regulator": [[promoted_from, True]]}

    rotations = document["key_rotations"]
    assert [item["member"] for item in rotations] == ["regulator", "bank2"]
    assert document["voting_changes"][0]["height"] < rotations[1]["height"]
    bank2_certificate = CommitCertificate.decode(bytes.fromhex(rotations[1]["certificate"]))
    assert [name for name, _ in bank2_certificate.signatures] == ["bank2", "bank3", "bank4", "regulator"]

    summary = verify_export(document, chain.genesis)
    assert summary["key_rotations"] == [
        {
            "member": "regulator",
            "effective_height": regulator_from,
            "public_key": regulator_new.public_key.hex(),
        },
        {"member": "bank2", "effective_height": bank2_from, "public_key": bank2_new.public_key.hex()},
    ]
    assert summary["voting_changes"] == [
        {"member": "regulator", "effective_height": promoted_from, "voting": True}
    ]
    assert summary["member_signers"] == {bank2_new.did: "bank2"}
    # Without the promotion, bank2's rotation is certified by a non-member, and named as the culprit.
    with pytest.raises(AuditError, match="key rotation 1: block .* non-member 'regulator'"):
        verify_export({**document, "voting_changes": []}, chain.genesis)
    # Without the regulator's rotation, its signature under the new key does not check.
    with pytest.raises(AuditError, match="key rotation 0: block .* invalid signature by 'regulator'"):
        verify_export({**document, "key_rotations": rotations[1:]}, chain.genesis)
