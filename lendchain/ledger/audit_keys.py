"""Admissions, key rotations and voting changes in audit exports: the evidence for later certificates.

A block certified after a member rotated its node key (``member.rotate_key``,
``keyrotation.py``) carries that member's COMMIT signature under the new key,
which the genesis does not know; a block certified after a ``member.voting``
change took effect (``membership.py``) is signed by another member set (a
promoted observer signs, a demoted voter no longer does) and its quorum is
taken over that set; a member admitted after the genesis (``member.admit``,
``admission.py``) is in no genesis at all, so neither its promotion, nor its
rotations, nor the certificates it signs once it votes mean anything to a
verifier that does not know it. So an export carries, for every admission
executed at or below its highest block (``admissions``, format 6) and every
rotation (``key_rotations``) and voting change (``voting_changes``, format 5)
that takes effect there, the receipt that made it:

- the block header and commit certificate of the block whose tx reached the
  proposal's quorum, and that tx's result with its inclusion proof in the
  header's ``results_root``. The result holds the ``member.key_rotation``
  event (member, new key, effective height, and the new key's proof that it
  is held), the ``member.voting`` event (member, whether it votes,
  effective height) or the ``member.admitted`` event (member, DID, key,
  roles, address, and the key's proof of possession). A voting change's
  item also names ``effective_height`` and ``voting``, an admission's
  ``public_key``, ``address`` and ``roles``, checked against its receipt.

``verify_key_changes`` replays the three kinds together, in the height order
of the blocks that decided them, starting from the genesis (its members vote
with their genesis keys, its observers do not): each block must be final
under the members and keys known so far, so the evidence needs nothing but
the genesis, as the rest of an export does. A change decided at height h
takes effect at h + ``key_rotation_delay_blocks`` at the earliest, so the
blocks of later evidence may be certified by the new keys or the new set. An
admission takes effect at once but gives no vote: the member joins last in
member order (``KeySchedule.admit``), and only a later voting change makes
its signature count in certificates. Its proof of possession is checked
against the genesis's chain id (``ADMISSION_TAG``), so nobody was admitted
with a key they did not hold, nor with a request made for another chain,
name, address or role set.

An observer's rotation (its key signs no certificate while it does not vote,
only its transactions) is carried the same way, so that a transaction its
new key signed can be tied to it (format 4; a format-3 export carries the
voting members' rotations only), and so that its certificates check once it
is promoted.

What evidence cannot prove is that none is missing (the state root has no
per-key proofs). An export that leaves some out makes the verifier judge
later certificates by older keys or an older member set. Each certificate
still needs a quorum of that set's genuine signatures, so this usually fails
(a promoted member's or a new key's signature is a non-member's or invalid
there; an admitted member left out is a stranger, so its promotion and
rotations are refused and the certificates it signs hold a non-member's
signature), but not always: without a demotion, a certificate signed by a
quorum of the larger set, the demoted member among it, still verifies; and
an admission left out of an export in which its member never votes breaks
nothing: its transactions still verify, but the summary no longer names the
member behind its key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lendchain import codec
from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import did_from_public_key, verify
from lendchain.genesis import Genesis
from lendchain.ledger import admission, merkle
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
from lendchain.ledger.membership import ACTION as VOTING_EVENT
from lendchain.ledger.membership import voting_changes
from lendchain.ledger.state import ADMITTED_KEY, StateReader, get_params, institution_key, read_value
from lendchain.ledger.transactions import decode_transaction

ROTATION_EVENT = "member.key_rotation"
_DECIDING_KINDS = ("gov.propose", "gov.vote")  # the tx that reaches a proposal's quorum executes it

ReceiptsOf = Callable[[int, Block], list[bytes]]


def signer_names(schedule: KeySchedule, key: bytes, height: int) -> list[str]:
    """The members, voting at ``height`` or not, whose node key at ``height`` is ``key``.

    Admitted members among them: the schedule gives an admitted member its key
    from height 0, which is true to the chain, since the ledger admits no key
    whose did:key ever sent a transaction (``admission``).
    """
    return [name for name in schedule.names if schedule.key_of(name, height) == key]


def check_final(entry: dict[str, Any], schedule: KeySchedule, chain_id: str) -> BlockHeader:
    """The entry's block header, checked final under the members and keys ``schedule`` knows at its height."""
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
            f"admissions, key rotations and voting changes the export proves ({e})"
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


Decided = Callable[[dict[str, Any]], bool]


def _decided_in(blocks: Any, height: int, decided: Decided) -> tuple[Block, int, dict[str, Any]] | None:
    """(block, index, event) of block ``height``'s governance tx whose result holds an event ``decided`` accepts."""
    raw = blocks.block_bytes(height)
    if raw is None:
        return None
    block = Block.decode(raw)
    for index, tx_raw in enumerate(block.txs):
        if decode_transaction(tx_raw).kind not in _DECIDING_KINDS:
            continue
        location = blocks.tx_location(codec.sha256(tx_raw))
        events = (location[2].events or ()) if location is not None else ()
        for event in events:
            if decided(event):
                return block, index, event
    return None


def _deciding_tx(
    reader: StateReader, blocks: Any, effective: int, decided: Decided, what: str
) -> tuple[int, Block, int]:
    """(height, block, index) of the governance tx that scheduled a change effective at ``effective``.

    Looked for first at ``effective`` - the chain's delay, then further back
    (the delay may have been another when it executed).
    """
    likely = effective - delay_blocks(get_params(reader))
    heights = [likely] if 1 <= likely else []
    heights += [h for h in range(effective - MIN_DELAY_BLOCKS, 0, -1) if h != likely]
    for height in heights:
        found = _decided_in(blocks, height, decided)
        if found is not None:
            return height, found[0], found[1]
    raise AuditError(f"the block that scheduled {what} is not stored here")


def _evidence(
    blocks: Any, name: str, height: int, block: Block, index: int, receipts: list[bytes]
) -> dict[str, Any]:
    """One item of evidence: the certified block and the deciding tx's result, proven in it."""
    return {
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


def export_rotations(
    reader: StateReader, blocks: Any, up_to: int, receipts_of: ReceiptsOf
) -> list[dict[str, Any]]:
    """Evidence for every rotation effective at or below height ``up_to``, in height order.

    ``receipts_of(height, block)`` gives the leaves of that block's results root.
    """
    evidence = []
    for name, entries in scheduled_rotations(reader).items():  # voting members' and observers'
        for effective, public_key in entries:
            if effective > up_to:
                continue

            def rotated(event: dict[str, Any], key: bytes = public_key) -> bool:
                return event.get("event") == ROTATION_EVENT and event.get("public_key") == key.hex()

            what = f"node key {public_key.hex()[:16]}…"
            height, block, index = _deciding_tx(reader, blocks, effective, rotated, what)
            evidence.append(_evidence(blocks, name, height, block, index, receipts_of(height, block)))
    return sorted(evidence, key=lambda item: item["height"])


def export_voting_changes(
    reader: StateReader, blocks: Any, up_to: int, receipts_of: ReceiptsOf
) -> list[dict[str, Any]]:
    """Evidence for every voting change effective at or below height ``up_to``, in height order."""
    evidence = []
    for name, changes in voting_changes(reader).items():
        for effective, voting in changes:
            if effective > up_to:
                continue

            def changed(event: dict[str, Any], member: str = name, at: int = effective) -> bool:
                return (
                    event.get("event") == VOTING_EVENT
                    and event.get("member") == member
                    and event.get("effective_height") == at
                )

            what = f"{name}'s voting change from height {effective}"
            height, block, index = _deciding_tx(reader, blocks, effective, changed, what)
            item = _evidence(blocks, name, height, block, index, receipts_of(height, block))
            evidence.append(item | {"effective_height": effective, "voting": voting})
    return sorted(evidence, key=lambda item: item["height"])


def export_admissions(
    reader: StateReader, blocks: Any, up_to: int, receipts_of: ReceiptsOf
) -> list[dict[str, Any]]:
    """Evidence for every admission executed at or below height ``up_to``, in admission (so height) order.

    The item's key, address and roles are the ones its receipt names: the
    member's record may have changed since (``member.roles``).
    """
    evidence = []
    for did in read_value(reader, ADMITTED_KEY) or []:
        height = read_value(reader, institution_key(did))["admitted_height"]
        if height > up_to:
            continue

        def admitted(event: dict[str, Any], member_did: str = did) -> bool:
            return event.get("event") == admission.EVENT and event.get("did") == member_did

        found = _decided_in(blocks, height, admitted)
        if found is None:
            raise AuditError(f"the block that admitted {did} (height {height}) is not stored here")
        block, index, event = found
        item = _evidence(blocks, event["member"], height, block, index, receipts_of(height, block))
        fields = {field: event[field] for field in ("public_key", "address", "roles")}
        evidence.append(item | fields)
    return evidence


def _certified_event(
    item: dict[str, Any], schedule: KeySchedule, chain_id: str, event_name: str
) -> tuple[dict[str, Any], BlockHeader]:
    """The one ``event_name`` event of the item's certified, successful tx result, and that block's header."""
    header = check_final(item, schedule, chain_id)
    raw, index = proven_receipt(item, header)
    if index >= header.tx_count:
        raise AuditError(f"the receipt is not a tx result of block {header.height}")
    receipt = codec.unpack(raw)
    if not (isinstance(receipt, list) and len(receipt) == 4 and receipt[1] == "ok"):
        raise AuditError("the receipt is not a successful tx result")
    events = [e for e in receipt[3] if isinstance(e, dict) and e.get("event") == event_name]
    if len(events) != 1:
        raise AuditError(f"the receipt holds no single {event_name} event")
    return events[0], header


def _scheduled_event(
    item: dict[str, Any], schedule: KeySchedule, chain_id: str, event_name: str, what: str
) -> tuple[dict[str, Any], int]:
    """The item's certified ``event_name`` event for a member already known; its effective height."""
    event, header = _certified_event(item, schedule, chain_id, event_name)
    effective = event.get("effective_height")
    if (
        event.get("member") != item.get("member")
        or not isinstance(effective, int)
        or effective < header.height + MIN_DELAY_BLOCKS
    ):
        raise AuditError(f"the {what}'s member or effective height is not the one the receipt names")
    if event["member"] not in schedule:
        raise AuditError(
            f"{event['member']!r} is neither a member of the genesis nor admitted by an earlier admission "
            "the export proves (field 'admissions')"
        )
    return event, effective


def _apply_rotation(item: dict[str, Any], schedule: KeySchedule, chain_id: str) -> None:
    event, effective = _scheduled_event(item, schedule, chain_id, ROTATION_EVENT, "rotation")
    member = event["member"]
    public_key, key_proof = bytes.fromhex(event["public_key"]), bytes.fromhex(event["proof"])
    if not verify(public_key, key_proof, ROTATION_TAG, chain_id, proof_body(member, public_key)):
        raise AuditError(f"the new key's proof that it is held is not valid for {member}")
    schedule.add(member, effective, public_key)


def _apply_voting_change(item: dict[str, Any], schedule: KeySchedule, chain_id: str) -> None:
    event, effective = _scheduled_event(item, schedule, chain_id, VOTING_EVENT, "voting change")
    voting = event.get("voting")
    if (
        not isinstance(voting, bool)
        or voting != item.get("voting")
        or effective != item.get("effective_height")
    ):
        raise AuditError("the voting change's effective height or voting is not the one the receipt names")
    schedule.set_voting(event["member"], effective, voting)


def _apply_admission(item: dict[str, Any], schedule: KeySchedule, chain_id: str) -> None:
    event, _ = _certified_event(item, schedule, chain_id, admission.EVENT)
    if any(item.get(field) != event.get(field) for field in ("member", "public_key", "address", "roles")):
        raise AuditError("the admission's member, key, address or roles are not the ones the receipt names")
    name, public_key = event["member"], bytes.fromhex(event["public_key"])
    if event.get("did") != did_from_public_key(public_key):
        raise AuditError(f"the DID the receipt admits for {name} is not its key's did:key")
    proof = bytes.fromhex(event["proof"])
    if not admission.proves_admission(proof, chain_id, name, public_key, event["address"], event["roles"]):
        raise AuditError(
            f"the admitted key's proof of possession is not its signature of {name}'s admission request "
            f"(with this address and these roles) on chain {chain_id}"
        )
    if not schedule.admit(name, public_key):
        raise AuditError(f"{name} is already a member")


@dataclass(frozen=True)
class ProvenKeys:
    """What the evidence proves: every member's keys and votes by height, and who was admitted when."""

    schedule: KeySchedule
    admissions: list[dict[str, Any]]  # {member, did, admitted_height}, in block order


def verify_key_changes(rotations: Any, changes: Any, admissions: Any, genesis: Genesis) -> ProvenKeys:
    """The genesis's schedule plus every admission, rotation and voting change the evidence proves.

    AuditError naming the first bad item (``admission N``, ``key rotation N`` or ``voting change N``).
    """
    steps = []
    for rank, (field, label, items, apply) in enumerate(
        (
            ("admissions", "admission", admissions, _apply_admission),
            ("key_rotations", "key rotation", rotations, _apply_rotation),
            ("voting_changes", "voting change", changes, _apply_voting_change),
        )
    ):
        if not isinstance(items, list):
            raise AuditError(f"field {field!r} is not a list")
        last = 0
        for number, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("height"), int) or item["height"] < last:
                raise AuditError(f"{label} {number}: not in height order")
            last = item["height"]
            steps.append((last, rank, label, number, item, apply))
    schedule = genesis_key_schedule(genesis)
    # A change decided at h takes effect at h + MIN_DELAY_BLOCKS at the earliest (checked), so replaying
    # by deciding height checks each block under every change that can concern it. An admission takes
    # effect at once, and goes before the changes decided in its own block, which may concern its
    # member; between rotations and voting changes, ties are moot.
    for _, _, label, number, item, apply in sorted(steps, key=lambda step: step[:2]):
        try:
            apply(item, schedule, genesis.chain_id)
        except AuditError as e:
            raise AuditError(f"{label} {number}: {e}") from None
        # Bad encodings, and what the schedule refuses (a member's name admitted with another key, a
        # change not after the last one).
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise AuditError(f"{label} {number}: {e}") from None
    admitted = [
        {
            "member": item["member"],
            "did": did_from_public_key(bytes.fromhex(item["public_key"])),
            "admitted_height": item["height"],
        }
        for item in admissions
    ]
    return ProvenKeys(schedule, admitted)
