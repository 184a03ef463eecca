"""Node key rotation: the governance action ``member.rotate_key`` and the key schedule in state.

A member's *node key* signs its consensus messages and is its libp2p identity.
The genesis fixes the first one; a governance proposal replaces it:

- ``gov.propose`` {action ``member.rotate_key``, key: the member's DID,
  value ``"<new public key hex>:<proof hex>"``}. The proof is the NEW key's
  signature over ``signing_bytes(ROTATION_TAG, chain_id, [member name, new
  public key])``, so nobody can schedule a key they do not hold for anyone,
  and a proof made for one member or one chain is worthless for another.
- Checked when proposed: the member exists (a voter or an observer: an
  observer's key signs its transactions, and consensus messages once it
  votes, see ``membership``), the key is 32 bytes, the proof verifies, and
  the key is no member's genesis key and appears in no member's schedule (a
  key is never reused, not even by its owner).
- Executed at the 2f+1 quorum like every proposal: ``NODE_KEYS_KEY`` gets
  ``[effective_height, public_key]`` appended under the member's name, with
  ``effective_height`` = executing block height + ``key_rotation_delay_blocks``
  (chain parameter, default 20 in ``params``, at least
  ``MIN_DELAY_BLOCKS``; fixed by the genesis, see ``params``). Uniqueness is checked again at execution (two open
  proposals may name the same key); the vote that would execute a conflicting
  one is refused with ``duplicate``.

Why a delay: consensus verifies a message for height h with the key valid at
h. A node that executed block e knows every rotation with an effective height
up to e + delay (a rotation executed later takes effect later still), so the
consensus core treats its schedule as complete up to that *horizon* and never
judges a message above it (see ``lendchain.consensus.keys``). A node votes only
at its committed height + 1, so a delay of 2 is already safe; the default
leaves room for a lagging node to keep judging its peers' messages normally.

The key that signs the member's transactions moves with it. The member's
ledger identity stays its genesis DID (loans, offers, votes and attestations
name that DID), but from the effective height on a transaction acts for the
member only when signed by the key valid at the block's height:

- the new key's did:key then acts as the member (``acting_sender``: handlers
  see the genesis DID as the sender; the nonce stays the signer's own);
- a key the member has replaced, the genesis key included, is refused
  (``forbidden``), so a rotation made because a key leaked also takes the
  member's ledger powers from whoever holds the old key;
- a key scheduled but not yet effective is refused too, and a rotation to a
  key whose did:key already acted on the ledger (has a nonce) is refused, so
  a member's signer never carries history of its own.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lendchain.consensus.keys import KeySchedule
from lendchain.crypto import did_from_public_key, verify
from lendchain.genesis import Genesis
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.params import value
from lendchain.ledger.state import (
    REMOVED_KEY,
    StateReader,
    institution_key,
    nonce_key,
    read_value,
    roster_dids,
)
from lendchain.ledger.transactions import Transaction

ACTION = "member.rotate_key"
ROTATION_TAG = "lendchain/key-rotation/1"
NODE_KEYS_KEY = b"nodekeys"  # {member name: [[effective_height, public_key], ...]} rotations only
MIN_DELAY_BLOCKS = 2
_VALUE = re.compile(r"([0-9a-f]{64}):([0-9a-f]{128})")


def proof_body(member_name: str, public_key: bytes) -> list[Any]:
    """What the new key signs (under ``ROTATION_TAG`` and the chain id) to prove it is held."""
    return [member_name, public_key]


def rotation_value(public_key: bytes, proof: bytes) -> str:
    """The ``value`` of a ``member.rotate_key`` proposal."""
    return f"{public_key.hex()}:{proof.hex()}"


def delay_blocks(params: dict[str, Any]) -> int:
    return int(value(params, "key_rotation_delay_blocks"))


def genesis_key_schedule(genesis: Genesis) -> KeySchedule:
    """The genesis's members (voting from height 0) and observers (not voting), with their genesis keys."""
    return KeySchedule(
        [(m.name, m.public_key) for m in genesis.members],
        others=[(m.name, m.public_key) for m in genesis.observers],
    )


def scheduled_rotations(reader: StateReader) -> dict[str, list[list[Any]]]:
    """Every executed rotation: member name -> [[effective_height, public_key], ...] in order."""
    return read_value(reader, NODE_KEYS_KEY) or {}


def _refuse(message: str) -> TxRejected:
    return TxRejected("bad_payload", f"gov.propose {ACTION} {message}")


def member_record(ctx: TxContext, did: str, refuse: Callable[[str], TxRejected]) -> dict[str, Any]:
    """The record of member ``did``, which a governance change names: it must exist and not be removed."""
    institution = ctx.get(institution_key(did))
    if institution is None:
        raise refuse(f"field 'key' names no consortium member ({did})")
    if "removed_height" in institution:
        raise refuse(f"{institution['name']} was removed at height {institution['removed_height']}")
    return institution


def key_in_use(ctx: TxContext, public_key: bytes) -> str | None:
    """Who holds, held or used ``public_key``: a member (genesis or scheduled), or its did:key."""
    did = did_from_public_key(public_key)
    holder = ctx.get(institution_key(did))
    if holder is not None:
        return f"{holder['name']}'s node key (now or scheduled)"
    for name, entries in (ctx.get(NODE_KEYS_KEY) or {}).items():
        if any(entry[1] == public_key for entry in entries):
            return f"{name}'s node key (now or scheduled)"
    if ctx.get(nonce_key(did)):
        # It will sign for the member: a signer with transactions of its own would mix histories.
        return f"the signer of {did}'s own transactions"
    return None


def parse_rotation(ctx: TxContext, chain_id: str, member_did: str, value: str) -> dict[str, Any]:
    """The checked rotation ``{name, public_key, proof}``; refuses one that could not apply."""
    institution = member_record(ctx, member_did, _refuse)
    match = _VALUE.fullmatch(value)
    if match is None:
        raise _refuse(
            "field 'value' must be '<new public key, 64 hex>:<proof, 128 hex>'; "
            "build it with `lendchain gov propose-rotate-key`"
        )
    public_key, proof = bytes.fromhex(match[1]), bytes.fromhex(match[2])
    name = institution["name"]
    if delay_blocks(ctx.params) < MIN_DELAY_BLOCKS:
        raise _refuse(f"needs chain parameter key_rotation_delay_blocks >= {MIN_DELAY_BLOCKS}")
    try:
        proven = verify(public_key, proof, ROTATION_TAG, chain_id, proof_body(name, public_key))
    except Exception:  # a public key that is not a curve point
        proven = False
    if not proven:
        raise _refuse(f"proof is not the new key's signature of {name}'s rotation on chain {chain_id}")
    holder = key_in_use(ctx, public_key)
    if holder is not None:
        raise _refuse(f"new key {public_key.hex()[:16]}… is already {holder}")
    return {"name": name, "public_key": public_key, "proof": proof}


def apply_rotation(ctx: TxContext, rotation: dict[str, Any]) -> None:
    """Schedule the rotation at this block's height + the delay (the quorum was just reached)."""
    name, public_key = rotation["name"], rotation["public_key"]
    holder = key_in_use(ctx, public_key)
    if holder is not None:
        raise TxRejected("duplicate", f"{ACTION}: key {public_key.hex()[:16]}… became {holder} meanwhile")
    effective_height = ctx.height + delay_blocks(ctx.params)
    schedule = dict(ctx.get(NODE_KEYS_KEY) or {})
    schedule[name] = [*schedule.get(name, []), [effective_height, public_key]]
    ctx.put(NODE_KEYS_KEY, schedule)
    ctx.emit(
        "member.key_rotation",
        member=name,
        public_key=public_key.hex(),
        effective_height=effective_height,
        proof=rotation["proof"].hex(),
    )


@dataclass(frozen=True)
class MemberSigner:
    """One key of a member that has rotated: whose it is and from which height."""

    name: str
    member_did: str  # the genesis DID: the member's ledger identity
    heights: tuple[int, ...]  # the effective heights of the member's keys, in order (0 first)
    position: int  # which of them this signer is
    removed_at: int | None = None  # the height of the block that removed the member (``removal``)

    def replaced_at(self, height: int) -> bool:
        """Whether a later key of the member signs for it at ``height`` (this one never will again)."""
        return self.position < bisect_right(self.heights, height) - 1

    def refusal(self, did: str, height: int) -> TxRejected | None:
        """Why ``did`` (this key's did:key) cannot sign for the member at ``height``; None if it can."""
        if self.removed_at is not None and height > self.removed_at:
            return TxRejected(
                "forbidden",
                f"sender {did} is a key of {self.name}, which was removed from the consortium at "
                f"height {self.removed_at} (member.remove): it signs nothing from then on",
            )
        current = bisect_right(self.heights, height) - 1
        if self.position < current:
            return self.replaced(did)
        if self.position > current:
            return TxRejected(
                "forbidden",
                f"sender {did} is {self.name}'s next key, which signs for {self.name} from "
                f"height {self.heights[self.position]} (this block is {height})",
            )
        return None

    def replaced(self, did: str) -> TxRejected:
        return TxRejected(
            "forbidden",
            f"sender {did} is {self.name}'s replaced key (its successor signs from height "
            f"{self.heights[self.position + 1]}): sign with {self.name}'s current node key",
        )


def rotatable_members(reader: StateReader) -> list[str]:
    """DIDs of every member with a node key: the genesis's voters and observers, then admitted members."""
    return roster_dids(lambda key: read_value(reader, key))


def member_signers(reader: StateReader) -> dict[str, MemberSigner]:
    """did:key of every key of every member that has rotated or was removed -> its ``MemberSigner``.

    Empty (two state reads) until the first rotation or removal; a block reads it once.
    """
    rotations = scheduled_rotations(reader)
    removed = read_value(reader, REMOVED_KEY) or {}
    if not rotations and not removed:
        return {}
    signers = {}
    for did in rotatable_members(reader):
        name = read_value(reader, institution_key(did))["name"]
        entries = rotations.get(name, [])
        if not entries and name not in removed:
            continue
        heights = (0, *(height for height, _ in entries))
        dids = (did, *(did_from_public_key(key) for _, key in entries))
        for position, signer in enumerate(dids):
            signers[signer] = MemberSigner(name, did, heights, position, removed.get(name))
    return signers


def acting_sender(signers: dict[str, MemberSigner], tx: Transaction, height: int) -> Transaction:
    """``tx`` as its handler sees it: a rotated member's current key acts as the member.

    Raises ``forbidden`` for a key the member has replaced or has not yet
    switched to. Anyone else's tx is returned unchanged.
    """
    signer = signers.get(tx.sender)
    if signer is None:
        return tx
    refusal = signer.refusal(tx.sender, height)
    if refusal is not None:
        raise refusal
    if tx.sender == signer.member_did:
        return tx
    # The wire form (and so the id) stays the signed one; the handler reads the member's DID.
    return Transaction(
        tx.chain_id,
        tx.kind,
        signer.member_did,
        tx.nonce,
        tx.created_ms,
        tx.payload,
        tx.signature,
        tx.encode(),
    )


def node_keys_view(reader: StateReader, name: str) -> dict[str, Any] | None:
    """``lookup(reader, "node_keys", name)``: the genesis key and every rotation of member ``name``.

    ``name`` ``*`` answers every voting member. The key valid at height h is the
    last rotation whose effective height is at or below h, else the genesis key.
    """
    members = []
    for did in rotatable_members(reader):
        institution = read_value(reader, institution_key(did))
        if name in ("*", institution["name"]):
            members.append(institution)
    if not members:
        return None
    rotations = scheduled_rotations(reader)
    return {
        "members": [
            {
                "name": member["name"],
                "genesis_key": member["public_key"].hex(),
                "rotations": [
                    {"effective_height": height, "public_key": key.hex(), "did": did_from_public_key(key)}
                    for height, key in rotations.get(member["name"], [])
                ],
            }
            for member in members
        ]
    }
