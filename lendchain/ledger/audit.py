"""Audit: a loan's full history as a self-proving export, and its offline check.

``export_loan`` turns a loan's history (every entry names its block height
and tx id) into a JSON document with, per transaction that changed the loan:
the signed tx wire bytes (so its signer, kind and payload can be read and its
signature checked), its RFC 6962 inclusion proof in the block, the block
header, and the block's commit certificate. ``verify_export`` checks such a
document against the genesis alone — no node, no state:

1. each tx decodes, its id is the sha256 of its bytes, its signature is its
   sender's, it is for this chain, and it concerns this loan (the first one
   is the ``loan.apply`` whose id is the loan id);
2. the tx is in the block: the proof leads from its bytes at its index to
   the header's ``tx_root``;
3. the block is final: the certificate holds a 2f+1 quorum of genesis
   members' COMMIT signatures over that header's hash at that height.

A changed byte anywhere breaks one of these and the check names the entry
and what failed. What an export does not prove: the loan's current state
(``state_at_export`` is informative; the state root commits to change sets,
not to single keys) and that no later change was left out.
"""

from __future__ import annotations

from typing import Any, Protocol

from lendchain import codec
from lendchain.consensus.certificate import CommitCertificate
from lendchain.genesis import Genesis
from lendchain.ledger import merkle
from lendchain.ledger.block import Block, BlockHeader
from lendchain.ledger.errors import InvalidBlock, TxRejected
from lendchain.ledger.queries import register_lookup, to_json
from lendchain.ledger.state import StateReader, loan_history_key, loan_key, read_value
from lendchain.ledger.transactions import decode_transaction, verify_signature

AUDIT_FORMAT = "lendchain/audit/1"


class AuditError(ValueError):
    """An export that does not prove what it claims; the message names the entry and the check."""


class BlockSource(Protocol):
    """Committed blocks and their certificates by height (the node's ChainStore is one)."""

    def block_bytes(self, height: int) -> bytes | None: ...

    def certificate(self, height: int) -> bytes | None: ...


def export_loan(reader: StateReader, blocks: BlockSource, loan_id: bytes) -> dict[str, Any] | None:
    """The audit export of ``loan_id``, or None when there is no such loan."""
    loan = read_value(reader, loan_key(loan_id))
    if loan is None:
        return None
    history = [read_value(reader, loan_history_key(loan_id, n)) for n in range(loan["history_len"])]
    entries: list[dict[str, Any]] = []
    decoded: dict[int, Block] = {}
    for item in history:
        if entries and entries[-1]["tx_id"] == item["tx_id"].hex():
            entries[-1]["events"].append(item["event"])
            continue
        height = item["height"]
        if height not in decoded:
            raw = blocks.block_bytes(height)
            if raw is None:
                raise AuditError(f"block {height} of loan {loan_id.hex()[:16]}'s history is not stored here")
            decoded[height] = Block.decode(raw)
        block = decoded[height]
        index = next(i for i, tx in enumerate(block.txs) if codec.sha256(tx) == item["tx_id"])
        tx = decode_transaction(block.txs[index])
        entries.append(
            {
                "events": [item["event"]],
                "height": height,
                "tx_id": item["tx_id"].hex(),
                "signer": tx.sender,
                "kind": tx.kind,
                "tx": block.txs[index].hex(),
                "index": index,
                "proof": [node.hex() for node in block.tx_proof(index)],
                "header": codec.pack(block.header.to_value()).hex(),
                "certificate": (blocks.certificate(height) or b"").hex(),
            }
        )
    return {
        "format": AUDIT_FORMAT,
        "loan_id": loan_id.hex(),
        "entries": entries,
        "state_at_export": to_json(loan),
    }


def _hex(entry: dict[str, Any], field: str) -> bytes:
    try:
        return bytes.fromhex(entry[field])
    except (KeyError, TypeError, ValueError):
        raise AuditError(f"field {field!r} is missing or not hex") from None


def _check_entry(entry: dict[str, Any], loan_id: bytes, first: bool, genesis: Genesis) -> int:
    raw = _hex(entry, "tx")
    tx = decode_transaction(raw)
    if codec.sha256(raw).hex() != entry.get("tx_id"):
        raise AuditError("the tx bytes do not hash to its tx_id")
    if not verify_signature(tx):
        raise AuditError(f"the tx signature is not {tx.sender}'s")
    if tx.chain_id != genesis.chain_id:
        raise AuditError(f"the tx is for chain {tx.chain_id!r}, not {genesis.chain_id!r}")
    if first:
        if tx.kind != "loan.apply" or codec.sha256(raw) != loan_id:
            raise AuditError("the first entry is not the loan.apply whose id is the loan id")
    elif tx.payload.get("loan_id") != loan_id.hex():
        raise AuditError(f"the {tx.kind} tx does not name this loan")
    if entry.get("signer") != tx.sender or entry.get("kind") != tx.kind:
        raise AuditError("signer or kind differ from the signed tx")
    header_value = codec.unpack(_hex(entry, "header"))
    if not isinstance(header_value, list) or len(header_value) != 9:
        raise AuditError("the block header is not the 9-field array")
    header = BlockHeader(*header_value)
    if header.height != entry.get("height") or header.chain_id != genesis.chain_id:
        raise AuditError("the block header's height or chain differs from the entry")
    proof = [bytes.fromhex(node) for node in entry.get("proof", [])]
    index = entry.get("index")
    if not isinstance(index, int) or not merkle.verify_inclusion(
        raw, index, header.tx_count, proof, header.tx_root
    ):
        raise AuditError(f"the inclusion proof does not lead to block {header.height}'s tx_root")
    certificate = CommitCertificate.decode(_hex(entry, "certificate"))
    certificate.verify(genesis.chain_id, [(m.name, m.public_key) for m in genesis.members])
    if certificate.height != header.height or certificate.digest != header.hash():
        raise AuditError(f"the commit certificate covers another block than {header.height}")
    return header.height


def verify_export(document: dict[str, Any], genesis: Genesis) -> dict[str, Any]:
    """Check an audit export against ``genesis``; a summary, or AuditError naming the first failure."""
    if not isinstance(document, dict) or document.get("format") != AUDIT_FORMAT:
        raise AuditError(f"not an audit export (format is not {AUDIT_FORMAT!r})")
    try:
        loan_id = bytes.fromhex(document["loan_id"])
    except (KeyError, TypeError, ValueError):
        raise AuditError("field 'loan_id' is missing or not hex") from None
    entries = document.get("entries")
    if not isinstance(entries, list) or not entries:
        raise AuditError("the export lists no entries")
    heights = []
    for number, entry in enumerate(entries):
        try:
            heights.append(_check_entry(entry, loan_id, number == 0, genesis))
        except AuditError as e:
            raise AuditError(f"entry {number}: {e}") from None
        except (ValueError, TypeError, KeyError, TxRejected, InvalidBlock) as e:  # encodings, certificates
            raise AuditError(f"entry {number}: {e}") from None
    if heights != sorted(heights):
        raise AuditError("entries are not in block order")
    signers = sorted({entry["signer"] for entry in entries})
    return {"loan_id": loan_id.hex(), "entries": len(entries), "heights": heights, "signers": signers}


def _audit_lookup(reader: StateReader, ref: str) -> dict[str, Any] | None:
    """``lookup(store, "audit", loan_id)`` where the reader also serves blocks (a node's store)."""
    if not (hasattr(reader, "block_bytes") and hasattr(reader, "certificate")):
        return None
    try:
        loan_id = bytes.fromhex(ref)
    except ValueError:
        return None
    return export_loan(reader, reader, loan_id) if len(loan_id) == 32 else None  # type: ignore[arg-type]


register_lookup("audit", _audit_lookup)
