"""Restructuring a loan (forbearance): ``loan.restructure`` and its answers (rules version 5; its
guard rails, rules version 6).

A borrower in trouble and its servicer may agree to change the loan's
remaining terms rather than let it default. From rules version
``SINCE_RULES``:

- ``loan.restructure`` {loan_id, rate_bps, term_months, holiday_months?}: the
  loan's servicer (its ``lender``) proposes new terms. ``rate_bps`` is
  bounded as ``loan.offer``'s; ``term_months`` (at most the chain's
  ``max_term_months``) counts the months of the new schedule from the
  acceptance, of which the first ``holiday_months`` (0 to
  ``MAX_HOLIDAY_MONTHS``, default 0) have nothing due, so at least one month
  after the holiday must have an instalment. A proposal must change
  something: the rate, the number of instalments still to pay (the loan's
  ``term_months`` less its ``instalments_paid``), or a holiday. The same
  terms again would only move an overdue loan's due dates forward without a
  concession, what supervisors call re-ageing. One proposal is pending at a
  time: a second is refused until the first is accepted or withdrawn (or
  lapses, or from rules 6 expires: below).
- ``loan.restructure_accept`` {loan_id}: the borrower accepts the pending
  proposal; it applies at the block's time (below).
- ``loan.restructure_withdraw`` {loan_id}: the servicer takes it back.
- ``loan.restructure_consent`` {loan_id}: a funder of a syndicated loan
  consents to the pending proposal. A syndicated loan's proposal is
  accepted only once the funders holding more than half of the commitments
  have consented, the proposing servicer's own commitment by proposing
  (``funder_consent``); the consents belong to the proposal and go with it.
  A loan that is not syndicated needs no consent.

Which states (``lifecycle.RESTRUCTURE_STATES``): disbursed, repaying, overdue
and defaulted, the states in which a schedule is running. An accepted or
funded loan not yet disbursed has nothing to restructure (its terms are
the offer's until it is paid out). A defaulted loan may be restructured: a
workout agreement is how many recoveries end, and refusing it would leave
the servicer only a write-off. The default stays on record: the loan keeps
``defaulted_ms``, so the borrower's repayment history counts it among its
defaults for good (``identity.repayment_history``), as a write-off does.

Lapse. A proposal is made for the loan as it stood: it lapses (nothing can
accept or withdraw it; a new proposal replaces it) when the loan defaults
after it was made, or is closed or written off, and it is dropped when a
``loan.transfer`` is accepted, since the new servicer is not bound by its
predecessor's offer (``transfers``: event ``loan.restructure_lapsed``).
A payment, a cure or the loan falling overdue leaves it pending: the
borrower may still take it.

Guard rails (rules version 6, ``restructuring_limits``). A loan is
restructured at most ``max_restructurings`` times (chain parameter, default
3): a proposal beyond it is refused, and so is the acceptance of one made
under rules 5 that would go beyond it. A proposal expires
``restructure_offer_ms`` (default 30 days) after its block's time, which it
records as ``expires_ms``: from then on nothing can accept, consent to or
withdraw it (code ``expired``), and a new proposal replaces it. Expiry is
judged when a transaction acts on the proposal and when a view is read,
never by a block hook (the docstring of ``restructuring_limits`` says why).
A funder may take its consent back while the proposal is pending
(``loan.restructure_consent_withdraw``, ``consent_withdrawal``).

What the acceptance does, at the block's time ``t`` (a syndicated loan's
once its funders' consents are a majority, checked after step 1):

1. The loan is evaluated first (``servicing.evaluate``): penalty accrues up
   to ``t``, and a loan past its default threshold defaults, which lapses a
   proposal made before the default.
2. What is owed at ``t`` is what a payoff in full would settle
   (``servicing.payoff``): the outstanding principal, the interest of every
   unpaid instalment whose period has begun (whole periods, the first unpaid
   one always, as a payoff charges them), and the penalty due. All three become the new principal: the unpaid
   interest and the penalty are capitalised. The restructuring itself
   neither forgives nor adds to the debt as it stands at ``t``, and nothing
   owed is left outside the new schedule. Kept owed apart, a penalty would be
   paid first from the next payment (``servicing``), the first instalment
   would fall short and the loan would be overdue again at once. Each
   amount is recorded apart, and the instalments in arrears at ``t`` count
   as late on the loan (``late``), as a payoff in full counts them, so a
   restructuring does not erase late payments from the borrower's history.
3. The holiday. Interest still accrues during the ``holiday_months``: month
   by month at the new rate on the growing balance, each month's rounded
   down like every period's interest, and it is capitalised too: added to
   the new principal at acceptance, its monthly amounts kept as
   ``holiday_interest``. So the new principal is one number the borrower
   accepts, the exposure views show it, and the instalments after the
   holiday are regular ones (spreading the holiday's interest over them
   would make every instalment carry an extra that is neither its period's
   interest nor principal). As for the arrears, a payoff settles the
   capitalised principal in full, a payoff during the holiday included: the
   holiday's interest was agreed at acceptance. A new principal above
   ``loans.MAX_AMOUNT`` (a high rate compounded over a long holiday) is
   refused: the servicer proposes again.
4. The new principal is amortized by the loan's schedule kind at the new
   rate over ``term_months - holiday_months`` monthly instalments, the first
   due at ``t + (holiday_months + 1)`` months (``servicing.due_ms``). The
   instalments already paid stay as the schedule's first rows (the
   history); the new rows follow them, numbered on (``amortization``: the
   new rows' principal adds up to the new principal exactly, in integer
   minor units). The loan's ``rate_bps`` and ``term_months`` (its number of
   instalments, paid ones included) become the new ones; a later partial
   prepayment amortizes at them.
5. An overdue or defaulted loan is current again: state ``repaying`` (a
   disbursed one, never repaid, stays ``disbursed``). The loan is filed in
   the due-loan index (``due``) under the new schedule's first check, just
   after its first instalment's due time plus grace, so the due-loan pass
   looks at it neither before nor never (a defaulted loan had left the
   index). Later repayments, overdue and default follow the new schedule.

What is recorded. The loan's ``restructurings`` lists every restructuring
accepted: ``{height, time_ms, state, proposed_height, old {rate_bps,
term_months}, new {rate_bps, term_months, holiday_months}, principal,
interest, penalty, holiday_interest, new_principal, instalments,
instalments_kept, first_due_ms, late}`` (``state`` is the one the loan was
in; ``old.term_months`` its number of instalments then), and for a
syndicated loan the ``consents`` it was accepted with. Its ``capitalised``
is what restructurings added to the principal (``loans.outstanding_principal``
is ``amount + capitalised - principal_paid``) and ``penalty_capitalised`` the
penalty moved into it (``servicing.penalty_due`` leaves it out). A pending
proposal is the loan's ``restructuring`` (a syndicated loan's with its
``consents``; from rules 6 with its ``expires_ms``, which the proposal's
history entry and event carry too). Each of the four kinds adds a history
entry; the events are ``loan.restructure_offered``,
``loan.restructure_consented``, ``loan.restructured`` and
``loan.restructure_withdrawn``.

What follows. Exposure, portfolio, positions and a lending policy's exposure
check read the outstanding principal with what was capitalised. A syndicated
loan's commitments do not change: capitalisation is no payment (nothing is
distributed), and every later repayment, and each funder's share of the
principal, is split pro rata to the commitments as before
(``funding.pro_rata``). The borrower's repayment history counts the
restructurings accepted (``restructurings``); the score lists them as a
factor worth no points: the integer formula is unchanged (a restructuring
already costs the borrower the late instalments and any default it had, and
a weight of its own would be a scorecard entry for governance to vote).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.funder_consent import SINCE_RULES as CONSENT_SINCE
from lendchain.ledger.funder_consent import missing_consent, opening_consents, syndicated, tally
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import (
    LOAN_ID_FIELD,
    MAX_AMOUNT,
    MAX_RATE_BPS,
    load_loan,
    loan_actors,
    outstanding_principal,
    schedule_of,
    with_history,
)
from lendchain.ledger.params import value as param
from lendchain.ledger.restructuring_limits import check_limit, expired, expired_refusal, offer_expiry
from lendchain.ledger.schedule import period_interest
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.servicing import (
    DAY_MS,
    MONTH_MS,
    arrears,
    evaluate,
    payoff,
    servicing_param,
    track,
)
from lendchain.ledger.state import loan_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = 5
MAX_HOLIDAY_MONTHS = 12


def lapse_of(loan: dict[str, Any]) -> str | None:
    """Why the restructuring recorded on ``loan`` lapsed (a sentence's end); None while it is pending."""
    state = loan["state"]
    if state not in lc.RESTRUCTURE_STATES:
        return f"the loan is {state}"
    made_in = loan["restructuring"]["state"]
    if state == lc.DEFAULTED and made_in != lc.DEFAULTED:
        return f"the loan defaulted after it was offered (in state {made_in})"
    return None


def pending_restructuring(loan: dict[str, Any], now_ms: int | None) -> dict[str, Any] | None:
    """The loan's restructuring proposal, if one was made and has neither lapsed nor expired at
    ``now_ms`` (rules 6, ``restructuring_limits``; None: expiry is not judged)."""
    proposal = loan.get("restructuring")
    if proposal is None or lapse_of(loan) is not None or expired(proposal, now_ms):
        return None
    return proposal


def where(tx: Transaction, loan_id: bytes) -> str:
    """How a refusal of ``tx`` names itself and its loan."""
    return f"{tx.kind} on loan {loan_id.hex()[:16]}"


def pending_proposal(ctx: TxContext, tx: Transaction, loan_id: bytes, loan: dict[str, Any]) -> dict[str, Any]:
    """The pending proposal a transaction acts on; refused if there is none, it lapsed or it expired."""
    proposal = loan.get("restructuring")
    if proposal is None:
        raise TxRejected(
            "invalid_state",
            f"{where(tx, loan_id)}: no restructuring is pending (the loan's servicer proposes one "
            "with loan.restructure)",
        )
    lapse = lapse_of(loan)
    if lapse is not None:
        raise TxRejected(
            "invalid_state",
            f"{where(tx, loan_id)}: its restructuring offered at height {proposal['height']} lapsed: "
            f"{lapse}; the servicer may propose another with loan.restructure",
        )
    if expired(proposal, ctx.timestamp_ms):
        raise expired_refusal(where(tx, loan_id), proposal, ctx.timestamp_ms)
    return proposal


def propose_restructuring(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    pending = pending_restructuring(loan, ctx.timestamp_ms)
    if pending is not None:
        raise TxRejected(
            "invalid_state",
            f"{where(tx, loan_id)}: its restructuring offered at height {pending['height']} is still "
            "pending; the borrower must accept it, or the servicer withdraw it with "
            "loan.restructure_withdraw, first",
        )
    check_limit(ctx, where(tx, loan_id), loan)
    rate, term = tx.payload["rate_bps"], tx.payload["term_months"]
    holiday = tx.payload.get("holiday_months", 0)
    longest = param(ctx.params, "max_term_months")
    if term > longest:
        raise TxRejected(
            "bad_payload", f"loan.restructure field 'term_months' is {term}, more than this chain's {longest}"
        )
    if holiday >= term:
        raise TxRejected(
            "bad_payload",
            f"loan.restructure field 'holiday_months' is {holiday}: a new schedule of {term} months "
            "needs at least one month with an instalment after its holiday",
        )
    remaining = loan["term_months"] - loan["progress"][0]
    if rate == loan["rate_bps"] and term == remaining and not holiday:
        raise TxRejected(
            "bad_payload",
            f"loan.restructure on loan {loan_id.hex()[:16]} changes nothing: {rate} bps over {term} "
            "instalments without a holiday are its terms now; change the rate or the term, or grant "
            "a holiday (the same terms would only re-age its arrears)",
        )
    expiry = offer_expiry(ctx)  # from rules 6: when the proposal expires
    proposal = {
        "rate_bps": rate,
        "term_months": term,
        "holiday_months": holiday,
        "height": ctx.height,
        "state": loan["state"],
        **expiry,
    }
    if syndicated(loan):  # its funders consent before the borrower may accept (``funder_consent``)
        proposal["consents"] = opening_consents(ctx.get, loan, tx.sender, ctx.height)
    loan = {**loan, "restructuring": proposal}
    loan["history_len"] = with_history(
        loan_id, loan, ctx, tx.kind, rate_bps=rate, term_months=term, holiday_months=holiday, **expiry
    )
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(
        "loan.restructure_offered",
        loan_id=loan_id.hex(),
        lender=tx.sender,
        rate_bps=rate,
        term_months=term,
        holiday_months=holiday,
        **expiry,
    )


def accept_restructuring(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    # Evaluating first is safe: a refusal below discards what the evaluation wrote.
    loan = evaluate(ctx, loan_id, loan)
    state = lc.advance(
        loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules
    )
    proposal = pending_proposal(ctx, tx, loan_id, loan)
    check_limit(ctx, where(tx, loan_id), loan)  # a proposal made before rules 6 (rules 6 proposes within it)
    missing = missing_consent(ctx.get, loan, proposal) if syndicated(loan) else None
    if missing is not None:
        raise TxRejected(
            "invalid_state",
            f"{where(tx, loan_id)}: its restructuring offered at height {proposal['height']} needs {missing}",
        )
    now = ctx.timestamp_ms
    schedule = schedule_of(loan)
    penalty, interest, principal = payoff(loan, schedule, now)
    late = len(arrears(loan, schedule, now, servicing_param(ctx.params, "grace_days", loan) * DAY_MS))
    rate, holiday = proposal["rate_bps"], proposal["holiday_months"]
    balance = principal + interest + penalty
    holiday_interest = []
    for _ in range(holiday):  # capitalised month by month (see the module docstring)
        holiday_interest.append(period_interest(balance, rate))
        balance += holiday_interest[-1]
    if balance > MAX_AMOUNT:
        raise TxRejected(
            "invalid_state",
            f"{where(tx, loan_id)}: its new principal would be {balance}, more than the {MAX_AMOUNT} a "
            "loan may owe; the servicer must propose a lower rate or a shorter holiday",
        )
    kept = loan["progress"][0]
    instalments = proposal["term_months"] - holiday
    record = {
        "height": ctx.height,
        "time_ms": now,
        "state": loan["state"],
        "proposed_height": proposal["height"],
        "old": {"rate_bps": loan["rate_bps"], "term_months": loan["term_months"]},
        "new": {key: proposal[key] for key in ("rate_bps", "term_months", "holiday_months")},
        "principal": principal,
        "interest": interest,
        "penalty": penalty,
        "holiday_interest": holiday_interest,
        "new_principal": balance,
        "instalments": instalments,
        "instalments_kept": kept,
        "first_due_ms": now + (holiday + 1) * MONTH_MS,
        "late": late,
    }
    if syndicated(loan):
        record["consents"] = proposal["consents"]
    loan = {key: value for key, value in loan.items() if key != "restructuring"}
    loan |= {
        "state": state,
        "rate_bps": rate,
        "term_months": kept + instalments,
        "progress": [kept, 0, 0],
        "capitalised": loan.get("capitalised", 0) + balance - outstanding_principal(loan),
        "penalty_capitalised": loan.get("penalty_capitalised", 0) + penalty,
        "reschedules": [*loan.get("reschedules", []), [kept, balance, rate, instalments]],
        "restructurings": [*loan.get("restructurings", []), record],
    }
    if late:
        loan["late"] = loan.get("late", 0) + late
    amounts = {
        "principal": principal,
        "interest": interest,
        "penalty": penalty,
        "holiday_interest": sum(holiday_interest),
        "new_principal": balance,
    }
    loan["history_len"] = with_history(
        loan_id, loan, ctx, tx.kind, **amounts, instalments=instalments, first_due_ms=record["first_due_ms"]
    )
    loan = track(ctx, loan_id, loan)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(
        "loan.restructured",
        loan_id=loan_id.hex(),
        **amounts,
        rate_bps=rate,
        instalments=instalments,
        first_due_ms=record["first_due_ms"],
        state=state,
    )


def withdraw_restructuring(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    proposal = pending_proposal(ctx, tx, loan_id, loan)
    loan = {key: value for key, value in loan.items() if key != "restructuring"}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, offered_height=proposal["height"])
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.restructure_withdrawn", loan_id=loan_id.hex(), offered_height=proposal["height"])


def consent_to_restructuring(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    if not syndicated(loan):  # said before the lifecycle's refusal: nobody holds a commitment on it
        raise TxRejected(
            "invalid_state",
            f"{where(tx, loan_id)}: the loan is not syndicated (no funders' commitments fund it): its "
            "restructuring needs no funder's consent, only the borrower's acceptance",
        )
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    proposal = pending_proposal(ctx, tx, loan_id, loan)
    given = next((c for c in proposal["consents"] if c["funder"] == tx.sender), None)
    if given is not None:
        how = "by proposing it" if given["by_proposal"] else f"at height {given['height']}"
        raise TxRejected(
            "invalid_state",
            f"{where(tx, loan_id)}: {tx.sender} already consented to its restructuring offered at height "
            f"{proposal['height']}, {how}; a funder consents once to a proposal",
        )
    amount = next(c["amount"] for c in loan["funding"]["commitments"] if c["funder"] == tx.sender)
    consent = {"funder": tx.sender, "amount": amount, "height": ctx.height, "by_proposal": False}
    record_consents(
        ctx, tx, loan_id, loan, [*proposal["consents"], consent], amount, "loan.restructure_consented"
    )


def record_consents(
    ctx: TxContext,
    tx: Transaction,
    loan_id: bytes,
    loan: dict[str, Any],
    consents: list,
    amount: int,
    event: str,
) -> None:
    """Store the pending proposal with the funders' ``consents`` after ``tx.sender`` gave or withdrew its
    own (for ``amount``), with its history entry and ``event`` naming the tally then."""
    proposal = {**loan["restructuring"], "consents": consents}
    loan = {**loan, "restructuring": proposal}
    counted = tally(ctx.get, loan, proposal)
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, funder=tx.sender, amount=amount)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(
        event,
        loan_id=loan_id.hex(),
        funder=tx.sender,
        amount=amount,
        consented=counted["consented"],
        committed=counted["committed"],
        offered_height=proposal["height"],
    )


register_kind(
    "loan.restructure",
    Schema(
        (
            LOAN_ID_FIELD,
            Field("rate_bps", "int", min=0, max=MAX_RATE_BPS),
            Field("term_months", "int", min=1, max=1200),
            Field("holiday_months", "int", required=False, min=0, max=MAX_HOLIDAY_MONTHS),
        )
    ),
    propose_restructuring,
    since=SINCE_RULES,
)
register_kind("loan.restructure_accept", Schema((LOAN_ID_FIELD,)), accept_restructuring, since=SINCE_RULES)
register_kind(
    "loan.restructure_withdraw", Schema((LOAN_ID_FIELD,)), withdraw_restructuring, since=SINCE_RULES
)
register_kind(
    "loan.restructure_consent", Schema((LOAN_ID_FIELD,)), consent_to_restructuring, since=CONSENT_SINCE
)
