"""Where a member's node listens: the governance action ``member.address`` (rules version 3).

The genesis (or a member's admission) gives each member's node address; the
other nodes dial only that address, so a bank that moves its node (a new
data centre, a new IP) needs the members to record the new one:

- ``gov.propose`` {action ``member.address``, key: the member's DID, value:
  the new multiaddr (``/ip4/…/tcp/…``, ``/dns4/…/tcp/…``)}, from rules
  version ``SINCE_RULES``.
- Checked when proposed: the member exists and is not removed, the address
  is well-formed and is not the one the chain records for it already; when
  executed, that the member was not removed meanwhile (``governance``, for
  every change that names a member).
- Executed: ``ADDRESSES_KEY`` maps the member's name to the address, and the
  event ``member.address`` names it. Every node dials the new address from
  the block on (``current_addresses``); a link that is up stays up.

Nothing here needs the member's own signature: an address only says where
to dial, and a node proves who it is by its key at every handshake, so a
wrong address can cost a member its outbound links from the others (its own
dials still reach them), never its identity. The key is absent until the
first change, so a chain that never moves a node keeps its state roots.
"""

from __future__ import annotations

from typing import Any

from lendchain.genesis import address_problem
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.keyrotation import member_record
from lendchain.ledger.state import ADDRESSES_KEY, StateReader, read_value

ACTION = "member.address"
SINCE_RULES = 3  # the rules version that added the action
EVENT = "member.address"


def current_addresses(reader: StateReader) -> dict[str, str]:
    """Member name -> the address recorded by its last ``member.address`` change (none: as admitted)."""
    return read_value(reader, ADDRESSES_KEY) or {}


def _refuse(message: str) -> TxRejected:
    return TxRejected("bad_payload", f"gov.propose {ACTION} {message}")


def parse_address_change(ctx: TxContext, did: str, address: str) -> dict[str, Any]:
    """The checked change ``{name, did, address}``; refuses one that could not apply."""
    institution = member_record(ctx, did, _refuse)
    problem = address_problem(address)
    if problem is not None:
        raise _refuse(f"field 'value' {problem}")
    name = institution["name"]
    # A founding member's genesis address is not in the state: moving it "back" there is allowed.
    if address == ((ctx.get(ADDRESSES_KEY) or {}).get(name) or institution.get("address")):
        raise _refuse(f"{address} is {name}'s address already")
    return {"name": name, "did": did, "address": address}


def apply_address_change(ctx: TxContext, change: dict[str, Any]) -> None:
    """Record the member's new address (the quorum was just reached; governance checked it is one)."""
    ctx.put(ADDRESSES_KEY, {**(ctx.get(ADDRESSES_KEY) or {}), change["name"]: change["address"]})
    ctx.emit(EVENT, member=change["name"], did=change["did"], address=change["address"])
