"""``lendchain loan guarantee | accept-guarantee | withdraw-guarantee | release-guarantee |
call-guarantee``: guarantees of loans from the command line (rules version 7; see
``lendchain.ledger.guarantees``), and what ``loan show`` and ``party exposure`` print of them.

The servicer proposes a guarantee (``guarantee``), which the guarantor signs
(``accept-guarantee``); the servicer takes it back before (``withdraw-guarantee``),
releases the guarantor after (``release-guarantee``), and demands payment once the
loan defaulted or was written off (``call-guarantee``). Each command but the first
names the guarantee with ``--guarantee ID``, which may be left out when the loan has
exactly one guarantee in the state the command acts on (read from the node). Nothing
is sent while the chain runs rules older than 7.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
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
from lendchain.client import ref_path
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.guarantees import ACCEPT, CALL, KINDS, PROPOSE, RELEASE, SINCE_RULES, WITHDRAW

_HEX = re.compile(r"[0-9a-f]{64}")


def _loan_for(kw: dict[str, Any], kind: str, loan_id: str) -> dict[str, Any]:
    """The loan view, once the chain's next block runs rules 7 (sent sooner, a tx would never be included)."""
    with client_from(kw) as client:
        require_rules(client.get("/status"), SINCE_RULES, kind, "send it")
        return client.get(ref_path("/loans", loan_id))


def _guarantee_id(loan: dict[str, Any], given: str | None, status: str, command: str) -> str:
    """``--guarantee``, or the loan's one guarantee in ``status``; a usage error naming them otherwise."""
    if given is not None:
        if not _HEX.fullmatch(given):
            raise click.BadParameter(
                "must be a guarantee id, 64 lowercase hex digits", param_hint="'--guarantee'"
            )
        return given
    found = [g for g in loan.get("guarantees", []) if g["status"] == status]
    if len(found) == 1:
        return found[0]["guarantee_id"]
    names = loan.get("member_names")  # a member's bank guarantee by its name (an older node: the DID)
    listed = "; ".join(f"{g['guarantee_id']} by {member_text(g['guarantor'], names=names)}" for g in found)
    listed = listed or "none"
    raise click.UsageError(
        f"{command}: loan {loan['loan_id']} has {len(found)} {status} guarantees ({listed}); "
        "name one with --guarantee ID"
    )


def _act(
    ctx: click.Context,
    kw: dict[str, Any],
    kind: str,
    loan_id: str,
    given: str | None,
    status: str,
    **extra: Any,
) -> None:
    loan = _loan_for(kw, kind, loan_id)
    payload = {"loan_id": loan_id, "guarantee_id": _guarantee_id(loan, given, status, ctx.info_name), **extra}
    send_tx(ctx, kw, kind, payload)


def guarantee_option(fn: Any) -> Any:
    return click.option("--guarantee", "guarantee_id", help="The guarantee's id (its loan.guarantee tx id).")(
        fn
    )


@click.command("guarantee")
@click.argument("loan_id")
@click.option("--guarantor", required=True, help="The guarantor's DID: a registered party or a member.")
@click.option(
    "--amount", required=True, type=click.IntRange(1), help="The cap, in minor units of the loan's currency."
)
@click.option(
    "--kind", "guarantee_kind", required=True, type=click.Choice(KINDS), help="Who stands behind the loan."
)
@click.option(
    "--deed", type=click.Path(exists=True, dir_okay=False), help="The signed guarantee deed, hashed here."
)
@click.option("--deed-hash", help="sha256 (hex) of the guarantee deed instead of --deed.")
@click.option(
    "--expires-ms", type=click.IntRange(1), help="When the guarantee stops binding (ms since the epoch)."
)
@signer_options
@click.pass_context
@user_errors
def guarantee(
    ctx: click.Context,
    loan_id: str,
    guarantor: str,
    amount: int,
    guarantee_kind: str,
    deed: str | None,
    deed_hash: str | None,
    expires_ms: int | None,
    **kw: Any,
) -> None:
    """Propose, as LOAN_ID's servicer, that GUARANTOR guarantees it up to --amount.

    It binds once the guarantor signs `loan accept-guarantee`. The guarantee's
    id is this transaction's id.
    """
    payload: dict[str, Any] = {
        "loan_id": loan_id,
        "guarantor": guarantor,
        "amount": amount,
        "kind": guarantee_kind,
    }
    payload["evidence_hash"] = _deed_hash(deed, deed_hash)
    if expires_ms is not None:
        payload["expires_ms"] = expires_ms
    _loan_for(kw, PROPOSE, loan_id)
    send_tx(ctx, kw, PROPOSE, payload)


def _deed_hash(deed: str | None, given: str | None) -> str:
    if (deed is None) == (given is None):
        raise click.UsageError(
            "give exactly one of --deed FILE or --deed-hash HEX: the evidence of the guarantee"
        )
    if given is not None:
        if not _HEX.fullmatch(given):
            raise click.BadParameter("must be 64 lowercase hex digits", param_hint="'--deed-hash'")
        return given
    try:
        return hashlib.sha256(Path(deed).read_bytes()).hexdigest()
    except OSError as e:
        raise click.ClickException(f"cannot read deed file {deed}: {e.strerror}") from None


@click.command("accept-guarantee")
@click.argument("loan_id")
@guarantee_option
@signer_options
@click.pass_context
@user_errors
def accept_guarantee(ctx: click.Context, loan_id: str, guarantee_id: str | None, **kw: Any) -> None:
    """Sign, as the guarantor, a guarantee proposed on LOAN_ID: from now on it binds you."""
    _act(ctx, kw, ACCEPT, loan_id, guarantee_id, "proposed")


@click.command("withdraw-guarantee")
@click.argument("loan_id")
@guarantee_option
@signer_options
@click.pass_context
@user_errors
def withdraw_guarantee(ctx: click.Context, loan_id: str, guarantee_id: str | None, **kw: Any) -> None:
    """Take back, as LOAN_ID's servicer, a guarantee its guarantor has not accepted."""
    _act(ctx, kw, WITHDRAW, loan_id, guarantee_id, "proposed")


@click.command("release-guarantee")
@click.argument("loan_id")
@guarantee_option
@signer_options
@click.pass_context
@user_errors
def release_guarantee(ctx: click.Context, loan_id: str, guarantee_id: str | None, **kw: Any) -> None:
    """Release, as LOAN_ID's servicer, the guarantor of an accepted guarantee.

    The ledger releases a loan's guarantees by itself when the loan closes, goes
    unfunded, or, written off, is recovered in full or its recovery ends.
    """
    _act(ctx, kw, RELEASE, loan_id, guarantee_id, "active")


@click.command("call-guarantee")
@click.argument("loan_id")
@guarantee_option
@click.option("--amount", required=True, type=click.IntRange(1), help="What you demand, in minor units.")
@signer_options
@click.pass_context
@user_errors
def call_guarantee(
    ctx: click.Context, loan_id: str, guarantee_id: str | None, amount: int, **kw: Any
) -> None:
    """Demand, as the servicer of defaulted or written-off LOAN_ID, payment from its guarantor.

    At most the cap less earlier calls. The money the guarantor pays is
    recorded as any other: `loan repay` (defaulted) or `loan recover`
    (written off).
    """
    _act(ctx, kw, CALL, loan_id, guarantee_id, "active", amount=amount)


COMMANDS = (guarantee, accept_guarantee, withdraw_guarantee, release_guarantee, call_guarantee)


def guarantee_lines(loan: dict[str, Any]) -> list[str]:
    """``loan show``'s lines for a loan's guarantees (nothing without any, or from an older node)."""
    rows = loan.get("guarantees") or []
    if not rows:
        return []
    lines = [f"  {'guaranteed':<15} {loan['guaranteed']} {loan['currency']} of the principal at risk"]
    names = loan.get("member_names")  # a member's bank guarantee by its name (an older node: the DID)
    for row in rows:
        expiry = f", expires at {time_text(row['expires_ms'])}" if row.get("expires_ms") else ""
        lines.append(
            f"  {'guarantee':<15} {row['guarantee_id'][:16]} {row['kind']} by "
            f"{member_text(row['guarantor'], names=names)}: {row['status']}, "
            f"cap {row['amount']}, called {row['called']}, contingent {row['contingent']}{expiry}"
        )
    return lines


def guarantor_lines(view: dict[str, Any]) -> list[str]:
    """``party exposure``'s lines for what a DID guarantees, and its borrower's guaranteed part."""
    lines = [
        f"  {currency}  guaranteed by others: {t['guaranteed']} on {t['guaranteed_loans']} loans"
        for currency, t in view.get("guaranteed", {}).items()
    ]
    mine = view.get("guarantees") or {}
    if not mine.get("guarantees"):
        return lines
    lines.append("as guarantor (contingent exposure)")
    for currency, t in mine["currencies"].items():
        # what it was ever called for, ended guarantees included (an older node sends none)
        ever = f"  called ever {t['called_total']} on {t['called_guarantees']}" if "called_total" in t else ""
        lines.append(
            f"  {currency}  contingent {t['contingent']}  called {t['called']}  active {t['active']}  "
            f"proposed {t['proposed']}{ever}"
        )
    for row in mine["by_lender"]:
        lines.append(
            f"  {row['name'] or row['did']:<24} {row['currency']}  contingent {row['contingent']}  "
            f"called {row['called']}  active {row['active']}"
        )
    for row in mine["guarantees"]:
        lines.append(
            f"  guarantee {row['guarantee_id'][:16]} of loan {row['loan_id'][:16]} ({row['loan_state']}): "
            f"{row['status']}, cap {row['amount']}, called {row['called']}, contingent {row['contingent']} "
            f"{row['currency']}"
        )
    return lines


def guarantor_report(exposure: dict[str, Any] | None) -> dict[str, Any] | None:
    """What ``report guarantees`` shows of an exposure view: the DID's guarantees and its contingent
    exposure (``guarantee_views.guarantor_exposure``); None when no guarantee was proposed to it."""
    if exposure is None or not exposure["guarantees"]["guarantees"]:
        return None
    return {"did": exposure["did"], "name": exposure.get("name"), **exposure["guarantees"]}


def guarantor_text(view: dict[str, Any]) -> str:
    """``report guarantees``: the DID, then what ``party exposure`` prints of it as a guarantor."""
    count = len(view["guarantees"])
    who = member_text(view["did"], view.get("name"))  # a member's bank guarantees: by its name
    head = f"{who}: {count} guarantee{'' if count == 1 else 's'} proposed to it"
    return "\n".join([head, *guarantor_lines({"guarantees": view})])
