"""``lendchain loan consent-restructure``: a funder consents to a syndicated loan's pending
restructuring (rules version 5; see ``lendchain.ledger.funder_consent``), ``lendchain loan
withdraw-consent``: it takes the consent back before the acceptance (rules version 6; see
``lendchain.ledger.consent_withdrawal``), and what ``loan show`` says of the funders' consents.

A module of its own beside ``loans`` (near its size limit), attached to the
``loan`` group as ``book``'s commands are.
"""

from __future__ import annotations

from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    member_text,
    require_rules,
    send_tx,
    signer_options,
    user_errors,
)
from lendchain.ledger.consent_withdrawal import KIND
from lendchain.ledger.consent_withdrawal import SINCE_RULES as WITHDRAWAL_SINCE
from lendchain.ledger.funder_consent import SINCE_RULES as CONSENT_SINCE
from lendchain.ledger.funder_consent import percent


@click.command("consent-restructure")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def consent_restructure(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Consent to LOAN_ID's pending restructuring, as a funder of the syndicated loan.

    The borrower's `loan accept-restructure` is refused until the funders
    holding more than half of the amount committed have consented (the
    servicer's own commitment consents by proposing). A consent is to this
    proposal's terms: it goes when the proposal is withdrawn or lapses, and
    counts for nothing once the proposal expires (rules 6). `loan show`
    gives who has consented and what is still missing; `loan
    withdraw-consent` takes the consent back before the acceptance.
    """
    with client_from(kw) as client:
        status = client.get("/status")
    require_rules(status, CONSENT_SINCE, "loan.restructure_consent", "send it")
    send_tx(ctx, kw, "loan.restructure_consent", {"loan_id": loan_id})


@click.command("withdraw-consent")
@click.argument("loan_id")
@signer_options
@click.pass_context
@user_errors
def withdraw_consent(ctx: click.Context, loan_id: str, **kw: Any) -> None:
    """Take back your consent to LOAN_ID's pending restructuring, as a funder that consented.

    Possible until the borrower accepts the proposal (rules 6). The
    servicer, whose proposal was its consent, withdraws the proposal with
    `loan withdraw-restructure` instead. You may consent again later.
    """
    with client_from(kw) as client:
        status = client.get("/status")
    require_rules(status, WITHDRAWAL_SINCE, KIND, "send it")
    send_tx(ctx, kw, KIND, {"loan_id": loan_id})


def consent_lines(proposal: dict[str, Any], names: dict[str, str] | None = None) -> list[str]:
    """``loan show``'s lines for a syndicated loan's proposal: the share consented, what is still
    missing, and each consent by its funder (named when ``names``, the loan view's ``member_names``,
    has it; none for a loan without funders, or from an older release's node)."""
    counted = proposal.get("consent")
    if counted is None:
        return []
    if counted["majority"]:
        missing = "reached"
    else:
        missing = f"missing {counted['missing']} ({percent(counted['missing_bps'])})"
    lines = [
        f"  {'consent':<15} {counted['consented']} of {counted['committed']} committed "
        f"({percent(counted['consented_bps'])}); a majority needs more than half, at least "
        f"{counted['needed']}: {missing}"
    ]
    for consent in proposal["consents"]:
        how = ", by proposing" if consent["by_proposal"] else ""
        lines.append(
            f"  {'consented':<15} {member_text(consent['funder'], names=names)} {consent['amount']} at height "
            f"{consent['height']}{how}"
        )
    return lines


def accepted_consent_text(record: dict[str, Any]) -> str:
    """The end of ``loan show``'s line for a restructuring accepted on a syndicated loan: who consented."""
    if "consents" not in record:
        return ""
    funders = len(record["consents"])
    held = sum(consent["amount"] for consent in record["consents"])
    return f"; consented by {funders} funder{'' if funders == 1 else 's'} holding {held}"
