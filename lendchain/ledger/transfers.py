"""Handing a loan's servicing to another lender: ``loan.transfer`` and its answers (rules version 4).

A loan's lender is its servicer: it disburses the loan, records what the
borrower pays and hands the funders their shares. Banks sell servicing, and a
member that leaves the consortium (``removal``) cannot service anything once
its keys sign nothing, so from rules version ``SINCE_RULES`` the lender can
hand a loan over:

- ``loan.transfer`` {loan_id, to}: the loan's lender offers its servicing to
  ``to``, the DID of another member that holds the ``lender`` role and has not
  been removed. One transfer is pending at a time: a second offer is refused
  until the first is accepted or withdrawn.
- ``loan.transfer_accept`` {loan_id}: the member the pending transfer names
  takes the loan over and is its ``lender`` from this transaction on: the
  old one can no longer service it. Refused if the member has lost the
  lender role since the offer (a member removed since signs nothing at all).
- ``loan.transfer_withdraw`` {loan_id}: the lender takes its pending offer
  back (named after ``policy.withdraw``).

Which states (``lifecycle.SERVICER_STATES``): from the acceptance of an offer,
which names the lender, until the loan is closed, unfunded or written off
(``writeoff``). Before that the loan has offers and no servicer; a closed,
cancelled or unfunded loan needs none. An accepted loan not yet disbursed
and a defaulted one (recoveries) need their servicer as much as a repaying
one, and a member holding either could otherwise never leave. A transfer
still pending when the loan closes (or is written off) lapses: nothing can
accept or withdraw it, and it keeps no member from leaving.

Written-off loans (rules version ``WRITTEN_OFF_SINCE``). Under rules 4 and 5
a written-off loan keeps the servicer it had for good, and once that member
leaves nobody records recoveries on it. Banks hand charged-off loans to
collectors, and a leaving member must not strand its funders' recoveries,
so from rules 6 the three kinds work on a ``written_off`` loan too:

- What moves is the recovery: the new servicer records the recoveries
  (``loan.recover``) and may end the recovery (``loan.recovery_end``) or
  hand it on again. Everything else stays with the loan: its
  ``written_off`` record, what was ``recovered`` so far and the net loss,
  and a syndicated loan's funders keep their pro-rata shares of the loss
  and of every recovery, before and after.
- The acceptance appends ``{lender, height, recovered}`` to the loan's
  ``recovery_handovers``: the servicer that handed the recovery on, the
  block, and the loan's ``recovered`` total at that moment (its history
  entry carries ``recovered`` too). So the views tell who wrote the loan
  off (the first servicer) and who recorded which recoveries, without
  reading the loan's history (``exposure``).
- An offer is refused on a loan whose recovery ended or with nothing left
  to recover (``invalid_state``): there is no recovery to hand over. Its
  record carries ``written_off`` (true): it offers the recovery of the
  written-off loan.
- A transfer offered before the write-off still lapses with it, under every
  rules version: it offered the servicing of a live loan, and a charge-off
  changes what is handed over, so the servicer offers again if it still
  wants to. Only a transfer offered on the written-off loan (its record
  says so) is pending (``pending_transfer``); a lapsed one can neither be
  accepted nor withdrawn, and a new offer replaces it.
- A pending transfer of a written-off loan keeps the member it names from
  leaving, as any pending transfer does (``servicing_duties``), and its
  servicer cannot end the recovery until it is withdrawn.

What moves is the loan's ``lender``; everything read from it follows: who may
disburse, repay, prepay or transfer again, a borrower's exposure (the lender
carries a loan nobody else funds), the lender's portfolio and reminders, the
per-borrower exposure a lending policy checks. The funders of a syndicated
loan keep their commitments and receive their shares of every repayment as
before: they fund the loan, not its servicer. A restructuring the old
servicer proposed and the borrower has not accepted (``restructuring``,
rules 5) is dropped with the acceptance: the new servicer is not bound by
its predecessor's offer (event ``loan.restructure_lapsed``; the history
entry names the height it was offered at).

Indexes. A servicer's loan index (``state.lender_loans_key``) is an
append-only paged list (``pagedlist``): taking one loan out of the middle of
a long one would rewrite its pages. So the loan is appended to the index of
the member a transfer names when the transfer is offered, once (the loan's
``transfer_targets`` lists every member a transfer has named; the lender
whose offer was accepted has it already), and stays in the old servicer's.
A member's index thus lists every loan it has serviced or been offered;
which it services now is the loan's ``lender``, and every reader of the index
checks that. Indexing at the offer lets ``servicing_duties`` (what keeps a
member from leaving) and the portfolio find the transfers pending to a member
in the same walk, without an index of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from lendchain.ledger import lifecycle as lc
from lendchain.ledger import pagedlist
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.guarantees import live_guarantee_by
from lendchain.ledger.identity import DID_PATTERN
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import LOAN_ID_FIELD, append_index, load_loan, loan_actors, with_history
from lendchain.ledger.restructuring import pending_restructuring
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import institution_key, lender_loans_key, loan_key, offer_key
from lendchain.ledger.writeoff import nothing_to_recover, recovery_open

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = 4  # the rules version that added the kinds (loans.REMOVED_OFFERS_REFUSED_SINCE is the same)
WRITTEN_OFF_SINCE = lc.WRITTEN_OFF_TRANSFERS_SINCE  # from which a written-off loan's recovery moves


class ServicingDuties(NamedTuple):
    """What keeps a member from leaving the consortium (``removal``), counted by ``servicing_duties``."""

    services: int  # open loans it is the lender of
    named: int  # loans whose pending transfer names it
    recovering: int  # written-off loans it services with money left to recover, recovery not ended


def servicing_duties(get: Callable[[bytes], Any], did: str) -> ServicingDuties:
    """The open loans ``did`` services, the loans whose pending transfer names it, and the written-off
    loans whose recovery it services (``writeoff.recovery_open``: a duty from rules 6, see ``removal``).

    One walk of the member's lender index: a read per page of it and one per
    loan, so the cost grows with the loans the member ever serviced (about
    7 µs a loan: 0.3 s for a book of 45,000, measured on the in-memory state).
    Only ``member.remove``, a rare governance action, asks, when proposed and
    when executed, so no index of open loans is kept for it (one kept from
    rules 4 would miss every older loan).
    """
    services = named = recovering = 0
    for loan_id in pagedlist.items(get, lender_loans_key(did)):
        loan = get(loan_key(loan_id))
        if loan["state"] == lc.WRITTEN_OFF:
            if loan["lender"] == did:
                recovering += recovery_open(loan)
            elif pending_to(loan) == did:
                named += 1
            continue
        if loan["state"] not in lc.SERVICER_STATES:
            continue
        if loan["lender"] == did:
            services += 1
        elif pending_to(loan) == did:
            named += 1
    return ServicingDuties(services, named, recovering)


def pending_transfer(loan: dict[str, Any]) -> dict[str, Any] | None:
    """The loan's transfer if it is pending; None if there is none or it lapsed (see the module)."""
    transfer = loan.get("transfer")
    if transfer is None:
        return None
    if loan["state"] in lc.SERVICER_STATES:
        return transfer
    if loan["state"] == lc.WRITTEN_OFF and transfer.get("written_off"):  # offered on the written-off loan
        return transfer
    return None


def pending_to(loan: dict[str, Any]) -> str | None:
    """The member the loan's pending transfer names, if one is pending."""
    transfer = pending_transfer(loan)
    return transfer["to"] if transfer is not None else None


def _unfit_lender(ctx: TxContext, did: str) -> str | None:
    """Why member ``did`` cannot service a loan (as a sentence's end); None if it can."""
    institution = ctx.get(institution_key(did))
    if institution is None:
        return f"names no consortium member ({did})"
    if "removed_height" in institution:
        return f"names {institution['name']}, removed from the consortium at height {institution['removed_height']}"
    if "lender" not in institution["roles"]:
        return f"names {institution['name']}, which does not hold the lender role"
    return None


def _where(tx: Transaction, loan_id: bytes) -> str:
    return f"{tx.kind} on loan {loan_id.hex()[:16]}"


def _refuse_a_guarantor(
    ctx: TxContext, tx: Transaction, loan_id: bytes, loan: dict[str, Any], to: str
) -> None:
    """From rules 7 a loan is not handed to a member that guarantees it: a servicer cannot call a
    guarantee on itself (``guarantees``), so the guarantee must end first."""
    live = live_guarantee_by(ctx.get, loan, to)
    if live is not None:
        guarantee_id, guarantee = live
        raise TxRejected(
            "invalid_state",
            f"{_where(tx, loan_id)}: {to} guarantees the loan ({guarantee['state']} guarantee "
            f"{guarantee_id.hex()[:16]}), and a lender cannot guarantee a loan it services: the servicer "
            "withdraws or releases that guarantee first",
        )


def offer_transfer(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    written_off = loan["state"] == lc.WRITTEN_OFF  # from rules 6 (the lifecycle refused it before)
    if written_off:
        nothing = nothing_to_recover(loan)
        if nothing is not None:
            raise TxRejected(
                "invalid_state", f"{_where(tx, loan_id)}: {nothing}: there is no recovery to hand over"
            )
    pending = pending_transfer(loan)
    if pending is not None:
        raise TxRejected(
            "invalid_state",
            f"{_where(tx, loan_id)}: its transfer to {pending['to']} (offered at height {pending['height']}) "
            "is still pending; it must be accepted, or withdrawn with loan.transfer_withdraw, first",
        )
    to = tx.payload["to"]
    if to == tx.sender:
        raise TxRejected("bad_payload", f"loan.transfer field 'to' is {to}, the loan's lender already")
    unfit = _unfit_lender(ctx, to)
    if unfit is not None:
        raise TxRejected("bad_payload", f"loan.transfer field 'to' {unfit}: only a lender can service a loan")
    if ctx.rules >= lc.GUARANTEES_SINCE:
        _refuse_a_guarantor(ctx, tx, loan_id, loan, to)
    targets = loan.get("transfer_targets", [])
    if to not in targets and to != ctx.get(offer_key(loan["offer_id"]))["lender"]:
        append_index(ctx, lender_loans_key(to), loan_id)  # once per member: see the module docstring
        targets = [*targets, to]
    offer = {"to": to, "height": ctx.height, **({"written_off": True} if written_off else {})}
    loan = {**loan, "transfer": offer, "transfer_targets": targets}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, to=to)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.transfer_offered", loan_id=loan_id.hex(), lender=tx.sender, to=to)


def accept_transfer(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    # Under rules 4 and 5 the lifecycle refuses a written-off loan, lapsed transfer or not
    lapsed = (
        ctx.rules >= WRITTEN_OFF_SINCE and loan["state"] == lc.WRITTEN_OFF and pending_transfer(loan) is None
    )
    if loan.get("transfer") is None or lapsed:
        why = (
            f" (the one offered at height {loan['transfer']['height']} lapsed when the loan was written off)"
            if lapsed and "transfer" in loan
            else ""
        )
        raise TxRejected(
            "invalid_state",
            f"{_where(tx, loan_id)}: no transfer is pending{why} (the loan's lender offers one with loan.transfer)",
        )
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    unfit = _unfit_lender(ctx, tx.sender)
    if unfit is not None:  # the member changed since the offer: the offer checked it then
        raise TxRejected("forbidden", f"{_where(tx, loan_id)}: its pending transfer {unfit} now")
    previous = loan["lender"]
    if loan["state"] == lc.WRITTEN_OFF:  # rules 6: its recovery moves, and the views need to know when
        _hand_over_recovery(
            ctx, tx, loan_id, {key: value for key, value in loan.items() if key != "transfer"}
        )
        return
    dropped = pending_restructuring(loan, ctx.timestamp_ms)  # only from rules 5: no older loan has one
    lapsed = {} if dropped is None else {"restructuring_lapsed": dropped["height"]}
    loan = {key: value for key, value in loan.items() if key not in ("transfer", "restructuring")}
    loan["lender"] = tx.sender
    loan["history_len"] = with_history(
        loan_id, loan, ctx, tx.kind, previous_lender=previous, lender=tx.sender, **lapsed
    )
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.transferred", loan_id=loan_id.hex(), previous_lender=previous, lender=tx.sender)
    if dropped is not None:
        ctx.emit("loan.restructure_lapsed", loan_id=loan_id.hex(), offered_height=dropped["height"])


def _hand_over_recovery(ctx: TxContext, tx: Transaction, loan_id: bytes, loan: dict[str, Any]) -> None:
    """Accept the transfer of a written-off loan (``loan``, without its transfer): record the handover.

    A restructuring recorded on it lapsed with the write-off and stays on the record, as it would
    without the transfer.
    """
    previous = loan["lender"]
    recovered = loan["recovered"]["total"] if "recovered" in loan else 0
    handover = {"lender": previous, "height": ctx.height, "recovered": recovered}
    loan = {
        **loan,
        "lender": tx.sender,
        "recovery_handovers": [*loan.get("recovery_handovers", []), handover],
    }
    loan["history_len"] = with_history(
        loan_id, loan, ctx, tx.kind, previous_lender=previous, lender=tx.sender, recovered=recovered
    )
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.transferred", loan_id=loan_id.hex(), previous_lender=previous, lender=tx.sender)


def withdraw_transfer(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    to = pending_to(loan)
    if to is None:
        raise TxRejected("invalid_state", f"{_where(tx, loan_id)}: no transfer is pending to withdraw")
    loan = {key: value for key, value in loan.items() if key != "transfer"}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, to=to)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.transfer_withdrawn", loan_id=loan_id.hex(), to=to)


register_kind(
    "loan.transfer",
    Schema((LOAN_ID_FIELD, Field("to", "str", pattern=DID_PATTERN))),
    offer_transfer,
    since=SINCE_RULES,
)
register_kind("loan.transfer_accept", Schema((LOAN_ID_FIELD,)), accept_transfer, since=SINCE_RULES)
register_kind("loan.transfer_withdraw", Schema((LOAN_ID_FIELD,)), withdraw_transfer, since=SINCE_RULES)
