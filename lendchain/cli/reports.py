"""What the exposure views print: a borrower's exposure, a lender's book, every lender's books side
by side (``party exposure``, ``loan portfolio``, ``loan books``), and a loan's forbearance and stage.

Text only: the commands (``cli.loans``) read the node's views (``/exposure/{did}``,
``/portfolio/{did}``, ``/members/*``, ``/loans/{id}``) and hand them here. Each
view's totals are per currency; a loan written off is reported apart
(``written_off``), and so is a restructured loan still forborne (``forborne``:
``ledger.forbearance``), which is among the live loans as well. The drawn
loans are split again by IFRS 9 stage and by days past due (``stages``,
``ageing``: ``ledger.staging``, as of the head block), the undisbursed
commitments by stage apart (``commitment_stages``), and from rules 6 the
outstanding principal by how much collateral covers it (``collateral``:
``cli.collateral.coverage_lines``; ``loan books`` has its columns and totals). A written-off loan
whose recovery changed servicer (rules 6) is in each servicer's book with its
part (``ledger.exposure``): a book says what it took over and handed on, and
``loan books`` lists those moves apart. A node of an older release answers
without the newer parts, and the text leaves them out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lendchain.cli._common import member_text
from lendchain.cli.collateral import coverage_lines
from lendchain.cli.guarantees import guarantor_lines
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.staging import AGEING_BUCKETS, AGEING_TOTALS, STAGE_TOTALS, STAGES

BOOK_COLUMNS = ("loans", "outstanding", "committed", "overdue_loans", "defaulted_loans", "penalty_due")
WRITTEN_OFF_COLUMNS = ("written_off", "written_off_loans", "recovered", "net_written_off")  # principal, loans
# The principal of written-off loans whose recovery changed servicer (rules 6), and the loans recovered now
MOVED_COLUMNS = {
    "recovery_taken_over": "taken_over_principal",
    "recovery_handed_on": "handed_on_principal",
    "recovering_loans": "recovering_loans",
}
# A view's forborne totals (``forbearance.FORBORNE_TOTALS``) as columns of a book's row
FORBORNE_COLUMNS = {
    "forborne_loans": "loans",
    "forborne": "outstanding",
    "forborne_performing_loans": "performing_loans",
    "forborne_performing": "performing_outstanding",
    "forborne_non_performing_loans": "non_performing_loans",
    "forborne_non_performing": "non_performing_outstanding",
}
# A view's collateral coverage of the outstanding principal (rules 6) as columns of a book's row
COVERAGE_COLUMNS = ("secured", "unsecured", "collateral_value", "secured_loans")
# A view's stage totals and arrears ageing are columns of a book's row under their own names
STAGE_COLUMNS = (*STAGE_TOTALS, *AGEING_TOTALS)
STAGE_NAMES = {1: "performing", 2: "credit risk increased significantly", 3: "credit-impaired"}
# Each ageing bucket's heading: its days past due
AGEING_LABELS = {
    bucket: str(fewest) if most == fewest else f"{fewest}-{most}" if most else f">{fewest - 1}"
    for bucket, fewest, most in AGEING_BUCKETS
}


def exposure_text(view: dict[str, Any]) -> str:
    lines = [f"exposure of {member_text(view['did'], view.get('name'))}"]  # a member guarantor's name
    if not view["currencies"]:
        lines.append("  no live loans (nothing disbursed or committed)")
    lines += [totals_text(currency, t) for currency, t in view["currencies"].items()]
    lines += [forborne_text(currency, t) for currency, t in view.get("forborne", {}).items()]
    lines += [written_off_text(currency, t) for currency, t in view.get("written_off", {}).items()]
    lines += coverage_lines(view)
    lines += stage_lines(view)
    if view["carriers"]:
        lines.append("carried by")
    for row in view["carriers"]:
        who = row["name"] or row["did"]
        lines.append(
            f"  {who:<24} {row['currency']}  outstanding {row['outstanding']}  committed {row['committed']}"
            f"  loans {row['loans']}"
        )
    lines += guarantor_lines(view)  # rules 7
    lines += exposure_loan_lines(view)
    return "\n".join(lines)


def exposure_loan_lines(view: dict[str, Any]) -> list[str]:
    """The borrower's loans one by one: id, state, what it counts for, stage and days past due
    (``stage_text``)."""
    rows = view.get("loans", [])
    lines = [f"loans ({len(rows)})"] if rows else []
    for row in rows:
        field = next(f for f in ("outstanding", "committed", "written_off") if f in row)
        cells = [
            f"  {row['loan_id'][:16]}  {row['state']:<11} {row['currency']}  "
            f"{field.replace('_', ' ')} {row[field]} of {row['amount']}"
        ]
        stage = stage_text(row)
        if stage:
            cells.append(stage)
        if row.get("penalty_due"):
            cells.append(f"penalty due {row['penalty_due']}")
        if row.get("forbearance"):
            cells.append(f"forbearance {row['forbearance'].replace('_', '-')}")
        if row.get("guaranteed"):
            cells.append(f"guaranteed {row['guaranteed']}")
        if "recovered" in row:
            cells.append(f"recovered {row['recovered']}, net loss {row['net_principal']}")
        lines.append("  ".join(cells))
    return lines


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
    if t.get("taken_over") or t.get("handed_on"):  # a lender's book, where a recovery changed servicer
        lines.append(
            f"  {currency}  recovery changed servicer: taken over {t['taken_over']} (principal "
            f"{t['taken_over_principal']})  handed on {t['handed_on']} (principal {t['handed_on_principal']})"
            f"  recovering {t['recovering_loans']} loans"
        )
    return "\n".join(lines)


def stage_lines(view: dict[str, Any]) -> list[str]:
    """A borrower's exposure's or a lender's book's drawn loans per currency by IFRS 9 stage and by days
    past due: loans (principal outstanding) each; none from a node of an older release."""
    lines = []
    for currency, t in view.get("stages", {}).items():
        cells = [f"stage {n}: loans {t[f'stage_{n}_loans']} ({t[f'stage_{n}_outstanding']})" for n in STAGES]
        lines.append(f"  {currency}  {'  '.join(cells)}")
    for currency, t in view.get("ageing", {}).items():
        cells = [
            f"{label}: {t[f'{bucket}_loans']} ({t[f'{bucket}_outstanding']})"
            for bucket, label in AGEING_LABELS.items()
        ]
        lines.append(f"  {currency}  days past due {'  '.join(cells)}")
    for currency, t in view.get("commitment_stages", {}).items():
        cells = [f"stage {n}: loans {t[f'stage_{n}_loans']} ({t[f'stage_{n}_committed']})" for n in STAGES]
        lines.append(f"  {currency}  commitments {'  '.join(cells)}")
    return lines


def share_stage_lines(view: dict[str, Any]) -> list[str]:
    """``fund positions``'s shares of the drawn loans per currency by IFRS 9 stage and by days past due:
    share in loans each; none from a node of an older release."""
    lines = []
    for currency, t in view.get("stages", {}).items():
        cells = [f"stage {n} {t[f'stage_{n}_outstanding']} in {t[f'stage_{n}_loans']}" for n in STAGES]
        lines.append(f"{currency}: shares by stage: {', '.join(cells)}")
    for currency, t in view.get("ageing", {}).items():
        cells = [
            f"{label} days {t[f'{bucket}_outstanding']} in {t[f'{bucket}_loans']}"
            for bucket, label in AGEING_LABELS.items()
        ]
        lines.append(f"{currency}: shares by days past due: {', '.join(cells)}")
    for currency, t in view.get("commitment_stages", {}).items():
        cells = [f"stage {n} {t[f'stage_{n}_committed']} in {t[f'stage_{n}_loans']}" for n in STAGES]
        lines.append(f"{currency}: shares of commitments by stage: {', '.join(cells)}")
    return lines


def stage_text(row: dict[str, Any]) -> str:
    """A loan's IFRS 9 stage and days past due as a row of a view gives them (a loan of a borrower's
    exposure, a funder's position, a party's live loan): ``stage 2, 45 days past due``; a commitment's
    stage alone (nothing is due on it yet); empty for a loan without a stage, or from a node of a
    release that does not stage loans."""
    if row.get("stage") is None:
        return ""
    if row.get("days_past_due") is None:
        return f"stage {row['stage']} (commitment)"
    return f"stage {row['stage']}, {row['days_past_due']} days past due"


def position_stage_text(position: dict[str, Any]) -> str:
    """``stage_text`` to end a position's (or a listed loan's) line: after a comma, when there is one."""
    stage = stage_text(position)
    return f", {stage}" if stage else ""


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
    lines += coverage_lines(view)
    lines += stage_lines(view)
    transfers = view.get("pending_transfers", [])  # an older release's node answers without it
    if transfers:
        lines.append("pending transfers")
    for row in transfers:  # each member by name and DID (an older node names none: the DIDs alone)
        lines.append(
            f"  loan {row['loan_id']} from {member_text(row['lender'], row.get('lender_name'))} to "
            f"{member_text(row['to'], row.get('to_name'))} (offered at height {row['offered_height']})"
        )
    return "\n".join(lines)


def forbearance_lines(loan: dict[str, Any]) -> list[str]:
    """``loan show``'s lines for a restructured loan's forbearance status (none for another loan)."""
    status = loan.get("forbearance")
    if status is None:
        return []
    since = f" since {time_text(status['since_ms'])}" if status["since_ms"] is not None else ""
    count = status["restructurings"]
    notes = [f"restructured {count} {'time' if count == 1 else 'times'}"]
    if status["cure_ends_ms"] is not None:
        notes.append(f"cured at {time_text(status['cure_ends_ms'])} at the earliest")
    if status["probation_ends_ms"] is not None:
        notes.append(f"forborne until {time_text(status['probation_ends_ms'])} at the earliest")
    notes.append(f"as of {time_text(status['as_of_ms'])}")
    return [
        f"  {'forbearance':<15} {status['status']}{since} ({'; '.join(notes)})",
        f"  {'':<15} {status['why']}",
    ]


def stage_lines_of_loan(loan: dict[str, Any]) -> list[str]:
    """``loan show``'s days past due and IFRS 9 stage, then each reason (the stage it gives, why, and
    whose rule) on a line of its own; for a loan without a stage, why (nothing from an older node)."""
    if "stage_reasons" not in loan:
        return []
    if loan["stage"] is None:  # its one reason says why
        return [f"  {'stage':<15} none: {loan['stage_reasons'][0]['why']}"]
    dpd = loan["days_past_due"]  # None for a commitment: staged by its borrower's other loans
    dpd_text = "none: an undisbursed commitment, nothing is due yet" if dpd is None else str(dpd)
    return [
        f"  {'days past due':<15} {dpd_text} (as of {time_text(loan['stage_as_of_ms'])})",
        f"  {'stage':<15} {loan['stage']} ({STAGE_NAMES[loan['stage']]})",
        *(
            f"  {'':<15} {reason['rule']} (stage {reason['stage']}): {reason['why']} [{reason['source']}]"
            for reason in loan["stage_reasons"]
        ),
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
        staged = {
            code: {**t, **view.get("ageing", {}).get(code, {})} for code, t in view.get("stages", {}).items()
        }
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
                # Among the live loans above, by stage and days past due; an older release's node: none.
                **{column: staged.get(code, {}).get(column, 0) for column in STAGE_COLUMNS},
                # Of the outstanding above, what collateral covers (rules 6); an older node: all unsecured.
                **_coverage_columns(view.get("collateral", {}).get(code), live.get("outstanding", 0)),
                # Written-off loans whose recovery changed servicer (rules 6); an older node reports none.
                **{column: lost.get(name, 0) for column, name in MOVED_COLUMNS.items()},
                **({"removed_height": member["removed_height"]} if "removed_height" in member else {}),
            }
            rows.append(row)
            total = totals.setdefault(
                code,
                dict.fromkeys(
                    (
                        *BOOK_COLUMNS,
                        *WRITTEN_OFF_COLUMNS,
                        *FORBORNE_COLUMNS,
                        *STAGE_COLUMNS,
                        *COVERAGE_COLUMNS,
                        *MOVED_COLUMNS,
                    ),
                    0,
                ),
            )
            for column in total:
                total[column] += row[column]
    return {"books": rows, "totals": dict(sorted(totals.items()))}


def _coverage_columns(coverage: dict[str, int] | None, outstanding: int) -> dict[str, int]:
    """A book's coverage columns in one currency: the view's, or none secured when it has none."""
    if coverage is None:
        return {"secured": 0, "unsecured": outstanding, "collateral_value": 0, "secured_loans": 0}
    return {column: coverage[column] for column in COVERAGE_COLUMNS}


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
    return "\n".join(
        lines
        + _forborne_books_lines(view)
        + _stage_books_lines(view)
        + _coverage_books_lines(view)
        + _moved_books_lines(view)
    )


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


def _stage_books_lines(view: dict[str, Any]) -> list[str]:
    """``loan books``'s drawn loans by IFRS 9 stage, then by days past due (arrears ageing), per member
    and currency with any, and their totals (loans, principal outstanding); none when no member has a
    drawn loan (or the node is of an older release)."""

    def drawn(t: dict[str, Any]) -> bool:
        return any(t.get(f"stage_{stage}_loans") for stage in STAGES)

    staged = [row for row in view["books"] if drawn(row)]
    if not staged:
        return []
    totals = [(code, t) for code, t in view["totals"].items() if drawn(t)]

    def table(columns: dict[str, str]) -> list[str]:
        """A line per member and currency, then per currency for all: each column's loans and principal."""

        def line(name: str, code: str, t: dict[str, Any]) -> str:
            cells = "".join(
                f" {t[f'{column}_loans']:>7} {t[f'{column}_outstanding']:>12}" for column in columns
            )
            return f"{name:<12} {code:<4}{cells}"

        header = "".join(f" {heading:>7} {'principal':>12}" for heading in columns.values())
        return [
            f"{'member':<12} {'cur':<4}{header}",
            *(line(row["member"], row["currency"], row) for row in staged),
            *(line("all", code, t) for code, t in totals),
        ]

    return [
        "IFRS 9 stages of the loans above, as of the head block: "
        + ", ".join(f"{n} {name}" for n, name in STAGE_NAMES.items()),
        *table({f"stage_{stage}": f"stage {stage}" for stage in STAGES}),
        "days past due of their oldest unpaid instalment (arrears ageing)",
        *table(AGEING_LABELS),
    ]


def _coverage_books_lines(view: dict[str, Any]) -> list[str]:
    """``loan books``'s collateral coverage (rules 6): per member and currency with outstanding loans,
    the principal the collateral pledged on them covers (``secured``, each loan's principal up to its
    pledged value) and the rest, the pledged value and the secured loans, and the totals; none while no
    member has a secured loan (or the node is of an older release)."""
    if not any(row["secured_loans"] for row in view["books"]):
        return []

    def line(name: str, code: str, t: dict[str, Any]) -> str:
        return (
            f"{name:<12} {code:<4} {t['outstanding']:>14} {t['secured']:>14} {t['unsecured']:>14} "
            f"{t['collateral_value']:>14} {t['secured_loans']:>7}"
        )

    lines = [
        "collateral coverage of the outstanding principal above (secured: each loan's principal up to "
        "its pledged value)",
        f"{'member':<12} {'cur':<4} {'outstanding':>14} {'secured':>14} {'unsecured':>14} {'pledged':>14} "
        f"{'loans':>7}",
    ]
    lines += [line(row["member"], row["currency"], row) for row in view["books"] if row["outstanding"]]
    lines += [line("all", code, t) for code, t in view["totals"].items() if t["outstanding"]]
    return lines


def _moved_books_lines(view: dict[str, Any]) -> list[str]:
    """``loan books``'s written-off loans whose recovery changed servicer (rules 6), per member and
    currency with any: the principal still lost that it took over and handed on, which close the gap
    between its written off, recovered and net columns. None when no recovery ever moved."""
    moved = [row for row in view["books"] if row.get("recovery_taken_over") or row.get("recovery_handed_on")]
    if not moved:
        return []

    def line(name: str, code: str, t: dict[str, Any]) -> str:
        return (
            f"{name:<12} {code:<4} {t['recovery_taken_over']:>14} {t['recovery_handed_on']:>14} "
            f"{t['recovering_loans']:>10}"
        )

    lines = [
        "recoveries that changed servicer: principal still lost when taken over and handed on "
        "(written off + taken over - recovered - handed on = net)",
        f"{'member':<12} {'cur':<4} {'taken over':>14} {'handed on':>14} {'recovering':>10}",
    ]
    lines += [line(row["member"], row["currency"], row) for row in moved]
    return lines
