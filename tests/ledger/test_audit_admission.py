"""Audit exports prove ``member.admit`` admissions, so a member the genesis does not name checks too.

The chains here start on rules 3 with four genesis voters (bank1..bank4) and a
delay of 5 blocks. bank5 is admitted (``ledger.admission``), lends, is
promoted, rotates its key and lends with the new one; the blocks are
certified like a network's would be, by the last quorum of each height's
voters (``VotersBlocks``: an admitted member votes after the genesis's), so
once promoted bank5 signs them. The verifier knows only the genesis: the
admission's certified receipt must make bank5 a member before its promotion,
its rotation and its signatures mean anything.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace

import pytest

from lendchain import codec
from lendchain.consensus.certificate import CommitCertificate
from lendchain.crypto import SigningKey
from lendchain.ledger import merkle, queries
from lendchain.ledger.admission import ADMISSION_TAG, proof_body
from lendchain.ledger.audit import AuditError, export_loan, verify_export
from lendchain.ledger.block import BlockHeader
from lendchain.ledger.keyrotation import scheduled_rotations
from lendchain.ledger.membership import voting_changes
from tests.ledger.chain import CHAIN_ID, Chain, make_genesis, seeded_key
from tests.ledger.test_admission import ADDRESS, request, rules_world
from tests.ledger.test_audit_voting import VotersBlocks, change_voting, lend
from tests.ledger.test_domain_audit import cli_verify
from tests.ledger.test_membership import DELAY, advance_to, vote_through
from tests.ledger.test_observer_rotation import rotate

ADMIT = "member.admit"
ADMITTED = "member.admitted"
APPLY = {"amount": 9000, "currency": "EUR", "term_months": 3, "purpose": "a laptop"}


def applied_loan_on(chain: Chain, members: list[SigningKey]):
    """A KYC-attested borrower applies for a loan on ``chain``; the members' signing keys by name."""
    borrower = seeded_key(1)
    chain.onboard(borrower, members[-1])  # the last member has the kyc role
    loan_hex = chain.run_one(chain.tx(borrower, "loan.apply", APPLY)).tx_id.hex()
    keys = {f"bank{i + 1}": [(0, key)] for i, key in enumerate(members)}
    return borrower, loan_hex, keys


def admit(chain: Chain, members: list[SigningKey], joiner: SigningKey) -> int:
    """bank1 proposes bank5's admission, bank2 and bank3 vote it through; the height it executed at."""
    vote_through(chain, members[0], members[1:3], ADMIT, "bank5", request(joiner))
    return chain.height


@dataclass(frozen=True)
class Admitted:
    """The ``admitted`` fixture: the chain, its certified blocks, the export and the heights of bank5's changes."""

    chain: Chain
    blocks: VotersBlocks
    document: dict
    joiner: SigningKey
    new_key: SigningKey
    admitted_at: int
    promoted_from: int
    rotated_from: int


@pytest.fixture(scope="module")
def admitted() -> Admitted:
    """bank5 is admitted and offers the loan, is promoted, rotates its key and disburses with the new one."""
    chain, members = rules_world()
    borrower, loan_hex, keys = applied_loan_on(chain, members)
    joiner, new_key = seeded_key(91), seeded_key(92)
    admitted_at = admit(chain, members, joiner)
    offer = chain.run_one(chain.tx(joiner, "loan.offer", {"loan_id": loan_hex, "rate_bps": 700}))
    assert offer.ok, offer.message
    promoted_from = change_voting(chain, members, joiner, "voter")
    advance_to(chain, promoted_from)
    rotate(chain, members, joiner.did, "bank5", new_key)  # its deciding vote: a block bank5 certifies
    rotated_from = scheduled_rotations(chain.state)["bank5"][0][0]
    advance_to(chain, rotated_from)
    accept = {"loan_id": loan_hex, "offer_id": offer.tx_id.hex()}
    assert chain.run_one(chain.tx(borrower, "loan.accept", accept)).ok
    disburse = chain.run_one(chain.tx(new_key, "loan.disburse", {"loan_id": loan_hex}))
    assert disburse.ok, disburse.message
    keys["bank5"] = [(0, joiner), (rotated_from, new_key)]
    blocks = VotersBlocks(chain, keys, [(promoted_from, "bank5", True)])
    document = json.loads(json.dumps(export_loan(chain.state, blocks, bytes.fromhex(loan_hex))))
    return Admitted(chain, blocks, document, joiner, new_key, admitted_at, promoted_from, rotated_from)


def signers(certificate_hex: str) -> list[str]:
    return [name for name, _ in CommitCertificate.decode(bytes.fromhex(certificate_hex)).signatures]


def test_an_export_proves_an_admission_and_checks_what_the_admitted_member_signed(admitted):
    document, joiner, new_key = admitted.document, admitted.joiner, admitted.new_key
    assert document["format"] == "lendchain/audit/6"
    [item] = document["admissions"]
    assert item["height"] == admitted.admitted_at
    assert (item["member"], item["public_key"], item["address"], item["roles"]) == (
        "bank5",
        joiner.public_key.hex(),
        ADDRESS,
        ["lender"],
    )
    assert [change["member"] for change in document["voting_changes"]] == ["bank5"]
    [rotation] = document["key_rotations"]
    assert rotation["member"] == "bank5"
    # bank5 signs the rotation's block with its admitted key, and the last entries with its new one.
    assert signers(rotation["certificate"]) == ["bank2", "bank3", "bank4", "bank5"]
    late = [entry for entry in document["entries"] if entry["height"] >= admitted.rotated_from]
    assert [entry["signer"] for entry in late][-1] == new_key.did
    assert all(signers(entry["certificate"]) == ["bank2", "bank3", "bank4", "bank5"] for entry in late)

    summary = verify_export(document, admitted.chain.genesis)
    assert summary["admissions"] == [
        {"member": "bank5", "did": joiner.did, "admitted_height": admitted.admitted_at}
    ]
    assert summary["voting_changes"] == [
        {"member": "bank5", "effective_height": admitted.promoted_from, "voting": True}
    ]
    assert summary["key_rotations"] == [
        {"member": "bank5", "effective_height": admitted.rotated_from, "public_key": new_key.public_key.hex()}
    ]
    # Both of bank5's keys are tied to it, as the ledger's own party view ties them.
    assert summary["member_signers"] == {joiner.did: "bank5", new_key.did: "bank5"}
    assert queries.lookup(admitted.chain.state, "party", new_key.did)["member"] == "bank5"
    assert summary["complete_to_height"] == admitted.chain.height


def test_cli_verify_names_the_proven_admission_and_the_admitted_members_keys(admitted, tmp_path):
    result = cli_verify(admitted.chain.genesis, admitted.document, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"; bank5 admitted at block {admitted.admitted_at} (proven)" in result.output
    assert f"; bank5 votes from block {admitted.promoted_from} (proven)" in result.output
    assert f"; {admitted.joiner.did} signed for bank5 (the key it was admitted with)" in result.output
    assert f"; {admitted.new_key.did} signed for bank5 (its rotated key)" in result.output


def test_without_the_admission_evidence_the_admitted_member_is_a_stranger(admitted):
    document, genesis = admitted.document, admitted.chain.genesis
    with pytest.raises(
        AuditError,
        match=r"voting change 0: 'bank5' is neither a member of the genesis nor admitted by an earlier "
        r"admission the export proves \(field 'admissions'\)",
    ):
        verify_export({**document, "admissions": []}, genesis)
    # With none of bank5's evidence, the certificates it signs hold a non-member's signature.
    bare = {**document, "admissions": [], "voting_changes": [], "key_rotations": []}
    first_late = next(n for n, e in enumerate(document["entries"]) if e["height"] >= admitted.promoted_from)
    with pytest.raises(
        AuditError,
        match=rf"entry {first_late}: block \d+'s commit certificate does not verify under the genesis keys "
        r"and the admissions, key rotations and voting changes the export proves "
        r"\(commit certificate holds a signature by non-member 'bank5'\)",
    ):
        verify_export(bare, genesis)


def with_admitted_event(item: dict, **changes) -> None:
    """Rewrite the item's receipt with its member.admitted event changed (its proof left as it was)."""
    receipt = codec.unpack(bytes.fromhex(item["receipt"]))
    receipt[3] = [event | changes if event.get("event") == ADMITTED else event for event in receipt[3]]
    item["receipt"] = codec.pack(receipt).hex()


MISMATCH = "admission 0: the admission's member, key, address or roles are not the ones the receipt names"


@pytest.mark.parametrize(
    ("tamper", "names"),
    [
        (lambda item: item.update(address="/ip4/10.0.0.9/tcp/47105"), MISMATCH),
        (lambda item: item.update(public_key=seeded_key(93).public_key.hex()), MISMATCH),
        (lambda item: item.update(roles=["kyc", "lender"]), MISMATCH),
        (lambda item: item.update(member="bank6"), MISMATCH),
        (
            lambda item: (
                item.update(address="/ip4/10.0.0.9/tcp/47105"),
                with_admitted_event(item, address="/ip4/10.0.0.9/tcp/47105"),
            ),
            "admission 0: the receipt proof does not lead to block",
        ),
        (lambda item: item.update(height=item["height"] + 1), "admission 0: the block header's height"),
        (lambda item: item.update(certificate="00"), "admission 0"),
        (lambda item: item.pop("receipt"), "admission 0: field 'receipt' is missing"),
    ],
)
def test_tampered_admission_evidence_is_refused_naming_it(admitted, tamper, names):
    forged = copy.deepcopy(admitted.document)
    tamper(forged["admissions"][0])
    with pytest.raises(AuditError, match=names):
        verify_export(forged, admitted.chain.genesis)


def body(joiner: SigningKey) -> list:
    """What bank5's key signed to ask for its admission (``admission.proof_body``)."""
    return proof_body("bank5", joiner.public_key, ADDRESS, ["lender"])


@pytest.mark.parametrize(
    "proof_of",
    [
        lambda joiner: joiner.sign(ADMISSION_TAG, "another-chain", body(joiner)),
        lambda joiner: seeded_key(94).sign(ADMISSION_TAG, CHAIN_ID, body(joiner)),
        lambda joiner: joiner.sign(ADMISSION_TAG, CHAIN_ID, [*body(joiner)[:3], ["kyc", "lender"]]),
    ],
    ids=["another-chain", "another-key", "other-roles"],
)
def test_a_certified_receipt_whose_proof_of_possession_fails_is_refused(admitted, proof_of):
    """A quorum that certifies a block admitting a key with a proof made for another chain, by
    another key or for other roles admits nobody: the verifier checks the proof itself, for the
    genesis's chain id."""
    forged = copy.deepcopy(admitted.document)
    item = forged["admissions"][0]
    with_admitted_event(item, proof=proof_of(admitted.joiner).hex())
    header = codec.unpack(bytes.fromhex(item["header"]))
    leaves = [bytes.fromhex(item["receipt"])] * item["receipt_count"]
    header[8] = merkle.merkle_root(leaves)  # results_root
    item["header"] = codec.pack(header).hex()
    item["receipt_proof"] = [node.hex() for node in merkle.inclusion_proof(leaves, item["receipt_index"])]
    item["certificate"] = admitted.blocks.certify(item["height"], BlockHeader(*header).hash()).hex()
    with pytest.raises(
        AuditError,
        match=r"admission 0: the admitted key's proof of possession is not its signature of bank5's admission "
        rf"request \(with this address and these roles\) on chain {CHAIN_ID}",
    ):
        verify_export(forged, admitted.chain.genesis)


def test_an_older_format_carrying_admissions_is_refused_naming_the_field(admitted):
    document, genesis = admitted.document, admitted.chain.genesis
    with pytest.raises(
        AuditError,
        match="field 'admissions' needs format 'lendchain/audit/6' or later, not 'lendchain/audit/5'",
    ):
        verify_export({**document, "format": "lendchain/audit/5"}, genesis)
    without_voting = {key: value for key, value in document.items() if key != "voting_changes"}
    with pytest.raises(AuditError, match="field 'admissions' needs format 'lendchain/audit/6' or later"):
        verify_export({**without_voting, "admissions": [], "format": "lendchain/audit/3"}, genesis)
    # Passed off as a format-5 export without the field, bank5's promotion names a stranger.
    old = {key: value for key, value in document.items() if key != "admissions"}
    with pytest.raises(AuditError, match="voting change 0: 'bank5' is neither a member of the genesis"):
        verify_export({**old, "format": "lendchain/audit/5"}, genesis)


def test_an_export_of_a_chain_that_admitted_nobody_by_its_last_block_has_no_admissions():
    chain, members = rules_world()
    borrower, loan_hex, keys = applied_loan_on(chain, members)
    lend(chain, members[0], borrower, loan_hex)
    blocks = VotersBlocks(chain, keys, [])

    def exported() -> dict:
        return json.loads(json.dumps(export_loan(chain.state, blocks, bytes.fromhex(loan_hex))))

    before = exported()
    assert before["format"] == "lendchain/audit/6" and before["admissions"] == []
    summary = verify_export(before, chain.genesis)
    assert summary["admissions"] == [] and summary["member_signers"] == {members[0].did: "bank1"}
    # An admission after the loan's last entry concerns no block of the export: it is left out.
    admit(chain, members, seeded_key(91))
    after = exported()
    assert after == before
    assert verify_export(after, chain.genesis)["complete_to_height"] < chain.height


def test_an_admission_goes_before_the_promotion_decided_in_its_own_block():
    """With one voter a proposal executes when proposed, so bank1 admits bank5 and promotes it in
    one block. From then on bank1 and bank5 certify (a quorum of 2 is 2): the verifier must admit
    bank5 before it replays the promotion decided at the same height."""
    genesis, [bank1] = make_genesis([("lender", "kyc")])
    chain = Chain.start(replace(genesis, app={"key_rotation_delay_blocks": DELAY, "rules_version": 3}))
    borrower, loan_hex, keys = applied_loan_on(chain, [bank1])
    joiner = seeded_key(91)
    admission = {"action": ADMIT, "key": "bank5", "value": request(joiner)}
    promotion = {"action": "member.voting", "key": joiner.did, "value": "voter"}
    results = chain.run(chain.tx(bank1, "gov.propose", admission), chain.tx(bank1, "gov.propose", promotion))
    assert all(result.ok for result in results), results
    promoted_from = voting_changes(chain.state)["bank5"][0][0]
    advance_to(chain, promoted_from)
    lend(chain, bank1, borrower, loan_hex)
    keys["bank5"] = [(0, joiner)]
    blocks = VotersBlocks(chain, keys, [(promoted_from, "bank5", True)])
    document = json.loads(json.dumps(export_loan(chain.state, blocks, bytes.fromhex(loan_hex))))
    assert document["admissions"][0]["height"] == document["voting_changes"][0]["height"]
    assert signers(document["entries"][-1]["certificate"]) == ["bank1", "bank5"]
    summary = verify_export(document, chain.genesis)
    assert [a["member"] for a in summary["admissions"]] == ["bank5"]
    assert summary["complete_to_height"] == chain.height
