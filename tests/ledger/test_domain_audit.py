"""Audit exports verify offline against the genesis, and a tampered byte fails (issue 6, item 8)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import tomli_w
from click.testing import CliRunner

from lendchain import codec
from lendchain.cli import domain
from lendchain.consensus.certificate import CommitCertificate
from lendchain.consensus.quorum import tag
from lendchain.ledger import queries
from lendchain.ledger.audit import AuditError, export_loan, verify_export
from lendchain.ledger.block import Block
from lendchain.ledger.keyrotation import scheduled_rotations
from lendchain.ledger.servicing import DAY_MS
from lendchain.ledger.state import history_entry_hash
from tests.ledger.chain import CHAIN_ID, Chain, make_genesis, seeded_key
from tests.ledger.test_key_rotation import rotate_bank2


class CertifiedBlocks:
    """Blocks of a test chain with commit certificates signed by three of its four members."""

    def __init__(self, chain: Chain, keys) -> None:
        self.chain = chain
        self.keys = keys

    def block_bytes(self, height: int) -> bytes | None:
        return self.chain.blocks[height - 1][0]

    def tx_location(self, tx_id: bytes):
        for height, (_, execution) in enumerate(self.chain.blocks, start=1):
            if tx_id in execution.tx_ids:
                index = execution.tx_ids.index(tx_id)
                return height, index, execution.results[index]
        return None

    def keys_at(self, height: int) -> list:
        return self.keys

    def certificate(self, height: int) -> bytes | None:
        digest = Block.decode(self.block_bytes(height)).hash()
        body = [0, height, digest]
        members = self.chain.genesis.members
        signatures = tuple(
            (member.name, key.sign(tag("commit"), CHAIN_ID, body))
            for member, key in list(zip(members, self.keys_at(height), strict=True))[:3]
        )
        return CommitCertificate(0, height, digest, signatures).encode()


class RotatedBlocks(CertifiedBlocks):
    """Certificates signed with bank2's new node key from ``effective`` on."""

    def __init__(self, chain: Chain, keys, new_key, effective: int) -> None:
        super().__init__(chain, keys)
        self.new_key, self.effective = new_key, effective

    def keys_at(self, height: int) -> list:
        return [self.keys[0], self.new_key, *self.keys[2:]] if height >= self.effective else self.keys


def applied_loan(observers=()):
    """A test chain where a KYC-attested borrower has applied for one loan."""
    genesis, members = make_genesis()
    genesis = replace(genesis, observers=tuple(observers))
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    apply = {"amount": 9000, "currency": "EUR", "term_months": 3, "purpose": "a laptop"}
    loan_id = chain.run_one(chain.tx(borrower, "loan.apply", apply)).tx_id.hex()
    return genesis, members, chain, borrower, loan_id


def lend_once_rotated(chain: Chain, lender: str, new_key, borrower, loan_hex: str) -> int:
    """Once ``lender``'s rotation to ``new_key`` is in effect, it offers and disburses the loan
    with that key; the effective height."""
    effective = scheduled_rotations(chain.state)[lender][0][0]
    while chain.height < effective:
        chain.run()
    offer = chain.run_one(chain.tx(new_key, "loan.offer", {"loan_id": loan_hex, "rate_bps": 700}))
    assert offer.ok, offer.message
    accept = {"loan_id": loan_hex, "offer_id": offer.tx_id.hex()}
    assert chain.run_one(chain.tx(borrower, "loan.accept", accept)).ok
    assert chain.run_one(chain.tx(new_key, "loan.disburse", {"loan_id": loan_hex})).ok
    return effective


@pytest.fixture
def exported():
    genesis, members, chain, borrower, loan_id = applied_loan()
    lender = members[0]
    offer_id = chain.run_one(
        chain.tx(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 700})
    ).tx_id.hex()
    chain.run(
        chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id}),
        chain.tx(seeded_key(5), "party.register", {"role": "investor"}),
    )
    chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id}))
    chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": 3000}))
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    return genesis, document, loan_id, borrower, lender


def test_export_lists_every_change_with_height_tx_and_signer(exported):
    genesis, document, loan_id, borrower, lender = exported
    rows = [(e["kind"], e["signer"]) for e in document["entries"]]
    assert rows == [
        ("loan.apply", borrower.did),
        ("loan.offer", lender.did),
        ("loan.accept", borrower.did),
        ("loan.disburse", lender.did),
        ("loan.repay", lender.did),
    ]
    assert [e["height"] for e in document["entries"]] == [2, 3, 4, 5, 6]
    assert document["entries"][2]["index"] == 0 and len(document["entries"][2]["proof"]) == 1
    summary = verify_export(json.loads(json.dumps(document)), genesis)
    assert summary == {
        "loan_id": loan_id,
        "entries": 5,
        "heights": [2, 3, 4, 5, 6],
        "signers": sorted([borrower.did, lender.did]),
        "member_signers": {lender.did: "bank1"},
        "history_length": 5,
        "history_head": document["history_head"],
        "complete_to_height": 6,
        "key_rotations": [],
        "voting_changes": [],
        "admissions": [],
    }


def flip(hex_text: str, at: int) -> str:
    raw = bytearray(bytes.fromhex(hex_text))
    raw[at % len(raw)] ^= 0x01
    return raw.hex()


@pytest.mark.parametrize(
    ("field", "at", "names"),
    [
        ("tx", -3, "tx_id"),
        ("tx_rehashed", -3, "signature"),
        ("tx", 40, "entry 1"),
        ("header", -1, "certificate"),
        ("certificate", -2, "certificate"),
        ("proof", 5, "inclusion proof"),
    ],
)
def test_a_tampered_byte_does_not_verify(exported, field, at, names):
    genesis, document, *_ = exported
    tampered = copy.deepcopy(document)
    entry = tampered["entries"][1]
    if field == "proof":
        tampered["entries"][2]["proof"][0] = flip(tampered["entries"][2]["proof"][0], at)
    elif field == "tx_rehashed":  # a forger who also fixes the tx id
        entry["tx"] = flip(entry["tx"], at)
        entry["tx_id"] = codec.sha256(bytes.fromhex(entry["tx"])).hex()
    else:
        entry[field] = flip(entry[field], at)
    with pytest.raises(AuditError, match=names):
        verify_export(tampered, genesis)


def test_other_lies_are_caught(exported):
    genesis, document, *_ = exported
    dropped_first = {**document, "entries": document["entries"][1:], "history": document["history"][1:]}
    with pytest.raises(AuditError, match="history entry 0 does not link"):
        verify_export(dropped_first, genesis)
    relabelled = copy.deepcopy(document)
    relabelled["entries"][3]["signer"] = relabelled["entries"][0]["signer"]
    with pytest.raises(AuditError, match="signer"):
        verify_export(relabelled, genesis)
    strangers = tuple(
        replace(member, public_key=seeded_key(200 + i).public_key) for i, member in enumerate(genesis.members)
    )
    other_genesis = replace(genesis, members=strangers)
    with pytest.raises(AuditError, match="certificate"):
        verify_export(document, other_genesis)
    with pytest.raises(AuditError, match="format"):
        verify_export({"entries": []}, genesis)


def test_audit_lookup_needs_a_reader_that_serves_blocks(exported):
    genesis, _, loan_id, *_ = exported
    chain = Chain.start(genesis)
    assert queries.lookup(chain.state, "audit", loan_id) is None


def cli_verify(genesis, document: dict, tmp_path, name: str = "export.json"):
    """``lendchain audit verify`` of ``document`` written to a file, against ``genesis`` as TOML."""
    genesis_file = tmp_path / "genesis.toml"
    genesis_file.write_text(tomli_w.dumps(genesis.to_toml_doc()))
    export = tmp_path / name
    export.write_text(json.dumps(document))
    return CliRunner().invoke(domain.audit, ["verify", str(export), "--genesis", str(genesis_file)])


def test_cli_audit_verify_checks_a_file_against_a_genesis_file(exported, tmp_path):
    genesis, document, loan_id, *_ = exported
    result = cli_verify(genesis, document, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"loan {loan_id}, 5 txs" in result.output
    assert "5 history entries are complete up to block 6" in result.output
    tampered = copy.deepcopy(document)
    tampered["entries"][4]["header"] = flip(tampered["entries"][4]["header"], 20)
    result = cli_verify(genesis, tampered, tmp_path, "tampered.json")
    assert result.exit_code == 1 and "does not verify: entry 4" in result.output


def without(document: dict, entry: int | None = None, history: int | None = None) -> dict:
    """A copy of the export with one entry and/or one history entry left out."""
    forged = copy.deepcopy(document)
    if entry is not None:
        del forged["entries"][entry]
    if history is not None:
        del forged["history"][history]
    return forged


@pytest.mark.parametrize(
    ("entry", "history", "names"),
    [
        (2, 2, "entry 2: .*does not link|history entry 2 does not link"),  # the accept, wholly
        (2, None, "entry 2: it covers history entries 3..4, but the next one is 2"),
        (None, 2, "history entry 2 does not link"),
    ],
)
def test_an_export_with_one_entry_removed_does_not_verify(exported, entry, history, names):
    genesis, document, *_ = exported
    with pytest.raises(AuditError, match=names):
        verify_export(without(document, entry, history), genesis)


def relink(history: list[str], start: int) -> list[str]:
    """Rewrite every entry's ``prev`` from ``start`` on, as a forger who recomputes the chain would."""
    history = list(history)
    for number in range(start, len(history)):
        item = codec.unpack(bytes.fromhex(history[number]))
        item["prev"] = history_entry_hash(bytes.fromhex(history[number - 1]))
        history[number] = codec.pack(item).hex()
    return history


def test_a_relinked_history_still_fails_on_the_certified_head(exported):
    genesis, document, *_ = exported
    forged = without(document, 2, 2)  # the accept, wholly, and the chain re-linked over the gap
    forged["history"] = relink(forged["history"], 2)
    for entry in forged["entries"][2:]:
        entry["history_from"] -= 1
        entry["history_to"] -= 1
    with pytest.raises(AuditError, match="entry 2: the receipt does not commit to the loan's first 3"):
        verify_export(forged, genesis)
    swapped = copy.deepcopy(document)  # two entries in the other order
    swapped["entries"][3], swapped["entries"][4] = swapped["entries"][4], swapped["entries"][3]
    with pytest.raises(AuditError, match="entry 3"):
        verify_export(swapped, genesis)
    changed = copy.deepcopy(document)  # the repayment's amount rewritten, chain recomputed
    item = codec.unpack(bytes.fromhex(changed["history"][4]))
    changed["history"][4] = codec.pack({**item, "amount": 1}).hex()
    with pytest.raises(AuditError, match="entry 4: the receipt does not commit"):
        verify_export(changed, genesis)


def test_entries_made_by_the_ledger_itself_are_proved_by_the_block_results():
    genesis, members, chain, borrower, loan_id = applied_loan()
    lender = members[0]
    offer_id = chain.run_one(
        chain.tx(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 700})
    ).tx_id.hex()
    chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id}))
    chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_id}))
    chain.head_ms += 40 * DAY_MS
    chain.run()  # nobody mentions the loan: the due-loan pass finds it overdue
    chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_id, "amount": 3500}))
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    kinds = [(e["kind"], e["events"]) for e in document["entries"]]
    assert kinds[4:] == [("ledger", ["loan.overdue"]), ("loan.repay", ["loan.repay"])]
    assert document["entries"][4]["signer"] is None and "tx" not in document["entries"][4]
    summary = verify_export(json.loads(json.dumps(document)), genesis)
    assert summary["entries"] == 6 and summary["history_length"] == 6
    assert summary["complete_to_height"] == chain.height
    with pytest.raises(AuditError, match="history entry 4 does not link"):
        verify_export(without(document, 4, 4), genesis)
    relabelled = copy.deepcopy(document)  # the ledger entry passed off as the repayment's
    relabelled["entries"][4]["kind"] = "loan.repay"
    with pytest.raises(AuditError, match="entry 4"):
        verify_export(relabelled, genesis)


def rotated_loan():
    """bank2's node key rotates by governance; the loan is repaid in blocks certified with it."""
    genesis, members, chain, borrower, loan_hex = applied_loan()
    lender = members[0]
    offer_id = chain.run_one(chain.tx(lender, "loan.offer", {"loan_id": loan_hex, "rate_bps": 700}))
    chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_hex, "offer_id": offer_id.tx_id.hex()}))
    chain.run_one(chain.tx(lender, "loan.disburse", {"loan_id": loan_hex}))
    new_key = seeded_key(250)
    rotate_bank2(chain, members, new_key)
    effective = scheduled_rotations(chain.state)["bank2"][0][0]
    while chain.height < effective:
        chain.run()
    chain.run_one(chain.tx(lender, "loan.repay", {"loan_id": loan_hex, "amount": 1000}))
    blocks = RotatedBlocks(chain, members, new_key, effective)
    return genesis, chain, blocks, bytes.fromhex(loan_hex), new_key, effective


def test_an_export_proves_a_node_key_rotation_and_checks_later_blocks_with_the_new_key():
    genesis, chain, blocks, loan_id, new_key, effective = rotated_loan()
    document = json.loads(json.dumps(export_loan(chain.state, blocks, loan_id)))
    assert [r["member"] for r in document["key_rotations"]] == ["bank2"]
    summary = verify_export(document, genesis)
    assert summary["complete_to_height"] == chain.height > effective
    assert summary["key_rotations"] == [
        {"member": "bank2", "effective_height": effective, "public_key": new_key.public_key.hex()}
    ]
    # Without the evidence, the last block's certificate cannot be checked: refused, saying why.
    bare = {**document, "key_rotations": []}
    with pytest.raises(
        AuditError,
        match=r"entry 4: block \d+.s commit certificate does not verify under the genesis keys and the admis",
    ):
        verify_export(bare, genesis)
    # A format-2 export (before key rotations were carried) of an unrotated history still verifies.
    genesis2, _, chain2, _, loan2 = applied_loan()
    old = export_loan(chain2.state, CertifiedBlocks(chain2, make_genesis()[1]), bytes.fromhex(loan2))
    old.pop("key_rotations")
    old.pop("voting_changes")
    old.pop("admissions")
    assert verify_export({**old, "format": "lendchain/audit/2"}, genesis2)["key_rotations"] == []


@pytest.mark.parametrize(
    "tamper, names",
    [
        (lambda r: r.update(member="bank3"), "key rotation 0: the rotation's member"),
        (lambda r: r.update(receipt=r["receipt"][:-2] + "00"), "key rotation 0: the receipt proof"),
        (lambda r: r.update(receipt_index=r["receipt_index"] + 1), "key rotation 0: the receipt"),
        (lambda r: r.update(height=r["height"] + 1), "key rotation 0: the block header's height"),
        (lambda r: r.update(certificate="00"), "key rotation 0"),
        (lambda r: r.pop("header"), "key rotation 0: field 'header' is missing"),
    ],
)
def test_tampered_rotation_evidence_is_refused_naming_it(tamper, names):
    genesis, chain, blocks, loan_id, _, _ = rotated_loan()
    document = json.loads(json.dumps(export_loan(chain.state, blocks, loan_id)))
    tamper(document["key_rotations"][0])
    with pytest.raises(AuditError, match=names):
        verify_export(document, genesis)


def test_rotation_evidence_certified_by_non_members_is_refused():
    genesis, chain, blocks, loan_id, _, _ = rotated_loan()
    document = export_loan(chain.state, blocks, loan_id)
    forged = RotatedBlocks(chain, [seeded_key(200 + i) for i in range(4)], seeded_key(250), 0)
    height = document["key_rotations"][0]["height"]
    document["key_rotations"][0]["certificate"] = forged.certificate(height).hex()
    with pytest.raises(AuditError, match=f"key rotation 0: block {height}'s commit certificate"):
        verify_export(document, genesis)


def test_the_summary_names_the_member_a_rotated_key_signed_for(tmp_path):
    """bank2 rotates its key, then offers and disburses with the new one: the export proves it was bank2."""
    genesis, members, chain, borrower, loan_hex = applied_loan()
    bank2, new_key = members[1], seeded_key(250)
    rotate_bank2(chain, members, new_key)
    effective = lend_once_rotated(chain, "bank2", new_key, borrower, loan_hex)
    blocks = RotatedBlocks(chain, members, new_key, effective)
    document = json.loads(json.dumps(export_loan(chain.state, blocks, bytes.fromhex(loan_hex))))
    assert [e["signer"] for e in document["entries"]] == [
        borrower.did,
        new_key.did,
        borrower.did,
        new_key.did,
    ]

    summary = verify_export(document, genesis)
    # The borrower is no member; the new key's did:key, which the genesis does not list, is bank2's.
    assert summary["member_signers"] == {new_key.did: "bank2"}
    assert sorted(summary["signers"]) == sorted({borrower.did, new_key.did})
    # Without the rotation evidence the same txs cannot be tied to bank2: the export is refused.
    with pytest.raises(AuditError, match="key rotations"):
        verify_export({**document, "key_rotations": []}, genesis)

    result = cli_verify(genesis, document, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"{new_key.did} signed for bank2 (its rotated key)" in result.output
    assert bank2.did not in result.output
