"""The collateral register: which asset secures which loan, for every member to see (rules version 6).

The loss a lenders' shared ledger exists to prevent: one borrower pledges the
same car, house or deposit to two banks, and each bank believes it holds the
asset as security. Neither sees the other's security agreement; on the chain
every member sees every lien, so the second pledge is refused when it is
recorded. From rules version ``SINCE_RULES``:

- ``collateral.pledge`` {loan_id, asset, kind, value, rank?, agreement_hash?}:
  the loan's servicer records that ``asset`` secures the loan. It holds the
  signed security agreement off chain; ``agreement_hash`` (the sha256 of it)
  commits to it, as a KYC attestation's evidence hash does. ``value`` (minor
  units of the loan's currency, 1 to ``MAX_AMOUNT``) is what the lien is
  worth to the loan: the servicer's valuation of the asset, less what ranks
  ahead of the lien when it does not rank first, so that totals over many
  loans never count one asset's value twice.
- ``collateral.release`` {loan_id, asset}: the servicer releases its lien
  (the borrower substituted the collateral, sold the asset with the
  servicer's agreement, or the security agreement ended).
- ``collateral.revalue`` {loan_id, asset, value}: the servicer records a new
  valuation of its lien (a fresh appraisal, a car's depreciation).

Naming an asset. Personal data stays off chain: ``asset`` is the sha256 of
the asset's normalised identifier (a VIN, a land registry title number, an
IBAN, an ISIN with the holder's custody account...) with a domain tag and
``kind`` (one of ``ASSET_KINDS``), computed by the client
(``lendchain.collateral_ids``; ``lendchain collateral id``). The chain keeps
the hash, the kind, the value and the heights and times, never the
identifier. Two members that name the same asset compute the same hash;
that is the point. What this does not hide: a member that guesses an
identifier (a VIN, an account number) can test whether it is pledged, as it
can test a KYC evidence hash against a document it holds. The register
exists precisely so that members can match assets. An asset's first lien
fixes its kind: a pledge of the same hash as another kind is refused
(``bad_payload``), since the hash names the kind.

Ranks. A first-ranking lien (``rank`` 1, the default) is recorded only on an
asset that secures no other loan: a pledge of an asset that already secures
another loan without a ``rank`` is refused (``duplicate``), naming each loan
that holds a lien on it and its servicer (members may see each other's
liens: that is the point). A lower-ranking pledge names its rank
explicitly, and ranks below every lien the asset carries (first to
register, first in priority, as a land or vehicle register ranks charges):
a rank at or above the lowest one recorded is refused (``invalid_state``),
naming the lien it would not rank below. A rank above 1 on an asset with no
lien on chain is allowed (the charges ahead of it are held outside the
consortium), and ranks keep their number when a lien ahead is released.
The views show each lien with the liens ahead of it.

Who and when (``lifecycle.TRANSITIONS``): the loan's servicer, its
``lender``, which a ``loan.transfer`` changes (``transfers``): a transfer
moves the duty to release the loan's liens with it, without touching them.
A pledge from the acceptance of an offer until the loan is closed, unfunded
or written off (``lifecycle.SERVICER_STATES``: a security agreement is signed
with the lender whose offer was accepted, and a defaulted loan may take more
security in a workout); a release or a revaluation in those states and on a
written-off loan. A loan before acceptance has no servicer to record a
pledge, so a cancelled loan (cancelled only before acceptance) never holds one.

The ledger's own releases. A lien secures a claim; once there is no claim,
the asset is free, and nobody should have to remember to say so. So the
ledger releases every lien of a loan (history entry and event
``collateral.released``, with ``because``) in the transaction that ends the
claim: the payment that closes it (``closed``: ``servicing``), the expiry of
its funding (``unfunded``: ``funding``), the recovery that recovers all that
was written off (``recovered``) and the end of a recovery
(``recovery_ended``: ``writeoff``, ``recovery_end``). Each costs a write
per pledge of the loan, at most ``MAX_PLEDGES_PER_LOAN``, and nothing for a
loan without collateral.

A written-off loan's liens stay. A write-off is an accounting event: the
claim survives it, and the collateral is what its recovery realises, so
another lender must still see the lien. They go when the servicer releases
them (after selling the asset, say), when the recovery has recovered
everything written off, or when the recovery ends (``loan.recovery_end``:
nothing more will be realised on the claim, and a lien that outlived it
would keep the asset from being pledged again for good).

State (reads are ``get``s of known keys, no range scans: ``state``):

- ``coll/<asset, 32 bytes>`` (``asset_key``): {kind, liens}, the asset's live
  liens in rank order, each {loan_id, rank, value, pledged_by, height,
  time_ms, agreement_hash?, revalued_height?}, at most
  ``MAX_LIENS_PER_ASSET``; deleted with its last lien. Who holds a lien is
  the loan's servicer now (its ``lender``); ``pledged_by`` is the servicer
  that recorded it.
- the loan's ``collateral``: [{asset, kind, rank, value}], its live pledges
  in the order they were made, at most ``MAX_PLEDGES_PER_LOAN`` (the loan
  record is read on every touch of the loan, so it stays small); absent
  once the last is released. So a loan's views and the exposure totals read
  its pledged value from the loan alone (``collateral_views``).

Nothing here changes a loan that never pledges: a rules-6 chain without
collateral stores what it stored before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lendchain.ledger import lifecycle as lc
from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.guarantees import release_guarantees
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.loans import HEX_ID, LOAN_ID_FIELD, MAX_AMOUNT, load_loan, loan_actors, with_history
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.state import institution_key, loan_key

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SINCE_RULES = 6
PLEDGE, RELEASE, REVALUE = "collateral.pledge", "collateral.release", "collateral.revalue"
ASSET_KINDS = ("vehicle", "real_estate", "deposit", "securities", "equipment", "other")
MAX_PLEDGES_PER_LOAN = 16
MAX_LIENS_PER_ASSET = 8
# Ranks beyond a handful are not seen in practice; gaps leave room for charges held off chain.
MAX_RANK = 16
# Why the ledger released a loan's liens (``release_all``): its claim ended
ENDED_BECAUSE = ("closed", "unfunded", "recovered", "recovery_ended")


def asset_key(asset: bytes) -> bytes:
    """The asset's record: its kind and live liens (see the module docstring)."""
    return b"coll/" + asset


def _where(tx: Transaction, loan_id: bytes) -> str:
    return f"{tx.kind} on loan {loan_id.hex()[:16]}"


def _pledge_of(loan: dict[str, Any], asset: bytes) -> dict[str, Any] | None:
    return next((p for p in loan.get("collateral", ()) if p["asset"] == asset), None)


def _holder(ctx: TxContext, lien: dict[str, Any]) -> str:
    """A lien as a refusal names it: its loan, its servicer now, its rank and since when."""
    servicer = ctx.get(loan_key(lien["loan_id"]))["lender"]
    name = ctx.get(institution_key(servicer))["name"]
    return f"loan {lien['loan_id'].hex()[:16]} of {name} (rank {lien['rank']}, since height {lien['height']})"


def _pledged_asset(ctx: TxContext, tx: Transaction, loan_id: bytes, loan: dict[str, Any]) -> dict[str, Any]:
    """The loan's pledge of the payload's asset; ``not_found`` when the asset does not secure the loan."""
    asset = bytes.fromhex(tx.payload["asset"])
    pledge = _pledge_of(loan, asset)
    if pledge is None:
        pledged = len(loan.get("collateral", ()))
        raise TxRejected(
            "not_found",
            f"{tx.kind} field 'asset': asset {asset.hex()[:16]} does not secure loan {loan_id.hex()[:16]} "
            f"(it has {pledged} pledged asset{'' if pledged == 1 else 's'}: see its collateral)",
        )
    return pledge


def pledge_asset(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    here = _where(tx, loan_id)
    asset, kind, value = bytes.fromhex(tx.payload["asset"]), tx.payload["kind"], tx.payload["value"]
    pledges = loan.get("collateral", [])
    mine = _pledge_of(loan, asset)
    if mine is not None:
        raise TxRejected(
            "duplicate",
            f"{here}: asset {asset.hex()[:16]} secures this loan already (rank {mine['rank']}); "
            "collateral.revalue records a new value",
        )
    if len(pledges) >= MAX_PLEDGES_PER_LOAN:
        raise TxRejected(
            "invalid_state",
            f"{here}: the loan has {len(pledges)} pledged assets, the most a loan may have "
            f"({MAX_PLEDGES_PER_LOAN}); release one first",
        )
    record = ctx.get(asset_key(asset))
    liens = record["liens"] if record is not None else []
    if record is not None and record["kind"] != kind:
        raise TxRejected(
            "bad_payload",
            f"{tx.kind} field 'kind' is {kind!r}, but asset {asset.hex()[:16]} is pledged as "
            f"{record['kind']!r}: its id names its kind (lendchain collateral id --kind {record['kind']})",
        )
    rank = tx.payload.get("rank")
    if liens and rank is None:  # the double pledge the register is for
        held = ", ".join(_holder(ctx, lien) for lien in liens)
        raise TxRejected(
            "duplicate",
            f"{here}: asset {asset.hex()[:16]} already secures {held}; a lower-ranking pledge names its "
            f"rank (field 'rank', {liens[-1]['rank'] + 1} or more)",
        )
    if liens and rank <= liens[-1]["rank"]:
        raise TxRejected(
            "invalid_state",
            f"{tx.kind} field 'rank' is {rank}, but asset {asset.hex()[:16]} carries {_holder(ctx, liens[-1])}: "
            f"a new lien ranks below every lien on the asset ({liens[-1]['rank'] + 1} or more)",
        )
    if len(liens) >= MAX_LIENS_PER_ASSET:
        raise TxRejected(
            "invalid_state",
            f"{here}: asset {asset.hex()[:16]} carries {len(liens)} liens, the most an asset may carry "
            f"({MAX_LIENS_PER_ASSET})",
        )
    rank = rank or 1
    agreement = tx.payload.get("agreement_hash")
    lien = {
        "loan_id": loan_id,
        "rank": rank,
        "value": value,
        "pledged_by": tx.sender,
        "height": ctx.height,
        "time_ms": ctx.timestamp_ms,
        **({"agreement_hash": bytes.fromhex(agreement)} if agreement else {}),
    }
    ctx.put(asset_key(asset), {"kind": kind, "liens": [*liens, lien]})  # it ranks last: rank order holds
    loan = {**loan, "collateral": [*pledges, {"asset": asset, "kind": kind, "rank": rank, "value": value}]}
    fields = {"asset": asset.hex(), "kind": kind, "rank": rank, "value": value}
    loan["history_len"] = with_history(
        loan_id, loan, ctx, tx.kind, **fields, **({"agreement_hash": agreement} if agreement else {})
    )
    ctx.put(loan_key(loan_id), loan)
    ctx.emit(
        "collateral.pledged", loan_id=loan_id.hex(), **fields, currency=loan["currency"], ahead=len(liens)
    )


def _take_off(
    ctx: TxContext, loan_id: bytes, loan: dict[str, Any], pledge: dict[str, Any], because: str | None
) -> dict[str, Any]:
    """The loan without ``pledge``, its lien gone from the asset's record, the history entry and the event
    written; ``because`` is why the ledger released it (None: its servicer did)."""
    asset = pledge["asset"]
    record = ctx.get(asset_key(asset))
    liens = [lien for lien in record["liens"] if lien["loan_id"] != loan_id]
    if liens:
        ctx.put(asset_key(asset), {**record, "liens": liens})
    else:
        ctx.delete(asset_key(asset))
    kept = [p for p in loan["collateral"] if p["asset"] != asset]
    loan = {key: item for key, item in loan.items() if key != "collateral"}
    if kept:
        loan["collateral"] = kept
    fields = {"asset": asset.hex(), "rank": pledge["rank"], "value": pledge["value"]}
    why = {} if because is None else {"because": because}
    event = RELEASE if because is None else "collateral.released"
    loan["history_len"] = with_history(loan_id, loan, ctx, event, **fields, **why)
    ctx.emit("collateral.released", loan_id=loan_id.hex(), **fields, **why)
    return loan


def release_asset(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    pledge = _pledged_asset(ctx, tx, loan_id, loan)
    ctx.put(loan_key(loan_id), _take_off(ctx, loan_id, loan, pledge, None))


def release_all(ctx: TxContext, loan_id: bytes, loan: dict[str, Any], because: str) -> None:
    """Release every lien of ``loan`` (as stored by the caller) whose claim just ended ``because``.

    Called by each transaction that ends a loan's claim (see the module
    docstring); nothing to do, and nothing written, for a loan without
    collateral, which every loan is before rules 6. From rules 7 the claim's
    end releases the loan's guarantees as well (``guarantees.release_guarantees``).
    """
    if ctx.rules >= SINCE_RULES and loan.get("collateral"):
        for pledge in loan["collateral"]:
            loan = _take_off(ctx, loan_id, loan, pledge, because)
        ctx.put(loan_key(loan_id), loan)
    release_guarantees(ctx, loan_id, loan, because)


def revalue_asset(ctx: TxContext, tx: Transaction) -> None:
    loan_id, loan = load_loan(ctx, tx)
    lc.advance(loan["state"], tx.kind, loan_actors(ctx, tx.sender, loan), ctx.tx_id, loan_id, rules=ctx.rules)
    pledge = _pledged_asset(ctx, tx, loan_id, loan)
    asset, value = pledge["asset"], tx.payload["value"]
    record = ctx.get(asset_key(asset))
    liens = [
        {**lien, "value": value, "revalued_height": ctx.height} if lien["loan_id"] == loan_id else lien
        for lien in record["liens"]
    ]
    ctx.put(asset_key(asset), {**record, "liens": liens})
    pledges = [{**p, "value": value} if p["asset"] == asset else p for p in loan["collateral"]]
    loan = {**loan, "collateral": pledges}
    fields = {"asset": asset.hex(), "value": value, "previous": pledge["value"]}
    loan["history_len"] = with_history(loan_id, loan, ctx, tx.kind, **fields)
    ctx.put(loan_key(loan_id), loan)
    ctx.emit("collateral.revalued", loan_id=loan_id.hex(), **fields, currency=loan["currency"])


ASSET_FIELD = Field("asset", "str", pattern=HEX_ID)
VALUE_FIELD = Field("value", "int", min=1, max=MAX_AMOUNT)

register_kind(
    PLEDGE,
    Schema(
        (
            LOAN_ID_FIELD,
            ASSET_FIELD,
            Field("kind", "str", choices=ASSET_KINDS),
            VALUE_FIELD,
            Field("rank", "int", required=False, min=1, max=MAX_RANK),
            Field("agreement_hash", "str", required=False, pattern=HEX_ID),
        )
    ),
    pledge_asset,
    since=SINCE_RULES,
)
register_kind(RELEASE, Schema((LOAN_ID_FIELD, ASSET_FIELD)), release_asset, since=SINCE_RULES)
register_kind(REVALUE, Schema((LOAN_ID_FIELD, ASSET_FIELD, VALUE_FIELD)), revalue_asset, since=SINCE_RULES)
