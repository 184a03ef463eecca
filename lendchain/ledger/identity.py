"""Identity, consent and credit data: KYC attestations, consents, credit reports.

Kinds:

- ``kyc.attest`` {subject, level, expires_ms, evidence_hash}: a member with the
  ``kyc`` role attests a registered party. Only the level, the expiry and the
  hash of the evidence the member keeps off chain are stored.
- ``consent.grant`` {member, scopes, until_ms}: a registered party lets a
  member use the named scopes (``kyc``, ``credit``, ``documents``, comma
  separated) until a block time. ``consent.revoke`` {member} ends it.
- ``credit.report`` {subject, income_band, dti_bps, history_months,
  obligations, evidence_hash}: a member with the ``bureau`` or ``lender`` role
  reports coarse credit features of a party that consented to scope
  ``credit`` for that member. The latest report of a subject counts. From
  rules 7 the subject may dispute it (``disputes``), and a member's report of
  a subject is refused in a block where the subject disputed one of that
  member's reports made in the same block (``dispute_records.check_report_slot``).

Times are block timestamps (ms); an attestation or consent is valid while
the block time is before its expiry. The repayment history the score also
uses is summed from the borrower's loans (counters kept by ``servicing``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lendchain.ledger import pagedlist
from lendchain.ledger.context import TxContext
from lendchain.ledger.dispute_records import SINCE_RULES as DISPUTES_SINCE
from lendchain.ledger.dispute_records import check_report_slot, report_standing
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.kinds import register_kind
from lendchain.ledger.member_names import member_name
from lendchain.ledger.schema import Field, Schema
from lendchain.ledger.scoring import EMPTY_HISTORY, REPORT_FACTORS, SCORECARD_KEY, Score, credit_score
from lendchain.ledger.state import (
    borrower_loans_key,
    credit_key,
    institution_key,
    loan_key,
    party_key,
    roster_dids,
)

if TYPE_CHECKING:
    from lendchain.ledger.transactions import Transaction

SCOPES = ("kyc", "credit", "documents")
DID_PATTERN = r"did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}"
HEX_HASH = r"[0-9a-f]{64}"
_SCOPES_PATTERN = rf"({'|'.join(SCOPES)})(,({'|'.join(SCOPES)}))*"
KYC_LEVELS = (1, 2, 3)

Getter = Callable[[bytes], Any]


def kyc_key(did: str) -> bytes:
    return b"kyc/" + did.encode()


def consent_key(party: str, member: str) -> bytes:
    return b"consent/" + party.encode() + b"/" + member.encode()


# Reads shared by handlers (ctx.get) and queries (a reader's decoded get) --------


def member_roles_of(get: Getter, did: str) -> tuple[str, ...]:
    institution = get(institution_key(did))
    return tuple(institution["roles"]) if institution else ()


def valid_kyc(get: Getter, did: str, now_ms: int) -> dict[str, Any] | None:
    """The party's KYC attestation if it has not expired at ``now_ms``."""
    attestation = get(kyc_key(did))
    if attestation is None or attestation["expires_ms"] <= now_ms:
        return None
    return attestation


def has_consent(get: Getter, party: str, member: str, scope: str, now_ms: int) -> bool:
    consent = get(consent_key(party, member))
    return consent is not None and scope in consent["scopes"] and consent["until_ms"] > now_ms


def consents_of(get: Getter, did: str, as_of_ms: int | None = None) -> list[dict[str, Any]]:
    """The consents ``did`` has given and not revoked, in member order: each member's name, the
    scopes, until when and from which block, and whether it is ``in_force`` at ``as_of_ms`` (without
    a time, whether it was given at all). For the party view; one read per member (there is no
    index of a party's consents, and the roster is small)."""
    consents = []
    for member in roster_dids(get):
        consent = get(consent_key(did, member))
        if consent is None:
            continue
        consents.append(
            {
                "member": member,
                "name": member_name(get, member),
                "scopes": list(consent["scopes"]),
                "until_ms": consent["until_ms"],
                "height": consent["height"],
                "in_force": as_of_ms is None or consent["until_ms"] > as_of_ms,
            }
        )
    return consents


# From this rules version a loan counts each time it defaults (``default_episodes``)
DEFAULT_EPISODES_SINCE = 6


def default_episodes(loan: dict[str, Any]) -> int:
    """How many times the loan defaulted, as the repayment history counts it.

    A default stamps ``defaulted_ms`` (each time: a restructuring makes a
    defaulted loan current again, and it may default again). Under rules 5 that
    was all, so a loan counted once however often it defaulted. From rules
    ``DEFAULT_EPISODES_SINCE`` each default also raises the loan's ``defaults``
    (``servicing.evaluate``), starting from this count: a loan that defaulted
    under older rules (once or more, the record cannot tell) counts once for
    those, then once more per default. One read of the loan's own fields: the
    score stays O(1) per loan, and a rules-5 loan's bytes are untouched.
    """
    return loan.get("defaults", 1 if loan.get("defaulted_ms") is not None else 0)


def repayment_history(get: Getter, did: str) -> dict[str, Any]:
    """Instalments paid on time and late, loans defaulted, closed and written off, restructurings
    accepted, over the borrower's loans, and what was recovered after write-offs, per currency.

    A written-off loan keeps its ``defaulted_ms`` (only a defaulted loan is
    written off), so it counts among ``defaults`` as before the write-off, and
    once more among ``written_off``, which the score shows and does not weigh:
    a write-off never improves a score. Nor does a recovery on it (rules 5,
    ``writeoff``): ``recovered`` only shows the amounts, and the score never
    reads them. A restructured loan (``restructuring``) keeps its
    ``defaulted_ms`` too, and the instalments in arrears when it was
    restructured count as ``late``; ``restructurings`` counts each one
    accepted, which the score shows and does not weigh. ``defaults`` counts
    default episodes (``default_episodes``): from rules 6 a loan that
    defaults again after a restructuring counts again.
    """
    history: dict[str, Any] = dict(EMPTY_HISTORY)
    recovered: dict[str, int] = {}
    for loan_id in pagedlist.items(get, borrower_loans_key(did)):
        loan = get(loan_key(loan_id))
        history["on_time"] += loan.get("on_time", 0)
        history["late"] += loan.get("late", 0)
        history["defaults"] += default_episodes(loan)
        history["closed"] += 1 if loan["state"] == "closed" else 0
        history["written_off"] += 1 if loan["state"] == "written_off" else 0
        history["restructurings"] += len(loan.get("restructurings", ()))
        if "recovered" in loan:
            recovered[loan["currency"]] = recovered.get(loan["currency"], 0) + loan["recovered"]["total"]
    history["recovered"] = dict(sorted(recovered.items()))
    return history


def score_of(get: Getter, did: str, as_of_ms: int | None = None) -> Score:
    """The borrower's score from the latest credit report, chain history and scorecard, at ``as_of_ms``.

    The time matters only for a report under dispute (rules 7): from the dispute's deadline an
    unanswered one no longer counts (``dispute_records.report_standing``; without a time, as when
    the dispute was opened). A handler passes its block's time, a view the time it judges at.
    """
    standing = report_standing(get, did, get(credit_key(did)), as_of_ms)
    history = repayment_history(get, did)
    return credit_score(standing.report, history, get(SCORECARD_KEY), standing.note)


# Handlers ---------------------------------------------------------------------


def _require_role(ctx: TxContext, tx: Transaction, roles: tuple[str, ...]) -> None:
    if not set(member_roles_of(ctx.get, tx.sender)) & set(roles):
        raise TxRejected(
            "forbidden",
            f"{tx.kind} needs a member with the {' or '.join(roles)} role; {tx.sender} is not one",
        )


def _require_party(ctx: TxContext, tx: Transaction, did: str, field: str) -> dict[str, Any]:
    party = ctx.get(party_key(did))
    if party is None:
        raise TxRejected("not_found", f"{tx.kind} field {field!r} names no registered party ({did})")
    return party


def _require_future(ctx: TxContext, tx: Transaction, field: str) -> int:
    until = tx.payload[field]
    if until <= ctx.timestamp_ms:
        raise TxRejected(
            "bad_payload",
            f"{tx.kind} field {field!r} is {until}, not after the block time {ctx.timestamp_ms}",
        )
    return until


def attest_kyc(ctx: TxContext, tx: Transaction) -> None:
    _require_role(ctx, tx, ("kyc",))
    subject = tx.payload["subject"]
    _require_party(ctx, tx, subject, "subject")
    expires = _require_future(ctx, tx, "expires_ms")
    ctx.put(
        kyc_key(subject),
        {
            "level": tx.payload["level"],
            "expires_ms": expires,
            "evidence_hash": bytes.fromhex(tx.payload["evidence_hash"]),
            "attester": tx.sender,
            "height": ctx.height,
        },
    )
    ctx.emit("kyc.attested", subject=subject, level=tx.payload["level"], expires_ms=expires)


def grant_consent(ctx: TxContext, tx: Transaction) -> None:
    _require_party(ctx, tx, tx.sender, "sender")
    member = tx.payload["member"]
    if ctx.get(institution_key(member)) is None:
        raise TxRejected("not_found", f"consent.grant field 'member' names no consortium member ({member})")
    until = _require_future(ctx, tx, "until_ms")
    scopes = sorted(set(tx.payload["scopes"].split(",")))
    ctx.put(consent_key(tx.sender, member), {"scopes": scopes, "until_ms": until, "height": ctx.height})
    ctx.emit("consent.granted", party=tx.sender, member=member, scopes=scopes, until_ms=until)


def revoke_consent(ctx: TxContext, tx: Transaction) -> None:
    member = tx.payload["member"]
    if ctx.get(consent_key(tx.sender, member)) is None:
        raise TxRejected(
            "not_found", f"consent.revoke field 'member': {tx.sender} has given no consent to {member}"
        )
    ctx.delete(consent_key(tx.sender, member))
    ctx.emit("consent.revoked", party=tx.sender, member=member)


def report_credit(ctx: TxContext, tx: Transaction) -> None:
    _require_role(ctx, tx, ("bureau", "lender"))
    subject = tx.payload["subject"]
    _require_party(ctx, tx, subject, "subject")
    if not has_consent(ctx.get, subject, tx.sender, "credit", ctx.timestamp_ms):
        raise TxRejected(
            "forbidden",
            f"credit.report field 'subject': {subject} has not consented to scope 'credit' for {tx.sender}",
        )
    if ctx.rules >= DISPUTES_SINCE:
        check_report_slot(ctx, subject, tx.sender, "credit.report")
    report = {name: tx.payload[name] for name in REPORT_FACTORS}
    report |= {
        "evidence_hash": bytes.fromhex(tx.payload["evidence_hash"]),
        "reporter": tx.sender,
        "height": ctx.height,
    }
    ctx.put(credit_key(subject), report)
    ctx.emit("credit.reported", subject=subject, reporter=tx.sender)


_DID = {"type": "str", "pattern": DID_PATTERN}
# A report's features (``scoring.REPORT_FACTORS``), as credit.report and a correction
# (``disputes``: credit.dispute_answer) carry them.
REPORT_FIELDS = (
    Field("income_band", "int", min=1, max=10),
    Field("dti_bps", "int", min=0, max=1_000_000),
    Field("history_months", "int", min=0, max=1200),
    Field("obligations", "int", min=0, max=1000),
)
_EVIDENCE = Field("evidence_hash", "str", pattern=HEX_HASH)
_TIME = {"type": "int", "min": 0, "max": 2**62}

register_kind(
    "kyc.attest",
    Schema(
        (
            Field("subject", **_DID),
            Field("level", "int", min=KYC_LEVELS[0], max=KYC_LEVELS[-1]),
            Field("expires_ms", **_TIME),
            _EVIDENCE,
        )
    ),
    attest_kyc,
)
register_kind(
    "consent.grant",
    Schema(
        (
            Field("member", **_DID),
            Field("scopes", "str", max=64, pattern=_SCOPES_PATTERN),
            Field("until_ms", **_TIME),
        )
    ),
    grant_consent,
)
register_kind("consent.revoke", Schema((Field("member", **_DID),)), revoke_consent)
register_kind("credit.report", Schema((Field("subject", **_DID), *REPORT_FIELDS, _EVIDENCE)), report_credit)
