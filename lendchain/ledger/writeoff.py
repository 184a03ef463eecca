"""Writing off a defaulted loan: ``loan.write_off`` (rules version 4).

A loan that defaults stays ``defaulted`` while its servicer tries to
recover what is owed (``loan.repay`` records recoveries). When recovery
ends, the bank charges the loan off in its books; from rules version
``SINCE_RULES`` it records that on the chain too, so every member and a
regulator see the loss:

- ``loan.write_off`` {loan_id, reason}: the loan's servicer (its ``lender``)
  writes off a loan in state ``defaulted``; ``reason`` (1 to ``MAX_REASON``
  characters, not only spaces) is kept for auditors. The loan moves to
  ``written_off``, a final state: nothing changes it afterwards, and a
  refused transaction on it says that recoveries after a write-off are not
  recorded on chain (they stay in the servicer's books).

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
it out again to be sure) and outside ``lifecycle.SERVICER_STATES``: it needs
no servicer, so its servicer may be removed from the consortium, and a
transfer still pending lapses. It is no longer outstanding: exposure,
portfolio and a lending policy's exposure check leave it out, and the
exposure, portfolio and positions views report what was written off per
currency (a funder's share of the principal is pro rata to its commitment,
as its share of every repayment was: ``funding.pro_rata``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import (
    LOAN_ID_FIELD,
    load_loan,
    loan_actors,
    outstanding_principal,
    schedule_of,
    with_history,
)
from lendchain.ledger.schedule import Progress, amount_owed
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.servicing import penalty_due, track
from lendchain.ledger.state import loan_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = 4
MAX_REASON = 200


def write_off_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    state = lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id)
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


register_kind(
    "loan.write_off",
    Schema((LOAN_ID_FIELD, Field("reason", "str", min=1, max=MAX_REASON))),
    write_off_loan,
    since=SINCE_RULES,
)
