"""The admission request: what a joining bank hands the members, and how a member checks it.

A bank the genesis does not name asks to join with a small JSON file that
``lendchain gov admission-request`` writes on its side, where its node key
is: the chain id, its name, public key and did:key, node address and roles,
the key's proof (``lendchain.ledger.admission``) and the ``member.admit``
proposal value they add up to. ``lendchain gov propose-admit`` reads the file
on a voting member's side and refuses, before anything is signed or sent, a
request the ledger would refuse for its form or its proof, and one whose
fields a person reads do not match the value that would be proposed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lendchain.crypto import SigningKey, did_from_public_key
from lendchain.genesis import ROLES, Genesis, address_problem
from lendchain.ledger.admission import ADMISSION_TAG, NAME, admission_value, proof_body, proves_admission
from lendchain.ledger.kinds import lookup_kind

REQUEST_FIELDS = ("chain_id", "name", "public_key", "did", "address", "roles", "proof", "value")
CHAIN_ID_MAX = 64  # as a genesis allows


def _value_limit() -> int:
    """The longest ``gov.propose`` value the ledger takes (an address can make an admission's too long)."""
    [value_field] = [f for f in lookup_kind("gov.propose").schema.fields if f.name == "value"]
    return value_field.max


def name_problem(name: str) -> str | None:
    if NAME.fullmatch(name):
        return None
    return f"{name!r} is no member name: 1 to 40 letters, digits, '-' or '_'"


def roles_problem(roles: list[str]) -> str | None:
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        return f"{unknown[0]!r} is no role; roles are {', '.join(ROLES)}"
    return None


def parse_roles(text: str) -> list[str]:
    """Comma-separated roles as the proof signs them: sorted, each once (``""``: none)."""
    return sorted({role.strip() for role in text.split(",") if role.strip()})


def make_request(key: SigningKey, chain_id: str, name: str, address: str, roles: list[str]) -> dict[str, Any]:
    """The request file's content: ``key`` proves it asks ``name``'s admission to ``chain_id``."""
    roles = sorted(set(roles))
    proof = key.sign(ADMISSION_TAG, chain_id, proof_body(name, key.public_key, address, roles))
    value = admission_value(key.public_key, proof, roles, address)
    limit = _value_limit()
    if len(value) > limit:
        raise click.BadParameter(
            f"is too long: the proposal would be {len(value)} characters and the ledger takes {limit}",
            param_hint="'--address'",
        )
    return {
        "chain_id": chain_id,
        "name": name,
        "public_key": key.public_key.hex(),
        "did": key.did,
        "address": address,
        "roles": roles,
        "proof": proof.hex(),
        "value": value,
    }


@dataclass(frozen=True)
class AdmissionRequest:
    """A request file that passed every check a member can make without the chain."""

    chain_id: str
    name: str
    public_key: bytes
    address: str
    roles: tuple[str, ...]
    proof: bytes

    @property
    def did(self) -> str:
        return did_from_public_key(self.public_key)

    @property
    def value(self) -> str:
        return admission_value(self.public_key, self.proof, list(self.roles), self.address)


def _refuse(path: str, problem: str) -> click.BadParameter:
    return click.BadParameter(f"{path} {problem}", param_hint="'REQUEST_FILE'")


def _hex(path: str, document: dict[str, Any], field: str, size: int) -> bytes:
    text = document[field]
    if not isinstance(text, str) or not re.fullmatch(f"[0-9a-f]{{{2 * size}}}", text):
        raise _refuse(path, f"field {field!r} must be {2 * size} lower-case hex digits")
    return bytes.fromhex(text)


def read_request(path: str) -> AdmissionRequest:
    """The admission request in ``path``, checked in full but for its chain (the caller's node knows it)."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as e:
        raise _refuse(path, f"cannot be read: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        raise _refuse(path, "is not an admission request (the JSON `gov admission-request` writes)")
    missing = [field for field in REQUEST_FIELDS if field not in document]
    if missing:
        raise _refuse(path, f"lacks the field(s) {', '.join(missing)}; ask the joining bank for all of it")
    for field in ("chain_id", "name", "did", "address", "value"):
        if not isinstance(document[field], str):
            raise _refuse(path, f"field {field!r} must be a string")
    roles = document["roles"]
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise _refuse(path, "field 'roles' must be a list of role names")
    for problem in (name_problem(document["name"]), roles_problem(roles)):
        if problem is not None:
            raise _refuse(path, f"is refused: {problem}")
    problem = address_problem(document["address"])
    if problem is not None:
        raise _refuse(path, f"field 'address' {problem}")
    request = AdmissionRequest(
        chain_id=document["chain_id"],
        name=document["name"],
        public_key=_hex(path, document, "public_key", 32),
        address=document["address"],
        roles=tuple(sorted(set(roles))),
        proof=_hex(path, document, "proof", 64),
    )
    if not proves_admission(
        request.proof,
        request.chain_id,
        request.name,
        request.public_key,
        request.address,
        list(request.roles),
    ):
        raise _refuse(
            path,
            f"has a proof that is not its key's signature of {request.name}'s request (this name, address "
            f"and these roles on chain {request.chain_id!r}): it was changed after it was signed, or "
            "signed with another key; ask the joining bank for a new one",
        )
    if document["did"] != request.did:
        raise _refuse(path, f"field 'did' is not the did:key of its public key ({request.did})")
    if document["value"] != request.value:
        raise _refuse(path, "field 'value' is not the one its other fields make: it was edited since")
    return request


def describe_admission(name: str, value: str) -> str:
    """A ``member.admit`` proposal as a person reads it: name, address, roles, key prefix and did:key."""
    public_key, _proof, roles, address = value.split(":", 3)
    did = did_from_public_key(bytes.fromhex(public_key))
    return f"{name} at {address}, roles {roles or 'none'}, key {public_key[:16]}… ({did})"


# click callbacks for the options of the commands a joining bank runs.


def check_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise click.BadParameter(problem)
    return name


def check_address(ctx: click.Context, param: click.Parameter, address: str) -> str:
    problem = address_problem(address)
    if problem is not None:
        raise click.BadParameter(problem)
    return address


def check_roles(ctx: click.Context, param: click.Parameter, text: str) -> list[str]:
    roles = parse_roles(text)
    problem = roles_problem(roles)
    if problem is not None:
        raise click.BadParameter(problem)
    return roles


def refuse_founding_name(genesis: Genesis, name: str, genesis_path: str) -> None:
    """Refuse a joining bank's NAME that the genesis already gives a founding member."""
    if genesis.member(name) is not None:
        raise click.BadParameter(f"{name!r} is already a member in {genesis_path}", param_hint="'NAME'")
