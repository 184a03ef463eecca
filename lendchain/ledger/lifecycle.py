"""The loan lifecycle: every allowed transition of a loan, in one table.

Rules of this file (after h11's ``_state.py``):

- Everything that changes a loan's ``state`` goes through ``advance``, and
  ``advance`` allows exactly the transitions in ``TRANSITIONS``. To add a
  state or an event, add rows here; nowhere else decides.
- A transition is caused by an event (a transaction kind, or an internal
  event such as ``paid_off`` that the ledger raises itself) and may be caused
  only by one actor: the loan's ``borrower``, any member with the ``lender``
  role, the loan's ``servicer`` (the lender whose offer was accepted, or the
  one a ``loan.transfer`` handed the loan to since), the ``transferee`` (the
  lender a pending ``loan.transfer`` names), a ``committed_funder`` (one
  holding a commitment on a syndicated loan, not released, nor sold whole:
  ``assignment``), or the ``ledger`` itself.
- This file knows nothing about amounts or storage; the handlers in
  ``loans.py`` check those and ask this table whether the move is allowed.
- A row a later rules version added (``ROWS_SINCE``) does not exist before
  it: ``advance`` takes the block's rules version and refuses such a move
  word for word as the older rules did. A row whose actor a later version
  widened (``ACTORS_SINCE``) asks the older actor before it.

A refused transition raises ``TxRejected`` naming the transaction, the loan,
its state and why: ``invalid_state`` when the event is not allowed in that
state, ``forbidden`` when the signer is not the actor the row requires.
"""

from __future__ import annotations

from functools import cache

from lendchain.ledger.errors import TxRejected

# States
NEW = "new"  # before loan.apply: the loan does not exist yet
APPLIED = "applied"
OFFERED = "offered"
ACCEPTED = "accepted"
DISBURSED = "disbursed"
REPAYING = "repaying"
CLOSED = "closed"
CANCELLED = "cancelled"
FUNDING = "funding"  # a syndicated offer was accepted; funders commit shares until the deadline
FUNDED = "funded"
UNFUNDED = "unfunded"  # the funding deadline passed first; commitments were released
OVERDUE = "overdue"
DEFAULTED = "defaulted"
WRITTEN_OFF = "written_off"  # charged off after default (writeoff.py, rules 4): final but for recoveries

# The rules version from which a written-off loan takes loan.recover (writeoff.py)
RECOVERIES_SINCE = 5
# The rules version from which a written-off loan's recovery changes servicer (transfers.py) and its
# servicer may end its recovery (loan.recovery_end, writeoff.py)
WRITTEN_OFF_TRANSFERS_SINCE = 6
TRANSFER_KINDS = ("loan.transfer", "loan.transfer_accept", "loan.transfer_withdraw")
# A funder sells its share of a syndicated loan (assignment.py, rules 6)
SHARE_KINDS = ("loan.share_assign", "loan.share_accept", "loan.share_withdraw")
# ... and from rules 7 the buyer an offer names declines it (share_decline.py)
SHARE_DECLINE = "loan.share_decline"
SHARE_DECLINE_SINCE = 7
# ... and from rules 8 the buyer an offer names declines it whatever its roles now: declining takes on
# no exposure, so a buyer whose lender role governance removed after the offer still may
DECLINE_BY_ANY_BUYER_SINCE = 8
# From rules 7 a servicer takes guarantees of a loan, which the guarantor accepts (guarantees.py)
GUARANTEE, GUARANTEE_ACCEPT, GUARANTEE_WITHDRAW = (
    "loan.guarantee",
    "loan.guarantee_accept",
    "loan.guarantee_withdraw",
)
GUARANTEE_RELEASE, GUARANTEE_CALL = "loan.guarantee_release", "loan.guarantee_call"
GUARANTEES_SINCE = 7

# Actors
BORROWER = "borrower"
LENDER = "lender"
SERVICER = "servicer"
TRANSFEREE = "transferee"  # the lender a pending loan.transfer names (transfers.py)
LEDGER = "ledger"
FUNDER = "funder"  # a registered investor or a lender member, other than the borrower
MEMBER = "member"  # any consortium member (servicing checks anyone may trigger)
# A funder holding a commitment on the loan, not released nor sold whole (assignment.py), whatever its
# roles now (funder_consent.py)
COMMITTED_FUNDER = "committed_funder"
# The party a guarantee names, for the guarantee a transaction names (guarantees.py, rules 7)
GUARANTOR = "guarantor"
# A FUNDER, or the holder a share offer recorded on the loan names whatever its roles now
# (share_decline.py, rules 8)
FUNDER_OR_BUYER = "funder_or_buyer"

# Internal events
PAID_OFF = "paid_off"
NEEDS_FUNDING = "needs_funding"
FULLY_FUNDED = "fully_funded"
FELL_OVERDUE = "fell_overdue"  # an instalment is unpaid past its due time plus grace
WENT_DEFAULT = "went_default"  # an instalment is unpaid past the default threshold
CURED = "cured"  # a payment brought an overdue loan back within grace

# The states in which a loan has a servicer and may still need one: from the acceptance of an
# offer (it names the lender) until the loan is closed, unfunded or written off. A loan before
# acceptance has no servicer yet, and one closed, cancelled, unfunded or written off needs none. Its servicing may
# change hands in any of them (transfers.py), defaulted included: recoveries need a servicer too.
# A written-off loan keeps the servicer it had, who records recoveries on it from rules 5
# (writeoff.py), but it is not among them: under rules 4 and 5 its servicing never changes hands
# again, and from rules 6 only its recovery does (the rows below, gated by ROWS_SINCE).
SERVICER_STATES = (ACCEPTED, FUNDING, FUNDED, DISBURSED, REPAYING, OVERDUE, DEFAULTED)
# The states in which a loan's remaining terms may be changed (restructuring.py, rules 5): from the
# disbursement, while something is still to repay, defaulted included (a workout after default).
RESTRUCTURE_STATES = (DISBURSED, REPAYING, OVERDUE, DEFAULTED)
# The states in which a syndicated loan's funder may sell its share (assignment.py, rules 6): once
# funded, until the loan is closed; written off included (its share of the recoveries is sold).
# Not while it is funding: a funder that wants less then commits less.
ASSIGN_STATES = (FUNDED, DISBURSED, REPAYING, OVERDUE, DEFAULTED, WRITTEN_OFF)
# The kinds by which a servicer keeps a loan's collateral up to date (collateral.py, rules 6), and the
# states that take them: a written-off loan's collateral is what its recovery realises.
COLLATERAL_UPKEEP = ("collateral.release", "collateral.revalue")
COLLATERAL_STATES = (*SERVICER_STATES, WRITTEN_OFF)
# A guarantee is called once the borrower failed: the loan defaulted or was written off (guarantees.py)
GUARANTEE_CALL_STATES = (DEFAULTED, WRITTEN_OFF)

# (state, event) -> (next state, the one actor allowed to cause it)
TRANSITIONS: dict[tuple[str, str], tuple[str, str]] = {
    (NEW, "loan.apply"): (APPLIED, BORROWER),
    (APPLIED, "loan.offer"): (OFFERED, LENDER),
    (OFFERED, "loan.offer"): (OFFERED, LENDER),
    (OFFERED, "loan.accept"): (ACCEPTED, BORROWER),
    (APPLIED, "loan.cancel"): (CANCELLED, BORROWER),
    (OFFERED, "loan.cancel"): (CANCELLED, BORROWER),
    (ACCEPTED, "loan.disburse"): (DISBURSED, SERVICER),
    (DISBURSED, "loan.repay"): (REPAYING, SERVICER),
    (REPAYING, "loan.repay"): (REPAYING, SERVICER),
    (REPAYING, PAID_OFF): (CLOSED, LEDGER),
    # Funding by several funders (funding.py)
    (ACCEPTED, NEEDS_FUNDING): (FUNDING, LEDGER),
    (FUNDING, "loan.fund"): (FUNDING, FUNDER),
    (FUNDING, FULLY_FUNDED): (FUNDED, LEDGER),
    (FUNDING, "loan.fund_expire"): (UNFUNDED, MEMBER),
    (FUNDED, "loan.disburse"): (DISBURSED, SERVICER),
    # Servicing driven by block time (servicing.py)
    (DISBURSED, "loan.service"): (DISBURSED, MEMBER),
    (REPAYING, "loan.service"): (REPAYING, MEMBER),
    (OVERDUE, "loan.service"): (OVERDUE, MEMBER),
    (DISBURSED, FELL_OVERDUE): (OVERDUE, LEDGER),
    (REPAYING, FELL_OVERDUE): (OVERDUE, LEDGER),
    (OVERDUE, WENT_DEFAULT): (DEFAULTED, LEDGER),
    (OVERDUE, "loan.repay"): (OVERDUE, SERVICER),
    (OVERDUE, CURED): (REPAYING, LEDGER),
    (OVERDUE, PAID_OFF): (CLOSED, LEDGER),
    (DEFAULTED, "loan.repay"): (DEFAULTED, SERVICER),  # recoveries after default
    (DEFAULTED, PAID_OFF): (CLOSED, LEDGER),
    # Prepayment (servicing.py): in full, future interest waived (then paid_off closes the loan),
    # or in part on a loan without arrears (principal reduced, the rest of the schedule recomputed)
    (DISBURSED, "loan.prepay"): (REPAYING, SERVICER),
    (REPAYING, "loan.prepay"): (REPAYING, SERVICER),
    (OVERDUE, "loan.prepay"): (OVERDUE, SERVICER),
    (DEFAULTED, "loan.prepay"): (DEFAULTED, SERVICER),
    # The servicer writes a defaulted loan off once recovery ends (writeoff.py, rules 4), and from
    # rules 5 records what it still recovers afterwards: the loan stays written off
    (DEFAULTED, "loan.write_off"): (WRITTEN_OFF, SERVICER),
    (WRITTEN_OFF, "loan.recover"): (WRITTEN_OFF, SERVICER),
    # Servicing changes hands (transfers.py, rules 4): the state stays as it is
    **{(state, "loan.transfer"): (state, SERVICER) for state in SERVICER_STATES},
    **{(state, "loan.transfer_withdraw"): (state, SERVICER) for state in SERVICER_STATES},
    **{(state, "loan.transfer_accept"): (state, TRANSFEREE) for state in SERVICER_STATES},
    # The servicer and the borrower change the remaining terms (restructuring.py, rules 5): the
    # borrower's acceptance makes an overdue or defaulted loan current again under the new schedule
    **{(state, "loan.restructure"): (state, SERVICER) for state in RESTRUCTURE_STATES},
    **{(state, "loan.restructure_withdraw"): (state, SERVICER) for state in RESTRUCTURE_STATES},
    (DISBURSED, "loan.restructure_accept"): (DISBURSED, BORROWER),
    (REPAYING, "loan.restructure_accept"): (REPAYING, BORROWER),
    (OVERDUE, "loan.restructure_accept"): (REPAYING, BORROWER),
    (DEFAULTED, "loan.restructure_accept"): (REPAYING, BORROWER),
    # A syndicated loan's funders consent to the pending proposal (funder_consent.py, rules 5)
    **{(state, "loan.restructure_consent"): (state, COMMITTED_FUNDER) for state in RESTRUCTURE_STATES},
    # ... and may take a consent back before the acceptance (consent_withdrawal.py, rules 6)
    **{
        (state, "loan.restructure_consent_withdraw"): (state, COMMITTED_FUNDER)
        for state in RESTRUCTURE_STATES
    },
    # From rules 6 a written-off loan's recovery changes servicer (transfers.py), and its servicer
    # ends the recovery where nothing more will come (writeoff.py): the loan stays written off
    (WRITTEN_OFF, "loan.transfer"): (WRITTEN_OFF, SERVICER),
    (WRITTEN_OFF, "loan.transfer_withdraw"): (WRITTEN_OFF, SERVICER),
    (WRITTEN_OFF, "loan.transfer_accept"): (WRITTEN_OFF, TRANSFEREE),
    (WRITTEN_OFF, "loan.recovery_end"): (WRITTEN_OFF, SERVICER),
    # From rules 6 a funder offers its share to a new holder, who accepts it, or takes the offer back
    # (assignment.py): the state stays as it is
    **{(state, "loan.share_assign"): (state, COMMITTED_FUNDER) for state in ASSIGN_STATES},
    **{(state, "loan.share_accept"): (state, FUNDER) for state in ASSIGN_STATES},
    **{(state, "loan.share_withdraw"): (state, COMMITTED_FUNDER) for state in ASSIGN_STATES},
    # From rules 7 the buyer an offer names may decline it (share_decline.py): asked as the acceptance is
    # (from rules 8 of the buyer whatever its roles now: ACTORS_SINCE)
    **{(state, SHARE_DECLINE): (state, FUNDER) for state in ASSIGN_STATES},
    # The servicer records the collateral securing the loan (collateral.py, rules 6): pledged while
    # the loan has a servicer, released or revalued then and once it is written off (its recovery
    # realises the collateral)
    **{(state, "collateral.pledge"): (state, SERVICER) for state in SERVICER_STATES},
    **{(state, event): (state, SERVICER) for state in COLLATERAL_STATES for event in COLLATERAL_UPKEEP},
    # From rules 7 (guarantees.py; its kinds do not exist before) the servicer takes a guarantee while
    # the loan has a servicer, the guarantor accepts it, the servicer withdraws it before, releases it
    # after (a written-off loan's too: its recovery may still call it) and calls it once the loan failed
    **{(state, GUARANTEE): (state, SERVICER) for state in SERVICER_STATES},
    **{(state, GUARANTEE_WITHDRAW): (state, SERVICER) for state in SERVICER_STATES},
    **{(state, GUARANTEE_ACCEPT): (state, GUARANTOR) for state in SERVICER_STATES},
    **{(state, GUARANTEE_RELEASE): (state, SERVICER) for state in COLLATERAL_STATES},
    **{(state, GUARANTEE_CALL): (state, SERVICER) for state in GUARANTEE_CALL_STATES},
}
# The rows a later rules version added: before it they do not exist (``advance``). The share kinds
# are rules 6's themselves (the decline rules 7's); their rows on a written-off loan are listed with
# the others it gained.
ROWS_SINCE: dict[tuple[str, str], int] = {
    **{
        (WRITTEN_OFF, event): WRITTEN_OFF_TRANSFERS_SINCE
        for event in (*TRANSFER_KINDS, "loan.recovery_end", *SHARE_KINDS, *COLLATERAL_UPKEEP)
    },
    (WRITTEN_OFF, SHARE_DECLINE): SHARE_DECLINE_SINCE,
    **{(WRITTEN_OFF, event): GUARANTEES_SINCE for event in (GUARANTEE_RELEASE, GUARANTEE_CALL)},
}
# The rows whose actor a later rules version widened: (version, actor from then); before it the
# table's actor. From rules 8 a share offer's buyer declines it whatever its roles now.
ACTORS_SINCE: dict[tuple[str, str], tuple[int, str]] = {
    (state, SHARE_DECLINE): (DECLINE_BY_ANY_BUYER_SINCE, FUNDER_OR_BUYER) for state in ASSIGN_STATES
}

_ACTOR_NAMES = {
    BORROWER: "the loan's borrower",
    LENDER: "a member with the lender role",
    # A refusal's sentence is hashed into its block's results root: an old name stays word for word,
    # or a node replaying the blocks of older rules would compute other roots.
    SERVICER: "the lender whose offer was accepted",
    TRANSFEREE: "the lender the loan's pending transfer names",
    LEDGER: "the ledger itself",
    FUNDER: "a registered investor or a lender member other than the borrower",
    MEMBER: "a consortium member",
    COMMITTED_FUNDER: "a funder of the loan whose commitment is not released",
    GUARANTOR: "the guarantor the guarantee names",
    FUNDER_OR_BUYER: (
        "a registered investor or a lender member other than the borrower, or the buyer a share offer of "
        "the loan names"
    ),
}


def advance(
    state: str, event: str, actors: frozenset[str], tx_id: bytes, loan_id: bytes, *, rules: int = 1
) -> str:
    """The loan's next state, or TxRejected saying which tx, loan, state and why.

    ``rules`` is the block's rules version (``TxContext.rules``): it decides which rows exist
    (``ROWS_SINCE``) and what a refusal on a written-off loan says, so a handler of a transaction
    kind passes it.
    """
    row = _row(state, event, rules)
    if row is not None and row[1] in actors:
        return row[0]
    where = f"tx {tx_id.hex()[:16]} ({event}) on loan {loan_id.hex()[:16]} in state {state!r}"
    if state == WRITTEN_OFF and row is None:  # the one terminal state a refusal explains (from rules 4)
        raise TxRejected("invalid_state", f"{where} is refused: {_written_off_is_final(rules)}")
    if row is None:
        allowed = sorted(s for (s, e) in TRANSITIONS if e == event and _row(s, e, rules) is not None)
        raise TxRejected(
            "invalid_state", f"{where} is refused: {event} is only allowed in state {', '.join(allowed)}"
        )
    raise TxRejected("forbidden", f"{where} is refused: only {_ACTOR_NAMES[row[1]]} may do this")


@cache  # every lifecycle tx asks; the tables are constants, and the answers few
def _row(state: str, event: str, rules: int) -> tuple[str, str] | None:
    """The table's row for ``state`` and ``event`` under rules ``rules``; None if there is none."""
    if ROWS_SINCE.get((state, event), 1) > rules:
        return None
    row = TRANSITIONS.get((state, event))
    widened = ACTORS_SINCE.get((state, event))
    if row is not None and widened is not None and rules >= widened[0]:
        return row[0], widened[1]
    return row


def _written_off_is_final(rules: int) -> str:
    # Under rules 4 and 5 the sentences stay word for word: they are hashed into the results root.
    if rules < RECOVERIES_SINCE:
        return (
            "the loan was written off, which is final; recoveries after a write-off are not recorded on chain"
        )
    if rules < WRITTEN_OFF_TRANSFERS_SINCE:
        return (
            "the loan was written off, which is final; the one transaction it still takes is loan.recover, "
            "by which its servicer records money recovered on it"
        )
    takes = (
        "the loan was written off, which is final; the transactions it still takes are loan.recover, "
        "by which its servicer records money recovered on it, loan.recovery_end, by which its servicer "
        "ends its recovery, loan.transfer, loan.transfer_accept and loan.transfer_withdraw, by which "
        "its recovery moves to another lender, collateral.release and collateral.revalue, by which its "
        "servicer keeps the collateral securing it up to date, and on a syndicated loan loan.share_assign, "
        "loan.share_accept and loan.share_withdraw, by which a funder sells its share of the recoveries"
    )
    if rules < SHARE_DECLINE_SINCE:
        return takes
    return (
        f"{takes}, {SHARE_DECLINE}, by which the buyer an offer names declines it, and {GUARANTEE_RELEASE} "
        f"and {GUARANTEE_CALL}, by which its servicer releases or calls a guarantee of it"
    )
