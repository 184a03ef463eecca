"""``lendchain fund assign | accept-assignment | withdraw-assignment``: a syndicated loan's funder sells
all or part of its share to another investor or lender (rules version 6; see
``lendchain.ledger.assignment``), ``fund decline-assignment``: the buyer declines it (rules 7; see
``lendchain.ledger.share_decline``), and what ``fund show`` and ``fund positions`` say of the offers,
the sales and the declines.

A module of its own beside ``domain``, attached to its ``fund`` group as ``book``'s commands are to
``loan``.
"""

from __future__ import annotations

from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    member_text,
    require_rules,
    send_tx,
    signer_options,
    user_errors,
)
from lendchain.ledger.assignment import ACCEPT, ASSIGN, SINCE_RULES, WITHDRAW
from lendchain.ledger.share_decline import DECLINE
from lendchain.ledger.share_decline import SINCE_RULES as DECLINE_SINCE
from lendchain.ledger.writeoff import MAX_NOTE


def _require_rules_6(kw: dict[str, Any], kind: str, since: int = SINCE_RULES) -> None:
    with client_from(kw) as client:
        status = client.get("/status")
    require_rules(status, since, kind, "send it")


@click.command("assign")
@click.argument("loan_id")
@click.argument("amount", type=click.IntRange(1))
@click.option(
    "--to", "to", required=True, help="DID of the registered investor or lender member that buys it."
)
@click.option(
    "--price",
    type=click.IntRange(0),
    default=None,
    help="What the buyer pays, in minor units (paid off chain; recorded for transparency).",
)
@signer_options
@click.pass_context
@user_errors
def assign(ctx: click.Context, loan_id: str, amount: int, to: str, price: int | None, **kw: Any) -> None:
    """Offer AMOUNT of your commitment to the syndicated loan LOAN_ID to the holder --to.

    AMOUNT is in units of the commitment, the weight of every pro-rata split:
    your whole commitment, or a part of at least 1 % of the loan that leaves
    you at least as much (from rules 7, at least the chain parameter
    min_share_part_bps of the loan; see `gov params`). The buyer takes it with `fund accept-assignment`;
    until then you may take it back with `fund withdraw-assignment`. One offer
    per loan is pending at a time. Possible once the loan is funded, until it
    is closed; on a written-off loan, what is sold is the share of the
    recoveries still to come.
    """
    _require_rules_6(kw, ASSIGN)
    payload: dict[str, Any] = {"loan_id": loan_id, "to": to, "amount": amount}
    if price is not None:
        payload["price"] = price
    send_tx(ctx, kw, ASSIGN, payload)


@click.command("accept-assignment")
@click.argument("loan_id")
@click.option(
    "--from", "seller", default=None, help="DID of the funder whose offer you take (when several name you)."
)
@signer_options
@click.pass_context
@user_errors
def accept_assignment(ctx: click.Context, loan_id: str, seller: str | None, **kw: Any) -> None:
    """Take the share of LOAN_ID a funder offered you: you hold it, and receive its part of every later
    repayment and recovery, from this transaction on."""
    _require_rules_6(kw, ACCEPT)
    send_tx(ctx, kw, ACCEPT, {"loan_id": loan_id, **({"from": seller} if seller is not None else {})})


@click.command("withdraw-assignment")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def withdraw_assignment(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Take back your pending offer of a share of LOAN_ID."""
    _require_rules_6(kw, WITHDRAW)
    send_tx(ctx, kw, WITHDRAW, {"loan_id": loan_id})


@click.command("decline-assignment")
@click.argument("loan_id")
@click.option(
    "--from",
    "seller",
    default=None,
    help="DID of the funder whose offer you decline (when several name you).",
)
@click.option(
    "--note", default=None, help=f"Why you decline it, for the seller (1 to {MAX_NOTE} characters)."
)
@signer_options
@click.pass_context
@user_errors
def decline_assignment(
    ctx: click.Context, loan_id: str, seller: str | None, note: str | None, **kw: Any
) -> None:
    """Decline the share of LOAN_ID a funder offered you: the offer ends, and its seller may offer the
    share again, to you or to another (rules 7)."""
    if note is not None and not note.strip():
        raise click.BadParameter("must say why when given, not only spaces", param_hint="'--note'")
    if note is not None and len(note) > MAX_NOTE:
        raise click.BadParameter(
            f"is {len(note)} characters long; say it in at most {MAX_NOTE}", param_hint="'--note'"
        )
    _require_rules_6(kw, DECLINE, DECLINE_SINCE)
    payload: dict[str, Any] = {"loan_id": loan_id}
    if seller is not None:
        payload["from"] = seller
    if note is not None:
        payload["note"] = note
    send_tx(ctx, kw, DECLINE, payload)


def _price(record: dict[str, Any]) -> str:
    return f" for {record['price']}" if "price" in record else ""


def funding_share_lines(funding: dict[str, Any], names: dict[str, str] | None = None) -> list[str]:
    """``fund show``'s lines for the share offers and the sales recorded on a syndicated loan (none
    before rules 6, or from an older release's node); a member by name and DID when ``names`` (the
    loan view's ``member_names``) has it."""

    def who(did: str) -> str:
        return member_text(did, names=names)

    lines = []
    for offer in funding.get("share_offers", []):
        status = offer.get("status", "pending")
        why = f": {offer['lapsed_because']}" if "lapsed_because" in offer else ""
        lines.append(
            f"  offer  {who(offer['from'])} offers {offer['amount']} to {who(offer['to'])}{_price(offer)} "
            f"at height {offer['height']} ({status}{why})"
        )
    for sale in funding.get("assignments", []):
        lines.append(
            f"  sold   {who(sale['from'])} sold {sale['amount']} to {who(sale['to'])}{_price(sale)} at height "
            f"{sale['height']}"
        )
    for declined in funding.get("share_declines", []):  # rules 7
        lines.append(
            f"  declined  {who(declined['to'])} declined {declined['amount']} from {who(declined['from'])}"
            f"{_price(declined)} at height {declined['height']} (offered at {declined['offered_height']})"
            f"{_note(declined)}"
        )
    return lines


def _note(declined: dict[str, Any]) -> str:
    return f": {declined['note']}" if "note" in declined else ""


def position_share_lines(position: dict[str, Any], names: dict[str, str] | None = None) -> list[str]:
    """``fund positions``' lines under one position: what was bought and sold, and its pending offer;
    a buyer by name and DID when ``names`` (the view's ``member_names``) has it."""
    lines = []
    if position.get("bought") or position.get("sold"):
        lines.append(f"    bought {position['bought']}, sold {position['sold']}")
    offer = position.get("share_offer")
    if offer:
        lines.append(
            f"    your offer of {offer['amount']} to {member_text(offer['to'], names=names)}{_price(offer)} "
            f"(height {offer['height']}) is "
            f"pending: lendchain fund withdraw-assignment {position['loan_id']} takes it back"
        )
    for declined in position.get("offers_declined", []):  # rules 7: the buyer said no
        lines.append(
            f"    your offer of {declined['amount']} to {member_text(declined['to'], names=names)}"
            f"{_price(declined)} (height "
            f"{declined['offered_height']}) was declined at height {declined['height']}{_note(declined)}"
        )
    return lines


def offered_lines(view: dict[str, Any]) -> list[str]:
    """``fund positions``' lines for the shares offered to the funder, each with the command taking it
    (the seller by name and DID when the view's ``member_names`` has it)."""
    names = view.get("member_names")
    return [
        f"  offered: {offer['amount']} of loan {offer['loan_id'][:16]}… ({offer['state']}, {offer['currency']}) "
        f"from {member_text(offer['from'], names=names)}{_price(offer)} at height {offer['height']}: lendchain fund accept-assignment "
        f"{offer['loan_id']} --from {offer['from']}"
        for offer in view.get("share_offers_to", [])
    ]
