"""What the views show of guarantees (``guarantees``, rules 7 and 8).

- A guarantee's ``status`` at the reader's time (``status_of``): its stored
  state, or ``expired`` for one proposed or active whose ``expires_ms`` is at
  or before ``as_of_ms`` (expiry is judged lazily: nothing is stored when it
  passes). Without a time, as stored.
- Its ``contingent`` amount (``contingent``): what the guarantor may still
  be called for, for an active guarantee only: its cap less what was called,
  limited by the loan's principal at risk (``collateral_views.principal_at_risk``:
  outstanding principal, the amount to be lent of a commitment, the principal
  still lost of a written-off loan). Called amounts are demands already, so
  they are reported apart (``called``), not as contingent.
- A loan (``GET /loans/{id}``, ``loan_guarantees``): each guarantee ever
  proposed on it (``guarantees.loan_guarantee_ids``: from rules 8 an ended
  one leaves the loan's own list, not the view) with its
  guarantor, kind, cap (``amount``), ``called``, ``status`` and
  ``contingent``; and ``guaranteed``, the principal at risk the active
  guarantees cover (their contingent amounts summed, at most the principal
  at risk: two guarantors of the same loan do not cover it twice).
- A guarantor (``GET /exposure/{did}``'s ``guarantees``, ``guarantor_exposure``):
  every guarantee proposed to it, and per currency its contingent exposure,
  the amounts called on its live guarantees (``called``) and the number of
  active and proposed guarantees, in all and by lender (each loan's servicer
  now), so that a bank sees what the guarantor stands behind at every other
  bank. Per currency too, ``called_total``: what was ever called on any of its
  guarantees, live or ended (a release ends the claim, not the record that the
  guarantor was called), and ``called_guarantees``, how many were ever called;
  a currency appears when it has a live guarantee or one ever called. The
  borrower's own exposure
  notes, per loan and per currency, how much of it is ``guaranteed``.

Read-only, computed on request; a loan without guarantees costs no read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lendchain.ledger import pagedlist
from lendchain.ledger.collateral_views import principal_at_risk
from lendchain.ledger.guarantees import (
    ACTIVE,
    LIVE,
    PROPOSED,
    guarantee_key,
    guarantor_index_key,
    loan_guarantee_ids,
)
from lendchain.ledger.state import institution_key, loan_key

Getter = Callable[[bytes], Any]
EXPIRED = "expired"
GUARANTOR_TOTALS = ("contingent", "called", "active", "proposed")
# Per currency only: over every guarantee proposed to the guarantor, live or ended
EVER_CALLED = ("called_total", "called_guarantees")


def status_of(guarantee: dict[str, Any], as_of_ms: int | None) -> str:
    """The guarantee's state at ``as_of_ms`` (see the module docstring)."""
    expires = guarantee.get("expires_ms")
    if guarantee["state"] in LIVE and as_of_ms is not None and expires is not None and as_of_ms >= expires:
        return EXPIRED
    return guarantee["state"]


def contingent(guarantee: dict[str, Any], loan: dict[str, Any], as_of_ms: int | None) -> int:
    """What the guarantor may still be called for on ``loan`` at ``as_of_ms``: 0 unless active."""
    if status_of(guarantee, as_of_ms) != ACTIVE:
        return 0
    return min(guarantee["amount"] - guarantee["called"], principal_at_risk(loan) or 0)


def guarantee_view(
    guarantee_id: bytes, guarantee: dict[str, Any], loan: dict[str, Any], as_of_ms: int | None
) -> dict[str, Any]:
    """One guarantee, JSON-ready, with its status and contingent amount at ``as_of_ms``."""
    view = {
        "guarantee_id": guarantee_id.hex(),
        **{key: item.hex() if isinstance(item, bytes) else item for key, item in guarantee.items()},
    }
    view["currency"] = loan["currency"]
    view["status"] = status_of(guarantee, as_of_ms)
    view["contingent"] = contingent(guarantee, loan, as_of_ms)
    return view


def _views(get: Getter, ids: list[bytes], loan: dict[str, Any], as_of_ms: int | None) -> list[dict[str, Any]]:
    return [guarantee_view(gid, get(guarantee_key(gid)), loan, as_of_ms) for gid in ids]


def loan_guarantees(
    get: Getter, loan_id: bytes, loan: dict[str, Any], as_of_ms: int | None
) -> dict[str, Any]:
    """The loan view's ``guarantees`` and ``guaranteed`` (see the module docstring)."""
    views = _views(get, loan_guarantee_ids(get, loan_id, loan), loan, as_of_ms)
    return {"guarantees": views, "guaranteed": guaranteed(loan, views)}


def guaranteed(loan: dict[str, Any], views: list[dict[str, Any]]) -> int:
    """The loan's principal at risk its guarantees (``guarantee_view``s) cover."""
    return min(sum(view["contingent"] for view in views), principal_at_risk(loan) or 0)


def loan_guaranteed(get: Getter, loan: dict[str, Any], as_of_ms: int | None) -> int:
    """``guaranteed`` of a loan, for the borrower's exposure: no read for a loan without guarantees.
    The loan's own list suffices: it holds every live guarantee (and under rules 7 the ended ones too,
    which cover nothing)."""
    if not loan.get("guarantees"):
        return 0
    return guaranteed(loan, _views(get, loan["guarantees"], loan, as_of_ms))


def add_guaranteed(totals: dict[str, dict[str, int]], loan: dict[str, Any], amount: int) -> None:
    """Count one loan of a borrower's exposure that ``amount`` of guarantees covers, per currency."""
    if amount:
        row = totals.setdefault(loan["currency"], {"guaranteed": 0, "guaranteed_loans": 0})
        row["guaranteed"] += amount
        row["guaranteed_loans"] += 1


def is_guarantor(get: Getter, did: str) -> bool:
    """Whether any guarantee was ever proposed to ``did``."""
    return pagedlist.length(get, guarantor_index_key(did)) > 0


def guarantor_exposure(get: Getter, did: str, as_of_ms: int | None) -> dict[str, Any]:
    """``did``'s guarantees and its contingent exposure across lenders (see the module docstring)."""
    currencies: dict[str, dict[str, int]] = {}
    lenders: dict[tuple[str, str], dict[str, Any]] = {}
    rows = []
    for guarantee_id in pagedlist.items(get, guarantor_index_key(did)):
        guarantee = get(guarantee_key(guarantee_id))
        loan = get(loan_key(guarantee["loan_id"]))
        view = guarantee_view(guarantee_id, guarantee, loan, as_of_ms)
        view |= {"loan_state": loan["state"], "borrower": loan["borrower"], "lender": loan["lender"]}
        rows.append(view)
        if guarantee["called"]:
            totals = currencies.setdefault(loan["currency"], _currency_row())
            totals["called_total"] += guarantee["called"]
            totals["called_guarantees"] += 1
        if view["status"] not in (ACTIVE, PROPOSED):
            continue
        by_lender = lenders.get((loan["lender"], loan["currency"]))
        if by_lender is None:
            institution = get(institution_key(loan["lender"]))
            by_lender = lenders[loan["lender"], loan["currency"]] = {
                "did": loan["lender"],
                "name": institution["name"] if institution else None,
                "currency": loan["currency"],
                **dict.fromkeys(GUARANTOR_TOTALS, 0),
            }
        totals = currencies.setdefault(loan["currency"], _currency_row())
        for row in (totals, by_lender):
            row["contingent"] += view["contingent"]
            row["called"] += guarantee["called"]
            row[view["status"]] += 1
    return {
        "currencies": dict(sorted(currencies.items())),
        "by_lender": sorted(lenders.values(), key=lambda row: (row["currency"], row["did"])),
        "guarantees": rows,
    }


def _currency_row() -> dict[str, int]:
    return dict.fromkeys((*GUARANTOR_TOTALS, *EVER_CALLED), 0)
