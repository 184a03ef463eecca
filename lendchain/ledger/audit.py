"""Audit: a loan's full history as a self-proving export, and its offline check.

``export_loan`` turns a loan's history into a JSON document that proves,
against the genesis alone — no node, no state —, each change and that none
is missing. It holds:

- ``history``: every history entry of the loan, in order, as its canonical
  bytes. Each entry names the hash of the one before (``prev``, see
  ``loans.with_history``), so the hash of the last one (the head) commits to
  the whole sequence.
- ``entries``: one per transaction (or per block of the ledger's own work,
  ``kind`` ``ledger``) that extended the history, with the range of history
  entries it made; the signed tx wire bytes, their RFC 6962 inclusion proof
  in the block, the block header and the block's commit certificate; and
  the receipt (the tx's result, or the block's ledger events) with its
  inclusion proof in the header's ``results_root``. Every receipt that
  extends a loan's history ends with a ``loan.history`` event naming the
  history's new length and head (``TxContext.receipt_events``).
- ``key_rotations``: for every node key rotation effective at or below the
  last entry's block, the certified receipt that scheduled it
  (``audit_keys.py``), so that certificates signed with a rotated key check
  against the genesis too; observers' rotations as well, so that their
  transactions signed with a rotated key are tied to them.
- ``voting_changes`` (format 5): for every ``member.voting`` change effective
  at or below the last entry's block, the certified receipt that scheduled
  it, its member, ``voting`` and ``effective_height``, so that certificates
  signed by the member set of a later height (a promoted observer among it,
  a demoted member not) check against the genesis too.
- ``admissions`` (format 6): for every ``member.admit`` executed at or below
  the last entry's block, the certified receipt that admitted the member,
  its ``member``, ``public_key``, ``address`` and ``roles``, so that the
  member the genesis does not name is known to the verifier: its promotion,
  its rotations, the certificates it signs once it votes and the
  transactions its keys sign all check against the genesis too.

``verify_export`` checks, naming the entry and the check that failed:

0. each admission's, key rotation's and voting change's receipt is in a
   block final under the members and keys known before it (replayed
   together, in block order, from the genesis), and names the member, the
   new key or whether it votes, and the effective height (an admission's:
   the member's key, address and roles, with the key's proof of possession,
   which must verify for the genesis's chain id);
1. each tx decodes, its id is the sha256 of its bytes, its signature is its
   sender's, it is for this chain, and it concerns this loan (the first one
   is the ``loan.apply`` whose id is the loan id); it is in its block (proof
   to ``tx_root``); the block is final (a quorum of COMMIT signatures over
   that header by the members that vote at its height, with the keys valid
   there);
2. the history is one hash chain (each ``prev`` is the hash of the entry
   before) and the entries split it into consecutive ranges, each made by
   its own tx (or by the ledger, at its own height);
3. each receipt is in its block's results (proof to ``results_root``), is
   the tx's successful result (or the ledger events, as the leaf after the
   tx results), and commits to the length and head of the history up to the
   end of its range.

The summary names, for every signer that is a member's key at its entry's
height (a voting member's, an observer's or an admitted member's), the
member it signed for (``member_signers``): after a member's key rotation its
txs carry the new key's did:key, and an admitted member's txs a did:key from
the start, neither of which the genesis lists; the proven rotations and
admissions say whose key it is. It lists the proven rotations, voting
changes and admissions (``admissions``: member, did, ``admitted_height``).

So a history entry left out, added, changed or moved breaks a hash link or
the head a certified receipt commits to. What an export cannot prove: that
the loan changed no more after its last entry (the state root commits to
change sets, not to single keys, so the current record cannot be proved;
``state_at_export`` is informative), nor that no admission, key rotation or
voting change was left out (what a verifier then accepts: ``audit_keys.py``;
an admitted member left out is a stranger to it, so the certificates that
member signs fail). The verifier reports the height up to which the history
is proved complete.
"""

from __future__ import annotations

from typing import Any, Protocol

from lendchain import codec
from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import public_key_from_did
from lendchain.genesis import Genesis
from lendchain.ledger import merkle
from lendchain.ledger.audit_keys import (
    check_final,
    export_admissions,
    export_rotations,
    export_voting_changes,
    hex_field,
    proven_receipt,
    signer_names,
    verify_key_changes,
)
from lendchain.ledger.block import Block, BlockHeader
from lendchain.ledger.errors import AuditError, InvalidBlock, TxRejected
from lendchain.ledger.execute import LEDGER_RESULT_TAG, result_leaves
from lendchain.ledger.kinds import LEDGER_TX_ID
from lendchain.ledger.queries import register_lookup, to_json
from lendchain.ledger.state import (
    ZERO_ROOT,
    StateReader,
    TxResult,
    history_entry_hash,
    ledger_events_key,
    loan_history_key,
    loan_key,
    read_value,
)
from lendchain.ledger.transactions import decode_transaction, verify_signature

# The formats that verify, oldest first: 3 added key_rotations, 4 observers' rotations among them,
# 5 voting_changes, 6 admissions. Older ones still verify, since they come from chains that could
# not need the newer evidence (formats 2 to 4 from rules 1, which cannot change who votes; 5 from
# rules 2, which cannot admit a member); but no older format may carry a newer field.
_FORMATS = tuple(f"lendchain/audit/{number}" for number in range(2, 7))
AUDIT_FORMAT = _FORMATS[-1]
_FIELD_SINCE = {"voting_changes": "lendchain/audit/5", "admissions": "lendchain/audit/6"}
LEDGER_KIND = "ledger"  # an entry made by the ledger's own work at the start of a block


class BlockSource(Protocol):
    """Committed blocks, certificates and tx results (the node's ChainStore is one)."""

    def block_bytes(self, height: int) -> bytes | None: ...

    def certificate(self, height: int) -> bytes | None: ...

    def tx_location(self, tx_id: bytes) -> tuple[int, int, TxResult] | None: ...


def _block_receipts(reader: StateReader, blocks: BlockSource, height: int, block: Block) -> list[bytes]:
    """The leaves of block ``height``'s results root: tx results, then its ledger events if any."""
    results = []
    for raw in block.txs:
        location = blocks.tx_location(codec.sha256(raw))
        if location is None:
            raise AuditError(f"the result of a tx in block {height} is not stored here")
        results.append(location[2])
    return result_leaves(results, read_value(reader, ledger_events_key(height)) or [])


def export_loan(reader: StateReader, blocks: BlockSource, loan_id: bytes) -> dict[str, Any] | None:
    """The audit export of ``loan_id``, or None when there is no such loan."""
    loan = read_value(reader, loan_key(loan_id))
    if loan is None:
        return None
    raw_history = [reader.get(loan_history_key(loan_id, n)) for n in range(loan["history_len"])]
    history = [codec.unpack(raw) for raw in raw_history]
    entries: list[dict[str, Any]] = []
    decoded: dict[int, tuple[Block, list[bytes]]] = {}
    for number, item in enumerate(history):
        height, tx_id = item["height"], item["tx_id"]
        if entries and (entries[-1]["height"], entries[-1]["tx_id"]) == (height, tx_id.hex()):
            entries[-1]["events"].append(item["event"])
            entries[-1]["history_to"] = number + 1
            continue
        if height not in decoded:
            raw = blocks.block_bytes(height)
            if raw is None:
                raise AuditError(f"block {height} of loan {loan_id.hex()[:16]}'s history is not stored here")
            block = Block.decode(raw)
            decoded[height] = (block, _block_receipts(reader, blocks, height, block))
        block, receipts = decoded[height]
        entry: dict[str, Any] = {
            "events": [item["event"]],
            "height": height,
            "tx_id": tx_id.hex(),
            "history_from": number,
            "history_to": number + 1,
            "header": codec.pack(block.header.to_value()).hex(),
            "certificate": (blocks.certificate(height) or b"").hex(),
        }
        if tx_id == LEDGER_TX_ID:
            index = len(block.txs)
            entry |= {"signer": None, "kind": LEDGER_KIND}
        else:
            index = next(i for i, tx in enumerate(block.txs) if codec.sha256(tx) == tx_id)
            tx = decode_transaction(block.txs[index])
            entry |= {
                "signer": tx.sender,
                "kind": tx.kind,
                "tx": block.txs[index].hex(),
                "index": index,
                "proof": [node.hex() for node in block.tx_proof(index)],
            }
        entry |= {
            "receipt": receipts[index].hex(),
            "receipt_index": index,
            "receipt_count": len(receipts),
            "receipt_proof": [node.hex() for node in merkle.inclusion_proof(receipts, index)],
        }
        entries.append(entry)

    def receipts_of(height: int, block: Block) -> list[bytes]:
        return decoded[height][1] if height in decoded else _block_receipts(reader, blocks, height, block)

    last_height = max(entry["height"] for entry in entries)
    rotations = export_rotations(reader, blocks, last_height, receipts_of)
    changes = export_voting_changes(reader, blocks, last_height, receipts_of)
    admissions = export_admissions(reader, blocks, last_height, receipts_of)
    return {
        "format": AUDIT_FORMAT,
        "loan_id": loan_id.hex(),
        "history": [raw.hex() for raw in raw_history],
        "history_head": history_entry_hash(raw_history[-1]).hex(),
        "entries": entries,
        "key_rotations": rotations,
        "voting_changes": changes,
        "admissions": admissions,
        "state_at_export": to_json(loan),
    }


def _check_tx(entry: dict[str, Any], loan_id: bytes, first: bool, header: BlockHeader, chain_id: str) -> None:
    raw = hex_field(entry, "tx")
    tx = decode_transaction(raw)
    if codec.sha256(raw).hex() != entry.get("tx_id"):
        raise AuditError("the tx bytes do not hash to its tx_id")
    if not verify_signature(tx):
        raise AuditError(f"the tx signature is not {tx.sender}'s")
    if tx.chain_id != chain_id:
        raise AuditError(f"the tx is for chain {tx.chain_id!r}, not {chain_id!r}")
    if first:
        if tx.kind != "loan.apply" or codec.sha256(raw) != loan_id:
            raise AuditError("the first entry is not the loan.apply whose id is the loan id")
    elif tx.payload.get("loan_id") != loan_id.hex():
        raise AuditError(f"the {tx.kind} tx does not name this loan")
    if entry.get("signer") != tx.sender or entry.get("kind") != tx.kind:
        raise AuditError("signer or kind differ from the signed tx")
    proof = [bytes.fromhex(node) for node in entry.get("proof", [])]
    index = entry.get("index")
    if not isinstance(index, int) or not merkle.verify_inclusion(
        raw, index, header.tx_count, proof, header.tx_root
    ):
        raise AuditError(f"the inclusion proof does not lead to block {header.height}'s tx_root")


def _check_receipt(
    entry: dict[str, Any], header: BlockHeader, loan_id: bytes, length: int, head: bytes
) -> None:
    """The receipt is in the block's results and commits to the history's length and head."""
    raw, index = proven_receipt(entry, header)
    ledger = entry.get("kind") == LEDGER_KIND
    if ledger and index != header.tx_count:
        raise AuditError(f"the receipt is not at a result position of block {header.height}")
    receipt = codec.unpack(raw)
    if ledger:
        if not (isinstance(receipt, list) and len(receipt) == 2 and receipt[0] == LEDGER_RESULT_TAG):
            raise AuditError("the receipt is not the block's ledger events")
        events = receipt[1]
    else:
        if not (
            isinstance(receipt, list)
            and len(receipt) == 4
            and isinstance(receipt[0], bytes)
            and receipt[0].hex() == entry.get("tx_id")
        ):
            raise AuditError("the receipt is not this tx's result")
        if receipt[1] != "ok":
            raise AuditError(f"the receipt says the tx failed ({receipt[1]})")
        events = receipt[3]
    commitment = {"event": "loan.history", "loan_id": loan_id.hex(), "length": length, "head": head.hex()}
    if commitment not in events:
        raise AuditError(f"the receipt does not commit to the loan's first {length} history entries as given")


def _check_history(document: dict[str, Any]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The decoded history entries and the head after each; AuditError on a broken hash link."""
    history = document.get("history")
    if not isinstance(history, list) or not history:
        raise AuditError("the export lists no history")
    entries, heads, prev = [], [], ZERO_ROOT
    for number, text in enumerate(history):
        try:
            raw = bytes.fromhex(text)
            item = codec.unpack(raw)
        except (TypeError, ValueError, codec.CodecError):
            raise AuditError(f"history entry {number} is not canonical msgpack in hex") from None
        if not isinstance(item, dict) or item.get("prev") != prev:
            raise AuditError(f"history entry {number} does not link to the entry before it")
        prev = history_entry_hash(raw)
        entries.append(item)
        heads.append(prev)
    return entries, heads


def verify_export(document: dict[str, Any], genesis: Genesis) -> dict[str, Any]:
    """Check an audit export against ``genesis``; a summary, or AuditError naming the first failure."""
    if not isinstance(document, dict) or document.get("format") not in _FORMATS:
        raise AuditError(f"not an audit export (format is not {AUDIT_FORMAT!r})")
    try:
        loan_id = bytes.fromhex(document["loan_id"])
    except (KeyError, TypeError, ValueError):
        raise AuditError("field 'loan_id' is missing or not hex") from None
    entries = document.get("entries")
    if not isinstance(entries, list) or not entries:
        raise AuditError("the export lists no entries")
    history, heads = _check_history(document)
    for field, since in _FIELD_SINCE.items():
        if field in document and _FORMATS.index(document["format"]) < _FORMATS.index(since):
            raise AuditError(f"field {field!r} needs format {since!r} or later, not {document['format']!r}")
    proven = verify_key_changes(
        document.get("key_rotations", []),
        document.get("voting_changes", []),
        document.get("admissions", []),
        genesis,
    )
    schedule = proven.schedule
    heights, covered = [], 0
    for number, entry in enumerate(entries):
        try:
            header = check_final(entry, schedule, genesis.chain_id)
            if entry.get("kind") != LEDGER_KIND:
                _check_tx(entry, loan_id, number == 0, header, genesis.chain_id)
            elif number == 0 or entry.get("tx_id") != LEDGER_TX_ID.hex():
                raise AuditError("a ledger entry cannot open a loan's history or name a tx")
            start, end = entry.get("history_from"), entry.get("history_to")
            if start != covered or not isinstance(end, int) or not start < end <= len(history):
                raise AuditError(f"it covers history entries {start}..{end}, but the next one is {covered}")
            for item in history[start:end]:
                if item.get("height") != entry.get("height") or item["tx_id"].hex() != entry.get("tx_id"):
                    raise AuditError("a history entry in its range was made by another tx or block")
            _check_receipt(entry, header, loan_id, end, heads[end - 1])
        except AuditError as e:
            raise AuditError(f"entry {number}: {e}") from None
        except (ValueError, TypeError, KeyError, AttributeError, TxRejected, InvalidBlock) as e:  # encodings
            raise AuditError(f"entry {number}: {e}") from None
        heights.append(header.height)
        covered = end
    if covered != len(history):
        raise AuditError(f"history entries {covered}.. are covered by no entry")
    if document.get("history_head", heads[-1].hex()) != heads[-1].hex():
        raise AuditError("field 'history_head' is not the hash of the last history entry")
    if heights != sorted(heights):
        raise AuditError("entries are not in block order")
    signers = sorted({entry["signer"] for entry in entries if entry.get("signer")})
    return {
        "loan_id": loan_id.hex(),
        "entries": len(entries),
        "heights": heights,
        "signers": signers,
        "member_signers": _member_signers(entries, heights, schedule),
        "history_length": len(history),
        "history_head": heads[-1].hex(),
        "complete_to_height": heights[-1],
        "key_rotations": [
            {"member": name, "effective_height": height, "public_key": key.hex()}
            for name, height, key in sorted(schedule.rotations(), key=lambda r: (r[1], r[0]))
        ],
        "voting_changes": [
            {"member": name, "effective_height": height, "voting": voting}
            for name, height, voting in sorted(schedule.voting_changes(), key=lambda c: (c[1], c[0]))
        ],
        "admissions": proven.admissions,
    }


def _member_signers(
    entries: list[dict[str, Any]], heights: list[int], schedule: KeySchedule
) -> dict[str, str]:
    """Signer did:key -> the member (voting, observer or admitted) whose key it was at the height it signed."""
    found: dict[str, str] = {}
    for entry, height in zip(entries, heights, strict=True):
        signer = entry.get("signer")
        if signer and signer not in found:
            key = public_key_from_did(signer)  # _check_tx decoded it from a verified signature
            found.update((signer, name) for name in signer_names(schedule, key, height))
    return dict(sorted(found.items()))


def _audit_lookup(reader: StateReader, ref: str) -> dict[str, Any] | None:
    """``lookup(store, "audit", loan_id)`` where the reader also serves blocks (a node's store)."""
    if not all(hasattr(reader, name) for name in ("block_bytes", "certificate", "tx_location")):
        return None
    try:
        loan_id = bytes.fromhex(ref)
    except ValueError:
        return None
    return export_loan(reader, reader, loan_id) if len(loan_id) == 32 else None  # type: ignore[arg-type]


register_lookup("audit", _audit_lookup)
