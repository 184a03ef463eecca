"""Removing a member: the governance action ``member.remove`` (rules version 3).

A bank that leaves the consortium, or that the others expel, is removed by
the voting members:

- ``gov.propose`` {action ``member.remove``, key: the member's DID, value:
  the reason, recorded for auditors (1 to 200 characters)}, from rules
  version ``SINCE_RULES``.
- Checked when proposed and again when the vote that reaches quorum executes
  it: the member exists and is not removed already, and it does not vote: it
  votes at no height from this block on (its last ``member.voting`` change
  made it an observer and is in force). A voting member is demoted first
  (``member.voting`` DID observer), so consensus never loses a voter it
  counts on without the delay every change of who votes has.
- Executed: the member's record gets ``removed_height`` and
  ``removal_reason``, ``REMOVED_KEY`` gets its name with the height, and the
  event ``member.removed`` names it.

From the next block on, no key the member ever had signs anything the
ledger accepts (``keyrotation.member_signers`` refuses them, ``forbidden``):
not as the member, and not as a party of its own. The network lets it go
``key_rotation_delay_blocks`` later (``cut_off``): until then its node can
still fetch the blocks, the one that removes it among them, so its operator
reads the removal on its own node rather than guessing from refused dials.
Then every node drops its keys from the allow-list and closes its links.
What it did before stays on the chain, and the record, its name and its
keys stay taken (a name or key is never reused).

A removed member services nothing (its keys sign nothing), so from rules
version ``transfers.SINCE_RULES`` (4) the removal is also refused, when
proposed and when executed, while the member is the lender of an open loan
(one in ``lifecycle.SERVICER_STATES``: a written-off loan is not) or is
named by a transfer pending on one: its loans move to another lender first (``loan.transfer``, accepted by
that lender), and the transfers offered to it are withdrawn or accepted.
``transfers.servicing_duties`` counts both in one walk of the member's lender
index. From the same version ``loan.accept`` refuses the offers it made
before it was removed, and its removal withdraws its active lending
policies (``policies.withdraw_policies_of``), which would go on making offers
no one can accept. Under rules 3 nothing checks this: the members had to
settle those loans before removing it.
"""

from __future__ import annotations

from typing import Any

from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.keyrotation import delay_blocks
from lendchain.ledger.membership import member_status
from lendchain.ledger.policies import withdraw_policies_of
from lendchain.ledger.state import REMOVED_KEY, StateReader, get_params, institution_key, read_value
from lendchain.ledger.transfers import SINCE_RULES as TRANSFER_SINCE
from lendchain.ledger.transfers import WRITTEN_OFF_SINCE, servicing_duties

ACTION = "member.remove"
SINCE_RULES = 3  # the rules version that added the action
EVENT = "member.removed"
MAX_REASON = 200
RECOVERIES_SINCE = WRITTEN_OFF_SINCE  # from which the recovery of a written-off loan keeps its servicer


def removed_members(reader: StateReader) -> dict[str, int]:
    """Every removed member's name -> the height of the block that removed it."""
    return read_value(reader, REMOVED_KEY) or {}


def cut_off(reader: StateReader, height: int, removed: dict[str, int] | None = None) -> set[str]:
    """The removed members the network no longer links to at ``height`` (see the module).

    ``removed``: ``removed_members(reader)``, when the caller read it already.
    """
    removed = removed_members(reader) if removed is None else removed
    if not removed:
        return set()
    delay = delay_blocks(get_params(reader))
    return {name for name, removed_at in removed.items() if height >= removed_at + delay}


def _refuse(message: str) -> TxRejected:
    return TxRejected("bad_payload", f"gov.propose {ACTION} {message}")


def _conflict(ctx: TxContext, did: str) -> tuple[str, str] | None:
    """Why the member cannot be removed as of ``ctx``'s block: (code at execution, sentence)."""
    institution = ctx.get(institution_key(did))
    if "removed_height" in institution:
        return "duplicate", f"{institution['name']} was removed at height {institution['removed_height']}"
    status = member_status(ctx, did)
    if status.voting or status.since > ctx.height:
        pending = f" from height {status.since}" if status.since > ctx.height else ""
        return "invalid_state", (
            f"{status.name} {'votes' if status.voting else 'changes who votes'}{pending}: demote it first "
            f"(member.voting {did} observer) and remove it once that is in force"
        )
    if ctx.rules >= TRANSFER_SINCE:
        services, named, recovering = servicing_duties(ctx.get, did)
        recovering = recovering if ctx.rules >= RECOVERIES_SINCE else 0
        if services or named or recovering:
            return "invalid_state", _duties(institution["name"], services, named, recovering)
    return None


def _duties(name: str, services: int, named: int, recovering: int) -> str:
    """Why a member that still has loans to service cannot leave, and what frees it."""
    held, first = [], []
    if services:
        held.append(f"is the lender of {services} open loan{'s' if services != 1 else ''}")
        first.append(
            f"{name} moves them to other lenders (loan.transfer, each accepted with loan.transfer_accept)"
        )
    if recovering:
        loans = f"{recovering} written-off loan{'s' if recovering != 1 else ''}"
        held.append(f"services the recovery of {loans} with money left to recover")
        first.append(
            f"{name} hands each recovery to another lender (loan.transfer, accepted with "
            "loan.transfer_accept) or ends it where nothing more will come (loan.recovery_end)"
        )
    if named:
        held.append(f"is named by {named} pending loan transfer{'s' if named != 1 else ''}")
        first.append("the transfers offered to it are accepted or withdrawn (loan.transfer_withdraw)")
    return f"{name} {' and '.join(held)}, and a removed member services nothing: first {', and '.join(first)}"


def parse_removal(ctx: TxContext, member_did: str, reason: str) -> dict[str, Any]:
    """The checked removal ``{name, did, reason}``; refuses one that could not apply."""
    institution = ctx.get(institution_key(member_did))
    if institution is None:
        raise _refuse(f"field 'key' names no consortium member ({member_did})")
    if not 1 <= len(reason.strip()) <= MAX_REASON:
        raise _refuse(f"field 'value' must give the reason, 1 to {MAX_REASON} characters, for the auditors")
    conflict = _conflict(ctx, member_did)
    if conflict is not None:
        raise _refuse(conflict[1])
    return {"name": institution["name"], "did": member_did, "reason": reason.strip()}


def apply_removal(ctx: TxContext, removal: dict[str, Any]) -> None:
    """Remove the member (the quorum was just reached)."""
    conflict = _conflict(ctx, removal["did"])
    if conflict is not None:
        code, sentence = conflict
        raise TxRejected(code, f"{ACTION}: {sentence} (not so when it was proposed)")
    key = institution_key(removal["did"])
    ctx.put(key, {**ctx.get(key), "removed_height": ctx.height, "removal_reason": removal["reason"]})
    ctx.put(REMOVED_KEY, {**(ctx.get(REMOVED_KEY) or {}), removal["name"]: ctx.height})
    ctx.emit(EVENT, member=removal["name"], did=removal["did"], reason=removal["reason"])
    if ctx.rules >= TRANSFER_SINCE:  # its standing offers go with it
        withdraw_policies_of(ctx, removal["did"], f"{ACTION}: {removal['reason']}")
