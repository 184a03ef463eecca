"""Funding a loan by several funders (P2P / syndicated) and sharing its repayments.

A lender makes a syndicated offer by giving ``loan.offer`` a
``funding_window_ms``. When the borrower accepts it the loan enters
``funding`` with a deadline (acceptance block time + window) and a target (the
loan amount). Then:

- ``loan.fund`` {loan_id, amount}: a registered investor or a lender member
  (not the borrower) commits a share; a second commitment by the same funder
  adds to its share. A commitment past the deadline, or above what is still
  missing, is refused naming the field. Reaching the target moves the loan to
  ``funded``, and the servicer may disburse it.
- ``loan.fund_expire`` {loan_id}: once the deadline has passed, any member
  closes an underfunded loan: it becomes ``unfunded`` and every commitment is
  marked released (from rules 6 so is the collateral pledged on it:
  ``collateral``).

From rules version 2 a funder's first commitment to a loan also appends the
loan to the funder's index (``state.funder_loans_key``), so its positions can
be listed (``positions.positions_view``) without walking every loan.
Commitments made under rules 1 are not in it.

Every repayment of a funded loan is split among funders pro rata to their
shares by ``pro_rata``: each gets the floor of its exact share, and the
units left over go one each to the funders with the largest remainders, ties
to the earlier commitment. The parts always add up to the payment and each
is within one minor unit of the exact share.

From rules version 6 a funder sells all or part of its commitment to a new
holder (``assignment``): the commitments stay one record per funder, in
order, a new holder's appended last, and a record sold whole keeps its place
with an amount of 0, which ``pro_rata`` gives nothing. The amounts still add
up to the target, so every split still adds up to the payment.
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
    append_index,
    load_loan,
    loan_actors,
    with_history,
)
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import funder_loans_key, loan_key

FUNDER_INDEX_SINCE = 2  # the rules version from which loan.fund keeps the funder's index

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction


def pro_rata(amount: int, shares: list[int]) -> list[int]:
    """Split ``amount`` by ``shares`` exactly (largest remainder, ties to the earlier share)."""
    total = sum(shares)
    if total <= 0:
        raise ValueError("pro_rata needs a positive total share")
    parts = [amount * share // total for share in shares]
    remainders = [amount * share % total for share in shares]
    left = amount - sum(parts)
    for index in sorted(range(len(shares)), key=lambda i: (-remainders[i], i))[:left]:
        parts[index] += 1
    return parts


def start_funding(ctx: TxContext, loan_id: bytes, loan: dict[str, Any], window_ms: int) -> dict[str, Any]:
    """The accepted loan moved to ``funding`` (called by ``loan.accept`` for a syndicated offer)."""
    state = lc.advance(loan["state"], lc.NEEDS_FUNDING, frozenset({lc.LEDGER}), ctx.tx_id, loan_id)
    deadline = ctx.timestamp_ms + window_ms
    ctx.emit("loan.funding", loan_id=loan_id.hex(), target=loan["amount"], deadline_ms=deadline)
    return {
        **loan,
        "state": state,
        "funding": {"target": loan["amount"], "funded": 0, "deadline_ms": deadline, "commitments": []},
    }


def distribute(loan: dict[str, Any], amount: int) -> dict[str, Any]:
    """The loan with ``amount`` of a repayment credited to its funders pro rata."""
    commitments = loan["funding"]["commitments"]
    parts = pro_rata(amount, [c["amount"] for c in commitments])
    shared = [{**c, "received": c["received"] + part} for c, part in zip(commitments, parts, strict=True)]
    return {**loan, "funding": {**loan["funding"], "commitments": shared}}


def fund_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    state = lc.advance(
        loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules
    )
    funding = loan["funding"]
    if ctx.timestamp_ms >= funding["deadline_ms"]:
        raise TxRejected(
            "invalid_state",
            f"loan.fund on loan {loan_id.hex()[:16]}: its funding deadline {funding['deadline_ms']} has passed",
        )
    amount = tx.payload["amount"]
    missing = funding["target"] - funding["funded"]
    if amount > missing:
        raise TxRejected(
            "bad_payload", f"loan.fund field 'amount' is {amount}, more than the {missing} still missing"
        )
    commitments = [dict(c) for c in funding["commitments"]]
    mine = next((c for c in commitments if c["funder"] == tx.sender), None)
    if mine is None:
        commitments.append({"funder": tx.sender, "amount": amount, "received": 0, "status": "committed"})
        if ctx.rules >= FUNDER_INDEX_SINCE:
            append_index(ctx, funder_loans_key(tx.sender), loan_id)
    else:
        mine["amount"] += amount
    funding = {**funding, "funded": funding["funded"] + amount, "commitments": commitments}
    if funding["funded"] == funding["target"]:
        state = lc.advance(state, lc.FULLY_FUNDED, frozenset({lc.LEDGER}), ctx.tx_id, loan_id)
    loan = {**loan, "state": state, "funding": funding}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, funder=tx.sender, amount=amount)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.funded", loan_id=loan_id.hex(), funder=tx.sender, amount=amount, state=state)


def expire_funding(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    state = lc.advance(
        loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules
    )
    funding = loan["funding"]
    if ctx.timestamp_ms < funding["deadline_ms"]:
        raise TxRejected(
            "invalid_state",
            f"loan.fund_expire on loan {loan_id.hex()[:16]}: its funding deadline {funding['deadline_ms']} "
            f"is still ahead (block time {ctx.timestamp_ms})",
        )
    released = [{**c, "status": "released"} for c in funding["commitments"]]
    loan = {**loan, "state": state, "funding": {**funding, "commitments": released}}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, released=funding["funded"])
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.unfunded", loan_id=loan_id.hex(), released=funding["funded"])
    release_all(ctx, loan_id, loan, "unfunded")  # rules 6: nothing lent, nothing secured (``collateral``)


register_kind("loan.fund", Schema((LOAN_ID_FIELD, Field("amount", "int", min=1, max=MAX_AMOUNT))), fund_loan)
register_kind("loan.fund_expire", Schema((LOAN_ID_FIELD,)), expire_funding)
