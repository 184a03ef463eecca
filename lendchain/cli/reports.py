"""What the exposure views print: a borrower's exposure, a lender's book, every lender's books side
by side (``party exposure``, ``loan portfolio``, ``loan books``), and a loan's forbearance.

Text only: the commands (``cli.loans``) read the node's views (``/exposure/{did}``,
``/portfolio/{did}``, ``/members/*``, ``/loans/{id}``) and hand them here. Each
view's totals are per currency; a loan written off is reported apart
(``written_off``), and so is a restructured loan still forborne (``forborne``:
``ledger.forbearance``), which is among the live loans as well. A node of an
older release answers without the newer parts, and the text leaves them out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BOOK_COLUMNS = ("loans", "outstanding", "committed", "overdue_loans", "defaulted_loans", "penalty_due")
WRITTEN_OFF_COLUMNS = ("written_off", "written_off_loans", "recovered", "net_written_off")  # principal, loans
# A view's forborne totals (``forbearance.FORBORNE_TOTALS``) as columns of a book's row
FORBORNE_COLUMNS = {
    "forborne_loans": "loans",
    "forborne": "outstanding",
    "forborne_performing_loans": "performing_loans",
    "forborne_performing": "performing_outstanding",
    "forborne_non_performing_loans": "non_performing_loans",
    "forborne_non_performing": "non_performing_outstanding",
}


def exposure_text(view: dict[str, Any]) -> str:
    lines = [f"exposure of {view['did']}"]
    if not view["currencies"]:
        lines.append("  no live loans (nothing disbursed or committed)")
    lines += [totals_text(currency, t) for currency, t in view["currencies"].items()]
    lines += [forborne_text(currency, t) for currency, t in view.get("forborne", {}).items()]
    lines += [written_off_text(currency, t) for currency, t in view.get("written_off", {}).items()]
    if view["carriers"]:
        lines.append("carried by")
    for row in view["carriers"]:
        who = row["name"] or row["did"]
        lines.append(
            f"  {who:<24} {row['currency']}  outstanding {row['outstanding']}  committed {row['committed']}"
            f"  loans {row['loans']}"
        )
    return "\n".join(lines)


def totals_text(currency: str, t: dict[str, int]) -> str:
    """One currency's totals of a borrower's exposure or a lender's book."""
    others = f" (funded by others {t['funded_by_others']})" if "funded_by_others" in t else ""
    return (
        f"  {currency}  outstanding {t['outstanding']}{others}  committed {t['committed']}  loans {t['loans']}"
        f"  overdue {t['overdue_loans']}  defaulted {t['defaulted_loans']}  penalty due {t['penalty_due']}"
    )


def forborne_text(currency: str, t: dict[str, int]) -> str:
    """One currency's forborne loans (``forbearance``, rules 5): how many, their principal outstanding,
    and of them the performing and the non-performing ones (loans, principal)."""
    return (
        f"  {currency}  forborne: loans {t['loans']}  outstanding {t['outstanding']}"
        f"  performing {t['performing_loans']} ({t['performing_outstanding']})"
        f"  non-performing {t['non_performing_loans']} ({t['non_performing_outstanding']})"
    )


def written_off_text(currency: str, t: dict[str, int]) -> str:
    """One currency's written-off loans in a borrower's exposure or a lender's book (``writeoff``),
    and on a line of its own what was recovered on them since (rules 5; an older release's node
    answers without it)."""
    others = f" (funded by others {t['funded_by_others']})" if "funded_by_others" in t else ""
    lines = [
        f"  {currency}  written off: principal {t['principal']}{others}  interest {t['interest']}"
        f"  penalty {t['penalty']}  loans {t['loans']}"
    ]
    if "recovered" in t:
        lines.append(
            f"  {currency}  recovered since: {t['recovered']} (principal {t['recovered_principal']})"
            f"  net loss {t['net']} (principal {t['net_principal']})"
        )
    return "\n".join(lines)


def portfolio_text(view: dict[str, Any]) -> str:
    lines = [f"portfolio of {view['name'] or view['did']}"]
    if not view["currencies"]:
        lines.append("  no live loans")
    for currency, t in view["currencies"].items():
        lines.append(totals_text(currency, t))
        lines += [
            f"    {row['did']}  {row['principal']}" for row in view["largest_borrowers"].get(currency, [])
        ]
    lines += [forborne_text(currency, t) for currency, t in view.get("forborne", {}).items()]
    lines += [written_off_text(currency, t) for currency, t in view.get("written_off", {}).items()]
    transfers = view.get("pending_transfers", [])  # an older release's node answers without it
    if transfers:
        lines.append("pending transfers")
    for row in transfers:
        lines.append(
            f"  loan {row['loan_id']} from {row['lender']} to {row['to']} (offered at height {row['offered_height']})"
        )
    return "\n".join(lines)


def forbearance_lines(loan: dict[str, Any]) -> list[str]:
    """``loan show``'s lines for a restructured loan's forbearance status (none for another loan)."""
    status = loan.get("forbearance")
    if status is None:
        return []
    since = f" since {status['since_ms']} ms" if status["since_ms"] is not None else ""
    count = status["restructurings"]
    notes = [f"restructured {count} {'time' if count == 1 else 'times'}"]
    if status["cure_ends_ms"] is not None:
        notes.append(f"cured at {status['cure_ends_ms']} ms at the earliest")
    if status["probation_ends_ms"] is not None:
        notes.append(f"forborne until {status['probation_ends_ms']} ms at the earliest")
    notes.append(f"as of {status['as_of_ms']} ms")
    return [
        f"  {'forbearance':<15} {status['status']}{since} ({'; '.join(notes)})",
        f"  {'':<15} {status['why']}",
    ]


def lender_books(
    members: list[dict[str, Any]], portfolio_of: Callable[[str], dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each lender member of the ``members`` view with its book (``portfolio_of`` its did): what
    ``consortium_books`` adds up, read from a node (``loan books``) or a replayed chain (``report books``)."""
    return [(member, portfolio_of(member["did"])) for member in members if "lender" in member["roles"]]


def consortium_books(
    books: list[tuple[dict[str, Any], dict[str, Any]]], currency: str | None
) -> dict[str, Any]:
    """A row per lender member and currency (``members`` view, ``portfolio`` view), and totals per currency."""
    rows, totals = [], {}
    for member, view in books:
        written_off, forborne = view.get("written_off", {}), view.get("forborne", {})
        for code in sorted(set(view["currencies"]) | set(written_off)):
            if currency is not None and code != currency:
                continue
            live, lost = view["currencies"].get(code, {}), written_off.get(code, {})
            row = {
                "member": member["name"],
                "currency": code,
                **{column: live.get(column, 0) for column in BOOK_COLUMNS},
                "written_off": lost.get("principal", 0),
                "written_off_loans": lost.get("loans", 0),
                # Recoveries cover principal first (rules 5); an older release's node reports none.
                "recovered": lost.get("recovered_principal", 0),
                "net_written_off": lost.get("net_principal", lost.get("principal", 0)),
                # Among the live loans above; an older release's node reports none.
                **{column: forborne.get(code, {}).get(name, 0) for column, name in FORBORNE_COLUMNS.items()},
                **({"removed_height": member["removed_height"]} if "removed_height" in member else {}),
            }
            rows.append(row)
            total = totals.setdefault(
                code, dict.fromkeys((*BOOK_COLUMNS, *WRITTEN_OFF_COLUMNS, *FORBORNE_COLUMNS), 0)
            )
            for column in total:
                total[column] += row[column]
    return {"books": rows, "totals": dict(sorted(totals.items()))}


def books_text(view: dict[str, Any]) -> str:
    if not view["books"]:
        return "no lender member has a loan on its books"
    header = (
        f"{'member':<12} {'cur':<4} {'loans':>6} {'outstanding':>14} {'committed':>12} "
        f"{'overdue':>7} {'default':>7} {'penalty':>10} {'written off':>14} {'recovered':>12} {'net':>14}"
    )

    def line(name: str, code: str, t: dict[str, Any]) -> str:
        return (
            f"{name:<12} {code:<4} {t['loans']:>6} {t['outstanding']:>14} {t['committed']:>12} "
            f"{t['overdue_loans']:>7} {t['defaulted_loans']:>7} {t['penalty_due']:>10} "
            f"{t['written_off']:>14} {t['recovered']:>12} {t['net_written_off']:>14}"
        )

    lines = [header]
    for row in view["books"]:
        removed = f"  (removed at {row['removed_height']})" if "removed_height" in row else ""
        lines.append(line(row["member"], row["currency"], row) + removed)
    lines += [line("all", code, total) for code, total in view["totals"].items()]
    lines.append(
        "amounts in minor units (cents); written off, recovered since and net: principal "
        "(recoveries cover principal first)"
    )
    return "\n".join(lines + _forborne_books_lines(view))


def _forborne_books_lines(view: dict[str, Any]) -> list[str]:
    """``loan books``'s forborne exposures, per member and currency with any, and their totals; none
    when no member has one (or the node is of an older release)."""
    forborne = [row for row in view["books"] if row.get("forborne_loans")]
    if not forborne:
        return []

    def line(name: str, code: str, t: dict[str, Any]) -> str:
        return (
            f"{name:<12} {code:<4} {t['forborne_loans']:>6} {t['forborne']:>14} "
            f"{t['forborne_performing_loans']:>10} {t['forborne_performing']:>14} "
            f"{t['forborne_non_performing_loans']:>10} {t['forborne_non_performing']:>14}"
        )

    lines = [
        "forborne exposures: restructured loans under cure (non-performing) or probation (performing), "
        "among the loans above",
        f"{'member':<12} {'cur':<4} {'loans':>6} {'outstanding':>14} {'performing':>10} {'principal':>14} "
        f"{'non-perf.':>10} {'principal':>14}",
    ]
    lines += [line(row["member"], row["currency"], row) for row in forborne]
    lines += [line("all", code, t) for code, t in view["totals"].items() if t.get("forborne_loans")]
    return lines
