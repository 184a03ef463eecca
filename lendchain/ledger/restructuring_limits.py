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
  default 3), with a sentence naming the count
  and the limit. The acceptance checks it again, for a proposal made under
  rules 5 that would take the loan past the limit, so that no loan
  restructured under rules 6 holds more than ``max_restructurings`` records
  (which also bounds the loan record, read on every touch of the loan).
  The limit in force is the block's: lowered by ``params.set``, a loan
  already restructured as often is restructured no more.
- Expiry. A proposal records ``expires_ms``: its block's time plus
  ``restructure_offer_ms`` (chain parameter, default 30 days). An acceptance, a consent or a
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

The parameters, their defaults and bounds are in the registry (``params``):
set by the genesis ``[app]`` (a node refuses a genesis with a value out of
bounds, or a key that looks like a typo of theirs: ``node.config``), and
changed by governance (``params.set``; a proposal keeps the ``expires_ms``
it was made with).
"""

from __future__ import annotations

from typing import Any

from lendchain.ledger.context import TxContext
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.params import value

SINCE_RULES = 6


def times(count: int) -> str:
    return "once" if count == 1 else "twice" if count == 2 else f"{count} times"


def check_limit(ctx: TxContext, where: str, loan: dict[str, Any]) -> None:
    """Refuse a restructuring (proposed or accepted) of a loan already at the chain's limit (rules 6)."""
    if ctx.rules < SINCE_RULES:
        return
    done = len(loan.get("restructurings", ()))
    limit = value(ctx.params, "max_restructurings")
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
    return {"expires_ms": ctx.timestamp_ms + value(ctx.params, "restructure_offer_ms")}


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
