"""What the views show of the collateral register (``collateral``, rules 6).

- A loan (``GET /loans/{id}``, ``loan_collateral``): its ``collateral``,
  each pledged asset with its lien (kind, rank, value, who pledged it, when,
  the agreement hash) and the liens ahead of it on the asset (loan, its
  servicer, state, rank, value); ``collateral_value``, the sum of the
  pledged values; and ``ltv_bps``, its loan-to-value: the principal at risk
  over the pledged value, in basis points, rounded up so that a loan never
  looks better covered than it is (None without collateral). The principal
  at risk is the outstanding principal of a drawn loan, the amount to be
  lent of one accepted or funding, and the principal still lost of a
  written-off one (``writeoff.net_loss``: what its recovery may realise the
  collateral for).
  ``combined_ltv_bps`` adds what ranks ahead (a junior lien is worth
  nothing until the liens ahead of it are paid): the loan's principal at
  risk plus that of each loan holding a lien ahead of one of its liens
  (counted once when ahead on several assets), over its pledged value plus
  the values of those liens ahead, in basis points rounded up the same way.
  Each lien's value is its worth less what ranks ahead, so the denominator
  is what the assets are worth down to this loan's ranks. It equals
  ``ltv_bps`` when nothing ranks ahead on the chain (a charge held outside
  the consortium is not seen), and is None when ``ltv_bps`` is. A loan
  ahead is counted with its whole principal at risk, even if other assets
  also secure it: never better covered than it is. The loans ahead are the
  ones ``collateral`` reads already: no read of its own.
- An asset (``GET /collateral/{asset}``, ``asset_view``): every live lien
  by rank, with its loan, the loan's borrower, servicer, state, currency and
  principal at risk; None (404) when no lien is recorded on it.
- The exposure views (``exposure``): ``collateral`` per currency, the
  coverage of the outstanding principal (``add_coverage``): ``secured`` is
  each loan's principal up to its pledged value, ``unsecured`` the rest
  (``secured + unsecured`` is the currency's ``outstanding``),
  ``collateral_value`` the pledged value and ``secured_loans`` the loans with
  any collateral. A funder's positions (``positions``) total its pro-rata
  parts (``exposure.funder_share``): its share of each loan's secured part
  and of its pledged value, the rest of its outstanding share unsecured, so
  over a loan's funders each adds up to the loan's figure. Read from the
  loan records the views read already: no read of its own.

Each lien's ``value`` is what it is worth to its loan, less what ranks ahead
(``collateral``), so the values of one asset's liens add up without counting
it twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.collateral import asset_key
from lendchain.ledger.loans import outstanding_principal
from lendchain.ledger.state import StateReader, institution_key, loan_key, read_value
from lendchain.ledger.writeoff import net_loss

_HEX_ID = re.compile(r"[0-9a-f]{64}")
DRAWN_STATES = (lc.DISBURSED, lc.REPAYING, lc.OVERDUE, lc.DEFAULTED)
COVERAGE_TOTALS = ("secured", "unsecured", "collateral_value", "secured_loans")


def pledged_value(loan: dict[str, Any]) -> int:
    """The sum of the values pledged on the loan (0 without collateral)."""
    return sum(pledge["value"] for pledge in loan.get("collateral", ()))


def principal_at_risk(loan: dict[str, Any]) -> int | None:
    """What the loan's collateral secures now (see the module docstring); None for a loan that has no
    claim (before acceptance, closed, cancelled, unfunded)."""
    state = loan["state"]
    if state in DRAWN_STATES:
        return outstanding_principal(loan)
    if state in (lc.ACCEPTED, lc.FUNDING, lc.FUNDED):
        return loan["amount"]
    if state == lc.WRITTEN_OFF:
        return net_loss(loan)["principal"]
    return None


def ltv_bps(principal: int | None, value: int) -> int | None:
    """Loan-to-value in basis points, rounded up; None without a principal at risk or a pledged value."""
    if principal is None or value <= 0:
        return None
    return -(-principal * 10_000 // value)


def _lien_json(lien: dict[str, Any]) -> dict[str, Any]:
    agreement = lien.get("agreement_hash")
    return {
        "rank": lien["rank"],
        "loan_id": lien["loan_id"].hex(),
        "value": lien["value"],
        "pledged_by": lien["pledged_by"],
        "height": lien["height"],
        "time_ms": lien["time_ms"],
        "agreement_hash": agreement.hex() if agreement is not None else None,
        "revalued_height": lien.get("revalued_height"),
    }


def _servicer(reader: StateReader, did: str) -> dict[str, Any]:
    institution = read_value(reader, institution_key(did))
    return {"lender": did, "lender_name": institution["name"] if institution else None}


def loan_collateral(reader: StateReader, loan_id: bytes, loan: dict[str, Any]) -> dict[str, Any]:
    """A loan view's ``collateral``, ``collateral_value``, ``ltv_bps`` and ``combined_ltv_bps``: one read
    per pledged asset and one per lien ahead of the loan's (at most ``MAX_PLEDGES_PER_LOAN`` times
    ``MAX_LIENS_PER_ASSET``)."""
    rows = []
    senior_value, senior_principal = 0, {}  # the liens ahead, and each loan ahead's principal at risk
    for pledge in loan.get("collateral", ()):
        liens = read_value(reader, asset_key(pledge["asset"]))["liens"]
        own = next(lien for lien in liens if lien["loan_id"] == loan_id)
        ahead = []
        for lien in liens:
            if lien["rank"] >= own["rank"]:
                break
            other = read_value(reader, loan_key(lien["loan_id"]))
            ahead.append({**_lien_json(lien), **_servicer(reader, other["lender"]), "state": other["state"]})
            senior_value += lien["value"]
            senior_principal[lien["loan_id"]] = principal_at_risk(other) or 0
        rows.append(
            {"asset": pledge["asset"].hex(), "kind": pledge["kind"], **_lien_json(own), "ahead": ahead}
        )
    value, principal = pledged_value(loan), principal_at_risk(loan)
    combined = None
    if principal is not None and value > 0:  # else no ltv_bps either
        combined = ltv_bps(principal + sum(senior_principal.values()), value + senior_value)
    return {
        "collateral": rows,
        "collateral_value": value,
        "ltv_bps": ltv_bps(principal, value),
        "combined_ltv_bps": combined,
    }


def asset_view(reader: StateReader, ref: str) -> dict[str, Any] | None:
    """Every live lien on asset ``ref`` (its 64-hex id) by rank; None if no lien is recorded on it."""
    if not _HEX_ID.fullmatch(ref):
        return None
    record = read_value(reader, asset_key(bytes.fromhex(ref)))
    if record is None:
        return None
    liens = []
    for lien in record["liens"]:
        loan = read_value(reader, loan_key(lien["loan_id"]))
        liens.append(
            {
                **_lien_json(lien),
                **_servicer(reader, loan["lender"]),
                "borrower": loan["borrower"],
                "state": loan["state"],
                "currency": loan["currency"],
                "principal": principal_at_risk(loan),
            }
        )
    return {"asset": ref, "kind": record["kind"], "liens": liens}


def secured_part(loan: dict[str, Any], amount: int) -> int:
    """The part of ``amount`` outstanding on the loan that its pledged value covers."""
    return min(amount, pledged_value(loan))


def add_coverage(
    coverage: dict[str, dict[str, int]],
    loan: dict[str, Any],
    field: str,
    amount: int,
    part: Callable[[int], int] | None = None,
) -> None:
    """Add a live loan carrying ``amount`` of ``field`` (``outstanding`` or ``committed``: ``exposure``) to
    its currency's coverage totals, if it is outstanding; with ``part`` (a funder's pro-rata part of a
    figure of the loan), that part of its secured principal and pledged value, and ``part(amount)``
    less its secured part as unsecured."""
    if field != "outstanding":
        return
    totals = coverage.setdefault(loan["currency"], dict.fromkeys(COVERAGE_TOTALS, 0))
    value = pledged_value(loan)
    secured = secured_part(loan, amount)
    secured_loan = value > 0
    if part is not None:
        amount, secured, value = part(amount), part(secured), part(value)
    totals["secured"] += secured
    totals["unsecured"] += amount - secured
    totals["collateral_value"] += value
    totals["secured_loans"] += secured_loan
