"""A funder takes back its consent to a syndicated loan's restructuring: ``loan.restructure_consent_withdraw``
(rules version 6).

Under rules 5 a consent (``funder_consent``) could not be taken back: a
funder that changed its mind had to ask the servicer to withdraw the whole
proposal. That leaves a consent standing that its giver no longer means,
while the borrower may still accept on the strength of it. From rules
version ``SINCE_RULES``:

- ``loan.restructure_consent_withdraw`` {loan_id}: a funder that consented
  to the pending proposal takes its consent back, until the borrower accepts
  the proposal. Named as the other withdrawals are (``loan.transfer_withdraw``,
  ``loan.restructure_withdraw``): it takes back what the same signer gave.
- Who: a funder holding a commitment that is not released
  (``lifecycle.COMMITTED_FUNDER``, anyone else: ``forbidden``), and only its
  own consent given by ``loan.restructure_consent``. The proposing servicer
  consented by proposing: it withdraws the proposal instead
  (``loan.restructure_withdraw``), and its attempt is refused saying so.
- Refused (``invalid_state``, each with a sentence saying what is wrong and
  what to do) when the loan is not syndicated, when no proposal is pending
  (none, withdrawn, lapsed), when the funder has not consented to the one
  pending (never, or it withdrew already), and after the acceptance (the
  restructuring was accepted with the consent: the sentence names it);
  refused with ``expired`` when the proposal expired
  (``restructuring_limits``): an expired proposal's consents count for
  nothing any more.

What it does: the consent leaves the proposal's ``consents`` (the funder may
consent again later, to the same proposal), a history entry
``loan.restructure_consent_withdraw`` (funder, amount) and the event
``loan.restructure_consent_withdrawn`` (the funder, its amount, what is
consented in all and what is committed afterwards, the proposal's height)
record it. The borrower's acceptance counts the consents as they are then,
so one withdrawn before it no longer counts towards the majority.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.funder_consent import syndicated
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import LOAN_ID_FIELD, load_loan, loan_actors
from lendchain.ledger.restructuring import pending_proposal, record_consents, where
from lendchain.ledger.schema import Schema

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = 6
KIND = "loan.restructure_consent_withdraw"


def _accepted_with(loan: dict[str, Any], funder: str) -> dict[str, Any] | None:
    """The loan's last restructuring accepted, if it was accepted with ``funder``'s consent."""
    records = loan.get("restructurings")
    if records and any(c["funder"] == funder for c in records[-1].get("consents", ())):
        return records[-1]
    return None


def withdraw_consent(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    here = where(tx, loan_id)
    if not syndicated(loan):  # said before the lifecycle's refusal: nobody holds a commitment on it
        raise TxRejected(
            "invalid_state",
            f"{here}: the loan is not syndicated (no funders' commitments fund it): its restructuring "
            "takes no funder's consent, so there is none to withdraw",
        )
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    accepted = _accepted_with(loan, tx.sender)
    if loan.get("restructuring") is None and accepted is not None:
        raise TxRejected(
            "invalid_state",
            f"{here}: its restructuring offered at height {accepted['proposed_height']} was accepted at "
            f"height {accepted['height']} with {tx.sender}'s consent; a consent cannot be withdrawn once "
            "the borrower has accepted",
        )
    proposal = pending_proposal(ctx, tx, loan_id, loan)
    given = next((c for c in proposal["consents"] if c["funder"] == tx.sender), None)
    if given is None:
        raise TxRejected(
            "invalid_state",
            f"{here}: {tx.sender} has not consented to its restructuring offered at height "
            f"{proposal['height']}, so there is no consent to withdraw",
        )
    if given["by_proposal"]:
        raise TxRejected(
            "invalid_state",
            f"{here}: {tx.sender} consented by proposing its restructuring offered at height "
            f"{proposal['height']}; as its servicer it takes the proposal back with "
            "loan.restructure_withdraw instead",
        )
    consents = [c for c in proposal["consents"] if c["funder"] != tx.sender]
    record_consents(ctx, tx, loan_id, loan, consents, given["amount"], "loan.restructure_consent_withdrawn")


register_kind(KIND, Schema((LOAN_ID_FIELD,)), withdraw_consent, since=SINCE_RULES)
