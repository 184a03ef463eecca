"""Rules versions: which ledger rules a block executes under, and how the members change them.

Every node must execute every block under the same rules, or their state
roots part. A release that changes what a block does (a new kind, a handler
that decides differently, a new block hook) therefore ships the change as a
new *rules version*, and the members switch to it together, at a height the
chain itself records:

- ``gov.propose`` {action ``rules.upgrade``, key: the version (``"2"``),
  value: the activation height (``"120000"``)}, voted through at 2f+1 like
  every governance change. Checked when proposed and again when the vote
  executes it: the version is the next one (the last scheduled + 1), or the
  last scheduled one while it is not yet active (which moves its height), and
  the height is at least ``MIN_NOTICE_BLOCKS`` after the executing block.
  The value ``cancel`` takes the last scheduled version back, while it is
  not yet in force.
- A genesis may start the chain on a newer version: ``[app] rules_version =
  2`` puts ``[1, 2]`` in ``RULES_KEY`` from the start (no vote needed).
- The executed upgrade is appended to ``RULES_KEY`` as ``[height, version]``
  (an upgrade that moves a pending one replaces it). A block at height h
  executes under the version of the last entry with a height <= h; before
  any, version 1 (``rules_at``).
- Handlers and block hooks read ``ctx.rules``; a kind registered with
  ``since=N`` does not exist before version N (its txs are left out of
  blocks, and a block that includes one is invalid), and neither does a
  payload choice a schema adds with ``choices_since`` (a governance action).

A release executes every version up to its ``RULES_VERSION``, so a node can
replay the chain from genesis. A node whose software is older than the rules
a block needs does not guess: ``active_rules`` raises ``UpgradeRequired``,
and the node stops (exit code 4) before it executes, votes on or stores that
block, saying which version it needs from which height. Installing a release
that knows the version and starting the node again resumes it where it
stopped. Until then it warns, from the moment the upgrade is scheduled.

The transaction envelope and the stateless checks of existing kinds
(``transactions.check_stateless``) are not versioned: they are checked before
a block is executed, without a height. A rules version may add kinds and
payload choices, and change what handlers and hooks do, not what makes a tx
well-formed: a kind or choice a newer version added passes the stateless
checks, and is refused as unknown (left out of blocks) when a block under an
older version is executed.

Versions:

1. The genesis rules.
2. Adds the governance action ``member.voting`` (``membership``): a member
   starts or stops voting, from a height; governance quorums count the
   members that vote at the block's height. ``loan.fund`` keeps each
   funder's index of the loans it committed to (``funding``).
3. Adds the governance actions ``member.admit`` (``admission``): an
   institution the genesis does not name joins the consortium,
   ``member.remove`` (``removal``): a member leaves it, and ``member.address``
   (``addresses``): a member's node moves.
4. Adds the kinds ``loan.transfer``, ``loan.transfer_accept`` and
   ``loan.transfer_withdraw`` (``transfers``): a lender hands a loan's
   servicing to another lender, and ``loan.write_off`` (``writeoff``): the
   servicer writes off a defaulted loan (state ``written_off``).
   ``member.remove`` is refused while the member is the lender of an open
   loan or named by a pending transfer, and ``loan.accept`` refuses an
   offer by a removed member.
5. Adds the kinds ``loan.restructure``, ``loan.restructure_accept``,
   ``loan.restructure_withdraw`` and ``loan.restructure_consent``
   (``restructuring``): the servicer and the borrower agree to change a
   loan's remaining terms, a syndicated loan's once the funders holding more
   than half of its commitments consent (``funder_consent``), and
   ``loan.recover`` (``writeoff``): the servicer records money recovered
   on a written-off loan, and a refused transaction on a written-off loan
   names ``loan.recover`` as the one it still takes (``lifecycle.advance``).
6. Guard rails on restructuring (``restructuring_limits``): a loan is
   restructured at most ``max_restructurings`` times, a proposal expires
   ``restructure_offer_ms`` after it is made (its acceptance and consents
   are refused with ``expired`` from then), and the kind
   ``loan.restructure_consent_withdraw`` (``consent_withdrawal``) lets a
   funder take its consent back before the acceptance; a loan that
   defaults again after a restructuring counts as a default once more in
   the borrower's repayment history (``identity.default_episodes``);
   and ``loan.transfer``, ``loan.transfer_accept`` and ``loan.transfer_withdraw``
   work on a written-off loan: its recovery changes servicer (``transfers``);
   the kind ``loan.recovery_end`` (``recovery_end``) lets the servicer end
   a written-off loan's recovery; ``member.remove`` is refused while the
   member services the recovery of a written-off loan with money left to
   recover (``removal``); the governance action ``params.set``
   (``params_change``) changes a chain parameter; the kinds
   ``loan.share_assign``, ``loan.share_accept`` and ``loan.share_withdraw``
   (``assignment``) let a syndicated loan's funder sell all or part of its
   share to another investor or lender, which takes part in every later
   pro-rata split;
   the kinds ``collateral.pledge``, ``collateral.release`` and
   ``collateral.revalue`` (``collateral``): a shared register of the assets
   securing loans, which refuses a first-ranking pledge of an asset that
   already secures another loan, and whose liens the ledger releases when a
   loan's claim ends (closed, unfunded, recovered in full, recovery ended).
7. The kind ``loan.share_decline`` (``share_decline``) lets the buyer a share
   offer names decline it (a loan record keeps the newest 16 declines); the
   least part of a share sold is the chain parameter ``min_share_part_bps``,
   recorded on each offer (``assignment``). The kinds ``credit.dispute`` and
   ``credit.dispute_answer`` (``disputes``): a borrower disputes its latest
   credit report and the member that furnished it answers (confirmed,
   corrected or withdrawn); a report whose dispute is unanswered
   ``dispute_response_ms`` after it was opened no longer counts in the score
   (judged at each reader's time, ``dispute_records``), and a member reports
   a subject again only in a later block than a dispute of its report. The
   kinds ``loan.guarantee``, ``loan.guarantee_accept``,
   ``loan.guarantee_withdraw``, ``loan.guarantee_release`` and
   ``loan.guarantee_call`` (``guarantees``): the servicer records a guarantee
   of a loan that binds once the guarantor signs it, calls it once the loan
   failed, and the ledger releases it when the loan's claim ends
   (``collateral.release_all``); ``loan.transfer`` is refused to a member
   that guarantees the loan. Rules 7 is closed: ``test_rules7_bytes`` pins
   what it stores and says, and a change to either is rules 8.
8. A loan's cap of ``MAX_PER_LOAN`` guarantees counts its live ones
   (proposed or active) only: an ended guarantee (withdrawn, released,
   lapsed) leaves the loan's ``guarantees`` in the transaction that ends it,
   and every guarantee proposed on the loan is kept in the paged list
   ``lguar/<loan id>`` that the views read (``guarantees``); a transaction
   naming a guarantee finds it by its record's loan. The buyer a pending
   share offer names declines it whatever its roles now (a member whose
   lender role was removed since the offer: ``lifecycle.ACTORS_SINCE``,
   ``share_decline``). Rules 8 is closed: ``test_rules8_bytes`` pins what it
   stores and says, and a change to either is rules 9.
"""

from __future__ import annotations

import re
from typing import Any

from lendchain.consensus.app import AppHalted
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.state import RULES_KEY, StateReader, read_value

# The newest rules version this software executes (it executes every older one as well).
RULES_VERSION = 8
ACTION = "rules.upgrade"
MIN_NOTICE_BLOCKS = 10
CANCEL = "cancel"  # the value of a proposal that takes a scheduled version back before it starts
_NUMBER = re.compile(r"[1-9][0-9]{0,17}")


class UpgradeRequired(AppHalted):
    """A block needs rules newer than this software executes; the node must stop, not guess."""

    def __init__(self, version: int, height: int, activation: int) -> None:
        self.version = version
        self.height = height
        self.activation = activation
        super().__init__(
            f"block {height} executes under rules version {version}, which the members scheduled "
            f"from height {activation}; this lendchain release executes rules up to version "
            f"{RULES_VERSION}: install a release that supports rules {version} and start the node again"
        )


def scheduled_upgrades(reader: StateReader) -> list[list[int]]:
    """Every executed upgrade as ``[activation height, version]``, in order."""
    return read_value(reader, RULES_KEY) or []


def rules_at(schedule: list[list[int]], height: int) -> tuple[int, int]:
    """``(version, activation height)`` of the rules a block at ``height`` executes under."""
    version, activation = 1, 0
    for start, scheduled in schedule:
        if start > height:
            break
        version, activation = scheduled, start
    return version, activation


def active_rules(reader: StateReader, height: int) -> int:
    """The rules version of a block at ``height`` on top of ``reader``; UpgradeRequired if too new."""
    version, activation = rules_at(scheduled_upgrades(reader), height)
    if version > RULES_VERSION:
        raise UpgradeRequired(version, height, activation)
    return version


def pending_upgrade(reader: StateReader, height: int) -> list[int] | None:
    """The first scheduled ``[height, version]`` this software cannot execute, if any.

    ``height`` is the node's committed height; an upgrade already active at it
    is not pending (the node could not have committed past it).
    """
    return _unrunnable(scheduled_upgrades(reader), height)


def _unrunnable(schedule: list[list[int]], height: int) -> list[int] | None:
    for start, version in schedule:
        if version > RULES_VERSION and start > height:
            return [start, version]
    return None


def rules_status(reader: StateReader, height: int) -> dict[str, Any]:
    """What ``/status`` shows: the rules in force, this software's newest, and the schedule."""
    schedule = scheduled_upgrades(reader)
    version, _ = rules_at(schedule, height)  # the rules the head block executed under
    pending = _unrunnable(schedule, height)
    return {
        "version": version,
        "software_version": RULES_VERSION,
        "scheduled": [{"height": start, "version": v} for start, v in schedule if start > height],
        # The height from which this node cannot go on without a newer release (None: it can).
        "upgrade_needed_at": pending[0] if pending else None,
    }


def _refuse(code: str, message: str) -> TxRejected:
    return TxRejected(code, f"gov.propose {ACTION} {message}")


def check_upgrade(ctx: TxContext, version_text: str, height_text: str) -> list[int]:
    """``parse_upgrade`` against the chain as of ``ctx``'s block (when proposed)."""
    return parse_upgrade(ctx.get(RULES_KEY) or [], ctx.height, version_text, height_text)


def schedule_upgrade(ctx: TxContext, proposal: dict[str, Any]) -> None:
    """Put an upgrade voted through in force; refused if the chain moved past it since it was proposed."""
    schedule = ctx.get(RULES_KEY) or []
    try:
        upgrade = parse_upgrade(schedule, ctx.height, proposal["key"], proposal["value"])
    except TxRejected as e:
        raise TxRejected(
            "invalid_state", f"{e.message} (no longer, since it was proposed): propose it again"
        ) from None
    ctx.put(RULES_KEY, apply_upgrade(schedule, upgrade))
    if upgrade[0]:
        ctx.emit("rules.upgrade_scheduled", version=upgrade[1], height=upgrade[0])
    else:
        ctx.emit("rules.upgrade_cancelled", version=upgrade[1])


def parse_upgrade(schedule: list[list[int]], height: int, version_text: str, height_text: str) -> list[int]:
    """The checked ``[activation height, version]`` of a proposal; refuses one that could not apply.

    ``schedule`` and ``height`` are the chain's as of the block that proposes
    or executes it; the same checks run at both.
    """
    if not _NUMBER.fullmatch(version_text):
        raise _refuse(
            "bad_payload", f"field 'key' must be the rules version, a positive integer: {version_text!r}"
        )
    if height_text != CANCEL and not _NUMBER.fullmatch(height_text):
        raise _refuse(
            "bad_payload",
            f"field 'value' must be the activation height, a positive integer, or {CANCEL!r}: {height_text!r}",
        )
    version = int(version_text)
    last_height, last_version = schedule[-1] if schedule else (0, 1)
    pending = bool(schedule) and last_height > height  # scheduled, not in force yet: it may move
    moving = pending and version == last_version
    if height_text == CANCEL:
        if not moving:
            which = f"version {last_version}, from height {last_height}" if pending else "none is now"
            raise _refuse(
                "bad_payload", f"field 'value': only a version not yet in force can be cancelled ({which})"
            )
        return [0, version]
    activation = int(height_text)
    if version != last_version + 1 and not moving:
        raise _refuse(
            "bad_payload",
            f"field 'key': the next rules version is {last_version + 1}"
            + (f" (or {last_version}, to move its activation height {last_height})" if pending else ""),
        )
    earlier = schedule[:-1] if moving else schedule  # versions start in order
    if earlier and activation <= earlier[-1][0]:
        raise _refuse(
            "bad_payload",
            f"field 'value': rules version {version} must start after version {earlier[-1][1]} "
            f"(height {earlier[-1][0]})",
        )
    earliest = height + MIN_NOTICE_BLOCKS
    if activation < earliest:
        raise _refuse(
            "bad_payload",
            f"field 'value': rules version {version} cannot start before height {earliest} "
            f"(this block is {height}; an upgrade needs {MIN_NOTICE_BLOCKS} blocks' notice)",
        )
    return [activation, version]


def apply_upgrade(schedule: list[list[int]], upgrade: list[int]) -> list[list[int]]:
    """The schedule with ``upgrade`` in force: appended, replacing the pending one it moves, or
    (activation 0) without the pending one it cancels."""
    activation, version = upgrade
    kept = [entry for entry in schedule if entry[1] != version]
    return [*kept, [activation, version]] if activation else kept
