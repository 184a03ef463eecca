"""The buyer declines a share offered to it: ``loan.share_decline`` (rules version 7; 8).

Under rules 6 an offer of a share (``assignment``) ends when its buyer
accepts it, its seller withdraws it, or the loan moves on (it lapses). A
buyer that does not want the share could only leave the offer pending: the
seller, who cannot offer its share to anyone else meanwhile, learns nothing
until it withdraws. From rules version ``SINCE_RULES``:

- ``loan.share_decline`` {loan_id, from?, note?}: the holder a pending offer
  names declines it. ``from`` names the offering funder, needed only while
  several offers name the sender (as ``loan.share_accept``'s); ``note`` (1 to
  ``MAX_NOTE`` characters, not only spaces) is the buyer's reason, kept for
  the seller and the auditors, as a recovery's note is.
- Who: the buyer the offer names, asked of the lifecycle as its acceptance
  is (a registered investor or a lender member other than the borrower),
  whatever it held of the loan before. From rules 8
  (``lifecycle.DECLINE_BY_ANY_BUYER_SINCE``) the buyer an offer recorded on
  the loan names passes the lifecycle whatever its roles now: declining takes
  on no exposure, so a member whose lender role governance removed after the
  offer declines it instead of leaving the seller to withdraw it (under rules
  7 the lifecycle refuses it, ``forbidden``). The seller is refused (``forbidden``):
  it takes its own offer back with ``loan.share_withdraw``; so is anyone
  else while offers are pending that name others. An offer withdrawn,
  accepted, declined or never made is not pending, and one that lapsed
  (``assignment.offer_lapse``) has nothing left to decline: both are refused
  with ``invalid_state``, saying which.
- Which states: those an offer is pending in (``lifecycle.ASSIGN_STATES``).

What is recorded. The offer leaves the loan's ``funding.share_offers`` (the
seller may offer again at once), and ``funding.share_declines`` gains
``{from, to, amount, height, offered_height, price?, note?}`` (``height``:
the declining block), in order, the newest ``KEPT_DECLINES`` of them (the
loan's history keeps every decline); the loan view shows them under ``funding``
and the seller's positions (``positions``) give each position's
``offers_declined``. Nothing else moves. A history entry ``loan.share_decline``
(``from``, ``to``, ``amount``, ``note``) records the offer's end as the
withdrawal's does, and the event ``loan.share_offer_declined`` (the same with
``offered_height``) says so. A chain that never declines stores nothing new.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.assignment import (
    ASSIGN,
    WITHDRAW,
    check_share_loan,
    end_offer,
    offer_lapse,
    pending_offers,
    share_where,
)
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.identity import DID_PATTERN
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import LOAN_ID_FIELD, load_loan
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.writeoff import MAX_NOTE

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = lc.SHARE_DECLINE_SINCE
DECLINE = lc.SHARE_DECLINE
# The newest declines the loan record keeps (the history keeps every one): a seller and a buyer in
# league could otherwise grow the record every servicing transaction reads by an offer and a decline.
KEPT_DECLINES = 16


def declined_offers(loan: dict[str, Any], did: str) -> list[dict[str, Any]]:
    """The offers of ``did``'s share of the loan that their buyers declined, in order (rules 7)."""
    return [record for record in loan.get("funding", {}).get("share_declines", ()) if record["from"] == did]


def _offer_to_decline(tx: Transaction, loan_id: bytes, loan: dict[str, Any]) -> dict[str, Any]:
    """The pending offer ``tx`` declines: the one from its ``from``, or the only one naming its sender;
    else why there is none to decline."""
    where = share_where(tx, loan_id)
    seller = tx.payload.get("from")
    recorded = loan["funding"].get("share_offers", ())
    named = [o for o in recorded if o["to"] == tx.sender and seller in (None, o["from"])]
    mine = [o for o in named if offer_lapse(loan, o) is None]
    if len(mine) > 1 and seller is None:
        sellers = ", ".join(o["from"] for o in mine)
        raise TxRejected(
            "bad_payload",
            f"{DECLINE} field 'from' is missing: {len(mine)} offers of a share to {tx.sender} are pending "
            f"(from {sellers}); name the funder whose offer it declines",
        )
    if mine:
        return mine[0]
    own = next((o for o in pending_offers(loan) if o["from"] == tx.sender), None)
    if own is not None and seller in (None, tx.sender):
        raise TxRejected(
            "forbidden",
            f"{where}: the offer of {own['amount']} to {own['to']} is {tx.sender}'s own: only the buyer it "
            f"names declines it, and its seller takes it back with {WITHDRAW}",
        )
    others = [o for o in pending_offers(loan) if seller in (None, o["from"])]
    if others and not named:
        buyers = ", ".join(sorted({o["to"] for o in others}))
        raise TxRejected(
            "forbidden",
            f"{where}: only the buyer an offer names declines it, and no pending offer names {tx.sender} "
            f"(they name {buyers})",
        )
    lapsed = f" (the one from {named[0]['from']} lapsed: {offer_lapse(loan, named[0])})" if named else ""
    by = f" from {seller}" if seller is not None else ""
    raise TxRejected(
        "invalid_state",
        f"{where}: no offer of a share{by} to {tx.sender} is pending{lapsed}; there is nothing to decline "
        f"(an offer is made with {ASSIGN}, and ends when it is accepted, withdrawn or declined)",
    )


def _note(tx: Transaction) -> dict[str, str]:
    """The decline's ``note``, stripped, as a field to record (none when not given)."""
    note = tx.payload.get("note")
    if note is None:
        return {}
    note = note.strip()
    if not note:
        raise TxRejected(
            "bad_payload", f"{DECLINE} field 'note' must say something when given, not only spaces"
        )
    return {"note": note}


def decline_offer(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    check_share_loan(ctx, tx, loan_id, loan)
    note = _note(tx)
    offer = _offer_to_decline(tx, loan_id, loan)
    seller, amount = offer["from"], offer["amount"]
    price = {"price": offer["price"]} if "price" in offer else {}
    record = {
        "from": seller,
        "to": tx.sender,
        "amount": amount,
        "height": ctx.height,
        "offered_height": offer["height"],
        **price,
        **note,
    }
    declines = [*loan["funding"].get("share_declines", []), record][-KEPT_DECLINES:]
    fields = {"from": seller, "to": tx.sender, "amount": amount, **note}
    end_offer(ctx, tx, loan_id, loan, offer, "loan.share_offer_declined", fields, share_declines=declines)


register_kind(
    DECLINE,
    Schema(
        (
            LOAN_ID_FIELD,
            Field("from", "str", required=False, pattern=DID_PATTERN),
            Field("note", "str", required=False, min=1, max=MAX_NOTE),
        )
    ),
    decline_offer,
    since=SINCE_RULES,
)
