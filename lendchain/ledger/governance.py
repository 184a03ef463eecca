"""Governance: changes to the scorecard, members' roles, keys and votes, and the rules, at a 2f+1 quorum.

Kinds:

- ``gov.propose`` {action, key, value}: a voting member proposes a change and
  votes for it. Actions:

  - ``scorecard.set``: ``key`` is a scorecard entry (``base``, ``min``,
    ``max``, ``on_time_points``, ``on_time_cap``, ``late_points``,
    ``late_cap``, ``default_points``) with an integer ``value``, or
    ``tables.<factor>`` with ``value`` ``"bound:points,…"`` (bounds strictly
    increasing);
  - ``member.roles``: ``key`` is a member's DID, ``value`` its new
    comma-separated roles;
  - ``member.rotate_key``: ``key`` is a member's DID (a voter's or an
    observer's), ``value`` ``"<new node public key hex>:<proof hex>"``;
    scheduled to take effect ``key_rotation_delay_blocks`` after execution
    (see ``keyrotation``);
  - ``member.voting`` (from rules version 2): ``key`` is a member's DID,
    ``value`` ``voter`` or ``observer``: the member votes, or stops voting,
    from ``key_rotation_delay_blocks`` after execution (see ``membership``);
  - ``member.admit`` (from rules version 3): ``key`` is a new member's
    name, ``value`` ``"<public key hex>:<proof hex>:<roles>:<address>"``:
    an institution the genesis does not name joins, as a member that does
    not vote (see ``admission``);
  - ``member.remove`` (from rules version 3): ``key`` is a member's DID
    (one that does not vote), ``value`` the reason: none of its keys signs
    anything from the next block on (see ``removal``);
  - ``member.address`` (from rules version 3): ``key`` is a member's DID,
    ``value`` its node's new address, which every node dials from then on
    (see ``addresses``);
  - ``rules.upgrade``: ``key`` is the next rules version, ``value`` the
    height it starts at, or ``cancel`` for a pending one (see ``rules``);
  - ``params.set`` (from rules version 6): ``key`` is a chain parameter's
    name, ``value`` its new value as text, in force from the next block
    (see ``params_change``, and ``params`` for what each may be).

  The value is checked when proposed, so a proposal that reaches quorum
  applies, unless the chain moved past it meanwhile (a key taken, an upgrade
  height too close, a member's vote already changed): then the vote that
  would execute it is refused.
- ``gov.vote`` {proposal_id}: another voting member votes for it. When the
  votes reach ``2f+1`` of the ``n`` members that vote at the block's height
  (``membership.voting_dids_at``: the genesis voters until a ``member.voting``
  change takes effect), the change is applied in that same transaction and
  the proposal records who voted and at which height it was executed. A vote
  counts while its voter votes: one cast by a member that stopped voting
  since is kept in the record but no longer counts towards the quorum.

Expiry. A proposal is open for ``voting_period_ms`` of block time (chain
parameter, default one week): it records ``expires_ms`` = proposal block
time + period. A vote in a block whose time is at or past ``expires_ms`` is
refused with code ``expired``, so an expired proposal is never executed. At
the start of every block (a block hook, see ``kinds``) the ledger marks the
open proposals whose time is up as ``expired`` (event ``gov.expired`` in the
block's ledger events), so queries show them as such; open proposals are
kept in ``gov/open`` as ``[expires_ms, proposal_id]`` sorted, and at most
``MAX_EXPIRIES_PER_BLOCK`` are marked per block (the rest in later blocks;
votes are refused on time alone in the meantime).
"""

from __future__ import annotations

import re
from bisect import insort
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from lendchain.genesis import ROLES
from lendchain.ledger.addresses import ACTION as MEMBER_ADDRESS
from lendchain.ledger.addresses import SINCE_RULES as MEMBER_ADDRESS_SINCE
from lendchain.ledger.addresses import apply_address_change, parse_address_change
from lendchain.ledger.admission import ACTION as MEMBER_ADMIT
from lendchain.ledger.admission import SINCE_RULES as MEMBER_ADMIT_SINCE
from lendchain.ledger.admission import apply_admission, parse_admission
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.keyrotation import ACTION as ROTATE_KEY
from lendchain.ledger.keyrotation import apply_rotation, member_record, parse_rotation
from lendchain.ledger.kinds import register_block_hook, register_kind
from lendchain.ledger.membership import ACTION as MEMBER_VOTING
from lendchain.ledger.membership import SINCE_RULES as MEMBER_VOTING_SINCE
from lendchain.ledger.membership import apply_voting_change, parse_voting_change, voting_dids_at
from lendchain.ledger.params import value as param
from lendchain.ledger.params_change import ACTION as PARAMS_SET
from lendchain.ledger.params_change import SINCE_RULES as PARAMS_SET_SINCE
from lendchain.ledger.params_change import apply_params_change, parse_params_change
from lendchain.ledger.removal import ACTION as MEMBER_REMOVE
from lendchain.ledger.removal import SINCE_RULES as MEMBER_REMOVE_SINCE
from lendchain.ledger.removal import apply_removal, parse_removal
from lendchain.ledger.rules import ACTION as RULES_UPGRADE
from lendchain.ledger.rules import check_upgrade, schedule_upgrade
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.scoring import DEFAULT_SCORECARD, REPORT_FACTORS, SCORECARD_KEY
from lendchain.ledger.state import institution_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

ACTIONS = (
    "scorecard.set",
    "member.roles",
    ROTATE_KEY,
    RULES_UPGRADE,
    MEMBER_VOTING,
    MEMBER_ADMIT,
    MEMBER_REMOVE,
    MEMBER_ADDRESS,
    PARAMS_SET,
)
SCORECARD_INTS = (
    "base",
    "min",
    "max",
    "on_time_points",
    "on_time_cap",
    "late_points",
    "late_cap",
    "default_points",
)
OPEN_PROPOSALS_KEY = b"gov/open"
MAX_EXPIRIES_PER_BLOCK = 64
_INT = r"-?\d{1,7}"
_TABLE = re.compile(rf"{_INT}:{_INT}(,{_INT}:{_INT}){{0,15}}")


def proposal_key(proposal_id: bytes) -> bytes:
    return b"proposal/" + proposal_id


def quorum(n: int) -> int:
    """2f+1 for n = 3f+1 members (f = (n−1)//3), as PBFT counts."""
    return 2 * ((n - 1) // 3) + 1


def scorecard_of(ctx: TxContext) -> dict[str, Any]:
    return ctx.get(SCORECARD_KEY) or DEFAULT_SCORECARD


def _refuse(message: str) -> TxRejected:
    return TxRejected("bad_payload", f"gov.propose {message}")


def parse_change(ctx: TxContext, action: str, key: str, value: str) -> Any:
    """The checked value the change will store; refuses a change that could not apply."""
    if action == "member.roles":
        if ctx.get(institution_key(key)) is None:
            raise _refuse(f"field 'key' names no consortium member ({key})")
        roles = sorted(set(value.split(","))) if value else []
        unknown = [role for role in roles if role not in ROLES]
        if unknown:
            raise _refuse(f"field 'value' has unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")
        return roles
    if key in SCORECARD_INTS:
        if not re.fullmatch(_INT, value):
            raise _refuse(f"field 'value' must be an integer for scorecard entry {key!r}, got {value!r}")
        card = {**scorecard_of(ctx), key: int(value)}
        if card["min"] > card["max"]:
            raise _refuse(
                f"field 'value' would make the scorecard's min {card['min']} above its max {card['max']}"
            )
        return int(value)
    factor = key.removeprefix("tables.")
    if key.startswith("tables.") and factor in REPORT_FACTORS:
        if not _TABLE.fullmatch(value):
            raise _refuse(f"field 'value' must be 'bound:points,…' for {key!r}, got {value!r}")
        rows = [[int(x) for x in row.split(":")] for row in value.split(",")]
        if any(a[0] >= b[0] for a, b in zip(rows, rows[1:], strict=False)):
            raise _refuse(f"field 'value' for {key!r} needs strictly increasing bounds")
        return rows
    raise _refuse(
        f"field 'key' {key!r} is no scorecard entry; use one of {', '.join(SCORECARD_INTS)} or tables.<factor>"
    )


def apply_change(ctx: TxContext, proposal: dict[str, Any], proposal_id: bytes) -> None:
    key, value = proposal["key"], proposal["parsed"]
    if proposal["action"] == RULES_UPGRADE:
        schedule_upgrade(ctx, proposal)
        return
    if proposal["action"] == PARAMS_SET:
        apply_params_change(ctx, proposal, proposal_id)
        return
    member_change = _MEMBER_CHANGES.get(proposal["action"])
    if member_change is not None:
        if member_change.names_member:  # removed since it was proposed: a change to it never applies
            member_record(ctx, key, lambda why: _moot(proposal["action"], why))
        member_change.apply(ctx, value)
        return
    if proposal["action"] == "member.roles":
        ctx.put(institution_key(key), {**ctx.get(institution_key(key)), "roles": value})
        return
    card = dict(scorecard_of(ctx))
    if key.startswith("tables."):
        card["tables"] = {**card["tables"], key.removeprefix("tables."): value}
    else:
        card[key] = value
    ctx.put(SCORECARD_KEY, card)


def _voting_members(ctx: TxContext) -> list[str]:
    return voting_dids_at(ctx, ctx.height)


def _require_voter(ctx: TxContext, tx: Transaction) -> None:
    if tx.sender not in _voting_members(ctx):
        raise TxRejected("forbidden", f"{tx.kind} needs a voting member; {tx.sender} is not one")


def _close(ctx: TxContext, proposal_id: bytes, proposal: dict[str, Any]) -> None:
    """Take a proposal that is no longer open out of ``gov/open``."""
    entry = [proposal["expires_ms"], proposal_id]
    ctx.put(OPEN_PROPOSALS_KEY, [other for other in ctx.get(OPEN_PROPOSALS_KEY) or [] if other != entry])


def _record_vote(ctx: TxContext, proposal_id: bytes, proposal: dict[str, Any], voter: str) -> None:
    votes = [*proposal["votes"], voter]
    proposal = {**proposal, "votes": votes}
    voters = _voting_members(ctx)
    needed = quorum(len(voters))
    counted = [did for did in votes if did in voters]
    if len(counted) >= needed:
        apply_change(ctx, proposal, proposal_id)
        proposal |= {"status": "executed", "executed_height": ctx.height, "executed_tx": ctx.tx_id}
        _close(ctx, proposal_id, proposal)
        ctx.emit(
            "gov.executed", proposal_id=proposal_id.hex(), action=proposal["action"], key=proposal["key"]
        )
    ctx.put(proposal_key(proposal_id), proposal)
    ctx.emit("gov.voted", proposal_id=proposal_id.hex(), voter=voter, votes=len(counted), needed=needed)


class _MemberChange(NamedTuple):
    """An action of its own module: checked when proposed, applied when the quorum is reached."""

    parse: Callable[[TxContext, str, str, str], Any]  # (ctx, chain_id, key, value) -> the checked value
    apply: Callable[[TxContext, Any], None]
    # Its key is a member's DID, which must still be a member, not removed, when the change applies.
    names_member: bool = True


def _moot(action: str, why: str) -> TxRejected:
    return TxRejected("invalid_state", f"{action}: {why} (not so when it was proposed)")


def _chain_blind(parse: Callable[[TxContext, str, str], Any]) -> Callable[[TxContext, str, str, str], Any]:
    """A parser whose checks do not involve the chain id (no signature over it)."""
    return lambda ctx, chain_id, key, value: parse(ctx, key, value)


_MEMBER_CHANGES = {
    ROTATE_KEY: _MemberChange(parse_rotation, apply_rotation),
    MEMBER_VOTING: _MemberChange(_chain_blind(parse_voting_change), apply_voting_change),
    MEMBER_ADMIT: _MemberChange(parse_admission, apply_admission, names_member=False),  # key: a new name
    # Its own check: removing a removed member is a duplicate, not a moot change.
    MEMBER_REMOVE: _MemberChange(_chain_blind(parse_removal), apply_removal, names_member=False),
    MEMBER_ADDRESS: _MemberChange(_chain_blind(parse_address_change), apply_address_change),
}


def _parse(ctx: TxContext, chain_id: str, action: str, key: str, value: str) -> Any:
    """The checked value of a proposed change (see each action's module); refuses one that could not apply."""
    if action == RULES_UPGRADE:
        return check_upgrade(ctx, key, value)
    if action == PARAMS_SET:
        return parse_params_change(ctx, key, value)
    member_change = _MEMBER_CHANGES.get(action)
    if member_change is not None:
        return member_change.parse(ctx, chain_id, key, value)
    return parse_change(ctx, action, key, value)


def propose(ctx: TxContext, tx: Transaction) -> None:
    _require_voter(ctx, tx)
    action, key, value = tx.payload["action"], tx.payload["key"], tx.payload["value"]
    proposal = {
        "action": action,
        "key": key,
        "value": value,
        "parsed": _parse(ctx, tx.chain_id, action, key, value),
        "proposer": tx.sender,
        "votes": [],
        "status": "open",
        "height": ctx.height,
        "expires_ms": ctx.timestamp_ms + param(ctx.params, "voting_period_ms"),
    }
    open_proposals = list(ctx.get(OPEN_PROPOSALS_KEY) or [])
    insort(open_proposals, [proposal["expires_ms"], ctx.tx_id])
    ctx.put(OPEN_PROPOSALS_KEY, open_proposals)
    _record_vote(ctx, ctx.tx_id, proposal, tx.sender)


def vote(ctx: TxContext, tx: Transaction) -> None:
    _require_voter(ctx, tx)
    proposal_id = bytes.fromhex(tx.payload["proposal_id"])
    proposal = ctx.get(proposal_key(proposal_id))
    if proposal is None:
        raise TxRejected("not_found", f"gov.vote field 'proposal_id' names no proposal ({proposal_id.hex()})")
    if proposal["status"] == "expired" or (
        proposal["status"] == "open" and ctx.timestamp_ms >= proposal.get("expires_ms", ctx.timestamp_ms + 1)
    ):
        raise TxRejected(
            "expired",
            f"gov.vote field 'proposal_id': proposal {proposal_id.hex()[:16]} expired at "
            f"{proposal['expires_ms']} (block time {ctx.timestamp_ms}); propose the change again",
        )
    if proposal["status"] != "open":
        raise TxRejected(
            "invalid_state", f"proposal {proposal_id.hex()[:16]} is already {proposal['status']}"
        )
    if tx.sender in proposal["votes"]:
        raise TxRejected("duplicate", f"{tx.sender} already voted for proposal {proposal_id.hex()[:16]}")
    _record_vote(ctx, proposal_id, proposal, tx.sender)


def expire_proposals(ctx: TxContext) -> None:
    """The block hook: mark open proposals whose voting period is over as expired."""
    open_proposals = ctx.get(OPEN_PROPOSALS_KEY) or []
    due = [entry for entry in open_proposals[:MAX_EXPIRIES_PER_BLOCK] if entry[0] <= ctx.timestamp_ms]
    if not due:
        return
    for expires_ms, proposal_id in due:
        proposal = ctx.get(proposal_key(proposal_id))
        ctx.put(proposal_key(proposal_id), {**proposal, "status": "expired", "expired_height": ctx.height})
        ctx.emit(
            "gov.expired", proposal_id=proposal_id.hex(), expires_ms=expires_ms, votes=len(proposal["votes"])
        )
    ctx.put(OPEN_PROPOSALS_KEY, open_proposals[len(due) :])


register_block_hook("governance.expire_proposals", expire_proposals)
register_kind(
    "gov.propose",
    Schema(
        (
            Field(
                "action",
                "str",
                choices=ACTIONS,
                choices_since=(
                    (MEMBER_VOTING, MEMBER_VOTING_SINCE),
                    (MEMBER_ADMIT, MEMBER_ADMIT_SINCE),
                    (MEMBER_REMOVE, MEMBER_REMOVE_SINCE),
                    (MEMBER_ADDRESS, MEMBER_ADDRESS_SINCE),
                    (PARAMS_SET, PARAMS_SET_SINCE),
                ),
            ),
            Field("key", "str", min=1, max=80),
            Field("value", "str", max=400),
        )
    ),
    propose,
)
register_kind("gov.vote", Schema((Field("proposal_id", "str", pattern=r"[0-9a-f]{64}"),)), vote)
