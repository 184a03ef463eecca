"""A funder sells its share of a syndicated loan: ``loan.share_assign`` and its answers (rules version 6).

Under rules 1-5 a syndicated loan's funders (``funding``) hold their
commitments until the loan ends. In syndicated lending a lender sells its
participation to another institution or investor all the time (an
"assignment"), and the loan's records must say who holds what. From rules
version ``SINCE_RULES``:

- ``loan.share_assign`` {loan_id, to, amount, price?}: a funder holding a
  commitment (``lifecycle.COMMITTED_FUNDER``) offers ``amount`` of it to
  ``to``: a registered investor or a lender member not removed from the
  consortium, neither the borrower nor the funder itself. ``price`` (minor
  units of the loan's currency, optional) is what the parties agreed; it is
  paid off chain and recorded for transparency only: the ledger neither
  checks nor moves it. One offer is pending per funder and loan: a second is
  refused until the first is accepted or withdrawn (or lapses, below).
- ``loan.share_accept`` {loan_id, from?}: the holder the offer names takes
  the share; ``from`` names the offering funder, needed only while several
  offers name the sender.
- ``loan.share_withdraw`` {loan_id}: the offering funder takes its pending
  offer back (named as the other withdrawals are).

An offer by a member removed from the consortium since may still be taken:
the member made it while it could sign, and its share thus finds a holder
that signs (a removed member's commitment counts for nothing in a consent,
``funder_consent``). The buyer must still be one when it accepts: a member
that lost the lender role since is refused by the lifecycle.

How much. ``amount`` is in units of the commitment, the weight every
pro-rata split uses (``funding.pro_rata``): selling 30,000 of a 40,000
commitment sells three quarters of its share of everything to come, whatever
the loan's outstanding principal. A part sold is at least ``min_part``, 1 %
of the loan (``MIN_PART_BPS`` of its funding target, at least 1), and leaves
the seller at least as much or nothing: a funder sells its whole commitment,
or a part of it that leaves no dust behind (a holding of a few minor units
would take part in every split and consent count for nothing). A holding
below the minimum is sold whole. The seller's holding can only grow while
its offer is pending (it sells nothing else meanwhile), so the acceptance
checks the parts again only for a whole holding that grew by a purchase.
From rules 7 the least part is the chain parameter ``min_share_part_bps``
(``params``; 100 by default) as the offer's block reads it, and the offer
records it (``min_part_bps``): its acceptance judges the parts by the least
part the offer was made under, so a change of the parameter re-judges no
pending offer (an offer made under rules 6 keeps the 1 % of its rules).

Which states (``lifecycle.ASSIGN_STATES``): funded, disbursed, repaying,
overdue, defaulted and written off. Not while the loan is funding: a funder
that wants less then commits less, and the commitments are not final until
the target is reached. A written-off loan's share is its share of the
recoveries still to come (how a non-performing loan is sold), so it is sold
only while the recovery is open (``writeoff.recovery_open``). An offer made
before the write-off lapses with it, as a transfer does (``transfers``): it
offered a share of a live loan, and at a price for one; the funder offers
again if it still wants to sell. An offer lapses too when the loan is closed
or its recovery ends. A lapsed offer can be neither accepted nor withdrawn,
and a new offer by the same funder replaces it.

What moves, from the acceptance. The commitments stay one record per funder,
in order (``funding.commitments``): the seller's ``amount`` falls by the part
sold, and becomes ``assigned`` once it is 0 (the record stays: what it
received stays with it); the buyer's record, if it has one, grows (and is
``committed`` again), else a new record is appended, with nothing received.
So the sum of the amounts stays the funding target, the order of the
commitments decides ties in every split as before, a new holder comes last,
and a record of 0 takes no part: ``pro_rata`` gives a weight of 0 nothing.
Every later repayment is split over the holders so (``funding.distribute``);
the repayments received before stay with the seller's record.

Recoveries on a written-off loan are not distributed into the records as
repayments are (rules 5 computes each funder's share in the views, pro rata
to the commitments). So that the recoveries before a sale stay with the
seller, the acceptance on a written-off loan first credits each record with
its pro-rata part of what was recovered since the last crediting
(``recovered``; the loan's ``funding.recovered_credited`` is the total
credited so far); a funder's share of the recoveries is then its credited
part plus its pro-rata part of what was recovered since
(``recovery_shares``), and the shares still add up to the loan's
``recovered`` total. The principal written off and the net loss are the
holders' now: the views give the buyer its pro-rata part of both.

Consent to a restructuring (``funder_consent``). A consent stays with the
funder that gave it and is counted, as every consent is, at what the funder
holds when the borrower accepts: a seller that keeps a part consents for
that part, a seller that sold everything counts for nothing, and the buyer
counts for nothing until it consents itself (it is a funder from the
acceptance and may). A consent does not move with the share: a pending
proposal is not yet agreed, and the buyer that paid for the share decides on
terms that change its economics; were the consent to move, a seller could
commit a holder that never signed. Nothing recorded on the proposal changes.

Indexes. A holder's positions come from its funder index
(``state.funder_loans_key``), which is append-only. The loan is appended to
the index of the holder an offer names, at the offer, once (the loan's
``funding.offered_to`` lists the DIDs so indexed; a funder that holds a
record was indexed when it funded), so the holder finds the offers made to
it in its positions before it accepts. The seller's index keeps the loan;
which loans a DID holds is its record's ``amount`` and ``status``, and every
reader checks that (``positions.positions_view``).

What is recorded. The loan's ``funding`` gains ``share_offers`` (each
``{from, to, amount, height, price?, written_off?}``, one per funder) and
``assignments`` (each ``{from, to, amount, height, offered_height,
price?}``, in order). From rules 7 an offer also records the least part it
was made under (``min_part_bps``), and the buyer may decline it
(``share_decline``). Each kind adds a history entry (``from``, ``to``,
``amount``, ``price``), so an audit export (``audit``) proves each sale,
and emits ``loan.share_offered``, ``loan.share_assigned`` or
``loan.share_offer_withdrawn``. A chain that never assigns a share stores
and executes exactly what it did before.

The views. The loan view (``queries``) gives each recorded share offer its
``status``, ``pending`` or ``lapsed`` with ``lapsed_because``
(``share_offer_views``); its commitments are the holders. A funder's
positions (``positions.positions_view``) give per loan what its record holds
now (``commitment``; ``status`` ``assigned`` once sold whole, carrying
nothing), what it ``bought`` and ``sold`` in all and its pending
``share_offer``; what it ``received`` and its ``recovered`` share keep what
came before a sale; and ``share_offers_to`` lists the pending offers naming
it, on loans it holds a share of or not. The borrower's exposure and a
servicer's ``funded_by_others`` are carried by the holders now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.funder_consent import BPS, syndicated
from lendchain.ledger.funding import pro_rata
from lendchain.ledger.identity import DID_PATTERN
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import (
    LOAN_ID_FIELD,
    MAX_AMOUNT,
    append_index,
    load_loan,
    loan_actors,
    with_history,
)
from lendchain.ledger.params import value as param
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import funder_loans_key, institution_key, loan_key, party_key
from lendchain.ledger.writeoff import nothing_to_recover

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = 6
ASSIGN, ACCEPT, WITHDRAW = lc.SHARE_KINDS
MIN_PART_BPS = 100  # the least part of a share sold, and left, under rules 6: 1 % of the loan
# From rules 7 the least part is a chain parameter, recorded on each offer (see the module docstring)
MIN_PART_PARAM_SINCE = 7
ASSIGNED = "assigned"  # a commitment sold whole: its record stays, with what it received


def min_part(loan: dict[str, Any], bps: int = MIN_PART_BPS) -> int:
    """The least amount of a commitment sold or kept, ``bps`` of the loan (see the module docstring)."""
    return max(1, loan["funding"]["target"] * bps // BPS)


def offer_part_bps(ctx: TxContext) -> int | None:
    """The least part, in basis points, an offer made in ``ctx``'s block is judged by and records: the
    chain parameter from rules 7; None under rules 6, whose offers record none (``MIN_PART_BPS``)."""
    if ctx.rules < MIN_PART_PARAM_SINCE:
        return None
    return param(ctx.params, "min_share_part_bps")


def holding(loan: dict[str, Any], did: str) -> dict[str, Any] | None:
    """``did``'s commitment record on the syndicated loan (held, released or sold); None if it has none."""
    return next((c for c in loan["funding"]["commitments"] if c["funder"] == did), None)


def offer_lapse(loan: dict[str, Any], offer: dict[str, Any]) -> str | None:
    """Why a share offer recorded on ``loan`` lapsed (a sentence's end); None while it is pending."""
    state = loan["state"]
    if state not in lc.ASSIGN_STATES:
        return f"the loan is {state}"
    if state == lc.WRITTEN_OFF:
        if not offer.get("written_off"):
            return "the loan was written off after it was offered"
        return nothing_to_recover(loan)
    return None


def pending_offers(loan: dict[str, Any]) -> list[dict[str, Any]]:
    """The loan's share offers that are pending (none on a loan that is not syndicated)."""
    if not syndicated(loan):
        return []
    return [offer for offer in loan["funding"].get("share_offers", ()) if offer_lapse(loan, offer) is None]


def share_offer_views(loan: dict[str, Any]) -> list[dict[str, Any]]:
    """The loan's recorded share offers, each with its ``status`` (``pending`` or ``lapsed``, and then
    ``lapsed_because``), as the loan view shows them."""
    views = []
    for offer in loan["funding"].get("share_offers", ()):
        lapse = offer_lapse(loan, offer)
        status = {"status": "pending"} if lapse is None else {"status": "lapsed", "lapsed_because": lapse}
        views.append({**offer, **status})
    return views


def recovery_shares(loan: dict[str, Any]) -> list[int]:
    """Each commitment's share of what was recovered on the written-off loan, in commitment order: what
    its record was credited at assignments, plus its pro-rata part of what was recovered since."""
    commitments = loan["funding"]["commitments"]
    recovered = loan["recovered"]["total"] if "recovered" in loan else 0
    since = recovered - loan["funding"].get("recovered_credited", 0)
    parts = pro_rata(since, [c["amount"] for c in commitments])
    return [c.get("recovered", 0) + part for c, part in zip(commitments, parts, strict=True)]


def assignment_totals(loan: dict[str, Any], did: str) -> dict[str, int]:
    """What ``did`` ``bought`` and ``sold`` of the loan's commitments, in all."""
    totals = {"bought": 0, "sold": 0}
    for record in loan["funding"].get("assignments", ()):
        if record["to"] == did:
            totals["bought"] += record["amount"]
        if record["from"] == did:
            totals["sold"] += record["amount"]
    return totals


def recovery_share(loan: dict[str, Any], did: str) -> int:
    """``did``'s share of what was recovered on the written-off loan (``recovery_shares``)."""
    commitments = loan["funding"]["commitments"]
    return next(
        share for c, share in zip(commitments, recovery_shares(loan), strict=True) if c["funder"] == did
    )


def offers_to(loan_id: bytes, loan: dict[str, Any], did: str) -> list[dict[str, Any]]:
    """The loan's pending offers of a share to ``did``, as a positions view lists them."""
    return [
        {"loan_id": loan_id.hex(), "currency": loan["currency"], "state": loan["state"], **offer}
        for offer in pending_offers(loan)
        if offer["to"] == did
    ]


def position_trades(loan: dict[str, Any], did: str) -> dict[str, Any]:
    """What a funder's position on the loan says of its sales: ``bought``, ``sold`` and its pending
    ``share_offer`` (None if none)."""
    mine = next((offer for offer in pending_offers(loan) if offer["from"] == did), None)
    return {**assignment_totals(loan, did), "share_offer": mine}


def share_where(tx: Transaction, loan_id: bytes) -> str:
    return f"{tx.kind} on loan {loan_id.hex()[:16]}"


def check_share_loan(ctx: TxContext, tx: Transaction, loan_id: bytes, loan: dict[str, Any]) -> None:
    """Refuse a share kind (``share_decline``'s too) on a loan without shares, or still funding, or
    (but for an answer to an offer) from a funder that sold its whole share; then ask the lifecycle."""
    if not syndicated(loan):  # said before the lifecycle's refusal: nobody holds a share of it
        raise TxRejected(
            "invalid_state",
            f"{share_where(tx, loan_id)}: the loan is not syndicated (no funders' commitments fund it): its "
            "lender carries it alone, and hands it on with loan.transfer",
        )
    if loan["state"] == lc.FUNDING:
        raise TxRejected(
            "invalid_state",
            f"{share_where(tx, loan_id)}: the loan is still funding (until {loan['funding']['deadline_ms']} ms): "
            "its commitments are final once it is funded, and a funder that wants less commits less",
        )
    mine = holding(loan, tx.sender)
    # a buyer answers an offer (accepts it, or from rules 7 declines it) whatever it held before
    if tx.kind not in (ACCEPT, lc.SHARE_DECLINE) and mine is not None and mine["status"] == ASSIGNED:
        raise TxRejected(
            "forbidden",
            f"{share_where(tx, loan_id)}: {tx.sender} has sold its whole share of the loan: it holds none",
        )
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)


def _unfit_holder(ctx: TxContext, loan: dict[str, Any], did: str) -> str | None:
    """Why ``did`` cannot hold a share of the loan (a sentence's end); None if it can."""
    if did == loan["borrower"]:
        return f"names the loan's borrower ({did}), who cannot fund its own loan"
    institution = ctx.get(institution_key(did))
    if institution is not None:
        if "removed_height" in institution:
            return (
                f"names {institution['name']}, removed from the consortium at height "
                f"{institution['removed_height']}"
            )
        if "lender" not in institution["roles"]:
            return f"names {institution['name']}, which does not hold the lender role"
        return None
    party = ctx.get(party_key(did))
    if party is None:
        return f"names no registered party or member ({did})"
    if party["role"] != "investor":
        return f"names a registered {party['role']} ({did}), not an investor"
    return None


def _percent(bps: int) -> str:
    """Basis points as a percentage in words: 100 is "1", 150 "1.5", 5 "0.05"."""
    whole, hundredths = divmod(bps, 100)
    return str(whole) if not hundredths else f"{whole}.{hundredths:02d}".rstrip("0")


def _part_problem(
    loan: dict[str, Any], held: int, amount: int, bps: int | None, *, accepting: bool = False
) -> str | None:
    """Why selling ``amount`` of a holding of ``held`` is refused (a sentence's end); None if it is not.

    ``bps`` is the least part the offer is judged by (``offer_part_bps``): None under rules 6, whose
    wording stays word for word (its refusals are hashed into blocks' results); ``accepting`` when
    the offer is judged again at its acceptance, by the part it was made under."""
    least = min_part(loan, MIN_PART_BPS if bps is None else bps)
    if amount > held:
        return f"more than the {held} it holds"
    if amount == held:
        return None  # the whole holding, however small
    if amount < least:
        target = loan["funding"]["target"]
        if bps is None:
            which = f"{MIN_PART_BPS // 100} % of the loan's {target}"
        else:
            source = f"was {bps} when it was offered" if accepting else f"is {bps}"
            which = f"{_percent(bps)} % of the loan's {target}: the chain's min_share_part_bps {source}"
        return f"less than {least}, the least part of a share that is sold ({which}), unless it is the whole {held}"
    if held - amount < least:
        return (
            f"which would leave {held - amount}, less than the {least} a funder keeps; sell the whole "
            f"{held}, or at most {held - least}"
        )
    return None


def offer_share(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    check_share_loan(ctx, tx, loan_id, loan)
    where = share_where(tx, loan_id)
    if loan["state"] == lc.WRITTEN_OFF:
        nothing = nothing_to_recover(loan)
        if nothing is not None:
            raise TxRejected(
                "invalid_state", f"{where}: {nothing}: there is no share of recoveries left to sell"
            )
    funding = loan["funding"]
    mine = next((offer for offer in pending_offers(loan) if offer["from"] == tx.sender), None)
    if mine is not None:
        raise TxRejected(
            "invalid_state",
            f"{where}: its offer of {mine['amount']} to {mine['to']} (offered at height {mine['height']}) is "
            f"still pending; it must be accepted, or withdrawn with {WITHDRAW}, first",
        )
    to, amount = tx.payload["to"], tx.payload["amount"]
    if to == tx.sender:
        raise TxRejected(
            "bad_payload", f"{ASSIGN} field 'to' is {to}, the funder that holds the share already"
        )
    unfit = _unfit_holder(ctx, loan, to)
    if unfit is not None:
        raise TxRejected(
            "bad_payload",
            f"{ASSIGN} field 'to' {unfit}: a share is held by a registered investor or a lender member",
        )
    held = holding(loan, tx.sender)["amount"]
    bps = offer_part_bps(ctx)
    problem = _part_problem(loan, held, amount, bps)
    if problem is not None:
        raise TxRejected("bad_payload", f"{ASSIGN} field 'amount' is {amount}, {problem}")
    price = {"price": tx.payload["price"]} if "price" in tx.payload else {}
    offer = {
        "from": tx.sender,
        "to": to,
        "amount": amount,
        "height": ctx.height,
        **price,
        **({"written_off": True} if loan["state"] == lc.WRITTEN_OFF else {}),
        **({"min_part_bps": bps} if bps is not None else {}),  # rules 7: the least part it is judged by
    }
    offered_to = funding.get("offered_to", [])
    if holding(loan, to) is None and to not in offered_to:
        append_index(ctx, funder_loans_key(to), loan_id)  # once per DID: see the module docstring
        offered_to = [*offered_to, to]
    others = [
        o for o in funding.get("share_offers", ()) if o["from"] != tx.sender
    ]  # a lapsed one is replaced
    loan = {**loan, "funding": {**funding, "share_offers": [*others, offer], "offered_to": offered_to}}
    fields = {"from": tx.sender, "to": to, "amount": amount, **price}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, **fields)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.share_offered", loan_id=loan_id.hex(), **fields)


def _offer_to_accept(tx: Transaction, loan_id: bytes, loan: dict[str, Any]) -> dict[str, Any]:
    """The pending offer ``tx`` accepts: the one from its ``from``, or the only one naming its sender."""
    where = share_where(tx, loan_id)
    seller = tx.payload.get("from")
    named = [
        offer
        for offer in loan["funding"].get("share_offers", ())
        if offer["to"] == tx.sender and seller in (None, offer["from"])
    ]
    mine = [offer for offer in named if offer_lapse(loan, offer) is None]
    if not mine:
        lapsed = f" (the one from {named[0]['from']} lapsed: {offer_lapse(loan, named[0])})" if named else ""
        by = f" from {seller}" if seller is not None else ""
        raise TxRejected(
            "invalid_state",
            f"{where}: no offer of a share{by} to {tx.sender} is pending{lapsed} (a funder offers one "
            f"with {ASSIGN})",
        )
    if seller is not None:
        return mine[0]
    if len(mine) > 1:
        sellers = ", ".join(offer["from"] for offer in mine)
        raise TxRejected(
            "bad_payload",
            f"{ACCEPT} field 'from' is missing: {len(mine)} offers of a share to {tx.sender} are pending "
            f"(from {sellers}); name the funder whose offer it accepts",
        )
    return mine[0]


def accept_share(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    check_share_loan(ctx, tx, loan_id, loan)
    offer = _offer_to_accept(tx, loan_id, loan)
    seller, amount = offer["from"], offer["amount"]
    # judged by the least part the offer was made under: a rules-6 offer's is MIN_PART_BPS
    held = holding(loan, seller)["amount"]
    problem = _part_problem(loan, held, amount, offer.get("min_part_bps"), accepting=True)
    if problem is not None:  # a whole holding that grew by a purchase since the offer
        raise TxRejected(
            "invalid_state",
            f"{share_where(tx, loan_id)}: its offer of {amount} from {seller} no longer fits the share {seller} holds: "
            f"{problem}; {seller} withdraws it and offers again",
        )
    funding = credit_recoveries(loan)
    commitments = move_share(funding["commitments"], seller, tx.sender, amount)
    price = {"price": offer["price"]} if "price" in offer else {}
    record = {
        "from": seller,
        "to": tx.sender,
        "amount": amount,
        "height": ctx.height,
        "offered_height": offer["height"],
        **price,
    }
    funding = {
        **funding,
        "commitments": commitments,
        "share_offers": [o for o in funding["share_offers"] if o["from"] != seller],
        "assignments": [*funding.get("assignments", []), record],
    }
    loan = {**loan, "funding": funding}
    fields = {"from": seller, "to": tx.sender, "amount": amount, **price}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, **fields, offered_height=offer["height"])
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.share_assigned", loan_id=loan_id.hex(), **fields, state=loan["state"])


def credit_recoveries(loan: dict[str, Any]) -> dict[str, Any]:
    """The loan's ``funding`` with what was recovered since the last crediting credited to each
    commitment's ``recovered``, pro rata (a written-off loan with recoveries; else unchanged)."""
    funding = loan["funding"]
    if loan["state"] != lc.WRITTEN_OFF or "recovered" not in loan:
        return funding
    total = loan["recovered"]["total"]
    if total == funding.get("recovered_credited", 0):
        return funding
    shares = recovery_shares(loan)
    commitments = [{**c, "recovered": share} for c, share in zip(funding["commitments"], shares, strict=True)]
    return {**funding, "commitments": commitments, "recovered_credited": total}


def move_share(
    commitments: list[dict[str, Any]], seller: str, buyer: str, amount: int
) -> list[dict[str, Any]]:
    """The commitments with ``amount`` moved from ``seller``'s record to ``buyer``'s (appended if new)."""
    moved = []
    for c in commitments:
        if c["funder"] == seller:
            left = c["amount"] - amount
            c = {**c, "amount": left, "status": "committed" if left else ASSIGNED}
        elif c["funder"] == buyer:
            c = {**c, "amount": c["amount"] + amount, "status": "committed"}
        moved.append(c)
    if not any(c["funder"] == buyer for c in commitments):
        moved.append({"funder": buyer, "amount": amount, "received": 0, "status": "committed"})
    return moved


def withdraw_offer(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    check_share_loan(ctx, tx, loan_id, loan)
    funding = loan["funding"]
    recorded = next((o for o in funding.get("share_offers", ()) if o["from"] == tx.sender), None)
    if recorded is None:
        raise TxRejected(
            "invalid_state",
            f"{share_where(tx, loan_id)}: {tx.sender} has no offer of its share pending to withdraw",
        )
    lapse = offer_lapse(loan, recorded)
    if lapse is not None:
        raise TxRejected(
            "invalid_state",
            f"{share_where(tx, loan_id)}: its offer to {recorded['to']} (offered at height {recorded['height']}) "
            f"lapsed: {lapse}; there is nothing to withdraw",
        )
    fields = {"from": tx.sender, "to": recorded["to"], "amount": recorded["amount"]}
    end_offer(ctx, tx, loan_id, loan, recorded, "loan.share_offer_withdrawn", fields)


def end_offer(
    ctx: TxContext,
    tx: Transaction,
    loan_id: bytes,
    loan: dict[str, Any],
    offer: dict[str, Any],
    event: str,
    fields: dict[str, Any],
    **funding_change: Any,
) -> None:
    """Take ``offer`` off the loan's pending offers (with ``funding_change`` to the loan's funding),
    record ``fields`` in its history under ``tx``'s kind and emit ``event``: a withdrawal or a decline."""
    funding = loan["funding"]
    remaining = [o for o in funding["share_offers"] if o["from"] != offer["from"]]
    loan = {**loan, "funding": {**funding, "share_offers": remaining, **funding_change}}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, **fields)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(event, loan_id=loan_id.hex(), **fields, offered_height=offer["height"])


register_kind(
    ASSIGN,
    Schema(
        (
            LOAN_ID_FIELD,
            Field("to", "str", pattern=DID_PATTERN),
            Field("amount", "int", min=1, max=MAX_AMOUNT),
            Field("price", "int", required=False, min=0, max=MAX_AMOUNT),
        )
    ),
    offer_share,
    since=SINCE_RULES,
)
register_kind(
    ACCEPT,
    Schema((LOAN_ID_FIELD, Field("from", "str", required=False, pattern=DID_PATTERN))),
    accept_share,
    since=SINCE_RULES,
)
register_kind(WITHDRAW, Schema((LOAN_ID_FIELD,)), withdraw_offer, since=SINCE_RULES)
