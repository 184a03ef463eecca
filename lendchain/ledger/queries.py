"""Read-only views of ledger state as JSON-ready dicts (bytes become hex).

``lookup(reader, kind, ref)`` is what the API's ``/loans/{id}`` and
``/parties/{did}`` answer; it returns None for anything unknown, including a
reference that is not even well-formed (the API refuses those with a 400 before
it asks: ``node/api_input.py``; None it answers with a 404). A view that judges something at a time (a loan's
forbearance, ``forbearance``; its days past due and stage, ``staging``) is
registered ``timed`` and takes the ``as_of_ms`` a caller gives ``lookup``:
the node gives its head block's time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lendchain import codec
from lendchain.ledger import pagedlist
from lendchain.ledger.addresses import current_addresses
from lendchain.ledger.amortization import loan_schedule
from lendchain.ledger.assignment import share_offer_views
from lendchain.ledger.collateral_views import asset_view, loan_collateral
from lendchain.ledger.dispute_records import disputes_view, subject_disputes
from lendchain.ledger.documents import document_key
from lendchain.ledger.forbearance import forbearance
from lendchain.ledger.funder_consent import tally
from lendchain.ledger.governance import OPEN_PROPOSALS_KEY, proposal_key, quorum
from lendchain.ledger.guarantee_views import loan_guarantees
from lendchain.ledger.guarantees import guarantor_index_key
from lendchain.ledger.identity import consents_of, credit_key, kyc_key, repayment_history, score_of
from lendchain.ledger.keyrotation import member_signers, node_keys_view
from lendchain.ledger.lifecycle import WRITTEN_OFF
from lendchain.ledger.loans import outstanding_principal
from lendchain.ledger.member_names import MemberNames
from lendchain.ledger.membership import members_view, voting_changes, voting_dids_after_changes, voting_view
from lendchain.ledger.params_change import params_view
from lendchain.ledger.policies import policy_key
from lendchain.ledger.restructuring import lapse_of
from lendchain.ledger.restructuring_limits import expired
from lendchain.ledger.schedule import Progress, amount_owed
from lendchain.ledger.servicing import SERVICED_STATES, due_ms, penalty_due, unpaid_instalments
from lendchain.ledger.staging import COMMITTED_STATES, credit_stage, standing_of
from lendchain.ledger.state import (
    StateReader,
    borrower_loans_key,
    funder_loans_key,
    history_entry_hash,
    institution_key,
    lender_loans_key,
    loan_history_key,
    loan_key,
    next_nonce,
    offer_key,
    party_key,
    read_value,
)
from lendchain.ledger.transfers import pending_transfer, servicing_duties
from lendchain.ledger.writeoff import net_loss

_HEX_ID = re.compile(r"[0-9a-f]{64}")
REMINDER_INSTALMENTS = 3  # the next unpaid instalments shown per loan


def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value


def get_party(reader: StateReader, did: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """A registered party (role borrower/investor), a genesis member (role member), or a key
    a member rotated to (kind member_key: which member it signs for, and from when); a party's
    reminders have their loans' stages at ``as_of_ms`` (``get_reminders``)."""
    party = read_value(reader, party_key(did))
    if party is not None:
        return {
            "did": did,
            "kind": "party",
            **to_json(party),
            "nonce": next_nonce(reader, did),
            **credit_view(reader, did, as_of_ms),
            **indexed_views(reader, did),
        }
    institution = read_value(reader, institution_key(did))
    if institution is not None:
        changes = voting_changes(reader).get(institution["name"], [])
        return {
            "did": did,
            "kind": "member",
            "role": "member",
            **to_json(institution),  # its "voting" is the genesis's; member.voting changes follow
            "voting_changes": [{"effective_height": h, "voting": voting} for h, voting in changes],
            **moved_to(reader, institution["name"]),
            "nonce": next_nonce(reader, did),
            **indexed_views(reader, did),
        }
    signer = member_signers(reader).get(did)
    if signer is not None:  # a member's rotated-to key: it signs for the member in its heights
        later = signer.heights[signer.position + 1 :]
        return {
            "did": did,
            "kind": "member_key",
            "member": signer.name,
            "member_did": signer.member_did,
            "signs_from_height": signer.heights[signer.position],
            "signs_until_height": later[0] if later else None,
            "nonce": next_nonce(reader, did),
        }
    return None


def indexed_views(reader: StateReader, did: str) -> dict[str, int]:
    """How many loans ``did``'s funder index holds (``funder_loans``: its ``GET /positions/{did}``
    exists when any) and how many guarantees were proposed to it (``guarantees_proposed_to``, rules 7:
    a member's ``GET /exposure/{did}`` exists when any), so that a reader such as the console asks
    for those views only when they exist. One read of each index's length."""

    def get(key: bytes) -> Any:
        return read_value(reader, key)

    return {
        "funder_loans": pagedlist.length(get, funder_loans_key(did)),
        "guarantees_proposed_to": pagedlist.length(get, guarantor_index_key(did)),
    }


def moved_to(reader: StateReader, name: str) -> dict[str, str]:
    """``{"address": …}`` when a ``member.address`` change moved the member's node, else nothing."""
    address = current_addresses(reader).get(name)
    return {"address": address} if address else {}


def credit_view(reader: StateReader, did: str, as_of_ms: int | None = None) -> dict[str, Any]:
    """A party's KYC attestation (with its attesting member's name, ``attester_name``), the consents
    it gave (``identity.consents_of``), latest credit report (with its reporter's name,
    ``reporter_name``), how many loans it applied for (``borrower_loans``), repayment history,
    explained score and, from rules 7, its disputes of its credit reports
    (``dispute_records.subject_disputes``: counts and the newest), the consents, score and disputes
    judged at ``as_of_ms``. The names are read here, not stored: a reader needs no member list."""

    def get(key: bytes) -> Any:
        return read_value(reader, key)

    names = MemberNames(get)
    return {
        "kyc": _named_by(names, get(kyc_key(did)), "attester"),
        "consents": consents_of(get, did, as_of_ms),
        "borrower_loans": pagedlist.length(get, borrower_loans_key(did)),
        "credit_report": _named_by(names, get(credit_key(did)), "reporter"),
        "repayment_history": repayment_history(get, did),
        "credit_score": score_of(get, did, as_of_ms).to_value(),
        "disputes": subject_disputes(get, did, as_of_ms),
        "reminders": (get_reminders(reader, did, as_of_ms) or {"loans": []})["loans"],
    }


def _named_by(names: MemberNames, record: dict[str, Any] | None, field: str) -> dict[str, Any] | None:
    """``record`` as JSON with the name of the member its ``field`` holds the DID of (``{field}_name``)."""
    return None if record is None else names.named(to_json(record), field)


def get_score(reader: StateReader, did: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """The explained credit score of a registered party at ``as_of_ms`` (None for anyone else)."""
    if read_value(reader, party_key(did)) is None:
        return None
    return {"did": did, **score_of(lambda key: read_value(reader, key), did, as_of_ms).to_value()}


def get_offer(reader: StateReader, offer_id: bytes) -> dict[str, Any] | None:
    offer = read_value(reader, offer_key(offer_id))
    return None if offer is None else {"offer_id": offer_id.hex(), **to_json(offer)}


def get_loan(reader: StateReader, loan_id: bytes, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """A loan with its offers, history and, once an offer is accepted, schedule and balances; its
    lender's name (``lender_name``), a transfer's recipient's (``to_name``) and, in ``member_names``
    (``{did: name}``), the name of every member the view names anywhere (its funders, the members
    its shares are offered and sold to, its guarantors, the servicers in its history), read here,
    not stored.

    A written-off loan owes nothing on chain (outstanding principal and amount
    owed 0); what was written off is its ``written_off`` record, what was
    recovered since its ``recovered`` record (once there is one), and what is
    still lost ``net_loss`` (``writeoff.net_loss``: per component and in all);
    from rules 6 its ``recovery_handovers`` (each servicer that handed its
    recovery on) and ``recovery_ended``, once they exist. A ``transfer`` still
    recorded has a ``status``: ``pending``, or ``lapsed`` (``transfers.pending_transfer``), and so
    has each share offer of a syndicated loan's ``funding`` (rules 6; ``assignment.share_offer_views``).
    Once the loan is disbursed each schedule row has its ``due_ms``; after a
    restructuring (``restructuring``) the rows are the paid ones and the new schedule's, its
    ``restructurings`` say what each changed, and a proposal still recorded
    has a ``status``: ``pending``, ``lapsed`` and why (``lapsed_because``), or
    from rules 6 ``expired`` (its ``expires_ms`` at or before ``as_of_ms``;
    ``restructuring_limits``), and on a syndicated loan its funders' ``consents`` and, while it is
    pending, their ``consent``: how far they are from the majority
    (``funder_consent.tally``). Its ``forbearance`` is None unless it was
    restructured, and then its status as a forborne exposure at ``as_of_ms``
    (``forbearance.forbearance``). Its ``days_past_due``, IFRS 9 ``stage``
    and the ``stage_reasons`` that put it there are judged at ``as_of_ms`` too
    (``stage_as_of_ms``; ``staging.credit_stage``: an undisbursed commitment's from its borrower's
    newest loans, without days past due; None for a loan neither drawn nor committed, or no
    longer outstanding, with the reason why). Its ``collateral``, ``collateral_value`` and
    loan-to-value ``ltv_bps`` are ``collateral_views.loan_collateral``'s (rules 6), its
    ``guarantees`` (each with its status at ``as_of_ms``) and ``guaranteed`` part
    ``guarantee_views.loan_guarantees``'s (rules 7).
    """
    loan = read_value(reader, loan_key(loan_id))
    if loan is None:
        return None
    names = MemberNames(lambda key: read_value(reader, key))
    view = {"loan_id": loan_id.hex(), **to_json(loan)}
    view["offers"] = [get_offer(reader, offer_id) for offer_id in loan["offers"]]
    view["documents"] = [
        {"document_id": doc_id.hex(), **to_json(read_value(reader, document_key(doc_id)))}
        for doc_id in loan.get("documents", [])
    ]
    raw_history = [reader.get(loan_history_key(loan_id, n)) for n in range(loan["history_len"])]
    view["history"] = [to_json(codec.unpack(raw)) for raw in raw_history]
    # The hash of the last entry commits to the whole history (each entry names its predecessor's).
    view["history_head"] = history_entry_hash(raw_history[-1]).hex() if raw_history else None
    view["lender_name"] = names(loan["lender"])
    if view.get("transfer") is not None:  # one still recorded on a closed or written-off loan may have lapsed
        view["transfer"]["status"] = "pending" if pending_transfer(loan) is not None else "lapsed"
        view["transfer"]["to_name"] = names(loan["transfer"]["to"])
    if "share_offers" in view.get("funding", {}):  # rules 6: whether each share offer is still pending
        view["funding"]["share_offers"] = share_offer_views(loan)
    if view.get("restructuring") is not None:
        lapse = lapse_of(loan)
        if lapse is not None:
            view["restructuring"] |= {"status": "lapsed", "lapsed_because": lapse}
        elif expired(loan["restructuring"], as_of_ms):
            view["restructuring"]["status"] = "expired"
        else:
            view["restructuring"]["status"] = "pending"
        pending = view["restructuring"]["status"] == "pending"
        if pending and "consents" in loan["restructuring"]:  # how far from its funders' majority
            view["restructuring"]["consent"] = tally(
                lambda key: read_value(reader, key), loan, loan["restructuring"]
            )
    if loan["rate_bps"] is not None:
        rows = loan_schedule(loan)
        view["schedule"] = [row.to_value() for row in rows]
        if loan["disbursed_ms"] is not None:
            for row in view["schedule"]:
                row["due_ms"] = due_ms(loan, row["number"])
        view["outstanding_principal"] = outstanding_principal(loan)
        view["amount_owed"] = amount_owed(rows, Progress(*loan["progress"]))
        # Accrued and neither paid nor capitalised by a restructuring (``penalty_owed`` is all accrued).
        view["penalty_due"] = penalty_due(loan)
        if loan["state"] == WRITTEN_OFF:  # nothing is owed on chain any more: its written_off says what was
            view["outstanding_principal"] = view["amount_owed"] = view["penalty_due"] = 0
            view["net_loss"] = net_loss(loan)
        view["instalments_paid"] = loan["progress"][0]
    view["forbearance"] = forbearance(reader, loan_id, loan, as_of_ms)
    # A commitment's stage is its borrower's record on its newest loans (``staging.standing_of``).
    standing = standing_of(reader, loan["borrower"], as_of_ms) if loan["state"] in COMMITTED_STATES else None
    view.update(credit_stage(loan, view["forbearance"], as_of_ms, standing))
    view.update(loan_collateral(reader, loan_id, loan))
    view.update(loan_guarantees(lambda key: read_value(reader, key), loan_id, loan, as_of_ms))
    view["member_names"] = names.names_in(view)
    return view


def get_reminders(reader: StateReader, did: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """The instalments a borrower owes, or a servicer expects, on its live loans.

    The chain has no clock of its own, so each instalment carries its
    ``due_ms`` and the caller compares it with its time (or the head block's);
    ``penalty_due`` is what accrued up to the loan's last evaluation. Each
    loan's ``days_past_due`` and IFRS 9 ``stage`` are judged at ``as_of_ms``
    (``staging.credit_stage``; without it, as of the loan's record). A
    servicer's index also holds the loans it handed on, or was offered, by
    ``loan.transfer``: only those it services now are its.
    """
    rows = []
    for role, key in (("borrower", borrower_loans_key(did)), ("servicer", lender_loans_key(did))):
        for loan_id in pagedlist.items(lambda k: read_value(reader, k), key):
            loan = read_value(reader, loan_key(loan_id))
            if loan["state"] not in SERVICED_STATES or (role == "servicer" and loan["lender"] != did):
                continue
            schedule = loan_schedule(loan)
            unpaid = unpaid_instalments(loan, schedule)[:REMINDER_INSTALMENTS]
            rows.append(
                {
                    "loan_id": loan_id.hex(),
                    "role": role,
                    "state": loan["state"],
                    "penalty_due": penalty_due(loan),
                    **_stage_of(reader, loan_id, loan, as_of_ms),
                    "instalments": [
                        {"number": n, "due_ms": due_ms(loan, n), "amount": left} for n, left in unpaid
                    ],
                }
            )
    if (
        not rows
        and read_value(reader, party_key(did)) is None
        and read_value(reader, institution_key(did)) is None
    ):
        return None
    return {"did": did, "loans": rows}


def _stage_of(
    reader: StateReader, loan_id: bytes, loan: dict[str, Any], as_of_ms: int | None
) -> dict[str, Any]:
    """A drawn loan's ``stage`` and ``days_past_due`` at ``as_of_ms`` (``staging.credit_stage``)."""
    staged = credit_stage(loan, forbearance(reader, loan_id, loan, as_of_ms), as_of_ms)
    return {"stage": staged["stage"], "days_past_due": staged["days_past_due"]}


def _by_hex_id(
    key_of: Callable[[bytes], bytes], name: str
) -> Callable[[StateReader, str], dict[str, Any] | None]:
    def lookup_one(reader: StateReader, ref: str) -> dict[str, Any] | None:
        if not _HEX_ID.fullmatch(ref):
            return None
        value = read_value(reader, key_of(bytes.fromhex(ref)))
        return None if value is None else {f"{name}_id": ref, **to_json(value)}

    return lookup_one


OPEN_PROPOSALS_SHOWN = 100
_proposal_by_id = _by_hex_id(proposal_key, "proposal")


def _proposal(reader: StateReader, ref: str) -> dict[str, Any] | None:
    """One proposal by id; or ``open``: the proposals open for votes, the soonest to expire first.
    Each with ``member_names``: the names of its proposer, its voters and any member it changes."""
    names = MemberNames(lambda key: read_value(reader, key))
    if ref != "open":
        found = _proposal_by_id(reader, ref)
        return None if found is None else {**found, "member_names": names.names_in(found)}
    entries = read_value(reader, OPEN_PROPOSALS_KEY) or []
    # A reader does not know its height: the voters once every scheduled member.voting change
    # is in force (the genesis voters until the first one) give the quorum and count the votes.
    voters = voting_dids_after_changes(reader)
    proposals = []
    for _, proposal_id in entries[:OPEN_PROPOSALS_SHOWN]:
        proposal = read_value(reader, proposal_key(proposal_id))
        counted = [did for did in proposal["votes"] if did in voters]
        shown = {"proposal_id": proposal_id.hex(), **to_json(proposal), "counted_votes": counted}
        proposals.append({**shown, "member_names": names.names_in(shown)})
    return {"open": len(entries), "needed": quorum(len(voters)), "proposals": proposals}


def _loan(reader: StateReader, ref: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
    return get_loan(reader, bytes.fromhex(ref), as_of_ms) if _HEX_ID.fullmatch(ref) else None


def _members(reader: StateReader, name: str) -> dict[str, Any] | None:
    """``members_view``; for one member, also the loans it services (what ``member.remove`` waits for):
    open loans, transfers pending to it, and written-off loans whose recovery it services with money
    left to recover (``written_off_recovering``: from rules 6 they keep it too).

    Counted by one walk of its lender index (``transfers.servicing_duties``),
    so only when one member is asked for, not for ``*``.
    """
    view = members_view(reader, name)
    if view is None or name == "*":
        return view
    for member in view["members"]:
        duties = servicing_duties(lambda key: read_value(reader, key), member["did"])
        member["open_loans_serviced"], member["transfers_pending_to"] = duties.services, duties.named
        member["written_off_recovering"] = duties.recovering
    return view


def _offer(reader: StateReader, ref: str) -> dict[str, Any] | None:
    return get_offer(reader, bytes.fromhex(ref)) if _HEX_ID.fullmatch(ref) else None


_LOOKUPS: dict[str, Callable[..., dict[str, Any] | None]] = {
    "loan": _loan,
    "offer": _offer,
    "party": get_party,
    "score": get_score,
    "reminders": get_reminders,
    "policy": _by_hex_id(policy_key, "policy"),
    "proposal": _proposal,
    "node_keys": node_keys_view,
    "voting": voting_view,
    "members": _members,
    "params": params_view,
    "collateral": asset_view,  # an asset's liens (``collateral_views``)
    "disputes": disputes_view,  # a party's or a member's credit disputes (``dispute_records``, rules 7)
}


_TIMED = {"loan", "party", "reminders", "score", "disputes"}  # the lookups that take ``as_of_ms``


def register_lookup(
    kind: str, lookup_fn: Callable[..., dict[str, Any] | None], *, timed: bool = False
) -> None:
    """Let a domain module answer ``lookup(reader, kind, ref)`` for a new kind; a ``timed`` one is
    called with ``as_of_ms`` as well."""
    if kind in _LOOKUPS:
        raise ValueError(f"lookup kind {kind!r} is already registered")
    _LOOKUPS[kind] = lookup_fn
    if timed:
        _TIMED.add(kind)


def lookup(reader: StateReader, kind: str, ref: str, *, as_of_ms: int | None = None) -> dict[str, Any] | None:
    """The JSON view of ``ref`` of ``kind`` (loan, offer, party), or None when unknown.

    ``as_of_ms`` is the time a timed view judges at (the head block's); without it, each such view
    says what it falls back to.
    """
    found = _LOOKUPS.get(kind)
    if found is None:
        raise ValueError(f"unknown lookup kind {kind!r}; known: {', '.join(sorted(_LOOKUPS))}")
    return found(reader, ref, as_of_ms=as_of_ms) if kind in _TIMED else found(reader, ref)
