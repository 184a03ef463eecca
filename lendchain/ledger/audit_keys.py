"""Key rotations in audit exports: the evidence that lets a verifier check later certificates.

A block certified after a member rotated its node key (``member.rotate_key``,
``keyrotation.py``) carries that member's COMMIT signature under the new key,
which the genesis does not know. So an export carries, for every rotation
that takes effect at or below its highest block, the receipt that made it:

- the block header and commit certificate of the block whose tx reached the
  proposal's quorum, and that tx's result with its inclusion proof in the
  header's ``results_root``. The result holds the ``member.key_rotation``
  event: member, new key, effective height, and the new key's proof that it
  is held.

``verify_rotations`` replays them in height order, starting from the genesis
keys: each block must be final under the keys known so far, so the evidence
needs nothing but the genesis, as the rest of an export does. Evidence left
out cannot make a verifier accept anything: a certificate signed with a key it
does not know fails to verify, and the export is refused.

An observer's rotation (a non-voting member: its key signs no certificate,
only its transactions) is carried the same way, so that a transaction its new
key signed can be tied to it (format 4; a format-3 export carries the voting
members' rotations only).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lendchain import codec
from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import verify
from lendchain.genesis import Genesis
from lendchain.ledger import merkle
from lendchain.ledger.block import Block, BlockHeader
from lendchain.ledger.errors import AuditError
from lendchain.ledger.keyrotation import (
    MIN_DELAY_BLOCKS,
    ROTATION_TAG,
    delay_blocks,
    genesis_key_schedule,
    proof_body,
    scheduled_rotations,
)
from lendchain.ledger.state import StateReader, get_params
from lendchain.ledger.transactions import decode_transaction

ROTATION_EVENT = "member.key_rotation"
_DECIDING_KINDS = ("gov.propose", "gov.vote")  # the tx that reaches a proposal's quorum executes it


class ProvenKeys(NamedTuple):
    """The keys an export proves: the voting members' (they sign certificates) and the observers'."""

    signers: KeySchedule
    observers: KeySchedule | None  # None: the genesis has no observers

    def rotations(self) -> list[tuple[str, int, bytes]]:
        """Every proven rotation, voting members' and observers', by effective height then name."""
        found = self.signers.rotations() + (self.observers.rotations() if self.observers else [])
        return sorted(found, key=lambda rotation: (rotation[1], rotation[0]))

    def signer_names(self, key: bytes, height: int) -> list[str]:
        """The members (voting or observing) whose node key at ``height`` is ``key``."""
        schedules = [self.signers, *([self.observers] if self.observers else [])]
        return [name for schedule in schedules for name, known in schedule.members_at(height) if known == key]


def check_final(entry: dict[str, Any], schedule: KeySchedule, chain_id: str) -> BlockHeader:
    """The entry's block header, checked final under the keys ``schedule`` knows at its height."""
    header_value = codec.unpack(hex_field(entry, "header"))
    if not isinstance(header_value, list) or len(header_value) != 9:
        raise AuditError("the block header is not the 9-field array")
    header = BlockHeader(*header_value)
    if header.height != entry.get("height") or header.chain_id != chain_id:
        raise AuditError("the block header's height or chain differs from the entry")
    certificate = CommitCertificate.decode(hex_field(entry, "certificate"))
    try:
        certificate.verify(chain_id, schedule)
    except CertificateError as e:
        raise AuditError(
            f"block {header.height}'s commit certificate does not verify under the genesis keys and the "
            f"key rotations the export proves ({e})"
        ) from None
    if certificate.height != header.height or certificate.digest != header.hash():
        raise AuditError(f"the commit certificate covers another block than {header.height}")
    return header


def hex_field(entry: dict[str, Any], field: str) -> bytes:
    try:
        return bytes.fromhex(entry[field])
    except (KeyError, TypeError, ValueError):
        raise AuditError(f"field {field!r} is missing or not hex") from None


def proven_receipt(entry: dict[str, Any], header: BlockHeader) -> tuple[bytes, int]:
    """The entry's receipt and its index, proven to be in ``header``'s ``results_root``."""
    raw = hex_field(entry, "receipt")
    index, count = entry.get("receipt_index"), entry.get("receipt_count")
    if not isinstance(index, int) or not isinstance(count, int):
        raise AuditError("receipt_index or receipt_count is missing")
    if count not in (header.tx_count, header.tx_count + 1):
        raise AuditError(f"the receipt is not at a result position of block {header.height}")
    proof = [bytes.fromhex(node) for node in entry.get("receipt_proof", [])]
    if not merkle.verify_inclusion(raw, index, count, proof, header.results_root):
        raise AuditError(f"the receipt proof does not lead to block {header.height}'s results_root")
    return raw, index


def _rotation_in(result_events: Any, public_key: bytes) -> dict[str, Any] | None:
    for event in result_events or ():
        if event.get("event") == ROTATION_EVENT and event.get("public_key") == public_key.hex():
            return event
    return None


def _deciding_tx(
    reader: StateReader, blocks: Any, effective: int, public_key: bytes
) -> tuple[int, Block, int]:
    """(height, block, index) of the tx whose result scheduled ``public_key`` from ``effective`` on."""
    likely = effective - delay_blocks(get_params(reader))
    heights = [likely] if 1 <= likely else []
    heights += [h for h in range(effective - MIN_DELAY_BLOCKS, 0, -1) if h != likely]
    for height in heights:
        raw = blocks.block_bytes(height)
        if raw is None:
            continue
        block = Block.decode(raw)
        for index, tx_raw in enumerate(block.txs):
            if decode_transaction(tx_raw).kind not in _DECIDING_KINDS:
                continue
            location = blocks.tx_location(codec.sha256(tx_raw))
            if location is not None and _rotation_in(location[2].events, public_key):
                return height, block, index
    raise AuditError(f"the block that scheduled node key {public_key.hex()[:16]}… is not stored here")


def export_rotations(reader: StateReader, blocks: Any, up_to: int, receipts_of: Any) -> list[dict[str, Any]]:
    """Evidence for every rotation effective at or below height ``up_to``, in height order.

    ``receipts_of(height, block)`` gives the leaves of that block's results root.
    """
    evidence = []
    for name, entries in scheduled_rotations(reader).items():  # voting members' and observers'
        for effective, public_key in entries:
            if effective > up_to:
                continue
            height, block, index = _deciding_tx(reader, blocks, effective, public_key)
            receipts = receipts_of(height, block)
            evidence.append(
                {
                    "member": name,
                    "height": height,
                    "tx_id": codec.sha256(block.txs[index]).hex(),
                    "header": codec.pack(block.header.to_value()).hex(),
                    "certificate": (blocks.certificate(height) or b"").hex(),
                    "receipt": receipts[index].hex(),
                    "receipt_index": index,
                    "receipt_count": len(receipts),
                    "receipt_proof": [node.hex() for node in merkle.inclusion_proof(receipts, index)],
                }
            )
    return sorted(evidence, key=lambda item: item["height"])


def _check_rotation(item: dict[str, Any], keys: ProvenKeys, chain_id: str) -> None:
    header = check_final(item, keys.signers, chain_id)
    raw, index = proven_receipt(item, header)
    if index >= header.tx_count:
        raise AuditError(f"the receipt is not a tx result of block {header.height}")
    receipt = codec.unpack(raw)
    if not (isinstance(receipt, list) and len(receipt) == 4 and receipt[1] == "ok"):
        raise AuditError("the receipt is not a successful tx result")
    events = [e for e in receipt[3] if isinstance(e, dict) and e.get("event") == ROTATION_EVENT]
    if len(events) != 1:
        raise AuditError(f"the receipt holds no single {ROTATION_EVENT} event")
    event = events[0]
    member, effective = event.get("member"), event.get("effective_height")
    if (
        member != item.get("member")
        or not isinstance(effective, int)
        or effective < header.height + MIN_DELAY_BLOCKS
    ):
        raise AuditError("the rotation's member or effective height is not the one the receipt names")
    public_key, key_proof = bytes.fromhex(event["public_key"]), bytes.fromhex(event["proof"])
    if not verify(public_key, key_proof, ROTATION_TAG, chain_id, proof_body(member, public_key)):
        raise AuditError(f"the new key's proof that it is held is not valid for {member}")
    schedule = keys.observers if keys.observers is not None and member in keys.observers else keys.signers
    try:
        schedule.add(member, effective, public_key)
    except ValueError as e:
        raise AuditError(str(e)) from None


def verify_rotations(items: Any, genesis: Genesis) -> ProvenKeys:
    """The genesis keys plus every rotation ``items`` proves; AuditError naming the first bad one."""
    observers = [(m.name, m.public_key) for m in genesis.observers]
    keys = ProvenKeys(genesis_key_schedule(genesis), KeySchedule(observers) if observers else None)
    if not isinstance(items, list):
        raise AuditError("field 'key_rotations' is not a list")
    last = 0
    for number, item in enumerate(items):
        try:
            if not isinstance(item, dict) or not isinstance(item.get("height"), int) or item["height"] < last:
                raise AuditError("not a rotation in height order")
            _check_rotation(item, keys, genesis.chain_id)
        except AuditError as e:
            raise AuditError(f"key rotation {number}: {e}") from None
        except (ValueError, TypeError, KeyError, AttributeError) as e:  # encodings
            raise AuditError(f"key rotation {number}: {e}") from None
        last = item["height"]
    return keys
