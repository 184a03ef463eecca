"""Servicing: due dates, overdue and default, penalty interest and repayments.

Everything here is driven by block time (``ctx.timestamp_ms``), never a clock:

- instalment ``n`` (1-based) of a disbursed loan is due at
  ``disbursed_ms + n · MONTH_MS`` (a month is 30 days); after a
  restructuring (``restructuring``, rules 5) the instalments of its new
  schedule are due a month apart from its ``first_due_ms``, the month after
  its payment holiday (``due_ms``);
- a loan is *evaluated* at the start of the first block at or after the
  time its state may change by itself (the due-loan pass below), and
  whenever a ``loan.repay``, ``loan.prepay`` or ``loan.service`` tx touches
  it: if its oldest unpaid instalment is past due plus ``grace_days`` it
  becomes ``overdue``; past due plus ``default_days`` it becomes
  ``defaulted`` (counted in the borrower's repayment history);
- penalty interest (``penalty_bps`` a year) accrues on each unpaid amount
  from its due time plus grace. Between two evaluations the unpaid amounts do
  not change (only payments change them, and a payment evaluates first), so
  the accrual ``Σ remaining_i · elapsed_i · penalty_bps / (YEAR_MS · 10 000)``
  is exact; it is rounded down once per evaluation, in the borrower's favour.
  A defaulted loan stops accruing.
- a payment goes to penalty first, then to the schedule (interest, then
  principal, instalment by instalment); more than is owed is refused naming
  the amount owed. Each instalment a payment completes counts as on time or
  late on the loan (``on_time``/``late``); a default stamps ``defaulted_ms``
  and, from rules 6, counts itself in ``defaults`` (``identity.default_episodes``).
  The borrower's repayment history, which the score reads, sums these over
  the borrower's loans (``identity.repayment_history``), so a repayment
  writes no key besides the loan's own.

``loan.prepay`` {loan_id, amount}. The payoff at block time is: penalty,
the interest of every unpaid instalment whose period has begun, and all
outstanding principal; later interest is waived.

- ``amount`` equal to the payoff settles the whole debt and closes the loan
  (a closing payment, by ``loan.repay`` too, releases from rules 6 the
  collateral pledged on the loan: ``collateral``);
- ``amount`` above it is refused naming the payoff;
- ``amount`` below it is a partial prepayment, allowed on a loan without
  arrears and before its last period: it must be more than the penalty and
  begun interest, which it pays first; the rest reduces the outstanding
  principal. The instalments whose period has begun count as settled (their
  interest is paid, their principal is part of what is amortized again) and
  the remaining principal is amortized afresh over the rest of the term
  (``amortization``: same kind, same rate, integer rounding as ever; after a
  restructuring, its rate and term).
  We keep the term and lower the instalments rather than shortening the
  term, so due dates, the due-loan index and the borrower's reminders stay
  where they were.

The due-loan pass. Every serviced loan is filed in the due-loan index
(``due.py``) under its next check: just after its first unpaid instalment's
due time plus grace (it may fall overdue), or for an overdue loan the
earlier of that for the next instalment (more arrears, penalty) and just
after its oldest unpaid instalment's due time plus ``default_days`` (it
defaults). At the start of every block, before its transactions (see
``execute``), the pass evaluates the loans filed at or before the block
time, in the index's order (hour, then order of filing), emits the same ``loan.overdue``/``loan.defaulted``
events and history entries a tx would (the history entry's ``tx_id`` is
``kinds.LEDGER_TX_ID``, the events go to the block's ledger result) and
files each loan again under its next check, or takes it out once it is
closed or defaulted (a defaulted loan written off, ``writeoff``, is never
filed again; one restructured, ``restructuring``, is filed again under its
new schedule's first check). So a loan nobody pays turns overdue and defaulted
through blocks that do not mention it. The pass evaluates at most
``max_evaluations_per_block`` loans (chain parameter, default 256); the
rest stay filed and the next block continues in that order, so a block's
extra work is bounded. Blocks are only
cut when there are transactions (or in a view change), so on an idle chain
the pass runs with the next block; evaluation by block time makes the
amounts the same either way.

``loan.service`` {loan_id} still lets any member trigger the evaluation at
once. ``grace_days``, ``default_days`` and ``penalty_bps`` are chain
parameters (``params``) read per loan: a loan keeps the ones in force when it
was disbursed, whatever governance changes later (``servicing_param``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lendchain.ledger import due
from lendchain.ledger import lifecycle as lc
from lendchain.ledger.amortization import schedule_rows
from lendchain.ledger.collateral import release_all
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.funding import distribute
from lendchain.ledger.identity import DEFAULT_EPISODES_SINCE, default_episodes
from lendchain.ledger.kinds import register_block_hook, register_kind
from lendchain.ledger.loans import (
    LOAN_ID_FIELD,
    MAX_AMOUNT,
    load_loan,
    loan_actors,
    outstanding_principal,
    schedule_of,
    with_history,
)
from lendchain.ledger.params import for_loan, value
from lendchain.ledger.schedule import Instalment, allocate, owed_from
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import loan_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

DAY_MS = 86_400_000
MONTH_MS = 30 * DAY_MS
YEAR_MS = 365 * DAY_MS
SERVICED_STATES = (lc.DISBURSED, lc.REPAYING, lc.OVERDUE)


# ``grace_days``, ``default_days`` or ``penalty_bps`` of a loan: the value in force when it was
# disbursed (``params.for_loan``: a change by governance applies to loans disbursed after it).
# Every evaluation and next check asks, so this is ``for_loan`` itself, not a call of it (a repayment
# reads ``grace_days`` once, ``grace_of``, and hands it on).
servicing_param = for_loan


def due_ms(loan: dict[str, Any], number: int) -> int:
    """When instalment ``number`` falls due: the last restructuring that kept fewer instalments
    than ``number`` numbers it from its ``first_due_ms``; without one, from the disbursement."""
    restructurings = loan.get("restructurings")
    if restructurings:  # most loans have none: no reversed walk of an empty list
        for record in reversed(restructurings):
            kept = record["instalments_kept"]
            if number > kept:
                return record["first_due_ms"] + (number - kept - 1) * MONTH_MS
    return loan["disbursed_ms"] + number * MONTH_MS


def periods_from(loan: dict[str, Any]) -> tuple[int, int]:
    """(k, t): the schedule in force numbers its instalments from k + 1, and instalment k + n falls
    due at t + n months. (0, the disbursement) until a restructuring: then the instalments it kept
    and the end of its payment holiday (``restructuring``)."""
    restructurings = loan.get("restructurings")
    if not restructurings:
        return 0, loan["disbursed_ms"]
    last = restructurings[-1]
    return last["instalments_kept"], last["first_due_ms"] - MONTH_MS


def unpaid_instalments(loan: dict[str, Any], schedule: list[Instalment]) -> list[tuple[int, int]]:
    """(instalment number, amount still unpaid) for every instalment not yet fully paid."""
    paid, on_interest, on_principal = loan["progress"]
    rows = [(row.number, row.payment) for row in schedule[paid:]]
    if rows:
        rows[0] = (rows[0][0], rows[0][1] - on_interest - on_principal)
    return rows


def arrears(
    loan: dict[str, Any], schedule: list[Instalment], now_ms: int, grace_ms: int
) -> list[tuple[int, int]]:
    """The unpaid instalments that are past due plus grace at ``now_ms`` (stops at the first that is not)."""
    paid, on_interest, on_principal = loan["progress"]
    rows = []
    for row in schedule[paid:]:
        if due_ms(loan, row.number) + grace_ms >= now_ms:
            break
        rows.append((row.number, row.payment - (on_interest + on_principal if row.number == paid + 1 else 0)))
    return rows


def penalty_accrued(
    loan: dict[str, Any], schedule: list[Instalment], now_ms: int, params: dict[str, Any]
) -> int:
    """Penalty interest since the last evaluation, rounded down (see the module docstring)."""
    grace_ms = servicing_param(params, "grace_days", loan) * DAY_MS
    as_of = loan.get("penalty_as_of_ms") or 0
    weighted = 0
    for number, left in arrears(loan, schedule, now_ms, grace_ms):
        weighted += left * (now_ms - max(as_of, due_ms(loan, number) + grace_ms))
    return weighted * servicing_param(params, "penalty_bps", loan) // (YEAR_MS * 10_000)


def penalty_due(loan: dict[str, Any]) -> int:
    """Penalty accrued and neither paid nor capitalised by a restructuring (``restructuring``)."""
    return loan.get("penalty_owed", 0) - loan.get("penalty_paid", 0) - loan.get("penalty_capitalised", 0)


def _counted(loan: dict[str, Any], field: str, times: int = 1) -> dict[str, Any]:
    """The loan with its ``on_time``/``late`` instalment counter raised (the score sums them)."""
    return {**loan, field: loan.get(field, 0) + times} if times else loan


def grace_of(params: dict[str, Any], loan: dict[str, Any]) -> int:
    """The loan's grace period in ms (``grace_days`` in force at its disbursement)."""
    return servicing_param(params, "grace_days", loan) * DAY_MS


def evaluate(
    ctx: TxContext, loan_id: bytes, loan: dict[str, Any], grace_ms: int | None = None
) -> dict[str, Any]:
    """The loan after accruing penalty and applying overdue/default at this block's time
    (``grace_ms``: ``grace_of`` the loan, when the caller has it already)."""
    if loan["state"] not in SERVICED_STATES:
        return loan
    now = ctx.timestamp_ms
    if grace_ms is None:
        grace_ms = grace_of(ctx.params, loan)
    first_unpaid = loan["progress"][0] + 1
    if first_unpaid > loan["term_months"] or due_ms(loan, first_unpaid) + grace_ms >= now:
        return loan  # the common case: nothing is late, so no schedule is needed
    schedule = schedule_of(loan)
    late = arrears(loan, schedule, now, grace_ms)
    if not late:
        # Nothing accrues, and the accrual start need not move: instalments that fall
        # overdue later accrue from their own due time plus grace.
        return loan
    loan = {
        **loan,
        "penalty_owed": loan.get("penalty_owed", 0) + penalty_accrued(loan, schedule, now, ctx.params),
        "penalty_as_of_ms": now,
    }
    number = late[0][0]
    oldest_due = due_ms(loan, number)
    ledger = frozenset({lc.LEDGER})
    if loan["state"] != lc.OVERDUE:
        loan["state"] = lc.advance(loan["state"], lc.FELL_OVERDUE, ledger, ctx.tx_id, loan_id)
        loan["history_len"] = with_history(
            loan_id, loan, ctx, "loan.overdue", instalment=number, due_ms=oldest_due
        )
        ctx.emit("loan.overdue", loan_id=loan_id.hex(), instalment=number, due_ms=oldest_due)
    if now > oldest_due + servicing_param(ctx.params, "default_days", loan) * DAY_MS:
        loan["state"] = lc.advance(loan["state"], lc.WENT_DEFAULT, ledger, ctx.tx_id, loan_id)
        loan["history_len"] = with_history(
            loan_id, loan, ctx, "loan.defaulted", instalment=number, due_ms=oldest_due
        )
        # From rules 6 each default counts: a loan restructured after its default may default again.
        if ctx.rules >= DEFAULT_EPISODES_SINCE:
            loan["defaults"] = default_episodes(loan) + 1
        loan["defaulted_ms"] = now
        ctx.emit("loan.defaulted", loan_id=loan_id.hex(), instalment=number, due_ms=oldest_due)
    return loan


def next_check_ms(
    loan: dict[str, Any], now_ms: int, params: dict[str, Any], grace_ms: int | None = None
) -> int | None:
    """When the loan's state may next change by itself (after ``now_ms``), or None if it cannot
    (``grace_ms``: ``grace_of`` the loan, when the caller has it already)."""
    if loan["state"] not in SERVICED_STATES:
        return None
    first_unpaid = loan["progress"][0] + 1
    term = loan["term_months"]
    if first_unpaid > term:
        return None
    if grace_ms is None:
        grace_ms = grace_of(params, loan)
    kept, start = periods_from(loan)
    # The first unpaid instalment not yet past due plus grace at now_ms (ceiling division).
    number = kept + -(-(now_ms - grace_ms - start) // MONTH_MS)
    if number < first_unpaid:
        number = first_unpaid
    # The earlier of the two checks, and never before now_ms + 1 (min and max written out:
    # every repayment and disbursement asks).
    check = due_ms(loan, number) + grace_ms + 1 if number <= term else None
    if loan["state"] == lc.OVERDUE:
        defaults = due_ms(loan, first_unpaid) + servicing_param(params, "default_days", loan) * DAY_MS + 1
        if check is None or defaults < check:
            check = defaults
    if check is None:
        return None
    return check if check > now_ms else now_ms + 1


def track(
    ctx: TxContext, loan_id: bytes, loan: dict[str, Any], grace_ms: int | None = None, *, own: bool = False
) -> dict[str, Any]:
    """The loan filed in the due-loan index under its next check (or taken out of it); ``own``:
    ``loan`` is the caller's own new dict, updated in place (``due.reschedule``)."""
    check_ms = next_check_ms(loan, ctx.timestamp_ms, ctx.params, grace_ms)
    return due.reschedule(ctx, loan_id, loan, check_ms, own=own)


def due_loan_pass(ctx: TxContext) -> None:
    """The block hook: evaluate the loans whose check time has come (see the module docstring)."""
    limit = value(ctx.params, "max_evaluations_per_block")
    for loan_id in due.due_loans(ctx, limit):
        loan = evaluate(ctx, loan_id, ctx.get(loan_key(loan_id)))
        ctx.put(loan_key(loan_id), track(ctx, loan_id, loan))


def service_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    loan = track(ctx, loan_id, evaluate(ctx, loan_id, loan))
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.serviced", loan_id=loan_id.hex(), state=loan["state"], penalty_due=penalty_due(loan))


def repay_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx, shared=True)  # evaluate and the payment build new dicts
    # Read once for the evaluation, the payment and the next check: none of them changes the
    # disbursement time the parameter is chosen by.
    grace_ms = grace_of(ctx.params, loan)
    # Evaluating first is safe: a refusal below discards what the evaluation wrote.
    loan = evaluate(ctx, loan_id, loan, grace_ms)
    actors = loan_actors(ctx, tx.sender, loan)
    state = lc.advance(loan["state"], tx.kind, actors, ctx.tx_id, loan_id, rules=ctx.rules)
    schedule = schedule_rows(loan)  # only read below
    paid, on_interest, on_principal = loan["progress"]
    amount = tx.payload["amount"]
    owed_penalty = penalty_due(loan)
    owed = owed_from(schedule, paid, on_interest, on_principal) + owed_penalty
    if amount > owed:
        raise TxRejected(
            "bad_payload",
            f"loan.repay field 'amount' is {amount}, more than the {owed} still owed on loan {loan_id.hex()[:16]}",
        )
    penalty = min(amount, owed_penalty)
    interest = principal = 0
    progress = [paid, on_interest, on_principal]
    if amount > penalty:
        interest, principal, *progress = allocate(schedule, paid, on_interest, on_principal, amount - penalty)
    now = ctx.timestamp_ms
    late = 0
    for number in range(paid + 1, progress[0] + 1):  # the instalments this payment completed
        if now > due_ms(loan, number) + grace_ms:
            late += 1
    loan = {
        **loan,
        "principal_paid": loan["principal_paid"] + principal,
        "interest_paid": loan["interest_paid"] + interest,
        "penalty_paid": loan.get("penalty_paid", 0) + penalty,
        "progress": progress,
    }
    # This handler's own new dict: the counters are raised in it rather than by two more copies.
    for field, times in (("late", late), ("on_time", progress[0] - paid - late)):
        if times:
            loan[field] = loan.get(field, 0) + times
    if amount == owed:
        state = lc.advance(state, lc.PAID_OFF, frozenset({lc.LEDGER}), ctx.tx_id, loan_id)
    elif state == lc.OVERDUE and not arrears(loan, schedule, now, grace_ms):
        state = lc.advance(state, lc.CURED, frozenset({lc.LEDGER}), ctx.tx_id, loan_id)
    loan["state"] = state
    _record_payment(ctx, tx, loan_id, loan, "loan.repaid", amount, penalty, interest, principal, grace_ms)


def payoff(loan: dict[str, Any], schedule: list[Instalment], now_ms: int) -> tuple[int, int, int]:
    """(penalty, interest, principal) that settle the loan at ``now_ms``.

    Interest is owed for every unpaid instalment whose period has begun (the
    first unpaid one always); the interest of later periods is waived. The
    principal is the outstanding one, with what a restructuring capitalised
    (its holiday's interest included: ``restructuring``).
    """
    interest = 0
    for position, (number, _) in enumerate(unpaid_instalments(loan, schedule)):
        if position == 0 or due_ms(loan, number - 1) <= now_ms:
            row = schedule[number - 1]
            interest += row.interest - (loan["progress"][1] if position == 0 else 0)
    return penalty_due(loan), interest, outstanding_principal(loan)


def prepay_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    loan = evaluate(ctx, loan_id, loan)
    state = lc.advance(
        loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules
    )
    schedule = schedule_of(loan)
    now = ctx.timestamp_ms
    penalty, interest, principal = payoff(loan, schedule, now)
    amount = tx.payload["amount"]
    owed = penalty + interest + principal
    if amount > owed:
        raise TxRejected(
            "bad_payload",
            f"loan.prepay field 'amount' is {amount}, more than the {owed} that settles loan "
            f"{loan_id.hex()[:16]} now (penalty {penalty}, interest {interest}, principal {principal})",
        )
    grace_ms = servicing_param(ctx.params, "grace_days", loan) * DAY_MS
    if amount < owed:
        _prepay_part(ctx, tx, loan_id, {**loan, "state": state}, schedule, (penalty, interest, principal))
        return
    state = lc.advance(state, lc.PAID_OFF, frozenset({lc.LEDGER}), ctx.tx_id, loan_id)
    loan = _counted(loan, "late", len(arrears(loan, schedule, now, grace_ms)))
    loan = {
        **loan,
        "state": state,
        "principal_paid": loan["principal_paid"] + principal,
        "interest_paid": loan["interest_paid"] + interest,
        "penalty_paid": loan.get("penalty_paid", 0) + penalty,
        "progress": [len(schedule), 0, 0],
        "prepaid_ms": now,
    }
    _record_payment(ctx, tx, loan_id, loan, "loan.prepaid", amount, penalty, interest, principal)


def _prepay_part(
    ctx: TxContext,
    tx: Transaction,
    loan_id: bytes,
    loan: dict[str, Any],
    schedule: list[Instalment],
    due_now: tuple[int, int, int],
) -> None:
    """A partial prepayment (see the module docstring); ``due_now`` is the payoff's three parts."""
    penalty, interest, principal = due_now
    amount = tx.payload["amount"]
    now = ctx.timestamp_ms
    where = f"loan {loan_id.hex()[:16]}"
    if arrears(loan, schedule, now, servicing_param(ctx.params, "grace_days", loan) * DAY_MS):
        raise TxRejected(
            "invalid_state",
            f"loan.prepay field 'amount' is {amount}, less than the {penalty + interest + principal} that "
            f"settles {where}, which has arrears: bring it current with loan.repay, or prepay in full",
        )
    kept, start = periods_from(loan)
    # The last period that has begun: every unpaid instalment up to it is settled now.
    settled = min(loan["term_months"], max(loan["progress"][0] + 1, kept + (now - start) // MONTH_MS + 1))
    if settled == loan["term_months"]:
        raise TxRejected(
            "bad_payload",
            f"loan.prepay field 'amount' is {amount}, but {where} is in its last period: "
            f"prepay the full {penalty + interest + principal} or pay with loan.repay",
        )
    if amount <= penalty + interest:
        raise TxRejected(
            "bad_payload",
            f"loan.prepay field 'amount' is {amount}; a partial prepayment of {where} must be more than "
            f"the {penalty + interest} of penalty and interest due now (use loan.repay for less)",
        )
    paid_principal = amount - penalty - interest
    remaining = principal - paid_principal
    loan = {
        **loan,
        "principal_paid": loan["principal_paid"] + paid_principal,
        "interest_paid": loan["interest_paid"] + interest,
        "penalty_paid": loan.get("penalty_paid", 0) + penalty,
        "progress": [settled, 0, 0],
        "reschedules": [*loan.get("reschedules", []), [settled, remaining]],
    }
    next_row = schedule_of(loan)[settled]
    ctx.emit(
        "loan.rescheduled",
        loan_id=loan_id.hex(),
        settled_instalments=settled,
        outstanding_principal=remaining,
        next_instalment=next_row.payment,
    )
    _record_payment(ctx, tx, loan_id, loan, "loan.prepaid", amount, penalty, interest, paid_principal)


def _record_payment(
    ctx: TxContext,
    tx: Transaction,
    loan_id: bytes,
    loan: dict[str, Any],
    event: str,
    amount: int,
    penalty: int,
    interest: int,
    principal: int,
    grace_ms: int | None = None,
) -> None:
    """History entry, funders' shares, the stored loan and the event for one payment. ``loan`` is
    the handler's own new dict (changed in place); ``grace_ms`` as for ``track``."""
    loan["history_len"] = with_history(
        loan_id, loan, ctx, tx.kind, amount=amount, penalty=penalty, interest=interest, principal=principal
    )
    if "funding" in loan:
        loan = distribute(loan, amount)
    loan = track(ctx, loan_id, loan, grace_ms, own=True)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(
        event,
        loan_id=loan_id.hex(),
        penalty=penalty,
        interest=interest,
        principal=principal,
        state=loan["state"],
    )
    if loan["state"] == lc.CLOSED:  # rules 6: nothing is owed, so nothing is secured (``collateral``)
        release_all(ctx, loan_id, loan, "closed")


register_block_hook("servicing.due_loans", due_loan_pass)
register_kind("loan.service", Schema((LOAN_ID_FIELD,)), service_loan)
register_kind(
    "loan.prepay", Schema((LOAN_ID_FIELD, Field("amount", "int", min=1, max=MAX_AMOUNT))), prepay_loan
)
register_kind(
    "loan.repay",
    Schema(
        (
            LOAN_ID_FIELD,
            Field("amount", "int", min=1, max=MAX_AMOUNT),
            Field("reference", "str", required=False, max=64),
        )
    ),
    repay_loan,
)
