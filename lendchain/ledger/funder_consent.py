"""Funders' consent to restructuring a syndicated loan (rules version 5).

A syndicated loan (``funding``: a ``loan.offer`` with a funding window,
funded by several ``loan.fund`` commitments) is the funders' money: every
repayment is theirs pro rata. Restructuring it (``restructuring``) changes
their economics (the rate, the term, a holiday, interest and penalty
capitalised), so from rules version ``SINCE_RULES`` the servicer and the
borrower no longer decide alone: the funders holding a majority of the
commitments must consent first.

- ``loan.restructure_consent`` {loan_id}: a funder of the loan, one holding
  a commitment that is not released (``lifecycle.COMMITTED_FUNDER``, whatever
  roles it holds now), consents to the pending proposal. Refused when no
  proposal is pending (none, withdrawn, or lapsed; from rules 6 one that
  expired is refused with ``expired``: ``restructuring_limits``), when the
  loan is not syndicated (its proposal needs no consent), and when the
  funder has consented to this proposal already (by a consent, or by
  proposing it). There is no refusal kind: a funder that does not agree
  does not consent. Under rules 5 a consent cannot be taken back (a funder
  that changes its mind asks the servicer to withdraw the proposal); from
  rules 6 it can, until the acceptance: ``loan.restructure_consent_withdraw``
  (``consent_withdrawal``).
- ``loan.restructure_accept`` by the borrower is refused (``invalid_state``)
  until the consents reach the majority, saying how much is missing, in
  amount and percent, and who has consented (the first
  ``NAMED_IN_REFUSAL`` of them, then how many more).

The majority. By amount, not by head count (many small investors do not
outvote the funder that carries most of the loan): the funders who
consented must hold strictly more than half of the amount committed
(``2 * consented > committed``). Exactly half is not a majority: half the
syndicate against the other half is a deadlock, and the terms stay. The
amounts are the commitments as the loan holds them at the acceptance.

Which commitments count (``counted_commitments``): those not released, held
by anyone but a member removed from the consortium. A removed member signs
nothing any more, so its commitment is left out of both sides of the count
instead of blocking every restructuring of the loan for good (a consent it
gave before its removal goes with it): the other funders decide, as a
"snooze you lose" clause in a facility agreement leaves out a lender that
does not answer. Were every counted commitment gone, nobody would be left
to ask and the acceptance needs no consent. A funder that lost the lender
role still holds its commitment and still consents. From rules 6 a funder
may sell its share (``assignment``): a commitment sold whole (``assigned``)
counts for nothing, and a consent stays with the funder that gave it,
counted at what it holds at the acceptance; a buyer consents for itself.

The servicer's own commitment. A servicer often funds a share of the loans
it arranges. Proposing the terms is its consent: a proposal on a syndicated
loan starts with the proposing servicer's consent when it holds a counted
commitment (``by_proposal``), and the servicer cannot consent again. A
servicer that holds no commitment (one that took the servicing over by
``loan.transfer``) counts for nothing, and the servicer before it, still a
funder, consents like any other.

Consents belong to the proposal. They are recorded on it (the loan's
``restructuring``: ``consents``, each ``{funder, amount, height,
by_proposal}``, the amount the funder's commitment then), so a withdrawal
removes them with it, a proposal that lapsed keeps them only as a record
(nothing can accept it), a new proposal starts with none but the
proposer's, and a transfer accepted drops them with the proposal. A
funder consents to terms that cannot change: the servicer changes them
only by withdrawing and proposing again. The restructuring accepted records
the consents it was accepted with (``restructurings``: ``consents``), each
consent adds a history entry (``loan.restructure_consent``: funder,
amount) and the event ``loan.restructure_consented`` (the funder, its
amount, what is consented in all and what is committed). A loan that is
not syndicated is unchanged: no ``consents``, no consent needed.

The loan view (``queries``) adds to a syndicated proposal, while it is
pending, its ``consent``
(``tally``): what is ``committed``, ``consented`` and its share in basis
points (``consented_bps``, rounded down), the least amount that is a
majority (``needed``), what is ``missing`` and its share (``missing_bps``,
rounded up: a share never looks smaller than it is), and ``majority``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lendchain.ledger.state import institution_key

SINCE_RULES = 5
BPS = 10_000
# The consents a refused acceptance names: its sentence stays short however many funders consented.
NAMED_IN_REFUSAL = 5


def syndicated(loan: dict[str, Any]) -> bool:
    """Whether the loan was offered with a funding window, so that funders' commitments fund it."""
    return "funding" in loan


def counted_commitments(get: Callable[[bytes], Any], loan: dict[str, Any]) -> list[dict[str, Any]]:
    """The syndicated loan's commitments whose holders decide (see the module docstring)."""
    counted = []
    for commitment in loan["funding"]["commitments"]:
        if commitment["status"] != "committed":
            continue
        institution = get(institution_key(commitment["funder"]))
        if institution is None or "removed_height" not in institution:
            counted.append(commitment)
    return counted


def opening_consents(
    get: Callable[[bytes], Any], loan: dict[str, Any], proposer: str, height: int
) -> list[dict[str, Any]]:
    """A new proposal's consents: the proposing servicer's, if it holds a counted commitment."""
    return [
        {"funder": proposer, "amount": c["amount"], "height": height, "by_proposal": True}
        for c in counted_commitments(get, loan)
        if c["funder"] == proposer
    ]


def tally(get: Callable[[bytes], Any], loan: dict[str, Any], proposal: dict[str, Any]) -> dict[str, Any]:
    """How far the proposal's consents are from the majority (the module docstring's ``consent``)."""
    return _tally(counted_commitments(get, loan), proposal)


def _tally(counted: list[dict[str, Any]], proposal: dict[str, Any]) -> dict[str, Any]:
    committed = sum(c["amount"] for c in counted)
    consenting = {consent["funder"] for consent in proposal["consents"]}
    consented = sum(c["amount"] for c in counted if c["funder"] in consenting)
    needed = committed // 2 + 1 if committed else 0  # the least amount strictly above half; none to ask
    missing = max(0, needed - consented)
    return {
        "committed": committed,
        "consented": consented,
        "consented_bps": consented * BPS // committed if committed else 0,
        "needed": needed,
        "missing": missing,
        "missing_bps": -(-missing * BPS // committed) if committed else 0,
        "majority": not missing,
    }


def percent(bps: int) -> str:
    """Basis points as a percentage with two decimals (integers only: ledger messages are hashed)."""
    return f"{bps // 100}.{bps % 100:02d} %"


def missing_consent(
    get: Callable[[bytes], Any], loan: dict[str, Any], proposal: dict[str, Any]
) -> str | None:
    """Why the proposal cannot be accepted yet (a sentence's end): the majority and who consented so far,
    with their amounts; None once the consents are a majority."""
    commitments = counted_commitments(get, loan)  # each holder's record read once
    counted = _tally(commitments, proposal)
    if counted["majority"]:
        return None
    holders = {c["funder"] for c in commitments}
    counting = [c for c in proposal["consents"] if c["funder"] in holders]
    given = ", ".join(
        f"{c['funder']} ({c['amount']}{', by proposing' if c['by_proposal'] else ''})"
        for c in counting[:NAMED_IN_REFUSAL]
    )
    if len(counting) > NAMED_IN_REFUSAL:
        given += f" and {len(counting) - NAMED_IN_REFUSAL} more (the loan view lists them)"
    return (
        f"the consent of the funders holding more than half of the {counted['committed']} committed to the "
        f"loan, at least {counted['needed']}; consented so far {counted['consented']} "
        f"({percent(counted['consented_bps'])}) by {given or 'none'}; still missing {counted['missing']} "
        f"({percent(counted['missing_bps'])}): each funder consents with loan.restructure_consent"
    )
