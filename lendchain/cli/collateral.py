"""``lendchain collateral``: the collateral register from the command line (rules version 6; see
``lendchain.ledger.collateral``), and what ``loan show``, ``party exposure`` and ``loan portfolio``
print of it.

``collateral id`` computes an asset's collateral id on this machine
(``lendchain.collateral_ids``): the identifier (a VIN, a title number, an
IBAN...) never leaves it. ``pledge``, ``release`` and ``revalue`` take the
asset as ``--kind`` and ``--id`` (hashed here the same way) or as the id
itself (``--asset``), sign with ``--key`` (or the ``--config`` node's key)
as the loan's servicer, and send nothing while the chain runs rules older
than 6. ``show`` prints every lien on an asset (``GET /collateral/{asset}``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import click

from lendchain.cli._common import (
    client_from,
    client_options,
    emit,
    require_rules,
    send_tx,
    signer_options,
    user_errors,
)
from lendchain.client import ref_path
from lendchain.collateral_ids import AssetIdError, asset_id, normalise
from lendchain.ledger.collateral import ASSET_KINDS, MAX_RANK, PLEDGE, RELEASE, REVALUE, SINCE_RULES
from lendchain.ledger.funder_consent import percent

_HEX = re.compile(r"[0-9a-f]{64}")


def _asset(kind: str | None, identifier: str | None, asset: str | None) -> str:
    """The collateral id from ``--asset``, or computed from ``--kind`` and ``--id``; a usage error otherwise."""
    if (identifier is None) == (asset is None):
        raise click.UsageError(
            "name the asset with exactly one of --id IDENTIFIER (and --kind) or --asset ID"
        )
    if asset is not None:
        if not _HEX.fullmatch(asset):
            raise click.BadParameter(
                "must be a collateral id, the 64 lowercase hex digits `lendchain collateral id` prints",
                param_hint="'--asset'",
            )
        return asset
    if kind is None:
        raise click.UsageError(
            f"--id needs --kind, one of {', '.join(ASSET_KINDS)}: it decides how the id is read"
        )
    try:
        return asset_id(kind, identifier)
    except AssetIdError as e:
        raise click.BadParameter(str(e), param_hint="'--id'") from None


def asset_options(kind_required: bool):
    """``--kind``, ``--id`` and ``--asset``: how a command names an asset."""

    def wrap(fn: Any) -> Any:
        fn = click.option("--asset", help="The asset's collateral id (64 hex digits) instead of --id.")(fn)
        fn = click.option(
            "--id",
            "identifier",
            help="The asset's identifier (VIN, COUNTRY:TITLE, IBAN, ISIN:ACCOUNT...), hashed here; "
            "it never leaves this machine.",
        )(fn)
        help_text = "The asset's kind" + ("." if kind_required else " (with --id).")
        return click.option("--kind", type=click.Choice(ASSET_KINDS), required=kind_required, help=help_text)(
            fn
        )

    return wrap


def _send(ctx: click.Context, kw: dict[str, Any], kind: str, payload: dict[str, Any]) -> None:
    """Send a collateral tx once the chain runs rules 6; sent sooner it would never be included."""
    with client_from(kw) as client:
        status = client.get("/status")
    require_rules(status, SINCE_RULES, kind, "send it")
    send_tx(ctx, kw, kind, payload)


@click.group()
def collateral() -> None:
    """The collateral register: name an asset, pledge it to a loan, release it, show its liens (rules 6)."""


@collateral.command("id")
@click.option("--kind", required=True, type=click.Choice(ASSET_KINDS), help="The asset's kind.")
@click.option(
    "--id",
    "identifier",
    required=True,
    help="vehicle: the VIN; real_estate: COUNTRY:TITLE; deposit: the IBAN; securities: ISIN:ACCOUNT; "
    "equipment: MANUFACTURER:SERIAL; other: REGISTER:REFERENCE.",
)
@click.pass_context
def collateral_id(ctx: click.Context, kind: str, identifier: str) -> None:
    """Print the asset's collateral id, computed here: the only name of it the chain ever sees.

    The identifier is normalised first (upper case, no spaces; a VIN without
    hyphens), so that every member that names the same asset gets the same
    id. With --json, also the kind and the normalised identifier.
    """
    try:
        value = {"asset": asset_id(kind, identifier), "kind": kind, "normalised": normalise(kind, identifier)}
    except AssetIdError as e:
        raise click.BadParameter(str(e), param_hint="'--id'") from None
    emit(ctx, value, lambda v: v["asset"])


@collateral.command("pledge")
@click.argument("loan_id")
@asset_options(kind_required=True)
@click.option(
    "--value",
    required=True,
    type=click.IntRange(1),
    help="What the lien is worth to the loan, in minor units of its currency (less what ranks ahead).",
)
@click.option(
    "--rank",
    type=click.IntRange(1, MAX_RANK),
    help="A lower-ranking lien's rank, below every lien on the asset (default: first-ranking, 1).",
)
@click.option(
    "--agreement",
    type=click.Path(exists=True, dir_okay=False),
    help="The signed security agreement, hashed here.",
)
@click.option("--agreement-hash", help="sha256 (hex) of the security agreement instead of --agreement.")
@signer_options
@click.pass_context
@user_errors
def collateral_pledge(
    ctx: click.Context,
    loan_id: str,
    kind: str,
    identifier: str | None,
    asset: str | None,
    value: int,
    rank: int | None,
    agreement: str | None,
    agreement_hash: str | None,
    **kw: Any,
) -> None:
    """Record that an asset secures LOAN_ID, as the loan's servicer.

    Refused, naming the loans and lenders that hold it, when the asset
    already secures another loan: a lower-ranking lien then gives --rank,
    below every lien on it (`collateral show` lists them).
    """
    payload: dict[str, Any] = {"loan_id": loan_id, "asset": _asset(kind, identifier, asset), "kind": kind}
    payload["value"] = value
    if rank is not None:
        payload["rank"] = rank
    hashed = _agreement_hash(agreement, agreement_hash)
    if hashed is not None:
        payload["agreement_hash"] = hashed
    _send(ctx, kw, PLEDGE, payload)


def _agreement_hash(agreement: str | None, given: str | None) -> str | None:
    if agreement is not None and given is not None:
        raise click.UsageError("give at most one of --agreement FILE or --agreement-hash HEX")
    if given is not None:
        if not _HEX.fullmatch(given):
            raise click.BadParameter("must be 64 lowercase hex digits", param_hint="'--agreement-hash'")
        return given
    if agreement is None:
        return None
    try:
        return hashlib.sha256(Path(agreement).read_bytes()).hexdigest()
    except OSError as e:
        raise click.ClickException(f"cannot read agreement file {agreement}: {e.strerror}") from None


@collateral.command("release")
@click.argument("loan_id")
@asset_options(kind_required=False)
@signer_options
@click.pass_context
@user_errors
def collateral_release(
    ctx: click.Context, loan_id: str, kind: str | None, identifier: str | None, asset: str | None, **kw: Any
) -> None:
    """Release LOAN_ID's lien on an asset, as the loan's servicer.

    The ledger releases a loan's liens by itself when the loan closes, goes
    unfunded, or, written off, is recovered in full or its recovery ends.
    """
    _send(ctx, kw, RELEASE, {"loan_id": loan_id, "asset": _asset(kind, identifier, asset)})


@collateral.command("revalue")
@click.argument("loan_id")
@asset_options(kind_required=False)
@click.option("--value", required=True, type=click.IntRange(1), help="The lien's new value, in minor units.")
@signer_options
@click.pass_context
@user_errors
def collateral_revalue(
    ctx: click.Context,
    loan_id: str,
    kind: str | None,
    identifier: str | None,
    asset: str | None,
    value: int,
    **kw: Any,
) -> None:
    """Record a new value of LOAN_ID's lien on an asset, as the loan's servicer."""
    payload = {"loan_id": loan_id, "asset": _asset(kind, identifier, asset), "value": value}
    _send(ctx, kw, REVALUE, payload)


@collateral.command("show")
@click.argument("asset_ref", metavar="[ASSET]", required=False)
@click.option("--kind", type=click.Choice(ASSET_KINDS), help="The asset's kind (with --id).")
@click.option("--id", "identifier", help="The asset's identifier instead of ASSET, hashed here.")
@client_options
@click.pass_context
@user_errors
def collateral_show(
    ctx: click.Context, asset_ref: str | None, kind: str | None, identifier: str | None, **kw: Any
) -> None:
    """Every lien on an asset by rank: its loan, the loan's servicer, borrower and state, its value."""
    ref = _asset(kind, identifier, asset_ref) if identifier is not None or asset_ref is None else asset_ref
    if not _HEX.fullmatch(ref):
        raise click.BadParameter("must be a collateral id (64 lowercase hex digits)", param_hint="'ASSET'")
    with client_from(kw) as client:
        emit(ctx, client.get(ref_path("/collateral", ref)), asset_text)


def asset_text(view: dict[str, Any]) -> str:
    """What `collateral show` prints of an asset's view (``GET /collateral/{asset}``)."""
    count = len(view["liens"])
    lines = [f"asset {view['asset']} ({view['kind']}): {count} lien{'' if count == 1 else 's'}"]
    for lien in view["liens"]:
        lines.append(
            f"  rank {lien['rank']:<3} loan {lien['loan_id']}  {lien['lender_name'] or lien['lender']}  "
            f"{lien['state']}  value {lien['value']} {lien['currency']}  principal {lien['principal']}  "
            f"since height {lien['height']}"
        )
        lines.append(f"  {'':<8} borrower {lien['borrower']}")
    return "\n".join(lines)


def collateral_lines(loan: dict[str, Any]) -> list[str]:
    """``loan show``'s lines for a loan's collateral and loan-to-value, and its combined loan-to-value
    when a lien ranks ahead of one of its own (nothing without collateral, or from an older release's
    node)."""
    pledges = loan.get("collateral") or []
    if not pledges:
        return []
    ltv, combined = loan["ltv_bps"], loan.get("combined_ltv_bps")  # none from an older release's node
    ratio = f"; loan-to-value {percent(ltv)} ({ltv} bps)" if ltv is not None else ""
    if combined is not None and any(pledge["ahead"] for pledge in pledges):
        ratio += f", combined with the liens ahead {percent(combined)} ({combined} bps)"
    assets = f"{len(pledges)} asset{'' if len(pledges) == 1 else 's'}"
    lines = [f"  {'collateral':<15} {loan['collateral_value']} in {assets}{ratio}"]
    for pledge in pledges:
        revalued = f", revalued at height {pledge['revalued_height']}" if pledge["revalued_height"] else ""
        lines.append(
            f"  {'pledged':<15} {pledge['kind']} {pledge['asset']} rank {pledge['rank']}, value "
            f"{pledge['value']}, at height {pledge['height']}{revalued}"
        )
        for lien in pledge["ahead"]:
            lines.append(
                f"  {'behind':<15} loan {lien['loan_id']} of {lien['lender_name'] or lien['lender']} "
                f"(rank {lien['rank']}, value {lien['value']}, {lien['state']})"
            )
    return lines


def share_coverage_lines(view: dict[str, Any]) -> list[str]:
    """``fund positions``'s shares of the collateral coverage per currency, once any of its loans is
    secured; none from an older release's node."""
    coverage = view.get("collateral", {})
    if not any(t["secured_loans"] for t in coverage.values()):
        return []
    return [
        f"{currency}: secured share {t['secured']}, unsecured {t['unsecured']} (pledged value share "
        f"{t['collateral_value']}, {t['secured_loans']} secured loans)"
        for currency, t in coverage.items()
    ]


def coverage_lines(view: dict[str, Any]) -> list[str]:
    """A borrower's exposure's or a lender's book's collateral coverage per currency, once any of its
    outstanding loans is secured (before, everything is unsecured and the totals say nothing more);
    none from an older release's node."""
    coverage = view.get("collateral", {})
    if not any(t["secured_loans"] for t in coverage.values()):
        return []
    return [
        f"  {currency}  collateral: secured {t['secured']}  unsecured {t['unsecured']}  pledged value "
        f"{t['collateral_value']}  secured loans {t['secured_loans']}"
        for currency, t in coverage.items()
    ]
