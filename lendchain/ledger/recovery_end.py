"""Ending a written-off loan's recovery: ``loan.recovery_end`` (rules version 6).

From rules 6 a member that services the recovery of a written-off loan with
money left to recover cannot leave the consortium (``removal``): the loan's
funders would lose the recoveries nobody could record any more. It hands the
recovery to another lender (``transfers``), or, when recovery is hopeless
(the borrower is insolvent, the collateral is gone, the claim is time-barred),
says so on the chain, so that it can leave and everyone sees the loss is
final:

- ``loan.recovery_end`` {loan_id, reason}: the loan's servicer ends the
  recovery of a ``written_off`` loan; ``reason`` (1 to ``MAX_REASON``
  characters, not only spaces) is kept for auditors, like a write-off's.
  The loan stays written off and keeps ``recovery_ended`` {height, time_ms,
  reason}; its history entry and the ``loan.recovery_ended`` event carry the
  reason and the net loss left (``net_loss``: what was written off less
  what was recovered, which is final from then on). The ledger releases the
  collateral still pledged on the loan in the same transaction
  (``collateral``): nothing more will be realised on the claim.
- Refused (``invalid_state``) when the recovery has ended already, and
  while a transfer of the loan is pending: the servicer offered the recovery
  to another lender, and withdraws that offer first
  (``loan.transfer_withdraw``) if it ends the recovery instead.
- Afterwards ``loan.recover`` and ``loan.transfer`` are refused on the loan
  (``writeoff``, ``transfers``), and it keeps nobody from leaving
  (``writeoff.recovery_open``). Nothing takes the end back: a recovery that
  comes later stays in the servicer's books.

The views report the loan as before: its write-off, what was recovered and
its net loss, which is final.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.collateral import release_all
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import LOAN_ID_FIELD, load_loan, loan_actors, with_history
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import loan_key
from lendchain.ledger.transfers import pending_transfer
from lendchain.ledger.writeoff import MAX_REASON, RECOVERY_END_SINCE, net_loss

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = RECOVERY_END_SINCE


def end_recovery(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    where = f"loan.recovery_end on loan {loan_id.hex()[:16]}"
    ended = loan.get("recovery_ended")
    if ended is not None:
        raise TxRejected("invalid_state", f"{where}: its recovery ended at height {ended['height']} already")
    transfer = pending_transfer(loan)
    if transfer is not None:
        raise TxRejected(
            "invalid_state",
            f"{where}: its transfer to {transfer['to']} (offered at height {transfer['height']}) is pending; "
            "withdraw it first (loan.transfer_withdraw) to end the recovery instead",
        )
    reason = tx.payload["reason"].strip()
    if not reason:
        raise TxRejected(
            "bad_payload", "loan.recovery_end field 'reason' must say why the recovery ends, not only spaces"
        )
    lost = net_loss(loan)["total"]
    loan = {**loan, "recovery_ended": {"height": ctx.height, "time_ms": ctx.timestamp_ms, "reason": reason}}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, reason=reason, net_loss=lost)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(
        "loan.recovery_ended", loan_id=loan_id.hex(), currency=loan["currency"], reason=reason, net_loss=lost
    )
    release_all(ctx, loan_id, loan, "recovery_ended")  # nothing more is realised on it (``collateral``)


register_kind(
    "loan.recovery_end",
    Schema((LOAN_ID_FIELD, Field("reason", "str", min=1, max=MAX_REASON))),
    end_recovery,
    since=SINCE_RULES,
)
