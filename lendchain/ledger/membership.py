"""Who votes: the governance action ``member.voting`` and the voting set's schedule in state.

The genesis splits the consortium into voting members (``VOTING_MEMBERS_KEY``)
and observers (``OBSERVERS_KEY``); those two keys stay the founding roster
for good. Members admitted later (``ADMITTED_KEY``, see ``admission``) join
the roster after them and do not vote. A governance proposal moves one
member across, from a height on:

- ``gov.propose`` {action ``member.voting``, key: a member's DID (a genesis
  voter or observer, or an admitted member), value ``"voter"`` or ``"observer"``}, from rules
  version ``SINCE_RULES`` (before it the action does not exist: see
  ``rules``).
- Checked when proposed and again when the vote that reaches quorum executes
  it: the member exists; the change changes its status as of its last
  scheduled change; it has no change scheduled that is not yet effective (one
  pending change per member); at least one member still votes once every
  scheduled change and this one are in force; and ``key_rotation_delay_blocks``
  is at least ``MIN_DELAY_BLOCKS``. At execution a no-op is refused with
  ``duplicate`` and any other conflict with ``invalid_state``.
- Executed: ``VOTING_CHANGES_KEY`` gets ``[effective_height, voting]``
  appended under the member's name, with ``effective_height`` = executing
  block height + ``key_rotation_delay_blocks``, and the ledger event
  ``member.voting`` names it. The key is absent until the first change, so a
  chain that never changes its voters keeps its state roots.

The voters at height h (``voting_dids_at``) are the genesis voters, then the
observers, then the admitted members, each kept iff its last change effective
at or below h says it votes (a genesis voter starts voting, the others not). That order is also
the consensus member order (the primary of view v is voter v mod n), and the
set is what governance quorums count from h on.

Why the key rotation's delay: consensus judges a message for height h
against the members that vote at h. A node that executed block e knows every
change effective up to e + delay, the same *horizon* as its key schedule
(see ``keyrotation``), so one horizon covers both who signs and with which key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lendchain.ledger.addresses import current_addresses
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.keyrotation import MIN_DELAY_BLOCKS, delay_blocks, member_record
from lendchain.ledger.state import (
    VOTING_MEMBERS_KEY,
    StateReader,
    institution_key,
    read_value,
    roster_dids,
)

ACTION = "member.voting"
SINCE_RULES = 2  # the rules version that added the action
VOTING_CHANGES_KEY = b"voting"  # {member name: [[effective_height, voting], ...]}: changes only, in order
VOTER, OBSERVER = "voter", "observer"

Get = Callable[[bytes], Any]


@dataclass(frozen=True)
class MemberStatus:
    """Whether one member of the founding roster votes, as of some height."""

    did: str
    name: str
    voting: bool
    since: int  # the effective height of the change that set it (0: the genesis)


def _getter(source: TxContext | StateReader) -> Get:
    if isinstance(source, TxContext):
        return source.get
    return lambda key: read_value(source, key)


def voting_changes(reader: StateReader) -> dict[str, list[list[Any]]]:
    """Every executed change: member name -> [[effective_height, voting], ...] in order."""
    return read_value(reader, VOTING_CHANGES_KEY) or {}


def _statuses(get: Get, height: int | None) -> list[MemberStatus]:
    """Every member in consensus order, as of ``height`` (None: once every scheduled change is in force)."""
    changes = get(VOTING_CHANGES_KEY) or {}
    genesis_voters = set(get(VOTING_MEMBERS_KEY) or [])
    statuses = []
    for did in roster_dids(get):  # a genesis voter starts voting; an observer or admitted member not
        voting = did in genesis_voters
        name = get(institution_key(did))["name"]
        since = 0
        for effective_height, change in changes.get(name, []):
            if height is not None and effective_height > height:
                break
            voting, since = change, effective_height
        statuses.append(MemberStatus(did, name, voting, since))
    return statuses


def member_status(ctx: TxContext, did: str) -> MemberStatus:
    """Member ``did``'s status once every scheduled change is in force (``since``: from which height)."""
    return next(status for status in _statuses(ctx.get, None) if status.did == did)


def voting_dids_at(source: TxContext | StateReader, height: int) -> list[str]:
    """DIDs of the members that vote at block ``height``, in consensus order (see the module)."""
    get = _getter(source)
    if not get(VOTING_CHANGES_KEY):  # no change yet: the genesis voters, without reading the roster
        return list(get(VOTING_MEMBERS_KEY) or [])
    return [status.did for status in _statuses(get, height) if status.voting]


def voting_dids_after_changes(reader: StateReader) -> list[str]:
    """DIDs of the members that vote once every scheduled change is in force, in consensus order."""
    return [status.did for status in _statuses(_getter(reader), None) if status.voting]


def _refuse(message: str) -> TxRejected:
    return TxRejected("bad_payload", f"gov.propose {ACTION} {message}")


def _conflict(ctx: TxContext, change: dict[str, Any]) -> tuple[str, str] | None:
    """Why ``change`` cannot apply on the chain as of ``ctx``'s block: (code at execution, sentence)."""
    latest = _statuses(ctx.get, None)
    member = next(status for status in latest if status.did == change["did"])
    if member.voting == change["voting"]:
        already = "a voter" if member.voting else "an observer"
        when = f" from height {member.since}" if member.since > ctx.height else ""
        return "duplicate", f"{member.name} is already {already}{when}"
    if member.since > ctx.height:
        return "invalid_state", (
            f"{member.name} already has a change scheduled from height {member.since} "
            f"(this block is {ctx.height}): one pending change per member"
        )
    if not change["voting"] and not any(s.voting for s in latest if s.did != member.did):
        return "invalid_state", f"would leave no voting member once {member.name} is an observer"
    return None


def parse_voting_change(ctx: TxContext, member_did: str, value: str) -> dict[str, Any]:
    """The checked change ``{name, did, voting}``; refuses one that could not apply."""
    institution = member_record(ctx, member_did, _refuse)
    if value not in (VOTER, OBSERVER):
        raise _refuse(f"field 'value' must be {VOTER!r} or {OBSERVER!r}, got {value!r}")
    if delay_blocks(ctx.params) < MIN_DELAY_BLOCKS:
        raise _refuse(f"needs chain parameter key_rotation_delay_blocks >= {MIN_DELAY_BLOCKS}")
    change = {"name": institution["name"], "did": member_did, "voting": value == VOTER}
    conflict = _conflict(ctx, change)
    if conflict is not None:
        raise _refuse(conflict[1])
    return change


def apply_voting_change(ctx: TxContext, change: dict[str, Any]) -> None:
    """Schedule the change at this block's height + the delay (the quorum was just reached)."""
    conflict = _conflict(ctx, change)
    if conflict is not None:
        code, sentence = conflict
        raise TxRejected(code, f"{ACTION}: {sentence} (not so when it was proposed): propose it again")
    name, voting = change["name"], change["voting"]
    effective_height = ctx.height + delay_blocks(ctx.params)
    changes = dict(ctx.get(VOTING_CHANGES_KEY) or {})
    changes[name] = [*changes.get(name, []), [effective_height, voting]]
    ctx.put(VOTING_CHANGES_KEY, changes)
    ctx.emit(ACTION, member=name, did=change["did"], voting=voting, effective_height=effective_height)


def voting_view(reader: StateReader, name: str) -> dict[str, Any] | None:
    """``lookup(reader, "voting", name)``: the voters once every scheduled change is in force, and the changes.

    ``name`` ``*`` answers for every member, a member's name for that member's
    changes only. A reader does not know its height, so the voters shown are
    those after the last scheduled change; each change says from which height.
    """
    get = _getter(reader)
    statuses = _statuses(get, None)
    if name != "*" and all(status.name != name for status in statuses):
        return None
    changes = voting_changes(reader)
    shown = [
        {"member": status.name, "voting": voting, "effective_height": effective_height}
        for status in statuses
        if name in ("*", status.name)
        for effective_height, voting in changes.get(status.name, [])
    ]
    return {
        "voters_after_changes": [status.name for status in statuses if status.voting],
        "changes": sorted(shown, key=lambda change: change["effective_height"]),
    }


def members_view(reader: StateReader, name: str) -> dict[str, Any] | None:
    """``lookup(reader, "members", name)``: every member (``*``) or one, as the chain records it.

    In member order: the genesis's voters, its observers, then admitted members.
    Each with its roles, whether it votes once every scheduled change is in force
    (and from which height), how it joined, its address when the chain records
    one (an admission or a ``member.address`` change; a founding member's is in
    the genesis), and its removal if it was removed.
    """
    get = _getter(reader)
    moved = current_addresses(reader)
    shown = []
    for status in _statuses(get, None):
        if name not in ("*", status.name):
            continue
        record = get(institution_key(status.did))
        admitted = "admitted_height" in record
        address = moved.get(status.name) or record.get("address")
        shown.append(
            {
                "name": status.name,
                "did": status.did,
                "roles": list(record["roles"]),
                "voting": status.voting and "removed_height" not in record,
                "voting_since": status.since,
                "joined": "admitted" if admitted else "genesis",
                **({"admitted_height": record["admitted_height"]} if admitted else {}),
                **({"address": address} if address else {}),
                **(
                    {"removed_height": record["removed_height"], "removal_reason": record["removal_reason"]}
                    if "removed_height" in record
                    else {}
                ),
            }
        )
    return {"members": shown} if shown else None
