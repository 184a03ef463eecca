"""Lender policies: standing rules that make offers automatically.

Kinds:

- ``policy.publish`` {currency, min_amount, max_amount, max_term_months,
  bands, max_exposure, min_kyc_level?, funding_window_ms?, schedule?}: a lender member
  publishes a policy; its id is the tx id. ``bands`` is ``"score:rate_bps,…"``
  — the rate for a borrower whose score is at least ``score`` (the highest
  band the borrower reaches applies; below the lowest band, no offer).
- ``policy.withdraw`` {policy_id}: its lender withdraws it.

When a ``loan.apply`` succeeds, every active policy, in the order published,
is checked against the application: currency, amount range, term, KYC level,
the borrower's score (``identity.score_of`` at that block's time: from rules 7 a report whose
dispute is overdue does not count) and the lender's
exposure to the borrower (outstanding principal of its live loans to them
plus this amount must not pass ``max_exposure``). Each match makes an offer
in the same transaction, with id ``sha256(AUTO_OFFER_TAG + loan id + policy
id)`` and the policy id in its terms; the borrower accepts one with
``loan.accept`` as usual. Manual offers still work alongside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lendchain import codec
from lendchain.ledger import lifecycle as lc
from lendchain.ledger import pagedlist
from lendchain.ledger.amortization import SCHEDULE_KINDS
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.identity import member_roles_of, score_of, valid_kyc
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import (
    APPLICATION_HOOKS,
    MAX_AMOUNT,
    MAX_FUNDING_WINDOW_MS,
    MAX_RATE_BPS,
    make_offer,
    outstanding_principal,
)
from lendchain.ledger.params import value as param
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import borrower_loans_key, loan_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

POLICIES_KEY = b"policies"  # the ids of active policies, in publication order
AUTO_OFFER_TAG = b"lendchain/auto-offer/1"
MAX_ACTIVE_POLICIES = 64  # bounds the work every loan.apply does
# A written-off loan (rules 4) is not among them: nothing of it is outstanding any more.
LIVE_STATES = (lc.ACCEPTED, lc.FUNDING, lc.FUNDED, lc.DISBURSED, lc.REPAYING, lc.OVERDUE, lc.DEFAULTED)
_BAND = r"\d{1,4}:\d{1,6}"


def policy_key(policy_id: bytes) -> bytes:
    return b"policy/" + policy_id


def parse_bands(bands: str) -> list[list[int]]:
    """``"700:900,600:1200"`` as [[min_score, rate_bps], …], highest score first."""
    rows = sorted(([int(x) for x in band.split(":")] for band in bands.split(",")), reverse=True)
    scores = [score for score, _ in rows]
    if len(set(scores)) != len(scores):
        raise TxRejected("bad_payload", "policy.publish field 'bands' names one score twice")
    for _, rate in rows:
        if rate > MAX_RATE_BPS:
            raise TxRejected(
                "bad_payload", f"policy.publish field 'bands' has rate {rate}, above {MAX_RATE_BPS}"
            )
    return rows


def rate_for(bands: list[list[int]], score: int) -> int | None:
    for min_score, rate in bands:
        if score >= min_score:
            return rate
    return None


def exposure(ctx: TxContext, lender: str, borrower: str) -> int:
    """Outstanding principal of ``lender``'s live loans to ``borrower``."""
    total = 0
    for loan_id in pagedlist.items(ctx.get, borrower_loans_key(borrower)):
        loan = ctx.get(loan_key(loan_id))
        if loan["lender"] == lender and loan["state"] in LIVE_STATES:
            total += outstanding_principal(loan)
    return total


def matching_rate(ctx: TxContext, policy: dict[str, Any], loan: dict[str, Any]) -> int | None:
    """The rate ``policy`` offers on ``loan``, or None when it does not match."""
    if "lender" not in member_roles_of(ctx.get, policy["lender"]):
        return None
    if loan["currency"] != policy["currency"] or loan["term_months"] > policy["max_term_months"]:
        return None
    if not policy["min_amount"] <= loan["amount"] <= policy["max_amount"]:
        return None
    if policy["min_kyc_level"]:
        attestation = valid_kyc(ctx.get, loan["borrower"], ctx.timestamp_ms)
        if attestation is None or attestation["level"] < policy["min_kyc_level"]:
            return None
    if exposure(ctx, policy["lender"], loan["borrower"]) + loan["amount"] > policy["max_exposure"]:
        return None
    return rate_for(policy["bands"], score_of(ctx.get, loan["borrower"], ctx.timestamp_ms).total)


def auto_offer(ctx: TxContext, loan_id: bytes) -> None:
    """Make one offer per matching active policy on the loan just applied for."""
    for policy_id in ctx.get(POLICIES_KEY) or []:
        loan = ctx.get(loan_key(loan_id))
        if len(loan["offers"]) >= param(ctx.params, "max_offers_per_loan"):
            return
        policy = ctx.get(policy_key(policy_id))
        rate = matching_rate(ctx, policy, loan)
        if rate is None:
            continue
        terms: dict[str, Any] = {"schedule": policy.get("schedule", "annuity"), "policy_id": policy_id}
        if policy["funding_window_ms"]:
            terms["funding_window_ms"] = policy["funding_window_ms"]
        make_offer(
            ctx,
            loan_id,
            loan,
            offer_id=codec.sha256(AUTO_OFFER_TAG + loan_id + policy_id),
            lender=policy["lender"],
            actors=frozenset({lc.LENDER}),
            rate_bps=rate,
            terms=terms,
        )


def publish_policy(ctx: TxContext, tx: Transaction) -> None:
    if "lender" not in member_roles_of(ctx.get, tx.sender):
        raise TxRejected(
            "forbidden", f"policy.publish needs a member with the lender role; {tx.sender} is not one"
        )
    p = tx.payload
    if p["min_amount"] > p["max_amount"]:
        raise TxRejected(
            "bad_payload",
            f"policy.publish field 'min_amount' is {p['min_amount']}, above 'max_amount' {p['max_amount']}",
        )
    if p["currency"] not in param(ctx.params, "currencies"):
        raise TxRejected(
            "bad_payload", f"policy.publish field 'currency' is {p['currency']!r}, not lent on this chain"
        )
    active = ctx.get(POLICIES_KEY) or []
    if len(active) >= MAX_ACTIVE_POLICIES:
        raise TxRejected(
            "invalid_state", f"{len(active)} policies are active, the most allowed; withdraw one first"
        )
    policy = {
        "lender": tx.sender,
        "currency": p["currency"],
        "min_amount": p["min_amount"],
        "max_amount": p["max_amount"],
        "max_term_months": p["max_term_months"],
        "bands": parse_bands(p["bands"]),
        "max_exposure": p["max_exposure"],
        "min_kyc_level": p.get("min_kyc_level", 0),
        "funding_window_ms": p.get("funding_window_ms", 0),
        "schedule": p.get("schedule", "annuity"),
        "status": "active",
        "height": ctx.height,
    }
    ctx.put(policy_key(ctx.tx_id), policy)
    ctx.put(POLICIES_KEY, [*active, ctx.tx_id])
    ctx.emit("policy.published", policy_id=ctx.tx_id.hex(), lender=tx.sender)


def withdraw_policy(ctx: TxContext, tx: Transaction) -> None:
    policy_id = bytes.fromhex(tx.payload["policy_id"])
    policy = ctx.get(policy_key(policy_id))
    if policy is None:
        raise TxRejected(
            "not_found", f"policy.withdraw field 'policy_id' names no policy ({policy_id.hex()})"
        )
    if policy["lender"] != tx.sender:
        raise TxRejected("forbidden", f"policy.withdraw: policy {policy_id.hex()[:16]} is not {tx.sender}'s")
    if policy["status"] != "active":
        raise TxRejected("invalid_state", f"policy {policy_id.hex()[:16]} is already {policy['status']}")
    _mark_withdrawn(ctx, policy_id, policy)
    ctx.put(POLICIES_KEY, [other for other in ctx.get(POLICIES_KEY) or [] if other != policy_id])


def withdraw_policies_of(ctx: TxContext, lender: str, why: str) -> None:
    """Withdraw every active policy of ``lender`` (a member removed: ``removal``).

    Its offers could never be accepted, and its policies would hold slots of
    ``MAX_ACTIVE_POLICIES``. Each is marked ``withdrawn`` with ``why``, and
    its ``policy.withdrawn`` event says so.
    """
    active = ctx.get(POLICIES_KEY) or []
    kept = []
    for policy_id in active:
        policy = ctx.get(policy_key(policy_id))
        if policy["lender"] == lender:
            _mark_withdrawn(ctx, policy_id, policy, why=why)
        else:
            kept.append(policy_id)
    if len(kept) != len(active):
        ctx.put(POLICIES_KEY, kept)


def _mark_withdrawn(ctx: TxContext, policy_id: bytes, policy: dict[str, Any], **why: str) -> None:
    """Record ``policy`` withdrawn at this height (and ``why``, when the ledger withdrew it)."""
    ctx.put(policy_key(policy_id), {**policy, "status": "withdrawn", "withdrawn_height": ctx.height, **why})
    ctx.emit("policy.withdrawn", policy_id=policy_id.hex(), **why)


APPLICATION_HOOKS.append(auto_offer)
register_kind(
    "policy.publish",
    Schema(
        (
            Field("currency", "str", pattern=r"[A-Z]{3}"),
            Field("min_amount", "int", min=1, max=MAX_AMOUNT),
            Field("max_amount", "int", min=1, max=MAX_AMOUNT),
            Field("max_term_months", "int", min=1, max=1200),
            Field("bands", "str", max=120, pattern=rf"{_BAND}(,{_BAND}){{0,9}}"),
            Field("max_exposure", "int", min=1, max=MAX_AMOUNT),
            Field("min_kyc_level", "int", required=False, min=0, max=3),
            Field("funding_window_ms", "int", required=False, min=1, max=MAX_FUNDING_WINDOW_MS),
            Field("schedule", "str", required=False, choices=SCHEDULE_KINDS),
        )
    ),
    publish_policy,
)
register_kind(
    "policy.withdraw", Schema((Field("policy_id", "str", pattern=r"[0-9a-f]{64}"),)), withdraw_policy
)
