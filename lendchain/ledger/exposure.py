"""A borrower's debt across every lender: what each member sees before it lends.

Lenders that lend to the same people cannot see each other's exposure; on
the chain they can. ``exposure_view`` (``GET /exposure/{did}``, ``lendchain
party exposure DID``) adds up the borrower's live loans from the loan records
every member holds:

- ``outstanding``: principal not yet repaid on disbursed loans (disbursed,
  repaying, overdue, defaulted), with what a restructuring capitalised into
  it (``restructuring``, rules 5);
- ``committed``: principal agreed but not yet paid out (accepted, funding,
  funded);

per currency (amounts in different currencies are never added), with the
number of loans overdue and in default and the penalty interest due, and
split by who carries it: a loan's lender, or for a syndicated loan each
funder's pro-rata share of its commitment (``funding.pro_rata``, exact to the
minor unit). Applications and offers not yet accepted, and loans closed,
cancelled, unfunded or written off, carry no exposure.

A loan written off (``writeoff``, rules 4) is no longer outstanding; each
view reports it apart, under ``written_off`` per currency: the borrower's
and the lender's views the principal, interest and penalty written off and
the number of loans, the lender's also the part of the principal other
funders carried (``funded_by_others``), and a funder's positions its
pro-rata share of the principal written off (its loss), as for repayments.
The loan is listed with the borrower's loans (``written_off``: its
principal, and each carrier's share of it) and among a funder's positions
(``share_of`` ``written_off``).

What its servicer recovered on it since (``loan.recover``, rules 5) is
reported beside it: each ``written_off`` total per currency also has
``recovered`` (everything recovered), ``recovered_principal`` (the part that
covered principal; recoveries cover principal first), ``net_principal`` (the
principal still lost: the net charge-off) and ``net`` (everything still
lost, ``writeoff.net_loss``); a written-off loan of the borrower's lists its
``recovered`` and ``net_principal``; and a funder's totals and positions
give its ``recovered`` share and, in the totals, its ``net_principal``
share, each pro rata to its commitment as its share of the write-off is, so
that the funders' shares add up to the loan's figures.

``portfolio_view`` (``GET /portfolio/{did}``, ``lendchain loan portfolio
DID``) is the other side: a lender's book, the live loans it services, with
the same totals per currency, the part other funders carry, and its largest
borrowers (concentration), for the lender's reconciliation and a regulator's
supervision, and the servicing transfers pending from or to it
(``transfers``: the lender they name accepts them from this list).

A written-off loan whose recovery changed servicer (``transfers``, rules 6)
is in the books of each member that serviced it, each with its part, as a
bank's books would show it (``writeoff.recovery_spans``): the member that
wrote it off keeps the write-off (principal, interest, penalty, ``loans``,
``funded_by_others``); each servicer counts the recoveries it recorded
(``recovered``, ``recovered_principal``); the servicer now counts what is
still lost (``net_principal``, ``net``) and, while the recovery is open
(``writeoff.recovery_open``), the loan among its ``recovering_loans``. What
moved is on both sides: ``handed_on`` (and ``handed_on_principal``) is what
was still lost when the member handed a recovery on, ``taken_over`` (and
``taken_over_principal``) when it took one over. So each book rolls
forward: written off + taken over - recovered - handed on = net (and the
same in principal), and over every member's book each column adds up to the
loans' own figures, which the borrower's exposure and the funders'
positions report as before. A loan never handed on is all in one book, as
under rules 5. In a borrower's exposure the principal written off on a loan
nobody else funded is carried by the member that wrote it off.

``book_page`` (``GET /portfolio/{did}/loans``) lists that book loan by loan,
a window of the lender's loan index at a time, for a client that acts on
every loan (``lendchain loan transfer-book`` hands them all to another
lender); asked with ``written_off``, it lists the written-off loans whose
recovery the lender services (``writeoff.recovery_open``) or is offered as
well (rules 6 hands those on too).

``positions_view`` (a funder's side of syndicated loans) is in ``positions``.

Forborne exposures. A restructured loan (``restructuring``, rules 5) is a
forborne exposure until its probation ends (``forbearance``: performing or
non-performing, judged at ``as_of_ms``, the head block's time). Each view
reports them apart, under ``forborne`` per currency: the number of
forborne loans and the principal outstanding on them, performing and
non-performing apart (``forbearance.FORBORNE_TOTALS``; they are among the
``outstanding`` loans as well, not beside them), the whole principal in
the borrower's and the lender's views and the funder's pro-rata share of it
in its positions. The borrower's loans and a funder's positions give each
loan's ``forbearance`` status (None for a loan never restructured;
``ended`` for one no longer forborne, closed or written off).

Stages and arrears. Each drawn loan (disbursed, repaying, overdue,
defaulted) has its days past due and IFRS 9 stage at ``as_of_ms``
(``staging``: from its due times and its forbearance status, with no read
of its own). Each view totals them per currency: ``stages``, the number of
loans and the principal outstanding in stage 1, 2 and 3
(``staging.STAGE_TOTALS``), and ``ageing``, the same per band of days past
due (0, 1-30, 31-60, 61-90, over 90: ``staging.AGEING_TOTALS``); each adds
up to the ``outstanding`` loans and principal. The borrower's view and the
lender's count the whole principal, a funder's positions its pro-rata share
(as for ``forborne``), and the borrower's loans and a funder's positions give
each loan's ``stage`` and ``days_past_due`` (None for a loan not drawn or no
longer outstanding).

Commitments are staged too (``staging``: from the borrower's record on its
newest loans) and reported apart, so the drawn loans' figures above stay
those of the drawn loans: ``commitment_stages`` per currency, the number of
commitments and the amount committed in stage 1, 2 and 3
(``staging.COMMITMENT_TOTALS``), adding up to the ``committed`` total. The
borrower's view reads nothing more for them (its loans are the ones
judged); the lender's and a funder's read each commitment's borrower's
newest ``staging.BORROWER_LOANS_JUDGED`` loans, once per borrower, so a book
costs at most that many reads more per commitment. The borrower's loans,
a funder's positions and ``book_page``'s rows give a commitment's ``stage``
(its ``days_past_due`` is None: nothing is due yet).

Collateral (rules 6). The borrower's view and the lender's give, under
``collateral`` per currency, how much of the outstanding principal the
collateral pledged on it covers: ``secured``, ``unsecured``,
``collateral_value`` and ``secured_loans`` (``collateral_views.add_coverage``).

Guarantees (rules 7, ``guarantee_views``). The borrower's view gives each
live loan's ``guaranteed`` part and, per currency, ``guaranteed`` (amount and
loans); ``guarantees`` is the DID's side as a guarantor: its contingent
exposure per currency and by lender, and each guarantee proposed to it. A
DID that only guarantees (a member giving a bank guarantee) has a view too.

Read-only and computed on request from state: nothing here is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger import pagedlist
from lendchain.ledger.collateral_views import add_coverage
from lendchain.ledger.forbearance import forbearance, forborne_totals
from lendchain.ledger.funding import pro_rata
from lendchain.ledger.guarantee_views import add_guaranteed, guarantor_exposure, is_guarantor, loan_guaranteed
from lendchain.ledger.loans import outstanding_principal
from lendchain.ledger.member_names import MemberNames, member_name
from lendchain.ledger.queries import register_lookup
from lendchain.ledger.servicing import penalty_due
from lendchain.ledger.staging import (
    BORROWER_LOANS_JUDGED,
    COMMITTED_STATES,
    add_commitment,
    add_staged,
    borrower_standing,
    credit_stage,
    standing_of,
)
from lendchain.ledger.state import (
    StateReader,
    borrower_loans_key,
    institution_key,
    lender_loans_key,
    loan_key,
    party_key,
    read_value,
)
from lendchain.ledger.transfers import pending_to, pending_transfer
from lendchain.ledger.writeoff import RECOVERY_ORDER, net_loss, recovery_open, recovery_spans, written_off_by

OUTSTANDING_STATES = (lc.DISBURSED, lc.REPAYING, lc.OVERDUE, lc.DEFAULTED)
_TOTALS = ("outstanding", "committed", "loans", "overdue_loans", "defaulted_loans", "penalty_due")
_WRITTEN_OFF_TOTALS = (
    "principal",
    "interest",
    "penalty",
    "loans",
    "recovered",
    "recovered_principal",
    "net_principal",
    "net",
)
# A lender's book also says which written-off loans it recovers now, and what moved by transfers
_HANDOVER_TOTALS = (
    "recovering_loans",
    "taken_over",
    "taken_over_principal",
    "handed_on",
    "handed_on_principal",
)
TOP_BORROWERS = 10
BOOK_PAGE_MAX = 2000  # index positions one book page reads: a read per position, a few ms per 1000


def exposure_view(reader: StateReader, did: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """The borrower's live loans, their totals per currency and who carries them; None if unknown.
    ``name`` is a member's (one that guarantees, rules 7), read here; None for a party."""

    def get(key: bytes) -> Any:
        return read_value(reader, key)

    loan_ids = list(pagedlist.items(get, borrower_loans_key(did)))
    if not loan_ids and get(party_key(did)) is None and not is_guarantor(get, did):
        return None
    guaranteed: dict[str, dict[str, int]] = {}
    currencies: dict[str, dict[str, int]] = {}
    written_off: dict[str, dict[str, int]] = {}
    forborne: dict[str, dict[str, int]] = {}
    stages: dict[str, dict[str, int]] = {}
    ageing: dict[str, dict[str, int]] = {}
    commitment_stages: dict[str, dict[str, int]] = {}
    coverage: dict[str, dict[str, int]] = {}
    carriers: dict[tuple[str, str], dict[str, Any]] = {}
    loans = []
    counted = []  # the drawn and written-off loans are staged first: the commitments' stages follow them
    for loan_id, loan, live in _counted_loans(get, loan_ids):
        status = forbearance(reader, loan_id, loan, as_of_ms)
        staged = None if loan["state"] in COMMITTED_STATES else credit_stage(loan, status, as_of_ms)
        counted.append((loan_id, loan, live, status, staged))
    newest = set(loan_ids[-BORROWER_LOANS_JUDGED:])  # as ``staging.standing_of`` judges them
    standing = borrower_standing(
        (loan, staged) for loan_id, loan, _, _, staged in counted if staged is not None and loan_id in newest
    )
    for loan_id, loan, live, status, staged in counted:
        staged = staged or credit_stage(loan, status, as_of_ms, standing)
        if live is None:  # written off: a loss, carried by nobody any more
            _add_written_off(written_off, loan)
            row = _loan_row(loan_id, loan, "written_off", loan["written_off"]["principal"], 0, status, staged)
            row["recovered"], row["net_principal"] = _recovered(loan), net_loss(loan)["principal"]
            loans.append(row)
            continue
        field, amount, penalty = live
        _count(currencies, loan, field, amount, penalty)
        add_coverage(coverage, loan, field, amount)
        forborne_totals(forborne, loan["currency"], status, amount)
        if field == "committed":
            add_commitment(commitment_stages, loan["currency"], staged, amount)
        else:
            add_staged(stages, ageing, loan["currency"], staged, amount)
        shares = _carriers(loan, amount)
        for carrier, share in shares:
            row = carriers.get((carrier, loan["currency"]))
            if row is None:  # the carrier's name is read once, for its first loan in the currency
                row = carriers[carrier, loan["currency"]] = {
                    "did": carrier,
                    "name": member_name(get, carrier),
                    "currency": loan["currency"],
                    **dict.fromkeys(("outstanding", "committed", "loans"), 0),
                }
            row[field] += share
            row["loans"] += 1
        loans.append(_loan_row(loan_id, loan, field, amount, penalty, status, staged))
        loans[-1]["guaranteed"] = loan_guaranteed(get, loan, as_of_ms)  # rules 7 (``guarantee_views``)
        add_guaranteed(guaranteed, loan, loans[-1]["guaranteed"])
    return {
        "did": did,
        "name": member_name(get, did),  # a member that guarantees (rules 7); None for a party
        "currencies": dict(sorted(currencies.items())),
        "written_off": dict(sorted(written_off.items())),
        "forborne": dict(sorted(forborne.items())),
        "stages": dict(sorted(stages.items())),
        "ageing": dict(sorted(ageing.items())),
        "commitment_stages": dict(sorted(commitment_stages.items())),
        "collateral": dict(sorted(coverage.items())),
        "carriers": sorted(carriers.values(), key=lambda row: (row["currency"], row["did"])),
        "loans": loans,
        "guaranteed": dict(sorted(guaranteed.items())),
        "guarantees": guarantor_exposure(get, did, as_of_ms),  # as a guarantor (rules 7)
    }


def _loan_row(
    loan_id: bytes,
    loan: dict[str, Any],
    field: str,
    amount: int,
    penalty: int,
    status: dict[str, Any] | None,
    staged: dict[str, Any],
) -> dict[str, Any]:
    """One loan of a borrower's exposure: ``field`` (outstanding, committed or written_off), its carriers,
    its forbearance status (None if never restructured), its days past due and stage (None unless drawn)."""
    lender = written_off_by(loan) if field == "written_off" else None  # who charged it off carries it
    return {
        "loan_id": loan_id.hex(),
        "state": loan["state"],
        "currency": loan["currency"],
        "amount": loan["amount"],
        field: amount,
        "penalty_due": penalty,
        "carried_by": [{"did": carrier, field: share} for carrier, share in _carriers(loan, amount, lender)],
        "forbearance": status and status["status"],
        "stage": staged["stage"],
        "days_past_due": staged["days_past_due"],
    }


def portfolio_view(reader: StateReader, did: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """A lender's book: the live loans it services, per currency, and its largest borrowers.

    ``outstanding`` and ``committed`` are the loans' whole principal; of it,
    ``funded_by_others`` is what other funders of syndicated loans carry.
    ``largest_borrowers`` lists, per currency, the ``TOP_BORROWERS`` borrowers
    with the most principal outstanding and committed here (concentration).
    The loans themselves, with their next instalments, are ``/reminders/{did}``.
    ``pending_transfers`` lists the live loans whose servicing ``did`` offered
    to another lender, or another lender offered to ``did``, by ``loan.transfer``, with both
    members' names (``lender_name``, ``to_name``).
    ``written_off`` totals, per currency, the loans ``did`` serviced and wrote off, or whose
    recovery it took over (its part of each: see the module), ``forborne`` the live ones
    restructured and still forborne at ``as_of_ms``, and ``stages`` and ``ageing`` the drawn
    ones by stage and days past due then. None for a DID that is no member and services no loan.
    """

    def get(key: bytes) -> Any:
        return read_value(reader, key)

    loan_ids = list(pagedlist.items(get, lender_loans_key(did)))
    if not loan_ids and get(institution_key(did)) is None:
        return None
    currencies: dict[str, dict[str, int]] = {}
    written_off: dict[str, dict[str, int]] = {}
    forborne: dict[str, dict[str, int]] = {}
    stages: dict[str, dict[str, int]] = {}
    ageing: dict[str, dict[str, int]] = {}
    commitment_stages: dict[str, dict[str, int]] = {}
    standings: dict[str, dict[str, int]] = {}  # of the borrowers of its commitments, read once each
    borrowers: dict[str, dict[str, int]] = {}
    coverage: dict[str, dict[str, int]] = {}
    transfers = []
    names = MemberNames(get)
    for loan_id, loan, live in _counted_loans(get, loan_ids):
        to = pending_to(loan)  # None if it lapsed
        if to is not None and did in (loan["lender"], to):
            transfer = {"loan_id": loan_id.hex(), "lender": loan["lender"], "to": to}
            transfers.append(
                {**names.named(transfer, "lender", "to"), "offered_height": loan["transfer"]["height"]}
            )
        if live is None:  # written off: its part may be in the books of members that no longer service it
            _add_book_part(written_off, loan, did)
            continue
        if loan["lender"] != did:  # handed on, or only offered to it (see ``transfers``)
            continue
        field, amount, penalty = live
        totals = _count(currencies, loan, field, amount, penalty)
        others = sum(share for carrier, share in _carriers(loan, amount) if carrier != did)
        totals["funded_by_others"] = totals.get("funded_by_others", 0) + others
        add_coverage(coverage, loan, field, amount)
        status = forbearance(reader, loan_id, loan, as_of_ms)
        forborne_totals(forborne, loan["currency"], status, amount)
        if field == "committed":
            staged = credit_stage(loan, status, as_of_ms, _standing(reader, standings, loan, as_of_ms))
            add_commitment(commitment_stages, loan["currency"], staged, amount)
        else:
            add_staged(stages, ageing, loan["currency"], credit_stage(loan, status, as_of_ms), amount)
        by_borrower = borrowers.setdefault(loan["currency"], {})
        by_borrower[loan["borrower"]] = by_borrower.get(loan["borrower"], 0) + amount
    largest = {
        currency: [
            {"did": borrower, "principal": principal}
            for borrower, principal in sorted(rows.items(), key=lambda row: (-row[1], row[0]))[:TOP_BORROWERS]
        ]
        for currency, rows in sorted(borrowers.items())
    }
    return {
        "did": did,
        "name": names(did),
        "currencies": dict(sorted(currencies.items())),
        "written_off": dict(sorted(written_off.items())),
        "forborne": dict(sorted(forborne.items())),
        "stages": dict(sorted(stages.items())),
        "ageing": dict(sorted(ageing.items())),
        "commitment_stages": dict(sorted(commitment_stages.items())),
        "collateral": dict(sorted(coverage.items())),
        "largest_borrowers": largest,
        "pending_transfers": transfers,
    }


def book_page(
    reader: StateReader,
    did: str,
    start: int,
    limit: int,
    written_off: bool = False,
    as_of_ms: int | None = None,
) -> dict[str, Any] | None:
    """The live loans at positions ``start`` … ``start + limit - 1`` of ``did``'s lender index.

    A row per loan ``did`` services, or whose pending transfer names it: its
    id, state, currency, amount, borrower, ``lender`` (and ``lender_name``) and pending ``transfer``
    (``to`` and ``to_name``, offered ``height``, and ``written_off`` for the recovery of a
    written-off loan; None if none), and its ``stage`` and ``days_past_due`` at ``as_of_ms``
    (``staging``: None for a loan written off; a commitment's stage reads its borrower's newest
    loans, once per borrower on the page). With ``written_off``, also the
    written-off loans whose recovery ``did`` services (money left to recover,
    recovery not ended) or is offered. The index also holds closed loans and
    loans handed on, which are left out, so a page may list fewer than
    ``limit``; ``next`` is the position to ask from next, None after the
    last. The index is append-only, so positions stay put while the chain
    moves on: a loan added meanwhile shows up on a later page. None for a DID
    that is no member and services no loan.
    """

    def get(key: bytes) -> Any:
        return read_value(reader, key)

    index = lender_loans_key(did)
    total = pagedlist.length(get, index)
    if total == 0 and get(institution_key(did)) is None:
        return None
    rows = []
    standings: dict[str, dict[str, int]] = {}
    names = MemberNames(get)
    for loan_id in pagedlist.window(get, index, start, limit):
        loan = get(loan_key(loan_id))
        if loan["state"] == lc.WRITTEN_OFF and written_off:
            to = pending_to(loan)
            if to != did and (loan["lender"] != did or (to is None and not recovery_open(loan))):
                continue
        elif live_claim(loan) is None or did not in (loan["lender"], pending_to(loan)):
            continue
        staged = _row_stage(reader, standings, loan_id, loan, as_of_ms)
        transfer = pending_transfer(loan)
        rows.append(
            {
                "loan_id": loan_id.hex(),
                "state": loan["state"],
                "currency": loan["currency"],
                "amount": loan["amount"],
                "borrower": loan["borrower"],
                "lender": loan["lender"],
                "lender_name": names(loan["lender"]),
                "transfer": None if transfer is None else names.named(transfer, "to"),
                "stage": staged["stage"],
                "days_past_due": staged["days_past_due"],
            }
        )
    end = start + limit
    return {"did": did, "from": start, "next": end if end < total else None, "loans": rows}


def _standing(
    reader: StateReader, standings: dict[str, dict[str, int]], loan: dict[str, Any], as_of_ms: int | None
) -> dict[str, int]:
    """``staging.standing_of`` the loan's borrower, read once per view into ``standings``."""
    borrower = loan["borrower"]
    if borrower not in standings:
        standings[borrower] = standing_of(reader, borrower, as_of_ms)
    return standings[borrower]


def _row_stage(
    reader: StateReader,
    standings: dict[str, dict[str, int]],
    loan_id: bytes,
    loan: dict[str, Any],
    as_of_ms: int | None,
) -> dict[str, Any]:
    """The loan's ``credit_stage`` at ``as_of_ms``, a commitment's from its borrower's standing."""
    status = forbearance(reader, loan_id, loan, as_of_ms)
    if loan["state"] in COMMITTED_STATES:
        return credit_stage(loan, status, as_of_ms, _standing(reader, standings, loan, as_of_ms))
    return credit_stage(loan, status, as_of_ms)


def _counted_loans(
    get: Callable[[bytes], Any], loan_ids: list[bytes]
) -> Iterator[tuple[bytes, dict[str, Any], tuple[str, int, int] | None]]:
    """(loan id, loan, ``live_claim(loan)``) of each live or written-off loan (None: written off) among ``loan_ids``."""
    for loan_id in loan_ids:
        loan = get(loan_key(loan_id))
        live = live_claim(loan)
        if live is not None or loan["state"] == lc.WRITTEN_OFF:
            yield loan_id, loan, live


def _add_written_off(written_off: dict[str, dict[str, int]], loan: dict[str, Any]) -> dict[str, int]:
    """Add one written-off loan, and what was recovered on it since, to its currency's written-off totals;
    those totals."""
    totals = written_off.setdefault(loan["currency"], dict.fromkeys(_WRITTEN_OFF_TOTALS, 0))
    for name in ("principal", "interest", "penalty"):
        totals[name] += loan["written_off"][name]
    totals["loans"] += 1
    lost = net_loss(loan)
    totals["recovered"] += _recovered(loan)
    totals["recovered_principal"] += loan["written_off"]["principal"] - lost["principal"]
    totals["net_principal"] += lost["principal"]
    totals["net"] += lost["total"]
    return totals


def _add_book_part(written_off: dict[str, dict[str, int]], loan: dict[str, Any], did: str) -> None:
    """Add lender ``did``'s part of a written-off loan (see the module) to its currency's totals in
    ``did``'s book, if it has a part: it wrote the loan off or serviced its recovery."""
    spans = recovery_spans(loan)
    if all(servicer != did for servicer, _, _ in spans):  # only offered to it, never taken over
        return
    totals = written_off.setdefault(
        loan["currency"], dict.fromkeys((*_WRITTEN_OFF_TOTALS, *_HANDOVER_TOTALS), 0)
    )
    record = loan["written_off"]
    principal, whole = record["principal"], sum(record[name] for name in RECOVERY_ORDER)
    if written_off_by(loan) == did:
        for name in RECOVERY_ORDER:
            totals[name] += record[name]
        totals["loans"] += 1
        carried = _carriers(loan, principal, did)
        totals["funded_by_others"] = totals.get("funded_by_others", 0) + sum(
            share for carrier, share in carried if carrier != did
        )
    # Recoveries cover principal first, so the principal recovered by a total t is min(t, principal).
    for number, (servicer, start, end) in enumerate(spans):
        if servicer != did:
            continue
        totals["recovered"] += end - start
        totals["recovered_principal"] += min(end, principal) - min(start, principal)
        if number > 0:  # it took the recovery over
            totals["taken_over"] += whole - start
            totals["taken_over_principal"] += principal - min(start, principal)
        if number < len(spans) - 1:  # it handed the recovery on
            totals["handed_on"] += whole - end
            totals["handed_on_principal"] += principal - min(end, principal)
    if loan["lender"] == did:
        lost = net_loss(loan)
        totals["net_principal"] += lost["principal"]
        totals["net"] += lost["total"]
        totals["recovering_loans"] += recovery_open(loan)
    totals.setdefault("funded_by_others", 0)


def _recovered(loan: dict[str, Any]) -> int:
    """Everything recovered on a written-off loan (``writeoff``, rules 5): 0 before the first recovery."""
    return loan["recovered"]["total"] if "recovered" in loan else 0


def live_claim(loan: dict[str, Any]) -> tuple[str, int, int] | None:
    """(``outstanding`` or ``committed``, its principal, penalty due) of a live loan; None otherwise."""
    state = loan["state"]
    if state in OUTSTANDING_STATES:
        return "outstanding", outstanding_principal(loan), penalty_due(loan)
    if state == lc.FUNDING:  # what the funders committed so far
        return "committed", loan["funding"]["funded"], 0
    if state in COMMITTED_STATES:
        return "committed", loan["amount"], 0
    return None


def _count(
    currencies: dict[str, dict[str, int]], loan: dict[str, Any], field: str, amount: int, penalty: int
) -> dict[str, int]:
    """Add one live loan to its currency's totals; those totals."""
    totals = currencies.setdefault(loan["currency"], dict.fromkeys(_TOTALS, 0))
    totals[field] += amount
    totals["loans"] += 1
    totals["overdue_loans"] += loan["state"] == lc.OVERDUE
    totals["defaulted_loans"] += loan["state"] == lc.DEFAULTED
    totals["penalty_due"] += penalty
    return totals


def _carriers(loan: dict[str, Any], amount: int, lender: str | None = None) -> list[tuple[str, int]]:
    """Who carries ``amount`` of the loan: its funders pro rata to their commitments, else its lender
    (``lender``, when given: who wrote a loan off carries its loss)."""
    if "funding" not in loan:
        return [(lender or loan["lender"], amount)]
    commitments = loan["funding"]["commitments"]
    parts = pro_rata(amount, [c["amount"] for c in commitments]) if commitments else []
    # A commitment sold whole (``assignment``) carries nothing: pro_rata gives its 0 nothing
    return [(c["funder"], part) for c, part in zip(commitments, parts, strict=True) if c["amount"]]


def funder_share(loan: dict[str, Any], amount: int, did: str) -> int:
    """Funder ``did``'s pro-rata part of ``amount`` of the loan (``_carriers``)."""
    return next(part for carrier, part in _carriers(loan, amount) if carrier == did)


register_lookup("exposure", exposure_view, timed=True)
register_lookup("portfolio", portfolio_view, timed=True)
