"""``lendchain party`` and ``lendchain loan``: a loan's life from the command line.

A loan's id is the id of its ``loan.apply`` transaction and an offer's id
is the id of its ``loan.offer`` transaction; both are printed when they
commit. Amounts are integers in minor units (cents), rates in basis points.
A loan's servicing moves to another lender by ``loan transfer``, which that
lender accepts with ``loan accept-transfer``, and its servicer writes a
defaulted loan off with ``loan write-off`` (rules version 4; see
``lendchain.ledger.transfers`` and ``lendchain.ledger.writeoff``) and records
what it recovers afterwards with ``loan recover`` (rules version 5); from
rules version 6 a written-off loan's recovery is handed on with the same
transfer commands, and ``loan end-recovery`` ends it
(``lendchain.ledger.recovery_end``). Its
servicer proposes new remaining terms with ``loan restructure``, which the
borrower accepts with ``loan accept-restructure`` once a syndicated loan's
funders consent with ``loan consent-restructure`` (rules version 5; see
``lendchain.ledger.restructuring`` and ``lendchain.cli.restructure_consent``),
and a funder takes its consent back with ``loan withdraw-consent`` (rules
version 6, which also limits restructurings per loan and lets proposals
expire: ``lendchain.ledger.restructuring_limits``).
What ``party exposure``, ``loan portfolio``, ``loan books``, a loan's days past
due and stage and a restructured loan's forbearance print is ``cli.reports``'s.
"""

from __future__ import annotations

from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    client_options,
    emit,
    member_text,
    require_rules,
    roster_names,
    send_tx,
    signer_options,
    user_errors,
)
from lendchain.cli.collateral import collateral_lines
from lendchain.cli.guarantees import guarantee_lines
from lendchain.cli.parties import names_needed, party_text
from lendchain.cli.reports import (
    books_text,
    consortium_books,
    exposure_text,
    forbearance_lines,
    lender_books,
    portfolio_text,
    stage_lines_of_loan,
)
from lendchain.cli.restructure_consent import accepted_consent_text, consent_lines
from lendchain.client import ref_path
from lendchain.ledger.amortization import SCHEDULE_KINDS
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.loans import MAX_FUNDING_WINDOW_MS, MAX_RATE_BPS
from lendchain.ledger.recovery_end import SINCE_RULES as RECOVERY_END_SINCE
from lendchain.ledger.restructuring import MAX_HOLIDAY_MONTHS
from lendchain.ledger.restructuring import SINCE_RULES as RESTRUCTURE_SINCE
from lendchain.ledger.transfers import SINCE_RULES as TRANSFER_SINCE
from lendchain.ledger.writeoff import MAX_NOTE, MAX_REASON, RECOVERY_SINCE
from lendchain.ledger.writeoff import SINCE_RULES as WRITE_OFF_SINCE


def _sent_id(ctx: click.Context, kw: dict[str, Any], kind: str, payload: dict[str, Any], label: str) -> None:
    status = send_tx(ctx, kw, kind, payload)
    if not ctx.find_root().params.get("as_json") and status.get("status") == "committed":
        click.echo(f"{label}: {status['id']}")


@click.group()
def party() -> None:
    """Register and look up parties (borrowers, investors) by did:key."""


@party.command("register")
@click.option("--role", required=True, type=click.Choice(["borrower", "investor"]))
@click.option("--attestation", help="Hex sha256 of an off-chain KYC document (optional).")
@signer_options
@click.pass_context
@user_errors
def party_register(ctx: click.Context, role: str, attestation: str | None, **kw: Any) -> None:
    """Register the --key's did:key as a borrower or investor."""
    payload: dict[str, Any] = {"role": role}
    if attestation:
        payload["attestation"] = attestation
    send_tx(ctx, kw, "party.register", payload)


@party.command("show")
@click.argument("did")
@client_options
@click.pass_context
@user_errors
def party_show(ctx: click.Context, did: str, **kw: Any) -> None:
    """Show a party: a borrower's or investor's registration, KYC, consents, credit report,
    repayments, score, disputes and loans; a member's roles, vote and address; a member's rotated key."""
    with client_from(kw) as client:
        view = client.get(ref_path("/parties", did))
        as_text = not ctx.find_root().params.get("as_json")
        names = roster_names(client) if as_text and names_needed(view) else {}
    emit(ctx, view, lambda v: party_text(v, names))


@party.command("exposure")
@click.argument("did")
@client_options
@click.pass_context
@user_errors
def party_exposure(ctx: click.Context, did: str, **kw: Any) -> None:
    """What DID owes across every lender: outstanding and committed principal, by currency and lender;
    from rules 7 also the part guarantees cover and, for a guarantor, its contingent exposure."""
    with client_from(kw) as client:
        emit(ctx, client.get(ref_path("/exposure", did)), exposure_text)


@click.group()
def loan() -> None:
    """Apply for, offer, accept, disburse, repay, prepay, restructure, transfer, write off, recover and show loans."""


@loan.command("portfolio")
@click.argument("did")
@client_options
@click.pass_context
@user_errors
def loan_portfolio(ctx: click.Context, did: str, **kw: Any) -> None:
    """A lender's book: the live loans DID services, by currency, and its largest borrowers."""
    with client_from(kw) as client:
        emit(ctx, client.get(ref_path("/portfolio", did)), portfolio_text)


@loan.command("books")
@click.option("--currency", help="Only this currency (ISO 4217 code, e.g. EUR).")
@client_options
@click.pass_context
@user_errors
def loan_books(ctx: click.Context, currency: str | None, **kw: Any) -> None:
    """Every lender member's book side by side, per currency, with the consortium's totals.

    What a supervisor reads first: per member and currency its live loans,
    principal outstanding and committed, overdue and defaulted loans, penalty
    due, the principal it wrote off, what of it was recovered since and the
    net loss, its forborne (restructured) loans, performing and
    non-performing (rules 5), and its drawn loans by IFRS 9 stage and by days
    past due (arrears ageing). From the members view and each lender's
    portfolio (``/members/*``, ``/portfolio/{did}``), as of the node's head.
    """
    with client_from(kw) as client:
        members = client.get("/members/*")["members"]
        books = lender_books(members, lambda did: client.get(ref_path("/portfolio", did)))
    emit(ctx, consortium_books(books, currency.upper() if currency else None), books_text)


@loan.command("apply")
@click.option("--amount", required=True, type=click.IntRange(1), help="Principal in minor units (cents).")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. EUR.")
@click.option("--term", "term_months", required=True, type=click.IntRange(1), help="Term in months.")
@click.option("--purpose", required=True, help="A short purpose, e.g. 'working capital'.")
@signer_options
@click.pass_context
@user_errors
def loan_apply(
    ctx: click.Context, amount: int, currency: str, term_months: int, purpose: str, **kw: Any
) -> None:
    """Apply for a loan as the --key's registered borrower; prints the loan id."""
    payload = {"amount": amount, "currency": currency, "term_months": term_months, "purpose": purpose}
    _sent_id(ctx, kw, "loan.apply", payload, "loan id")


@loan.command("offer")
@click.argument("loan_id")
@click.option("--rate-bps", required=True, type=click.IntRange(0), help="Annual rate in basis points.")
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULE_KINDS),
    default=None,
    help="How the principal is repaid (the chain's default: annuity).",
)
@click.option(
    "--funding-window-ms",
    type=click.IntRange(1, MAX_FUNDING_WINDOW_MS),
    default=None,
    help="Make it a syndicated offer: once accepted, funders commit (`fund commit`) within this window.",
)
@signer_options
@click.pass_context
@user_errors
def loan_offer(
    ctx: click.Context,
    loan_id: str,
    rate_bps: int,
    schedule: str | None,
    funding_window_ms: int | None,
    **kw: Any,
) -> None:
    """Offer LOAN_ID a loan at --rate-bps, signed by a lender member; prints the offer id.

    Without --funding-window-ms the lender funds the whole loan itself; with
    it, the accepted loan is funding until investors and lenders have
    committed its amount, or the window ends (`fund expire`).
    """
    payload: dict[str, Any] = {"loan_id": loan_id, "rate_bps": rate_bps}
    if schedule is not None:
        payload["schedule"] = schedule
    if funding_window_ms is not None:
        payload["funding_window_ms"] = funding_window_ms
    _sent_id(ctx, kw, "loan.offer", payload, "offer id")


@loan.command("accept")
@click.argument("loan_id")
@click.argument("offer_id")
@signer_options
@click.pass_context
@user_errors
def loan_accept(ctx: click.Context, loan_id: str, offer_id: str, **kw: Any) -> None:
    """Accept OFFER_ID for LOAN_ID, as its borrower."""
    send_tx(ctx, kw, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})


@loan.command("cancel")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def loan_cancel(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Withdraw an application before it is disbursed, as its borrower."""
    send_tx(ctx, kw, "loan.cancel", {"loan_id": loan_id})


@loan.command("disburse")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def loan_disburse(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Record the payout of an accepted loan, as its lender."""
    send_tx(ctx, kw, "loan.disburse", {"loan_id": loan_id})


@loan.command("repay")
@click.argument("loan_id")
@click.option("--amount", required=True, type=click.IntRange(1), help="Received, in minor units.")
@click.option("--reference", help="The payment's reference in the lender's books.")
@signer_options
@click.pass_context
@user_errors
def loan_repay(ctx: click.Context, loan_id: str, amount: int, reference: str | None, **kw: Any) -> None:
    """Record a received repayment, as the loan's lender (servicer)."""
    payload: dict[str, Any] = {"loan_id": loan_id, "amount": amount}
    if reference:
        payload["reference"] = reference
    send_tx(ctx, kw, "loan.repay", payload)


@loan.command("prepay")
@click.argument("loan_id")
@click.option("--amount", required=True, type=click.IntRange(1), help="Received, in minor units.")
@signer_options
@click.pass_context
@user_errors
def loan_prepay(ctx: click.Context, loan_id: str, amount: int, **kw: Any) -> None:
    """Record a prepayment, as the loan's servicer: the full payoff closes the loan; less reduces
    the principal and lowers the remaining instalments (same term)."""
    send_tx(ctx, kw, "loan.prepay", {"loan_id": loan_id, "amount": amount})


@loan.command("write-off")
@click.argument("loan_id")
@click.option(
    "--reason",
    required=True,
    help=f"Why, for the auditors (1 to {MAX_REASON} characters), e.g. 'recovery ended'.",
)
@signer_options
@click.pass_context
@user_errors
def loan_write_off(ctx: click.Context, loan_id: str, reason: str, **kw: Any) -> None:
    """Write off a defaulted loan, as its servicer: the loan is final from then on.

    What it still owed (principal, interest, penalty) is recorded with the
    reason. Money recovered on it afterwards is recorded with `loan recover`.
    """
    if not reason.strip() or len(reason) > MAX_REASON:
        raise click.BadParameter(f"give the reason in 1 to {MAX_REASON} characters", param_hint="'--reason'")
    _send_since(ctx, kw, WRITE_OFF_SINCE, "loan.write_off", {"loan_id": loan_id, "reason": reason})


@loan.command("recover")
@click.argument("loan_id")
@click.option("--amount", required=True, type=click.IntRange(1), help="Recovered, in minor units.")
@click.option(
    "--note",
    help=f"Where it came from, for the auditors (1 to {MAX_NOTE} characters), e.g. 'guarantor paid'.",
)
@signer_options
@click.pass_context
@user_errors
def loan_recover(ctx: click.Context, loan_id: str, amount: int, note: str | None, **kw: Any) -> None:
    """Record money recovered on a written-off loan, as its servicer (rules version 5).

    The loan stays written off. A recovery covers the principal written off
    first, then the interest, then the penalty; all of them together never
    exceed what was written off, and `loan show` gives the net loss.
    """
    payload: dict[str, Any] = {"loan_id": loan_id, "amount": amount}
    if note is not None:
        if not note.strip() or len(note) > MAX_NOTE:
            raise click.BadParameter(
                f"give the note in 1 to {MAX_NOTE} characters, or leave it out", param_hint="'--note'"
            )
        payload["note"] = note
    _send_since(ctx, kw, RECOVERY_SINCE, "loan.recover", payload)


@loan.command("end-recovery")
@click.argument("loan_id")
@click.option(
    "--reason",
    required=True,
    help=f"Why nothing more will come, for the auditors (1 to {MAX_REASON} characters), e.g. 'borrower insolvent'.",
)
@signer_options
@click.pass_context
@user_errors
def loan_end_recovery(ctx: click.Context, loan_id: str, reason: str, **kw: Any) -> None:
    """End a written-off loan's recovery, as its servicer (rules version 6): its net loss is final.

    Nothing more is recovered on it or handed on afterwards, and it no
    longer keeps its servicer from leaving the consortium.
    """
    if not reason.strip() or len(reason) > MAX_REASON:
        raise click.BadParameter(f"give the reason in 1 to {MAX_REASON} characters", param_hint="'--reason'")
    _send_since(ctx, kw, RECOVERY_END_SINCE, "loan.recovery_end", {"loan_id": loan_id, "reason": reason})


def _send_since(
    ctx: click.Context, kw: dict[str, Any], since: int, kind: str, payload: dict[str, Any]
) -> None:
    """Send a tx of ``kind`` (which exists from rules ``since``), once the chain runs those rules.

    Sent sooner, the tx would never be included and the command would wait for nothing.
    """
    with client_from(kw) as client:
        status = client.get("/status")
    require_rules(status, since, kind, "send it")
    send_tx(ctx, kw, kind, payload)


@loan.command("transfer")
@click.argument("loan_id")
@click.option("--to", required=True, help="did:key of the lender member that is to service the loan.")
@signer_options
@click.pass_context
@user_errors
def loan_transfer(ctx: click.Context, loan_id: str, to: str, **kw: Any) -> None:
    """Offer LOAN_ID's servicing to the lender member --to, as the loan's lender.

    Nothing moves until --to runs `loan accept-transfer`; until then the loan
    stays yours, and `loan withdraw-transfer` takes the offer back. From rules
    version 6 a written-off loan's recovery is offered the same way.
    """
    _send_since(ctx, kw, TRANSFER_SINCE, "loan.transfer", {"loan_id": loan_id, "to": to})


@loan.command("accept-transfer")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def loan_accept_transfer(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Take over LOAN_ID's servicing, as the lender member its pending transfer names."""
    _send_since(ctx, kw, TRANSFER_SINCE, "loan.transfer_accept", {"loan_id": loan_id})


@loan.command("withdraw-transfer")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def loan_withdraw_transfer(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Take back LOAN_ID's pending transfer, as the loan's lender."""
    _send_since(ctx, kw, TRANSFER_SINCE, "loan.transfer_withdraw", {"loan_id": loan_id})


@loan.command("restructure")
@click.argument("loan_id")
@click.option(
    "--rate-bps",
    required=True,
    type=click.IntRange(0, MAX_RATE_BPS),
    help="The new annual rate in basis points.",
)
@click.option(
    "--term-months",
    required=True,
    type=click.IntRange(1, 1200),
    help="Months of the new schedule from the acceptance, the holiday included.",
)
@click.option(
    "--holiday-months",
    type=click.IntRange(0, MAX_HOLIDAY_MONTHS),
    default=0,
    show_default=True,
    help="The first months of the new schedule, with nothing due (their interest is capitalised).",
)
@signer_options
@click.pass_context
@user_errors
def loan_restructure(
    ctx: click.Context, loan_id: str, rate_bps: int, term_months: int, holiday_months: int, **kw: Any
) -> None:
    """Propose new remaining terms for LOAN_ID, as its servicer; nothing changes until the borrower
    runs `loan accept-restructure`.

    On acceptance what is owed then (principal, begun interest, penalty) and
    the holiday's interest become the new principal, repaid in monthly
    instalments after the holiday. `loan withdraw-restructure` takes the
    proposal back. From rules 6 a loan is restructured at most the chain's
    max_restructurings times (default 3), and a proposal expires
    restructure_offer_ms after it is made (default 30 days; `loan show`
    gives when): propose again after that.
    """
    if holiday_months >= term_months:
        raise click.BadParameter(
            f"a new schedule of {term_months} months needs at least one month with an instalment after "
            "the holiday",
            param_hint="'--holiday-months'",
        )
    payload = {
        "loan_id": loan_id,
        "rate_bps": rate_bps,
        "term_months": term_months,
        "holiday_months": holiday_months,
    }
    _send_since(ctx, kw, RESTRUCTURE_SINCE, "loan.restructure", payload)


@loan.command("accept-restructure")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def loan_accept_restructure(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Accept LOAN_ID's pending restructuring, as its borrower: the new schedule starts now (refused
    once the proposal has expired, rules 6)."""
    _send_since(ctx, kw, RESTRUCTURE_SINCE, "loan.restructure_accept", {"loan_id": loan_id})


@loan.command("withdraw-restructure")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def loan_withdraw_restructure(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Take back LOAN_ID's pending restructuring, as the loan's servicer."""
    _send_since(ctx, kw, RESTRUCTURE_SINCE, "loan.restructure_withdraw", {"loan_id": loan_id})


def _restructuring_lines(view: dict[str, Any]) -> list[str]:
    """``loan show``'s lines for a proposal still recorded and each restructuring accepted."""
    lines = []
    proposal = view.get("restructuring")
    if proposal is not None:
        status = proposal["status"]
        if status == "lapsed":
            status = f"lapsed: {proposal['lapsed_because']}"
        elif status == "expired":  # rules 6: its expires_ms passed
            status = f"expired at {time_text(proposal['expires_ms'])}: the servicer may propose again"
        elif "expires_ms" in proposal:
            status += f", expires at {time_text(proposal['expires_ms'])}"
        lines.append(
            f"  {'restructuring':<15} {proposal['rate_bps']} bps over {proposal['term_months']} months "
            f"({proposal['holiday_months']} of holiday), offered at height {proposal['height']} ({status})"
        )
        lines += consent_lines(proposal, view.get("member_names"))
    for record in view.get("restructurings", []):
        new = record["new"]
        lines.append(
            f"  {'restructured':<15} at height {record['height']} ({record['state']}): principal "
            f"{record['principal']} + interest {record['interest']} + penalty {record['penalty']} + holiday "
            f"interest {sum(record['holiday_interest'])} = {record['new_principal']}; {record['instalments']} "
            f"instalments at {new['rate_bps']} bps after {new['holiday_months']} months of holiday, the first "
            f"due at {time_text(record['first_due_ms'])}{accepted_consent_text(record)}"
        )
    return lines


@loan.command("show")
@click.argument("loan_id")
@client_options
@click.pass_context
@user_errors
def loan_show(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Show a loan: state, amounts, days past due and IFRS 9 stage (with why), collateral, guarantees,
    write-off, restructuring, transfer; with --json also its schedule and history."""
    with client_from(kw) as client:
        value = client.get(ref_path("/loans", loan_id))

    emit(ctx, value, loan_text)


def loan_text(v: dict[str, Any]) -> str:
    """What `loan show` prints of a loan view (``GET /loans/{id}``); `report loan` prints it too. Its
    members by name and DID (``member_names``, ``lender_name``; the DID alone from an older node)."""
    names = v.get("member_names")
    lines = [f"loan {v['loan_id']}: {v.get('state')}"]
    for key in (
        "borrower",
        "lender",
        "amount",
        "currency",
        "term_months",
        "rate_bps",
        "principal_paid",
        "interest_paid",
    ):
        if v.get(key) is not None:
            shown = member_text(v[key], v.get("lender_name"), names) if key == "lender" else v[key]
            lines.append(f"  {key:<15} {shown}")
    lines += stage_lines_of_loan(v)
    lines += collateral_lines(v)
    lines += guarantee_lines(v)
    written_off = v.get("written_off")
    if written_off is not None:
        lines.append(
            f"  {'written off':<15} at height {written_off['height']}: principal {written_off['principal']}, "
            f"interest {written_off['interest']}, penalty {written_off['penalty']}"
        )
        lines.append(f"  {'reason':<15} {written_off['reason']}")
        lines += _recoveries_text(v)
    lines += _restructuring_lines(v)
    transfer = v.get("transfer")
    if transfer is not None:
        status = "pending" if transfer["status"] == "pending" else f"lapsed: the loan is {v.get('state')}"
        lines.append(
            f"  {'transfer':<15} to {member_text(transfer['to'], transfer.get('to_name'), names)}, offered at height "
            f"{transfer['height']} ({status})"
        )
    return "\n".join(lines + forbearance_lines(v))


def _recoveries_text(loan: dict[str, Any]) -> list[str]:
    """A written-off loan's recoveries, each from its history entry, each time its recovery changed
    servicer (rules 6), its net loss (rules 5) and the end of its recovery (rules 6)."""
    names = loan.get("member_names")
    lines = []
    for entry in loan.get("history", []):
        if entry["event"] == "loan.recover":
            note = f" ({entry['note']})" if "note" in entry else ""
            lines.append(
                f"  {'recovered':<15} {entry['amount']} at height {entry['height']}: principal "
                f"{entry['principal']}, interest {entry['interest']}, penalty {entry['penalty']}{note}"
            )
        if entry["event"] == "loan.transfer_accept" and "recovered" in entry:  # a written-off loan's
            lines.append(
                f"  {'recovery moved':<15} at height {entry['height']} from "
                f"{member_text(entry['previous_lender'], names=names)} to {member_text(entry['lender'], names=names)} "
                f"(recovered {entry['recovered']} by then)"
            )
    net = loan.get("net_loss")  # an older release's node answers without it
    if net is not None:
        lines.append(
            f"  {'net loss':<15} {net['total']}: principal {net['principal']}, interest {net['interest']}, "
            f"penalty {net['penalty']}"
        )
    ended = loan.get("recovery_ended")
    if ended is not None:
        lines.append(
            f"  {'recovery ended':<15} at height {ended['height']}: {ended['reason']} (the net loss is final)"
        )
    return lines
