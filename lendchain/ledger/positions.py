"""A funder's positions in syndicated loans: ``positions_view`` (``GET /positions/{did}``).

``positions_view`` (``lendchain fund positions DID``) is a funder's side of
syndicated loans: each loan it committed to, its commitment, what it
received of the repayments, the part of the principal outstanding (or
committed) that it carries, and the totals per currency. It reads the funder
index ``loan.fund`` keeps from rules version 2, so commitments made under
rules 1 are not listed. From rules 6 a funder sells its share
(``assignment``, which says what each position field then means).

A funder's share of every figure is its pro-rata part by ``funding.pro_rata``
(``exposure.funder_share``), so the shares add up over the funders to the
loan's own figures, as ``exposure`` explains for the written-off, forborne and
stage totals it shares with the borrower's and the lender's views. From rules 6
``collateral`` totals per currency its parts of the collateral coverage of
the outstanding principal (``collateral_views.add_coverage``: ``secured``,
``unsecured``, ``collateral_value``, ``secured_loans``), and each position
gives its ``secured`` part (None unless its share is of the principal
outstanding).

A position's ``stage`` and ``days_past_due`` are its loan's (``staging``)
while its commitment is held. A commitment released (the loan went unfunded)
or sold whole (``status`` ``assigned``) carries none of the loan's credit
risk: its position keeps what it received, and has no stage (both None), as
it counts in none of the stage totals. From rules 7 each position lists the
offers of its share the buyers declined (``offers_declined``,
``share_decline``).

Guarantees (rules 7, ``guarantee_views``). A position whose commitment is
held gives its part of the loan's ``guaranteed`` amount (the contingent
amounts of the loan's active guarantees at ``as_of_ms``, at most the
principal at risk), pro rata as its ``share``: None where it has no share.
``guaranteed`` totals those parts per currency with the number of loans
they are of (``guaranteed_loans``), as a borrower's exposure does for its
loans: the funder sees how much of what it carries someone stands behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger import pagedlist
from lendchain.ledger.assignment import holding, offers_to, position_trades, recovery_share
from lendchain.ledger.collateral_views import add_coverage, secured_part
from lendchain.ledger.exposure import funder_share, live_claim
from lendchain.ledger.forbearance import forbearance, forborne_totals
from lendchain.ledger.funder_consent import counted_commitments
from lendchain.ledger.guarantee_views import add_guaranteed, loan_guaranteed
from lendchain.ledger.member_names import MemberNames
from lendchain.ledger.queries import register_lookup
from lendchain.ledger.restructuring import pending_restructuring
from lendchain.ledger.share_decline import declined_offers
from lendchain.ledger.staging import COMMITTED_STATES, add_commitment, add_staged, credit_stage, standing_of
from lendchain.ledger.state import StateReader, funder_loans_key, loan_key, read_value
from lendchain.ledger.writeoff import net_loss

_FUNDER_WRITTEN_OFF = ("principal", "loans", "recovered", "net_principal")  # its shares, and the loans
_POSITION_TOTALS = ("committed", "received", "outstanding", "loans", "overdue_loans", "defaulted_loans")
_NO_STAGE = {"stage": None, "days_past_due": None}


def positions_view(reader: StateReader, did: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """A funder's positions in syndicated loans, newest commitment last; None if it has none.

    ``forborne`` totals its shares of the loans still forborne at ``as_of_ms``, ``stages`` and
    ``ageing`` its shares of the drawn loans by stage and days past due then, ``commitment_stages``
    its shares of the undisbursed commitments by stage (``staging``), and a proposal
    that expired by then (rules 6) asks no consent any more (``consent_requested``).
    ``member_names`` gives the name of every member the view names (``member_names.names_in``)."""

    def get(key: bytes) -> Any:
        return read_value(reader, key)

    loan_ids = list(pagedlist.items(get, funder_loans_key(did)))
    if not loan_ids:
        return None
    currencies: dict[str, dict[str, int]] = {}
    written_off: dict[str, dict[str, int]] = {}
    forborne: dict[str, dict[str, int]] = {}
    stages: dict[str, dict[str, int]] = {}
    ageing: dict[str, dict[str, int]] = {}
    coverage: dict[str, dict[str, int]] = {}
    commitment_stages: dict[str, dict[str, int]] = {}
    standings: dict[str, dict[str, int]] = {}
    guaranteed: dict[str, dict[str, int]] = {}  # rules 7: its parts of what guarantees cover

    def standings_of(loan: dict[str, Any]) -> dict[str, int]:  # each borrower's read once (``staging``)
        if loan["borrower"] not in standings:
            standings[loan["borrower"]] = standing_of(reader, loan["borrower"], as_of_ms)
        return standings[loan["borrower"]]

    positions, offered = [], []
    for loan_id in loan_ids:
        loan = get(loan_key(loan_id))
        offered += offers_to(loan_id, loan, did)  # rules 6: shares offered to it (``assignment``)
        mine = holding(loan, did)
        if mine is None:  # only offered a share: indexed at the offer
            continue
        committed = mine["status"] == "committed"  # else released (the loan went unfunded) or sold whole
        live = live_claim(loan) if committed else None
        if live is None and committed and loan["state"] == lc.WRITTEN_OFF:
            live = "written_off", loan["written_off"]["principal"], 0
        share, principal_state, recovered = 0, None, 0
        if live is not None:  # its pro-rata part of the principal outstanding, committed or written off
            principal_state = live[0]
            share = funder_share(loan, live[1], did)
        # its part of what was recovered: as a holder, or before it sold its share whole (``assignment``)
        if loan["state"] == lc.WRITTEN_OFF and (committed or mine.get("recovered")):
            recovered = recovery_share(loan, did)
            lost = written_off.setdefault(loan["currency"], dict.fromkeys(_FUNDER_WRITTEN_OFF, 0))
            lost["principal"] += share
            lost["loans"] += committed
            lost["recovered"] += recovered
            lost["net_principal"] += funder_share(loan, net_loss(loan)["principal"], did) if committed else 0
        totals = currencies.setdefault(loan["currency"], dict.fromkeys(_POSITION_TOTALS, 0))
        totals["committed"] += mine["amount"] if committed else 0
        totals["loans"] += committed
        totals["received"] += mine["received"]
        totals["outstanding"] += share if principal_state == "outstanding" else 0
        totals["overdue_loans"] += committed and loan["state"] == lc.OVERDUE
        totals["defaulted_loans"] += committed and loan["state"] == lc.DEFAULTED
        status = forbearance(reader, loan_id, loan, as_of_ms) if committed else None
        staged = _NO_STAGE  # a commitment released or sold whole carries none of the loan's credit risk
        if committed:
            standing = standings_of(loan) if loan["state"] in COMMITTED_STATES else None
            staged = credit_stage(loan, status, as_of_ms, standing)
        if principal_state == "committed":  # its share of an undisbursed commitment, staged apart
            add_commitment(commitment_stages, loan["currency"], staged, share)
        secured = None
        if principal_state == "outstanding":
            forborne_totals(forborne, loan["currency"], status, share)
            add_staged(stages, ageing, loan["currency"], staged, share)
            part = _part_of(loan, did)
            add_coverage(coverage, loan, principal_state, live[1], part)
            secured = part(secured_part(loan, live[1]))
        covered = None  # rules 7: its part of the loan's guaranteed amount, while it holds a share
        if principal_state is not None:
            covered = funder_share(loan, loan_guaranteed(get, loan, as_of_ms), did)
            add_guaranteed(guaranteed, loan, covered)
        positions.append(
            {
                "loan_id": loan_id.hex(),
                "state": loan["state"],
                "currency": loan["currency"],
                "lender": loan["lender"],
                "borrower": loan["borrower"],
                "commitment": mine["amount"],
                "status": mine["status"],
                "received": mine["received"],
                "share": share,
                "share_of": principal_state,  # "outstanding", "committed", "written_off", or None
                "recovered": recovered,  # its share of the recoveries on a loan written off
                "secured": secured,  # its share of the outstanding principal the collateral covers
                "guaranteed": covered,  # its share of what the loan's active guarantees cover (rules 7)
                "forbearance": status and status["status"],
                "stage": staged["stage"],
                "days_past_due": staged["days_past_due"],
                "consent_requested": _consent_requested(get, loan, did, as_of_ms) if committed else None,
                **position_trades(loan, did),  # rules 6: bought, sold, its pending offer
                "offers_declined": declined_offers(loan, did),  # rules 7: its offers the buyers declined
            }
        )
    view = {
        "did": did,
        "currencies": dict(sorted(currencies.items())),
        "written_off": dict(sorted(written_off.items())),
        "forborne": dict(sorted(forborne.items())),
        "stages": dict(sorted(stages.items())),
        "ageing": dict(sorted(ageing.items())),
        "collateral": dict(sorted(coverage.items())),
        "commitment_stages": dict(sorted(commitment_stages.items())),
        "guaranteed": dict(sorted(guaranteed.items())),
        # The loans whose pending restructuring waits for this funder's consent (``funder_consent``).
        "consents_requested": [p["loan_id"] for p in positions if p["consent_requested"]],
        "share_offers_to": offered,  # pending offers of a share to it (``assignment``)
        "positions": positions,
    }
    # The names of the members it names (lenders, buyers and sellers of shares), read, not stored
    return {**view, "member_names": MemberNames(get).names_in(view)}


def _part_of(loan: dict[str, Any], did: str) -> Callable[[int], int]:
    """Funder ``did``'s pro-rata part of a figure of the loan."""
    return lambda amount: funder_share(loan, amount, did)


_REQUESTED = ("height", "rate_bps", "term_months", "holiday_months")  # what a funder is asked to consent to


def _consent_requested(
    get: Callable[[bytes], Any], loan: dict[str, Any], did: str, as_of_ms: int | None
) -> dict[str, Any] | None:
    """The terms of the loan's pending restructuring if it asks ``did``'s consent and has not had it,
    with its ``expires_ms`` when it has one (rules 6): one expired at ``as_of_ms`` asks nothing."""
    proposal = pending_restructuring(loan, as_of_ms)
    if proposal is None or "consents" not in proposal:  # none pending, or no syndicate to ask
        return None
    if any(consent["funder"] == did for consent in proposal["consents"]):
        return None
    if not any(c["funder"] == did for c in counted_commitments(get, loan)):
        return None  # its commitment is not counted (a removed member's)
    return {key: proposal[key] for key in (*_REQUESTED, "expires_ms") if key in proposal}


register_lookup("positions", positions_view, timed=True)
