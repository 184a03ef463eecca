"""Writing off a defaulted loan: ``loan.write_off`` (rules version 4), and the recoveries
recorded on it afterwards: ``loan.recover`` (rules version 5).

A loan that defaults stays ``defaulted`` while its servicer tries to
recover what is owed (``loan.repay`` records recoveries). When recovery
ends, the bank charges the loan off in its books; from rules version
``SINCE_RULES`` it records that on the chain too, so every member and a
regulator see the loss:

- ``loan.write_off`` {loan_id, reason}: the loan's servicer (its ``lender``)
  writes off a loan in state ``defaulted``; ``reason`` (1 to ``MAX_REASON``
  characters, not only spaces) is kept for auditors. The loan moves to
  ``written_off``, a final state: under rules 4 nothing changes it
  afterwards, and a refused transaction on it says that recoveries after a
  write-off are not recorded on chain (they stay in the servicer's books).

What is recorded. The loan's ``written_off`` is ``{height, time_ms,
principal, interest, penalty, reason}``: the block, its time, and what was
still owed at that moment, as the loan view showed it just before: the
outstanding principal (``loans.outstanding_principal``), the scheduled interest
still unpaid (``schedule.amount_owed`` less that principal) and the penalty
due (``servicing.penalty_due``; a defaulted loan stopped accruing it). The
history entry and the ``loan.written_off`` event carry the same amounts.
``defaulted_ms`` stays, so the borrower's repayment history counts the loan
as the default it was (``identity.repayment_history``): a write-off never
improves a score.

What follows from the state. ``written_off`` is outside
``servicing.SERVICED_STATES`` (the due-loan pass never evaluates it: a
defaulted loan has already left the due-loan index, and the write-off takes
it out again to be sure) and outside ``lifecycle.SERVICER_STATES``: a
transfer still pending lapses, and under rules 4 and 5 its servicing never
changes hands again and its servicer may be removed from the consortium
(from rules 6 its recovery may change hands, and keeps its servicer from
leaving: below). It is no longer
outstanding: exposure, portfolio and a lending policy's exposure check leave
it out, and the exposure, portfolio and positions views report what was
written off per currency (a funder's share of the principal is pro rata to
its commitment, as its share of every repayment was: ``funding.pro_rata``).

Recoveries (rules version ``RECOVERY_SINCE``). Banks go on collecting after
a charge-off (a guarantor pays, collateral is sold, a collection agency
gets something), and funders and regulators need the net loss:

- ``loan.recover`` {loan_id, amount, note?}: the loan's servicer records
  ``amount`` (at least 1) recovered on a ``written_off`` loan, which stays
  written off; ``note`` (1 to ``MAX_NOTE`` characters, not only spaces) is
  kept for auditors, like a write-off's reason. Everything recovered may
  never exceed what was written off (principal + interest + penalty): a
  larger amount is refused (``bad_payload``) naming what can still be
  recovered. From rules 6 the recovery that recovers the last of it also
  releases the collateral still pledged on the loan (``collateral``).
- Who records it: the loan's servicer, while it is a current member with
  the ``lender`` role. Under rules 5 that is the servicer the loan had when
  it was written off, for good, so once it is removed from the consortium
  nobody records recoveries on it (the refusal, ``forbidden``, says so to
  anyone who tries); from rules 6 the recovery can be handed to another
  lender (``transfers``), who records them from its acceptance on. While
  the servicer lacks the lender role (a ``member.roles`` change) its
  recoveries wait until the role is back.
- Allocation, principal first: a recovery covers what is still lost of the
  principal written off, then of the interest, then of the penalty
  (``RECOVERY_ORDER``, ``allocate_recovery``). This is how charge-off
  accounting treats recoveries: they are credited back against the
  principal charged off (the loss allowance) before anything counts as
  interest or fee income, so the net principal loss a regulator reports and
  a funder carries falls first. Integers only: each part is a minimum of
  what is left, so the parts add up to the amount exactly.
- The loan's ``recovered`` is ``{principal, interest, penalty, total,
  recoveries, height, time_ms}``: what all recoveries so far covered of each
  component, in all, how many there were, and the block and time of the
  last. Each recovery adds a history entry (``loan.recover``: amount, its
  three parts, the note if any) and a ``loan.recovered`` event (the same,
  with the currency, the total ``recovered`` and the ``net_loss`` left).
- The net loss (``net_loss``) is what was written off less what was
  recovered, per component and in all: the loan view shows it, and the
  exposure, portfolio and positions views total recovered and net amounts
  per currency. A funder's share of the recoveries is its pro-rata part of
  the loan's total recovered, and its share of the net principal loss its
  pro-rata part of that, by ``funding.pro_rata`` exactly as its share of
  the write-off: each column adds up over the funders to the loan's figure.
- A recovery does not undo the default: ``defaulted_ms`` stays, the
  repayment history counts the loan among ``defaults`` and ``written_off``
  as before (it shows the amounts recovered per currency apart, under
  ``recovered``), and the score does not change.

From rules 5 a refused transaction on a written-off loan says that
``loan.recover`` is the one it still takes, and from rules 6 that it takes
``loan.recover``, ``loan.recovery_end`` and the transfer kinds; under older
rules the old sentences stay word for word (``lifecycle.advance``): results
are hashed into blocks.

Ending the recovery (rules version ``RECOVERY_END_SINCE``, ``recovery_end``):
the servicer records that nothing more will be recovered, and the loan's
net loss is final (``recovery_ended``). From then on ``loan.recover`` and
``loan.transfer`` are refused on it (``invalid_state``), and its servicer
may leave the consortium (``removal``): a loan with money left to recover
(``recovery_open``) keeps it from leaving until the recovery is handed on
or ended.

Who shows what (``written_off_by``, ``recovery_spans``; ``exposure``). A
bank's books show a charge-off where it was made, and a recovery where it
was collected: the write-off stays with the member that wrote the loan off
(the first entry of ``recovery_handovers``, or the loan's ``lender`` if the
recovery never moved), each recovery is counted by the servicer that
recorded it (the handovers split the loan's ``recovered`` total into each
servicer's span), and what is still to recover by the servicer now. The
loan's own figures, and a funder's or a borrower's view of them, do not
depend on who services it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.collateral import release_all
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import (
    LOAN_ID_FIELD,
    MAX_AMOUNT,
    load_loan,
    loan_actors,
    outstanding_principal,
    schedule_of,
    with_history,
)
from lendchain.ledger.schedule import Progress, amount_owed
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.servicing import penalty_due, track
from lendchain.ledger.state import institution_key, loan_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = 4
MAX_REASON = 200
# loan.recover's rules version: lifecycle's refusals on a written-off loan change with it
RECOVERY_SINCE = lc.RECOVERIES_SINCE
# loan.recovery_end's, and that of the transfers of a written-off loan's recovery (``transfers``)
RECOVERY_END_SINCE = lc.WRITTEN_OFF_TRANSFERS_SINCE
MAX_NOTE = 200
RECOVERY_ORDER = ("principal", "interest", "penalty")  # what a recovery covers first (module docstring)


def write_off_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    state = lc.advance(
        loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules
    )
    reason = tx.payload["reason"].strip()
    if not reason:
        raise TxRejected(
            "bad_payload",
            "loan.write_off field 'reason' must say why the loan is written off, not only spaces",
        )
    principal = outstanding_principal(loan)
    interest = amount_owed(schedule_of(loan), Progress(*loan["progress"])) - principal
    penalty = penalty_due(loan)
    record = {
        "height": ctx.height,
        "time_ms": ctx.timestamp_ms,
        "principal": principal,
        "interest": interest,
        "penalty": penalty,
        "reason": reason,
    }
    loan = {**loan, "state": state, "written_off": record}
    loan["history_len"] = with_history(
        loan_id, loan, ctx, tx.kind, principal=principal, interest=interest, penalty=penalty, reason=reason
    )
    ctx.put(loan_key(loan_id), track(ctx, loan_id, loan))
    ctx.emit(
        "loan.written_off",
        loan_id=loan_id.hex(),
        currency=loan["currency"],
        principal=principal,
        interest=interest,
        penalty=penalty,
        reason=reason,
    )


def net_loss(loan: dict[str, Any]) -> dict[str, int]:
    """What is still lost of a written-off loan: each component written off less what was recovered of it,
    and ``total`` (what can still be recovered)."""
    written_off, recovered = loan["written_off"], loan.get("recovered", {})
    lost = {name: written_off[name] - recovered.get(name, 0) for name in RECOVERY_ORDER}
    return {**lost, "total": sum(lost.values())}


def allocate_recovery(lost: dict[str, int], amount: int) -> dict[str, int]:
    """The parts of ``amount`` (at most ``lost["total"]``) covering ``lost``'s components in ``RECOVERY_ORDER``."""
    parts = {}
    for name in RECOVERY_ORDER:
        parts[name] = min(amount, lost[name])
        amount -= parts[name]
    return parts


def recovery_open(loan: dict[str, Any]) -> bool:
    """Whether a written-off loan's recovery still needs a servicer: money is left to recover on it and
    its recovery was not ended (``loan.recovery_end``)."""
    return "recovery_ended" not in loan and net_loss(loan)["total"] > 0


def nothing_to_recover(loan: dict[str, Any]) -> str | None:
    """Why a written-off loan has no recovery left to service (a sentence's end); None if it has."""
    if "recovery_ended" in loan:
        return f"its recovery ended at height {loan['recovery_ended']['height']} (loan.recovery_end)"
    if net_loss(loan)["total"] == 0:
        return "everything written off on it was recovered"
    return None


def written_off_by(loan: dict[str, Any]) -> str:
    """The member that wrote the loan off: its servicer then (``recovery_handovers``, rules 6)."""
    handovers = loan.get("recovery_handovers")
    return handovers[0]["lender"] if handovers else loan["lender"]


def recovery_spans(loan: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Each stretch of a written-off loan's recovery under one servicer, in order: (the servicer, the
    loan's ``recovered`` total when it took the recovery over, and when it handed it on or now).

    The first is the servicer that wrote the loan off, from 0; the last the servicer now.
    """
    recovered = loan["recovered"]["total"] if "recovered" in loan else 0
    spans, start = [], 0
    for handover in loan.get("recovery_handovers", []):
        spans.append((handover["lender"], start, handover["recovered"]))
        start = handover["recovered"]
    spans.append((loan["lender"], start, recovered))
    return spans


def _servicer_gone(ctx: TxContext, loan: dict[str, Any]) -> str | None:
    """Why the written-off loan's servicer cannot record a recovery now (a sentence's end); None if it can."""
    servicer = ctx.get(institution_key(loan["lender"]))
    if "removed_height" in servicer and ctx.rules >= RECOVERY_END_SINCE:
        return (
            f"its servicer {servicer['name']} was removed from the consortium at height "
            f"{servicer['removed_height']} without handing the recovery to another lender: nobody "
            "records recoveries on it"
        )
    if "removed_height" in servicer:  # under rules 5 word for word: the results root hashes it
        return (
            f"its servicer {servicer['name']} was removed from the consortium at height "
            f"{servicer['removed_height']}, and a written-off loan never changes servicer: nobody "
            "records recoveries on it"
        )
    if "lender" not in servicer["roles"]:
        return (
            f"its servicer {servicer['name']} does not hold the lender role now: it records recoveries "
            "again once the members give it back (member.roles)"
        )
    return None


def recover_on_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    where = f"loan.recover on loan {loan_id.hex()[:16]}"
    if "recovery_ended" in loan:  # rules 6: said to anyone, as the servicer's absence is
        raise TxRejected(
            "invalid_state",
            f"{where}: {nothing_to_recover(loan)}: its net loss is final and nothing more is recorded on it",
        )
    gone = _servicer_gone(ctx, loan) if loan["state"] == lc.WRITTEN_OFF else None
    if gone is not None:  # said to anyone who tries, not only to a servicer that could not sign
        raise TxRejected("forbidden", f"{where}: {gone}")
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    note = tx.payload.get("note")
    if note is not None:
        note = note.strip()
        if not note:
            raise TxRejected(
                "bad_payload", "loan.recover field 'note' must say something when given, not only spaces"
            )
    amount = tx.payload["amount"]
    lost = net_loss(loan)
    if amount > lost["total"]:
        written_off = sum(loan["written_off"][name] for name in RECOVERY_ORDER)
        raise TxRejected(
            "bad_payload",
            f"loan.recover field 'amount' is {amount}, more than the {lost['total']} that can still be "
            f"recovered on loan {loan_id.hex()[:16]} (written off {written_off}, recovered "
            f"{written_off - lost['total']} so far)",
        )
    parts = allocate_recovery(lost, amount)
    before = loan.get("recovered", dict.fromkeys((*RECOVERY_ORDER, "total", "recoveries"), 0))
    recovered = {
        **{name: before[name] + parts[name] for name in RECOVERY_ORDER},
        "total": before["total"] + amount,
        "recoveries": before["recoveries"] + 1,
        "height": ctx.height,
        "time_ms": ctx.timestamp_ms,
    }
    loan = {**loan, "recovered": recovered}
    fields = {"amount": amount, **parts, **({"note": note} if note is not None else {})}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, **fields)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(
        "loan.recovered",
        loan_id=loan_id.hex(),
        currency=loan["currency"],
        **fields,
        recovered=recovered["total"],
        net_loss=lost["total"] - amount,
    )
    if amount == lost["total"]:  # rules 6: all written off is recovered, so the claim is met (``collateral``)
        release_all(ctx, loan_id, loan, "recovered")


register_kind(
    "loan.write_off",
    Schema((LOAN_ID_FIELD, Field("reason", "str", min=1, max=MAX_REASON))),
    write_off_loan,
    since=SINCE_RULES,
)
register_kind(
    "loan.recover",
    Schema(
        (
            LOAN_ID_FIELD,
            Field("amount", "int", min=1, max=MAX_AMOUNT),
            Field("note", "str", required=False, min=1, max=MAX_NOTE),
        )
    ),
    recover_on_loan,
    since=RECOVERY_SINCE,
)
