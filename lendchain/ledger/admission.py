"""Admitting a new institution: the governance action ``member.admit`` (rules version 3).

The genesis names the founding members. A bank that joins later is admitted
by the voting members, with no new genesis:

- ``gov.propose`` {action ``member.admit``, key: the new member's short name,
  value ``"<public key hex>:<proof hex>:<roles>:<address>"``}, from rules
  version ``SINCE_RULES``. ``roles`` is comma-separated (may be empty) and
  ``address`` the multiaddr its node listens on (``/ip4/…/tcp/…`` or
  ``/dns4/…/tcp/…``), last because an IPv6 address holds colons. The proof
  is the new key's signature over ``signing_bytes(ADMISSION_TAG, chain_id,
  [name, public key, address, roles])``: nobody admits a key they do not
  hold, and a request made for one chain, name, address or role set is
  worthless for another. ``lendchain gov admission-request`` builds it on the
  joining bank's side, where the key is.
- Checked when proposed and again when the vote that reaches quorum executes
  it: the name is well-formed and no member's, the key is no member's (now
  or scheduled, ``keyrotation``) and its did:key never sent a transaction,
  the roles are known, the address well-formed, the proof verifies.
- Executed: the member's record goes under ``institution_key(did)`` (name,
  public key, roles, ``voting`` False, address, ``admitted_height``), its DID
  is appended to ``ADMITTED_KEY`` (member order: the genesis's voters, its
  observers, then admitted members in admission order), and the event
  ``member.admitted`` carries all of it, the proof included, for audit
  exports.

An admitted member is a member at once: its roles count from the next
transaction, its nodes' peers accept its node key (the network's allow-list
and links grow when they commit the block), and it may rotate its key. It
does not vote: promoting it is a separate ``member.voting`` proposal, which
takes effect ``key_rotation_delay_blocks`` after it executes, so consensus
never has to know about the admission before its horizon (see
``membership``).
"""

from __future__ import annotations

import re
from typing import Any

from lendchain.crypto import did_from_public_key, verify
from lendchain.genesis import ROLES, Member, address_problem
from lendchain.ledger.addresses import current_addresses
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.keyrotation import key_in_use
from lendchain.ledger.state import ADMITTED_KEY, StateReader, institution_key, read_value, roster_dids

ACTION = "member.admit"
SINCE_RULES = 3  # the rules version that added the action
ADMISSION_TAG = "lendchain/admission/1"
EVENT = "member.admitted"
NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
_VALUE = re.compile(r"([0-9a-f]{64}):([0-9a-f]{128}):([a-z_,]*):(/.+)")


def proof_body(name: str, public_key: bytes, address: str, roles: list[str]) -> list[Any]:
    """What the new key signs (under ``ADMISSION_TAG`` and the chain id) to ask for admission."""
    return [name, public_key, address, list(roles)]


def proves_admission(
    proof: bytes, chain_id: str, name: str, public_key: bytes, address: str, roles: list[str]
) -> bool:
    """Whether ``proof`` is ``public_key``'s signature of ``name``'s request (address, roles) on ``chain_id``.

    False for a key that is no curve point, as for any bad signature.
    """
    return verify(public_key, proof, ADMISSION_TAG, chain_id, proof_body(name, public_key, address, roles))


def admission_value(public_key: bytes, proof: bytes, roles: list[str], address: str) -> str:
    """The ``value`` of a ``member.admit`` proposal."""
    return f"{public_key.hex()}:{proof.hex()}:{','.join(roles)}:{address}"


def _refuse(message: str) -> TxRejected:
    return TxRejected("bad_payload", f"gov.propose {ACTION} {message}")


def _conflict(ctx: TxContext, admission: dict[str, Any]) -> str | None:
    """Why ``admission`` cannot apply on the chain as of ``ctx``'s block (a name or key taken)."""
    for did in roster_dids(ctx.get):
        if ctx.get(institution_key(did))["name"] == admission["name"]:
            return f"name {admission['name']!r} is already a member's"
    holder = key_in_use(ctx, admission["public_key"])
    if holder is not None:
        return f"key {admission['public_key'].hex()[:16]}… is already {holder}"
    return None


def parse_admission(ctx: TxContext, chain_id: str, name: str, value: str) -> dict[str, Any]:
    """The checked admission ``{name, public_key, proof, roles, address}``; refuses one that could not apply."""
    if not NAME.fullmatch(name):
        raise _refuse(f"field 'key' must be the new member's name (letters, digits, '-', '_'), not {name!r}")
    match = _VALUE.fullmatch(value)
    if match is None:
        raise _refuse(
            "field 'value' must be '<public key, 64 hex>:<proof, 128 hex>:<roles>:<address>'; "
            "build it with `lendchain gov admission-request` on the joining member's side"
        )
    public_key, proof = bytes.fromhex(match[1]), bytes.fromhex(match[2])
    roles = sorted(set(match[3].split(","))) if match[3] else []
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise _refuse(f"has unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")
    address = match[4]
    problem = address_problem(address)
    if problem is not None:
        raise _refuse(f"address {problem}")
    if not proves_admission(proof, chain_id, name, public_key, address, roles):
        raise _refuse(
            f"proof is not the new key's signature of {name}'s admission request "
            f"(with this address and these roles) on chain {chain_id}"
        )
    admission = {"name": name, "public_key": public_key, "proof": proof, "roles": roles, "address": address}
    conflict = _conflict(ctx, admission)
    if conflict is not None:
        raise _refuse(conflict)
    return admission


def apply_admission(ctx: TxContext, admission: dict[str, Any]) -> None:
    """Make the new member one (the quorum was just reached)."""
    conflict = _conflict(ctx, admission)
    if conflict is not None:
        raise TxRejected("duplicate", f"{ACTION}: {conflict} (not so when it was proposed)")
    public_key = admission["public_key"]
    did = did_from_public_key(public_key)
    ctx.put(
        institution_key(did),
        {
            "name": admission["name"],
            "public_key": public_key,
            "roles": list(admission["roles"]),
            "voting": False,
            "address": admission["address"],
            "admitted_height": ctx.height,
        },
    )
    ctx.put(ADMITTED_KEY, [*(ctx.get(ADMITTED_KEY) or []), did])
    ctx.emit(
        EVENT,
        member=admission["name"],
        did=did,
        public_key=public_key.hex(),
        roles=list(admission["roles"]),
        address=admission["address"],
        proof=admission["proof"].hex(),
    )


def admitted_members(reader: StateReader) -> list[Member]:
    """Every member admitted after the genesis, in admission order, as its node's peers see it.

    The address is the one the last ``member.address`` change recorded, else the admitted one.
    """
    members = []
    moved = current_addresses(reader)
    for did in read_value(reader, ADMITTED_KEY) or []:
        record = read_value(reader, institution_key(did))
        address = moved.get(record["name"], record["address"])
        members.append(Member(record["name"], record["public_key"], address, tuple(record["roles"]), False))
    return members
