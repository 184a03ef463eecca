"""Parties and the loan lifecycle: the handlers of the core loan kinds.

Kinds: ``party.register`` (a borrower or investor registers its own DID),
``loan.apply`` (borrower; it needs an unexpired KYC attestation from a
member with the ``kyc`` role unless the genesis sets ``require_kyc = false``
in ``[app]``), ``loan.offer`` {loan_id, rate_bps, schedule?
(annuity | equal_principal), funding_window_ms? (a syndicated offer, see
``funding``)} by a lender member, ``loan.accept`` (borrower, picks one
offer), ``loan.cancel`` (borrower, before accepting) and ``loan.disburse``
(the servicer: the lender whose offer was accepted, until a ``loan.transfer``
hands the loan to another: see ``transfers``). Which event may happen
in which state, and by whom, is decided only by ``lifecycle.TRANSITIONS``;
this module checks amounts and references.

The domain modules built on these handlers — ``servicing`` (``loan.repay``,
``loan.prepay``, ``loan.service``), ``funding``, ``policies`` (auto-offers
through ``APPLICATION_HOOKS``), ``documents``, ``transfers``, ``writeoff``,
``recovery_end``, ``restructuring``, ``consent_withdrawal``, ``assignment``,
``collateral``, ``governance`` and ``audit`` — import this module and are
imported at its end, so importing the ledger registers every kind.

Ids: a loan's id is the id of its ``loan.apply`` tx and an offer's id the id of
its ``loan.offer`` tx (a policy's auto-offer: see ``policies``), so ids are
unique and known to the sender before the tx commits. Members (institutions)
come from the genesis with their roles.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger import pagedlist
from lendchain.ledger.amortization import SCHEDULE_KINDS, build_schedule, loan_schedule
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.identity import valid_kyc
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.params import value as param
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import (
    ZERO_ROOT,
    borrower_loans_key,
    history_entry_hash,
    institution_key,
    lender_loans_key,
    loan_history_key,
    loan_key,
    offer_key,
    party_key,
)

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

PARTY_ROLES = ("borrower", "investor")
MAX_AMOUNT = 10**15  # minor units; far above any single loan, far below 2**63
MAX_RATE_BPS = 100_000  # 1000 % a year
HEX_ID = r"[0-9a-f]{64}"
MAX_FUNDING_WINDOW_MS = 365 * 86_400_000
# From this rules version loan.accept refuses an offer by a member removed since it offered: a
# removed member signs nothing, so the loan would have a lender that can neither service it nor
# hand it on (``transfers``, the same version).
REMOVED_OFFERS_REFUSED_SINCE = 4
_INTEREST = itemgetter(2)  # ``Instalment.interest``, read in C rather than by a generator step per row


# Who is the sender? ------------------------------------------------------------


def loan_actors(ctx: TxContext, did: str, loan: dict[str, Any] | None) -> frozenset[str]:
    # Records read, not changed: ``peek`` skips the copy ``get`` makes (every lifecycle tx asks).
    institution = ctx.peek(institution_key(did))
    roles = institution["roles"] if institution else ()
    lender = "lender" in roles
    if institution is None:
        actors = set()
    elif lender:
        actors = {lc.MEMBER, lc.LENDER}
    else:
        actors = {lc.MEMBER}
    if loan is not None:
        # its commitments and share offers, whatever roles their holders have now
        funding = loan.get("funding")
        if loan["borrower"] == did:
            actors.add(lc.BORROWER)
        elif lender or (not roles and _is_investor(ctx, did)):
            actors.update((lc.FUNDER, lc.FUNDER_OR_BUYER))
        elif funding is not None and any(o["to"] == did for o in funding.get("share_offers", ())):
            actors.add(lc.FUNDER_OR_BUYER)  # the buyer a share offer names (rules 8: ``share_decline``)
        if loan.get("lender") == did:
            actors.add(lc.SERVICER)
        transfer = loan.get("transfer")  # pending servicing transfer (``transfers``, rules 4)
        if transfer is not None and transfer["to"] == did:
            actors.add(lc.TRANSFEREE)
        if funding is not None and any(
            c["funder"] == did and c["status"] == "committed" for c in funding["commitments"]
        ):
            actors.add(lc.COMMITTED_FUNDER)
    return frozenset(actors)


def _is_investor(ctx: TxContext, did: str) -> bool:
    """Whether ``did`` is registered as an investor: read only when the answer matters (the
    borrower acting on its own loan, every acceptance, needs no party record)."""
    party = ctx.peek(party_key(did))
    return party is not None and party["role"] == "investor"


def load_loan(
    ctx: TxContext, tx: Transaction, field: str = "loan_id", *, shared: bool = False
) -> tuple[bytes, dict[str, Any]]:
    """The loan ``tx`` names, as a copy its handler may change; with ``shared``, the record the
    block holds itself, for a handler that only builds new dicts from it (never changes it)."""
    loan_id = bytes.fromhex(tx.payload[field])
    loan = ctx.peek(loan_key(loan_id)) if shared else ctx.get(loan_key(loan_id))
    if loan is None:
        raise TxRejected("not_found", f"{tx.kind} field {field!r} names no known loan ({loan_id.hex()})")
    return loan_id, loan


def with_history(loan_id: bytes, loan: dict[str, Any], ctx: TxContext, event: str, **fields: Any) -> int:
    """Append one entry to the loan's history (its own key, so a write stays O(1)); new length.

    The entry names the hash of the one before (``prev``; 32 zero bytes for the
    first), so the hash of the last entry — the head — commits to the whole history.
    """
    number = loan["history_len"]
    known = ctx.history_heads.get(loan_id)
    if number == 0:
        prev = ZERO_ROOT
    elif known is not None and known[0] == number:
        prev = known[1]
    else:
        previous = ctx.get_encoded(loan_history_key(loan_id, number - 1))
        prev = _entry_hashes.get(previous) or _older_entry_hashes.get(previous)
        if prev is None:
            prev = history_entry_hash(previous)
    entry = {"event": event, "height": ctx.height, "tx_id": ctx.tx_id, "prev": prev, **fields}
    encoded = ctx.put_encoded(loan_history_key(loan_id, number), entry)
    head = history_entry_hash(encoded)
    ctx.history_heads[loan_id] = (number + 1, head)
    _remember_entry_hash(encoded, head)
    return number + 1


# The hash of each history entry written lately, by its bytes. A loan's next event, often a block
# or two later, names the hash of the entry before it, and reading that entry back gives the
# same bytes: they need not be hashed again. Keyed by the bytes themselves, a hit is right
# whichever block, chain or state they came from (a proposal never committed included). Two
# generations: when the newer holds ENTRY_HASH_MEMORY // 2 entries it becomes the older one and
# the oldest is dropped whole.
ENTRY_HASH_MEMORY = 8_192
_entry_hashes: dict[bytes, bytes] = {}
_older_entry_hashes: dict[bytes, bytes] = {}


def _remember_entry_hash(encoded: bytes, digest: bytes) -> None:
    global _entry_hashes, _older_entry_hashes
    _entry_hashes[encoded] = digest
    if len(_entry_hashes) >= ENTRY_HASH_MEMORY // 2:
        _older_entry_hashes, _entry_hashes = _entry_hashes, {}


def schedule_of(loan: dict[str, Any]) -> list:
    return loan_schedule(loan)


def outstanding_principal(loan: dict[str, Any]) -> int:
    """Principal not yet repaid: the amount lent, plus what restructurings capitalised
    (``restructuring``, rules 5), less the principal paid."""
    return loan["amount"] + loan.get("capitalised", 0) - loan["principal_paid"]


def append_index(ctx: TxContext, key: bytes, item: bytes) -> None:
    pagedlist.append(ctx.get, ctx.put, key, item)


# Called with (ctx, loan id) after a loan.apply succeeds; policies.py adds auto-offers here.
APPLICATION_HOOKS: list[Callable[[TxContext, bytes], None]] = []


# Handlers ------------------------------------------------------------------------


def register_party(ctx: TxContext, tx: Transaction) -> None:
    if ctx.get(institution_key(tx.sender)) is not None:
        raise TxRejected(
            "forbidden", f"sender {tx.sender} is a consortium member; members act with their genesis roles"
        )
    if ctx.get(party_key(tx.sender)) is not None:
        raise TxRejected("invalid_state", f"party {tx.sender} is already registered")
    party = {"role": tx.payload["role"], "registered_height": ctx.height}
    if "attestation" in tx.payload:
        party["attestation"] = tx.payload["attestation"]
    ctx.put(party_key(tx.sender), party)
    ctx.emit("party.registered", did=tx.sender, role=tx.payload["role"])


def apply_for_loan(ctx: TxContext, tx: Transaction) -> None:
    party = ctx.get(party_key(tx.sender))
    actors = frozenset({lc.BORROWER}) if party and party["role"] == "borrower" else frozenset()
    if not actors:
        raise TxRejected(
            "forbidden",
            f"sender {tx.sender} is not a registered borrower; send party.register with role borrower first",
        )
    state = lc.advance(lc.NEW, tx.kind, actors, ctx.tx_id, ctx.tx_id, rules=ctx.rules)
    # A missing parameter means required: a chain opts out explicitly, never by omission.
    if param(ctx.params, "require_kyc") and valid_kyc(ctx.get, tx.sender, ctx.timestamp_ms) is None:
        raise TxRejected(
            "forbidden",
            f"loan.apply sender {tx.sender} has no valid KYC attestation; a member with the kyc role "
            "must send kyc.attest for it first",
        )
    currency = tx.payload["currency"]
    currencies = param(ctx.params, "currencies")
    if currency not in currencies:
        raise TxRejected(
            "bad_payload",
            f"loan.apply field 'currency' is {currency!r}; this chain lends in {', '.join(currencies)}",
        )
    term = tx.payload["term_months"]
    longest = param(ctx.params, "max_term_months")
    if term > longest:
        raise TxRejected(
            "bad_payload", f"loan.apply field 'term_months' is {term}, more than this chain's {longest}"
        )
    loan = {
        "borrower": tx.sender,
        "amount": tx.payload["amount"],
        "currency": currency,
        "term_months": term,
        "purpose": tx.payload["purpose"],
        "state": state,
        "applied_ms": ctx.timestamp_ms,
        "offers": [],
        "offer_id": None,
        "lender": None,
        "rate_bps": None,
        "disbursed_ms": None,
        "principal_paid": 0,
        "interest_paid": 0,
        "progress": [0, 0, 0],
        "history_len": 0,
    }
    loan["history_len"] = with_history(ctx.tx_id, loan, ctx, tx.kind, amount=loan["amount"])
    ctx.put(loan_key(ctx.tx_id), loan)
    append_index(ctx, borrower_loans_key(tx.sender), ctx.tx_id)
    ctx.emit("loan.applied", loan_id=ctx.tx_id.hex(), amount=loan["amount"], currency=currency)
    for hook in APPLICATION_HOOKS:
        hook(ctx, ctx.tx_id)


def make_offer(
    ctx: TxContext,
    loan_id: bytes,
    loan: dict[str, Any],
    *,
    offer_id: bytes,
    lender: str,
    actors: frozenset[str],
    rate_bps: int,
    terms: dict[str, Any],
) -> dict[str, Any]:
    """Record one offer on ``loan`` (manual, or automatic from a policy); the loan as updated."""
    state = lc.advance(loan["state"], "loan.offer", actors, ctx.tx_id, loan_id, rules=ctx.rules)
    if len(loan["offers"]) >= param(ctx.params, "max_offers_per_loan"):
        raise TxRejected(
            "invalid_state",
            f"loan {loan_id.hex()[:16]} already has {len(loan['offers'])} offers, the most allowed",
        )
    rows = build_schedule(terms["schedule"], loan["amount"], rate_bps, loan["term_months"])
    offer = {
        "loan_id": loan_id,
        "lender": lender,
        "rate_bps": rate_bps,
        "instalment": rows[0].payment,
        "total_interest": sum(map(_INTEREST, rows)),
        "height": ctx.height,
        "status": "open",
        **terms,
    }
    ctx.put(offer_key(offer_id), offer)
    loan = {
        **loan,
        "state": state,
        "offers": [*loan["offers"], offer_id],
        "history_len": with_history(
            loan_id, loan, ctx, "loan.offer", offer_id=offer_id.hex(), rate_bps=rate_bps
        ),
    }
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("loan.offered", loan_id=loan_id.hex(), offer_id=offer_id.hex(), rate_bps=rate_bps)
    return loan


def offer_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx, shared=True)  # make_offer builds the loan anew
    terms = {"schedule": tx.payload.get("schedule", "annuity")}
    if "funding_window_ms" in tx.payload:
        terms["funding_window_ms"] = tx.payload["funding_window_ms"]
    make_offer(
        ctx,
        loan_id,
        loan,
        offer_id=ctx.tx_id,
        lender=tx.sender,
        actors=loan_actors(ctx, tx.sender, loan),
        rate_bps=tx.payload["rate_bps"],
        terms=terms,
    )


def accept_offer(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx, shared=True)  # changed below only as a new dict
    state = lc.advance(
        loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules
    )
    offer_id = bytes.fromhex(tx.payload["offer_id"])
    if offer_id not in loan["offers"]:
        raise TxRejected(
            "not_found",
            f"loan.accept field 'offer_id' names no offer on loan {loan_id.hex()[:16]} ({offer_id.hex()})",
        )
    # Read, not changed (each offer is stored again as a new dict): ``peek``, without ``get``'s copy.
    offers = {other: ctx.peek(offer_key(other)) for other in loan["offers"]}
    offer = offers[offer_id]
    if ctx.rules >= REMOVED_OFFERS_REFUSED_SINCE:
        lender = ctx.peek(institution_key(offer["lender"]))
        if "removed_height" in lender:
            raise TxRejected(
                "invalid_state",
                f"loan.accept field 'offer_id' names an offer by {lender['name']}, removed from the "
                f"consortium at height {lender['removed_height']}: it can no longer service a loan; "
                "accept another offer",
            )
    for other, stored in offers.items():
        status = "accepted" if other == offer_id else "declined"
        ctx.put(offer_key(other), {**stored, "status": status})
    loan = {
        **loan,
        "state": state,
        "offer_id": offer_id,
        "lender": offer["lender"],
        "rate_bps": offer["rate_bps"],
        "schedule_kind": offer["schedule"],
        "history_len": with_history(loan_id, loan, ctx, tx.kind, offer_id=offer_id.hex()),
    }
    if "funding_window_ms" in offer:
        loan = funding.start_funding(ctx, loan_id, loan, offer["funding_window_ms"])
    ctx.put(loan_key(loan_id), loan)
    append_index(ctx, lender_loans_key(offer["lender"]), loan_id)
    ctx.emit("loan.accepted", loan_id=loan_id.hex(), offer_id=offer_id.hex(), lender=offer["lender"])


def cancel_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    state = lc.advance(
        loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules
    )
    for other in loan["offers"]:
        ctx.put(offer_key(other), {**ctx.get(offer_key(other)), "status": "withdrawn"})
    ctx.put(
        loan_key(loan_id),
        {**loan, "state": state, "history_len": with_history(loan_id, loan, ctx, tx.kind)},
    )
    ctx.emit("loan.cancelled", loan_id=loan_id.hex())


def disburse_loan(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx, shared=True)  # changed below only as a new dict
    state = lc.advance(
        loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules
    )
    loan = {
        **loan,
        "state": state,
        "disbursed_ms": ctx.timestamp_ms,
        "history_len": with_history(loan_id, loan, ctx, tx.kind, amount=loan["amount"]),
    }
    # From now on the ledger checks the loan's instalments at each block (servicing's due-loan pass).
    ctx.put(loan_key(loan_id), servicing.track(ctx, loan_id, loan, own=True))
    ctx.emit("loan.disbursed", loan_id=loan_id.hex(), amount=loan["amount"], currency=loan["currency"])


LOAN_ID_FIELD = Field("loan_id", "str", pattern=HEX_ID)

register_kind(
    "party.register",
    Schema(
        (
            Field("role", "str", choices=PARTY_ROLES),
            Field("attestation", "str", required=False, pattern=HEX_ID),
        )
    ),
    register_party,
)
register_kind(
    "loan.apply",
    Schema(
        (
            Field("amount", "int", min=1, max=MAX_AMOUNT),
            Field("currency", "str", pattern=r"[A-Z]{3}"),
            Field("term_months", "int", min=1, max=1200),
            Field("purpose", "str", min=1, max=140),
        )
    ),
    apply_for_loan,
)
register_kind(
    "loan.offer",
    Schema(
        (
            LOAN_ID_FIELD,
            Field("rate_bps", "int", min=0, max=MAX_RATE_BPS),
            Field("schedule", "str", required=False, choices=SCHEDULE_KINDS),
            Field("funding_window_ms", "int", required=False, min=1, max=MAX_FUNDING_WINDOW_MS),
        )
    ),
    offer_loan,
)
register_kind("loan.accept", Schema((LOAN_ID_FIELD, Field("offer_id", "str", pattern=HEX_ID))), accept_offer)
register_kind("loan.cancel", Schema((LOAN_ID_FIELD,)), cancel_loan)
register_kind("loan.disburse", Schema((LOAN_ID_FIELD,)), disburse_loan)

# The domain modules that build on these handlers register their kinds on import;
# they import this module, so they are imported last.
from lendchain.ledger import documents, funding, governance, policies, servicing  # noqa: E402, F401, I001
from lendchain.ledger import recovery_end, restructuring, transfers, writeoff  # noqa: E402, F401
from lendchain.ledger import assignment  # noqa: E402, F401  (after funding and writeoff: it reads them)
from lendchain.ledger import share_decline  # noqa: E402, F401  (after assignment: it reads it)
from lendchain.ledger import consent_withdrawal  # noqa: E402, F401  (after restructuring: it reads it)
from lendchain.ledger import collateral  # noqa: E402, F401  (imported by the loans' closing paths too)
from lendchain.ledger import disputes  # noqa: E402, F401
from lendchain.ledger import audit, exposure, positions  # noqa: E402, F401  (after the kinds: they read queries)
