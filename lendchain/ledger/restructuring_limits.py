"""Guard rails on restructuring (rules version 6): how often a loan may be restructured, and how
long a proposal stays open.

Rules 5 (``restructuring``) let a servicer restructure a loan any number of
times and left a proposal open until it was accepted, withdrawn or lapsed.
A credit-risk officer or a supervisor flags both: repeated forbearance on
one exposure is a red flag in its own right (EBA, "multiple forbearance"),
and an offer that never expires binds the servicer to terms it made for a
loan that has since moved on. From rules version ``SINCE_RULES``:

- The limit. ``loan.restructure`` is refused (``invalid_state``) once the
  loan has been restructured ``max_restructurings`` times (chain parameter,
  default ``DEFAULT_MAX_RESTRUCTURINGS``), with a sentence naming the count
  and the limit. The acceptance checks it again, for a proposal made under
  rules 5 that would take the loan past the limit, so that no loan
  restructured under rules 6 holds more than ``max_restructurings`` records
  (which also bounds the loan record, read on every touch of the loan).
- Expiry. A proposal records ``expires_ms``: its block's time plus
  ``restructure_offer_ms`` (chain parameter, default
  ``DEFAULT_OFFER_MS``, 30 days). An acceptance, a consent or a
  withdrawal of a consent in a block whose time is at or past it, and a
  withdrawal of the proposal, are refused with code ``expired`` and a
  sentence saying when it expired and that the servicer may propose
  again; a new ``loan.restructure`` replaces an expired proposal as it
  replaces a lapsed one. A proposal made under rules 5 has no
  ``expires_ms`` and does not expire.

Why expiry is judged lazily, without a block hook. Governance marks its
expired proposals at the start of each block (``governance``: ``gov/open``)
because a proposal is a record of its own that queries list. An expired
restructuring changes nothing by itself: no money moves, the loan's
schedule and the due-loan index stay as they are, and nothing else waits on
it. So the ledger judges it where it matters: a transaction that acts on the
proposal compares ``expires_ms`` with its block's time, and the views
(``queries``: the loan's ``restructuring.status``; ``exposure``: a funder's
``consent_requested``) with the head block's time, which no later block can
precede. A block hook would need an index of open proposals, written by
every proposal, acceptance and withdrawal, and bounded work per block, for
an event that a bank system does not need to wait for: the expiry time is
known from the moment of the proposal (``loan.restructure_offered``
carries ``expires_ms``), so a borrower's or a funder's system schedules its
own reminder.

The parameters come from the genesis ``[app]`` only (like
``servicing.SERVICING_DEFAULTS``, never in ``state.DEFAULT_PARAMS``, which
would change every genesis's stored bytes), and a node refuses a genesis
whose values are out of ``PARAMS``' bounds (``genesis_problem``, called by
``node.config``, which also refuses a key that looks like a typo of theirs).
"""

from __future__ import annotations

from typing import Any

from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.servicing import DAY_MS

SINCE_RULES = 6
DEFAULT_MAX_RESTRUCTURINGS = 3
DEFAULT_OFFER_MS = 30 * DAY_MS
# name -> (default, least, greatest, what it is): what a genesis may set
PARAMS: dict[str, tuple[int, int, int, str]] = {
    # A loan carries every restructuring's record; twenty is far past any supervisor's patience.
    "max_restructurings": (DEFAULT_MAX_RESTRUCTURINGS, 1, 20, "restructurings per loan"),
    # Shorter than a minute could not be answered in time; longer than a year is no offer any more.
    "restructure_offer_ms": (DEFAULT_OFFER_MS, 60_000, 365 * DAY_MS, "milliseconds a proposal stays open"),
}


def limit_param(params: dict[str, Any], name: str) -> int:
    """The chain's value of one of ``PARAMS`` (its default when the genesis does not set it)."""
    return params.get(name, PARAMS[name][0])


def genesis_problem(app: dict[str, Any]) -> tuple[str, str] | None:
    """``(key, what is wrong)`` for a genesis ``[app]`` value of ``PARAMS`` out of bounds; None when
    they are fine (``node.config`` also refuses a key that looks like a typo of theirs)."""
    for name, (_, least, greatest, what) in PARAMS.items():
        value = app.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= greatest:
            return name, f"must be an integer from {least} to {greatest} ({what}), got {value!r}"
    return None


def times(count: int) -> str:
    return "once" if count == 1 else "twice" if count == 2 else f"{count} times"


def check_limit(ctx: TxContext, where: str, loan: dict[str, Any]) -> None:
    """Refuse a restructuring (proposed or accepted) of a loan already at the chain's limit (rules 6)."""
    if ctx.rules < SINCE_RULES:
        return
    done = len(loan.get("restructurings", ()))
    limit = limit_param(ctx.params, "max_restructurings")
    if done >= limit:
        raise TxRejected(
            "invalid_state",
            f"{where}: the loan has been restructured {times(done)}, and this chain allows at most "
            f"{limit} restructuring{'' if limit == 1 else 's'} of a loan (max_restructurings); repeated "
            "forbearance is a supervisory red flag: the servicer resolves the loan otherwise (repayment, "
            "a transfer, or a write-off once it defaults)",
        )


def offer_expiry(ctx: TxContext) -> dict[str, int]:
    """What a new proposal records of its expiry: ``{"expires_ms": …}`` from rules 6, else nothing."""
    if ctx.rules < SINCE_RULES:
        return {}
    return {"expires_ms": ctx.timestamp_ms + limit_param(ctx.params, "restructure_offer_ms")}


def expired(proposal: dict[str, Any], now_ms: int | None) -> bool:
    """Whether the proposal has expired at ``now_ms`` (None: no time to judge at, so it has not)."""
    expires_ms = proposal.get("expires_ms")
    return expires_ms is not None and now_ms is not None and now_ms >= expires_ms


def expired_refusal(where: str, proposal: dict[str, Any], now_ms: int) -> TxRejected:
    """The refusal of a transaction acting on an expired proposal (code ``expired``)."""
    return TxRejected(
        "expired",
        f"{where}: its restructuring offered at height {proposal['height']} expired at block time "
        f"{proposal['expires_ms']} ms (this block's is {now_ms} ms); the servicer may propose again "
        "with loan.restructure",
    )
