"""Guarantees of loans: who stands behind a borrower, for every lender to see (rules version 7; 8).

A guarantee is exposure too. A person who guaranteed three loans at three
banks owes all three if the borrowers fail, and no bank sees the others; on
the chain every member sees every guarantee, and a guarantor's contingent
exposure adds up across lenders (``guarantee_views``). From rules version
``SINCE_RULES``:

- ``loan.guarantee`` {loan_id, guarantor, amount, kind, evidence_hash,
  expires_ms?}: the loan's servicer proposes that ``guarantor`` (a registered
  party's did:key, or a member's did: a bank guarantee) guarantees the loan
  up to ``amount`` (the cap, in minor units of the loan's currency, 1 to the
  loan's principal). ``kind`` is one of ``KINDS``; ``evidence_hash`` is the
  sha256 of the signed guarantee deed the servicer holds off chain, as a
  lien's agreement hash is; ``expires_ms`` (optional) is when the guarantee
  stops binding, after the proposing block. The guarantee's id is the id of
  this transaction (as an offer's is).
- ``loan.guarantee_accept`` {loan_id, guarantee_id}: the guarantor signs it,
  as a borrower accepts an offer; only then does it bind (``active``).
- ``loan.guarantee_withdraw`` {loan_id, guarantee_id}: the servicer takes a
  guarantee back before it is accepted.
- ``loan.guarantee_release`` {loan_id, guarantee_id}: the servicer releases
  the guarantor of an accepted guarantee.
- ``loan.guarantee_call`` {loan_id, guarantee_id, amount}: the servicer
  demands payment from the guarantor once the borrower failed (the loan is
  defaulted or written off), up to the cap less what it called before.

The money model, kept small on purpose. A call records the demand only: the
guarantee's ``called`` total against its ``amount`` cap. What the guarantor
then pays is money received on the loan like any other and is recorded the
existing way by the servicer: ``loan.repay`` on a defaulted loan (with a
``reference``) or ``loan.recover`` on a written-off one (with a ``note``),
so the loan's balances, its funders' shares and the recovery figures stay
the only record of money. Nothing here moves money or changes a balance.

Who and when (``lifecycle.TRANSITIONS``): the servicer proposes, withdraws
and releases, in the states in which the loan has one
(``lifecycle.SERVICER_STATES``; a release on a written-off loan too). A loan
before acceptance has no servicer to propose a guarantee, so an offered or
cancelled loan holds none. The guarantor accepts (the ``GUARANTOR`` actor is
the guarantor of the guarantee the transaction names). A call needs the
loan defaulted or written off. A ``loan.transfer`` hands the guarantees on
with the servicing, untouched; it is refused to a member that guarantees
the loan (``transfers``), which would then have to call its own guarantee.

Refused: a guarantor that is the borrower or the servicer itself
(``bad_payload``), that is neither a registered party nor a member, or a
removed member (``not_found`` / ``invalid_state``); a cap above the loan's
principal (``bad_payload``); an expiry not after the block (``bad_payload``);
a second live guarantee by the same guarantor on the loan (``duplicate``);
more than ``MAX_PER_LOAN`` guarantees on one loan (``invalid_state``; from
rules 8 more than ``MAX_PER_LOAN`` live ones: see below); an
accept by anyone but the guarantor (``forbidden``), of a guarantee no longer
proposed, withdrawn or accepted already (``invalid_state``) or expired
(``expired``); a withdrawal after the acceptance, a release before it, a call
on a guarantee not active, expired, or beyond what is left of its cap.

Expiry is judged lazily. Nothing wakes up when ``expires_ms`` passes: a
transaction after it (accept, call) is refused with ``expired`` at the
block's time, and the views show the guarantee ``expired`` and stop counting
it at their reader's time (``guarantee_views.status_of``).

The ledger's own releases. A guarantee secures a claim as a lien does, so
when the claim ends the ledger releases every accepted guarantee
(``released``) and lets every one still proposed lapse (``lapsed``), each
with ``because`` (``collateral.ENDED_BECAUSE``: closed, unfunded, recovered,
recovery_ended), in the transaction that ends it: ``collateral.release_all``
calls ``release_guarantees`` at each of those points. A write-off is not one:
the claim survives it, and a written-off loan's guarantees may still be called.

State:

- ``guar/<id>`` (``guarantee_key``): {loan_id, guarantor, amount, kind,
  evidence_hash, expires_ms?, state (``proposed``, ``active``, ``withdrawn``,
  ``released``, ``lapsed``), proposed_by, height, time_ms, called, calls,
  accepted_height?, ended_height?, because?, called_height?}.
- the loan's ``guarantees``: under rules 7 the ids of every guarantee
  proposed on it, in order, at most ``MAX_PER_LOAN``; from rules 8 its live
  ones only (below). Absent on a loan that never had one, so nothing is read
  or written for it when its claim ends.
- ``lguar/<loan id>`` (``loan_guarantees_key``, rules 8): the ids of every
  guarantee proposed on the loan, in order, a paged list (``pagedlist``).
- ``gloans/<did>`` (``guarantor_index_key``): the ids of the guarantees
  proposed to a guarantor, a paged list (``pagedlist``) like a borrower's loans.

Rules 8: the cap counts live guarantees. Under rules 7 a guarantee stays in
the loan's ``guarantees`` after it ended, so a loan whose guarantors changed
``MAX_PER_LOAN`` times could never take another. From ``LIVE_LIST_SINCE`` the
list holds the proposed and active guarantees only, and the cap counts them
(as stored: one past its ``expires_ms`` counts until the servicer withdraws
or releases it, expiry being judged lazily). A guarantee leaves the list in
the transaction that ends it (withdrawal, release, the ledger's release or
lapse), so the loan record, which every servicing transaction reads, stays
bounded however often a servicer and a guarantor propose and withdraw; it
keeps ``guarantees`` (empty) once the loan had one. What ended stays
findable without the record: in ``lguar/<loan id>``, which the views read
(``loan_guarantee_ids``), the guarantor's index and the loan's history. A transaction naming a guarantee
finds it by its own ``loan_id`` (ended or live), so one that ended is
refused for its state, as under rules 7. A loan whose guarantees were
proposed under rules 7 moves to this layout at its first rules-8 transaction
that proposes or ends one (``_live_ids``): its list, ended ids included,
seeds ``lguar/<loan id>``, and its ended ids leave the record.

Each transaction appends a history entry to the loan and emits an event.
Nothing here changes a chain that never proposes a guarantee.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger import pagedlist
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.identity import DID_PATTERN
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import (
    HEX_ID,
    LOAN_ID_FIELD,
    MAX_AMOUNT,
    append_index,
    load_loan,
    loan_actors,
    with_history,
)
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import institution_key, loan_key, party_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = lc.GUARANTEES_SINCE
PROPOSE, ACCEPT, WITHDRAW = lc.GUARANTEE, lc.GUARANTEE_ACCEPT, lc.GUARANTEE_WITHDRAW
RELEASE, CALL = lc.GUARANTEE_RELEASE, lc.GUARANTEE_CALL
KINDS = ("personal", "corporate", "bank")
MAX_PER_LOAN = 16
# From this rules version the loan's ``guarantees`` holds its live guarantees only (module docstring)
LIVE_LIST_SINCE = 8
PROPOSED, ACTIVE, WITHDRAWN, RELEASED, LAPSED = "proposed", "active", "withdrawn", "released", "lapsed"
LIVE = (PROPOSED, ACTIVE)


def guarantee_key(guarantee_id: bytes) -> bytes:
    return b"guar/" + guarantee_id


def guarantor_index_key(did: str) -> bytes:
    """The ids of the guarantees proposed to ``did``, as a paged list (``pagedlist``)."""
    return b"gloans/" + did.encode()


def loan_guarantees_key(loan_id: bytes) -> bytes:
    """The ids of every guarantee proposed on the loan from rules 8, as a paged list (``pagedlist``)."""
    return b"lguar/" + loan_id


def loan_guarantee_ids(get: Callable[[bytes], Any], loan_id: bytes, loan: dict[str, Any]) -> list[bytes]:
    """Every guarantee ever proposed on the loan, in order, ended ones included: its paged list once
    rules 8 touched its guarantees, else its own list (every one, under rules 7). No read for a loan
    that never had one."""
    if "guarantees" not in loan:
        return []
    return list(pagedlist.items(get, loan_guarantees_key(loan_id))) or list(loan["guarantees"])


def _live_ids(ctx: TxContext, loan_id: bytes, loan: dict[str, Any]) -> list[bytes]:
    """Rules 8: the loan's live guarantee ids. A loan whose list rules 7 wrote (ended ids in it, no paged
    list yet) moves to rules 8's layout first: its whole list seeds the paged list."""
    ids = loan.get("guarantees", [])
    key = loan_guarantees_key(loan_id)
    if not ids or pagedlist.length(ctx.get, key):
        return ids
    for guarantee_id in ids:
        append_index(ctx, key, guarantee_id)
    return [gid for gid in ids if ctx.get(guarantee_key(gid))["state"] in LIVE]


def principal_of(loan: dict[str, Any]) -> int:
    """The most a guarantee of the loan may cap: its principal, with what a restructuring capitalised."""
    return loan["amount"] + loan.get("capitalised", 0)


def _where(tx: Transaction, loan_id: bytes) -> str:
    return f"{tx.kind} on loan {loan_id.hex()[:16]}"


def _named(ctx: TxContext, tx: Transaction, loan_id: bytes, loan: dict[str, Any]) -> tuple[bytes, dict]:
    """The guarantee of the loan that ``tx``'s ``guarantee_id`` names; ``not_found`` if none."""
    guarantee_id = bytes.fromhex(tx.payload["guarantee_id"])
    if ctx.rules >= LIVE_LIST_SINCE:  # an ended guarantee left the loan's list: its record says whose
        guarantee = ctx.get(guarantee_key(guarantee_id))
        if guarantee is None or guarantee["loan_id"] != loan_id:
            raise TxRejected(
                "not_found",
                f"{tx.kind} field 'guarantee_id' names no guarantee of loan {loan_id.hex()[:16]} "
                f"({guarantee_id.hex()[:16]}): see the loan's guarantees",
            )
        return guarantee_id, guarantee
    if guarantee_id not in loan.get("guarantees", ()):
        count = len(loan.get("guarantees", ()))
        raise TxRejected(
            "not_found",
            f"{tx.kind} field 'guarantee_id' names no guarantee of loan {loan_id.hex()[:16]} "
            f"({guarantee_id.hex()[:16]}; it has {count}: see its guarantees)",
        )
    return guarantee_id, ctx.get(guarantee_key(guarantee_id))


def _refuse_unless(tx: Transaction, guarantee: dict[str, Any], state: str, loan_id: bytes, fix: str) -> None:
    if guarantee["state"] != state:
        raise TxRejected(
            "invalid_state",
            f"{_where(tx, loan_id)}: the guarantee by {guarantee['guarantor']} is {guarantee['state']}, "
            f"not {state}{fix}",
        )


def _refuse_expired(ctx: TxContext, tx: Transaction, guarantee: dict[str, Any], loan_id: bytes) -> None:
    expires = guarantee.get("expires_ms")
    if expires is not None and ctx.timestamp_ms >= expires:
        raise TxRejected(
            "expired",
            f"{_where(tx, loan_id)}: the guarantee by {guarantee['guarantor']} expired at {expires} "
            f"(block time {ctx.timestamp_ms}); it no longer binds",
        )


def _check_guarantor(ctx: TxContext, tx: Transaction, loan: dict[str, Any]) -> str:
    """The payload's guarantor, refused when it cannot guarantee this loan (see the module docstring)."""
    guarantor = tx.payload["guarantor"]
    field = f"{tx.kind} field 'guarantor'"
    if guarantor == loan["borrower"]:
        raise TxRejected("bad_payload", f"{field} is the loan's borrower: a borrower cannot guarantee itself")
    if guarantor == loan["lender"]:
        raise TxRejected(
            "bad_payload", f"{field} is the loan's servicer: a lender cannot guarantee its own loan"
        )
    institution = ctx.get(institution_key(guarantor))
    if institution is not None and "removed_height" in institution:
        raise TxRejected(
            "invalid_state",
            f"{field} names {institution['name']}, removed from the consortium at height "
            f"{institution['removed_height']}: it can no longer sign a guarantee",
        )
    if institution is None and ctx.get(party_key(guarantor)) is None:
        raise TxRejected(
            "not_found",
            f"{field} names {guarantor}, neither a registered party nor a member: the guarantor sends "
            "party.register first",
        )
    return guarantor


def live_guarantee_by(
    get: Callable[[bytes], Any], loan: dict[str, Any], did: str
) -> tuple[bytes, dict[str, Any]] | None:
    """The loan's proposed or accepted guarantee by ``did`` (its id and record), if it has one: at
    most one, as a second is refused. (From rules 8 the loan's list holds live ones only, but one rules 7
    wrote may still hold ended ones: the state is checked either way.)"""
    for guarantee_id in loan.get("guarantees", []):
        guarantee = get(guarantee_key(guarantee_id))
        if guarantee["guarantor"] == did and guarantee["state"] in LIVE:
            return guarantee_id, guarantee
    return None


def propose_guarantee(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    here = _where(tx, loan_id)
    guarantor = _check_guarantor(ctx, tx, loan)
    amount, cap = tx.payload["amount"], principal_of(loan)
    if amount > cap:
        raise TxRejected(
            "bad_payload",
            f"{tx.kind} field 'amount' is {amount}, more than the loan's principal {cap} {loan['currency']}",
        )
    expires = tx.payload.get("expires_ms")
    if expires is not None and expires <= ctx.timestamp_ms:
        raise TxRejected(
            "bad_payload",
            f"{tx.kind} field 'expires_ms' is {expires}, not after this block's time {ctx.timestamp_ms}",
        )
    ids = _live_ids(ctx, loan_id, loan) if ctx.rules >= LIVE_LIST_SINCE else loan.get("guarantees", [])
    live = live_guarantee_by(ctx.get, loan, guarantor)
    if live is not None:
        other_id, other = live
        raise TxRejected(
            "duplicate",
            f"{here}: {guarantor} guarantees the loan already ({other['state']} guarantee "
            f"{other_id.hex()[:16]}); withdraw or release it first",
        )
    if len(ids) >= MAX_PER_LOAN:
        if ctx.rules >= LIVE_LIST_SINCE:
            raise TxRejected(
                "invalid_state",
                f"{here}: the loan has {len(ids)} live guarantees (proposed or active), the most a loan may "
                "have at once; withdraw or release one first",
            )
        raise TxRejected(
            "invalid_state", f"{here}: the loan has had {len(ids)} guarantees, the most a loan may have"
        )
    guarantee = {
        "loan_id": loan_id,
        "guarantor": guarantor,
        "amount": amount,
        "kind": tx.payload["kind"],
        "evidence_hash": bytes.fromhex(tx.payload["evidence_hash"]),
        **({"expires_ms": expires} if expires is not None else {}),
        "state": PROPOSED,
        "proposed_by": tx.sender,
        "height": ctx.height,
        "time_ms": ctx.timestamp_ms,
        "called": 0,
        "calls": 0,
    }
    ctx.put(guarantee_key(ctx.tx_id), guarantee)
    append_index(ctx, guarantor_index_key(guarantor), ctx.tx_id)
    if ctx.rules >= LIVE_LIST_SINCE:
        append_index(ctx, loan_guarantees_key(loan_id), ctx.tx_id)
    loan = {**loan, "guarantees": [*ids, ctx.tx_id]}
    fields = {
        "guarantee_id": ctx.tx_id.hex(),
        "guarantor": guarantor,
        "amount": amount,
        "kind": guarantee["kind"],
    }
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, **fields)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.guarantee_proposed", loan_id=loan_id.hex(), **fields, currency=loan["currency"])


def _change(
    ctx: TxContext,
    tx: Transaction,
    loan_id: bytes,
    loan: dict[str, Any],
    guarantee_id: bytes,
    guarantee: dict[str, Any],
    event: str,
    **fields: Any,
) -> None:
    """Store the changed guarantee, the loan's history entry and the event; from rules 8 one that ended
    leaves the loan's list of live guarantees."""
    ctx.put(guarantee_key(guarantee_id), guarantee)
    if ctx.rules >= LIVE_LIST_SINCE and guarantee["state"] not in LIVE:
        loan = {**loan, "guarantees": [gid for gid in _live_ids(ctx, loan_id, loan) if gid != guarantee_id]}
    told = {"guarantee_id": guarantee_id.hex(), "guarantor": guarantee["guarantor"], **fields}
    loan = {**loan, "history_len": with_history(loan_id, loan, ctx, tx.kind, **told)}
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(event, loan_id=loan_id.hex(), **told)


def accept_guarantee(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    guarantee_id, guarantee = _named(ctx, tx, loan_id, loan)
    actors = loan_actors(ctx, tx.sender, loan) | (
        {lc.GUARANTOR} if guarantee["guarantor"] == tx.sender else set()
    )
    lc.advance(loan["state"], tx.kind, frozenset(actors), ctx.tx_id, loan_id, rules=ctx.rules)
    _refuse_unless(tx, guarantee, PROPOSED, loan_id, "")
    _refuse_expired(ctx, tx, guarantee, loan_id)
    guarantee = {**guarantee, "state": ACTIVE, "accepted_height": ctx.height}
    _change(
        ctx, tx, loan_id, loan, guarantee_id, guarantee, "loan.guarantee_accepted", amount=guarantee["amount"]
    )


def withdraw_guarantee(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    guarantee_id, guarantee = _named(ctx, tx, loan_id, loan)
    _refuse_unless(tx, guarantee, PROPOSED, loan_id, f" (an accepted guarantee is released: {RELEASE})")
    guarantee = {**guarantee, "state": WITHDRAWN, "ended_height": ctx.height}
    _change(ctx, tx, loan_id, loan, guarantee_id, guarantee, "loan.guarantee_withdrawn")


def release_guarantee(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    guarantee_id, guarantee = _named(ctx, tx, loan_id, loan)
    _refuse_unless(
        tx, guarantee, ACTIVE, loan_id, f" (a guarantee not yet accepted is withdrawn: {WITHDRAW})"
    )
    guarantee = {**guarantee, "state": RELEASED, "ended_height": ctx.height}
    _change(
        ctx, tx, loan_id, loan, guarantee_id, guarantee, "loan.guarantee_released", called=guarantee["called"]
    )


def call_guarantee(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    guarantee_id, guarantee = _named(ctx, tx, loan_id, loan)
    _refuse_unless(tx, guarantee, ACTIVE, loan_id, " (only an accepted guarantee binds its guarantor)")
    _refuse_expired(ctx, tx, guarantee, loan_id)
    amount, left = tx.payload["amount"], guarantee["amount"] - guarantee["called"]
    if amount > left:
        raise TxRejected(
            "bad_payload",
            f"{tx.kind} field 'amount' is {amount}, more than is left of the guarantee's cap: {left} "
            f"{loan['currency']} (cap {guarantee['amount']}, called {guarantee['called']})",
        )
    called = guarantee["called"] + amount
    guarantee = {**guarantee, "called": called, "calls": guarantee["calls"] + 1, "called_height": ctx.height}
    fields = {"amount": amount, "called": called, "cap": guarantee["amount"], "currency": loan["currency"]}
    _change(ctx, tx, loan_id, loan, guarantee_id, guarantee, "loan.guarantee_called", **fields)


def release_guarantees(ctx: TxContext, loan_id: bytes, loan: dict[str, Any], because: str) -> None:
    """Release the loan's accepted guarantees, and let its proposed ones lapse, as its claim just ended
    ``because`` (``loan`` as stored by the caller). Nothing read or written for a loan without guarantees,
    which every loan is before rules 7; from rules 8 they all leave its list of live ones."""
    if ctx.rules < SINCE_RULES or not loan.get("guarantees"):
        return
    ids = loan["guarantees"]
    if ctx.rules >= LIVE_LIST_SINCE:
        ids = _live_ids(ctx, loan_id, loan)
        loan = {**loan, "guarantees": []}
    for guarantee_id in ids:
        guarantee = ctx.get(guarantee_key(guarantee_id))
        if guarantee["state"] not in LIVE:
            continue
        state = RELEASED if guarantee["state"] == ACTIVE else LAPSED
        ctx.put(
            guarantee_key(guarantee_id),
            {**guarantee, "state": state, "ended_height": ctx.height, "because": because},
        )
        told = {"guarantee_id": guarantee_id.hex(), "guarantor": guarantee["guarantor"], "because": because}
        loan = {**loan, "history_len": with_history(loan_id, loan, ctx, f"loan.guarantee_{state}", **told)}
        ctx.emit(f"loan.guarantee_{state}", loan_id=loan_id.hex(), **told)
    ctx.put(loan_key(loan_id), loan)


GUARANTEE_ID_FIELD = Field("guarantee_id", "str", pattern=HEX_ID)
AMOUNT_FIELD = Field("amount", "int", min=1, max=MAX_AMOUNT)

register_kind(
    PROPOSE,
    Schema(
        (
            LOAN_ID_FIELD,
            Field("guarantor", "str", pattern=DID_PATTERN),
            AMOUNT_FIELD,
            Field("kind", "str", choices=KINDS),
            Field("evidence_hash", "str", pattern=HEX_ID),
            Field("expires_ms", "int", required=False, min=1, max=2**62),
        )
    ),
    propose_guarantee,
    since=SINCE_RULES,
)
for _kind, _handler in (
    (ACCEPT, accept_guarantee),
    (WITHDRAW, withdraw_guarantee),
    (RELEASE, release_guarantee),
):
    register_kind(_kind, Schema((LOAN_ID_FIELD, GUARANTEE_ID_FIELD)), _handler, since=SINCE_RULES)
register_kind(
    CALL, Schema((LOAN_ID_FIELD, GUARANTEE_ID_FIELD, AMOUNT_FIELD)), call_guarantee, since=SINCE_RULES
)
