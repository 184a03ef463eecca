"""Guarantees of loans (``loan.guarantee`` and its accept, withdraw, release and call, rules 7; see
``ledger.guarantees``): what each records, who may, each refusal, and the ledger's releases.

The chains start on rules 7 from the genesis unless a test says otherwise. bank1 and bank2 are the
lenders, bank3 a regulator and bank4 the kyc member; the loan is ``test_loan_transfer``'s (120,000 EUR
of bank1's, disbursed); gina is a registered party that guarantees it.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import pagedlist
from lendchain.ledger.guarantees import MAX_PER_LOAN, guarantee_key, guarantor_index_key
from lendchain.ledger.state import read_value
from tests.ledger.chain import domain_events, seeded_key
from tests.ledger.test_loan_transfer import accept, loan, ok, open_loan, repay, transfer, with_borrower
from tests.ledger.test_recovery import recover
from tests.ledger.test_write_off import default, write_off
from tests.ledger.test_written_off_transfer import end

GINA = seeded_key(20)
HAL = seeded_key(21)
DEED = "de" * 32


@pytest.fixture
def world():
    return guarantee_world()


def guarantee_world(version=7):
    chain, members, borrower = with_borrower(version=version)
    for party in (GINA, HAL):
        ok(chain, party, "party.register", {"role": "borrower"})
    return chain, members, borrower, open_loan(chain, borrower, members[0])


def propose(chain, servicer, loan_id, guarantor=GINA, amount=60_000, kind="personal", **extra):
    did = guarantor if isinstance(guarantor, str) else guarantor.did
    payload = {"loan_id": loan_id, "guarantor": did, "amount": amount, "kind": kind, "evidence_hash": DEED}
    return chain.run_one(chain.tx(servicer, "loan.guarantee", {**payload, **extra}))


def act(chain, key, kind, loan_id, guarantee_id, **extra):
    payload = {"loan_id": loan_id, "guarantee_id": guarantee_id, **extra}
    return chain.run_one(chain.tx(key, f"loan.guarantee_{kind}", payload))


def guaranteed_by(chain, servicer, loan_id, guarantor=GINA, **extra):
    """A guarantee ``servicer`` proposed and ``guarantor`` accepted; its id."""
    proposed = propose(chain, servicer, loan_id, guarantor, **extra)
    assert proposed.ok, proposed.message
    guarantee_id = proposed.tx_id.hex()
    accepted = act(chain, guarantor, "accept", loan_id, guarantee_id)
    assert accepted.ok, accepted.message
    return guarantee_id


def stored(chain, guarantee_id):
    return read_value(chain.state, guarantee_key(bytes.fromhex(guarantee_id)))


def listed(chain, loan_id):
    """The loan view's guarantees as (status, cap, called, contingent)."""
    view = loan(chain, loan_id)
    return [(g["status"], g["amount"], g["called"], g["contingent"]) for g in view["guarantees"]]


# Proposing and accepting ----------------------------------------------------------------------------


def test_a_proposed_guarantee_is_kept_indexed_and_told_but_binds_only_once_the_guarantor_accepts(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    proposed = propose(chain, bank1, loan_id, expires_ms=chain.head_ms + 10**9)
    assert proposed.ok, proposed.message
    guarantee_id = proposed.tx_id.hex()
    fields = {"guarantee_id": guarantee_id, "guarantor": GINA.did, "amount": 60_000, "kind": "personal"}
    assert domain_events(proposed.events) == [
        {"event": "loan.guarantee_proposed", "loan_id": loan_id, **fields, "currency": "EUR"}
    ]
    record = stored(chain, guarantee_id)
    assert record["state"] == "proposed" and record["proposed_by"] == bank1.did
    assert record["evidence_hash"] == bytes.fromhex(DEED) and record["called"] == 0
    assert record["expires_ms"] == chain.head_ms - 1000 + 10**9
    index = pagedlist.items(lambda k: read_value(chain.state, k), guarantor_index_key(GINA.did))
    assert [item.hex() for item in index] == [guarantee_id]
    assert loan(chain, loan_id)["history"][-1]["event"] == "loan.guarantee"
    assert listed(chain, loan_id) == [("proposed", 60_000, 0, 0)]
    assert loan(chain, loan_id)["guaranteed"] == 0

    accepted = act(chain, GINA, "accept", loan_id, guarantee_id)
    assert accepted.ok, accepted.message
    assert [e["event"] for e in domain_events(accepted.events)] == ["loan.guarantee_accepted"]
    assert stored(chain, guarantee_id)["accepted_height"] == chain.height
    assert listed(chain, loan_id) == [("active", 60_000, 0, 60_000)]
    assert loan(chain, loan_id)["guaranteed"] == 60_000


def test_a_member_gives_a_bank_guarantee_and_two_guarantors_never_cover_more_than_the_principal(world):
    chain, members, borrower, loan_id = world
    bank1, bank2 = members[0], members[1]
    guaranteed_by(chain, bank1, loan_id, bank2, amount=100_000, kind="bank")
    guaranteed_by(chain, bank1, loan_id, GINA, amount=100_000)
    view = loan(chain, loan_id)
    assert [g["contingent"] for g in view["guarantees"]] == [100_000, 100_000]
    assert view["guaranteed"] == 120_000 == view["outstanding_principal"]


@pytest.mark.parametrize(
    ("guarantor", "amount", "code", "words"),
    [
        ("borrower", 1, "bad_payload", "is the loan's borrower: a borrower cannot guarantee itself"),
        ("servicer", 1, "bad_payload", "is the loan's servicer: a lender cannot guarantee its own loan"),
        ("stranger", 1, "not_found", "neither a registered party nor a member"),
        (
            "gina",
            120_001,
            "bad_payload",
            "field 'amount' is 120001, more than the loan's principal 120000 EUR",
        ),
    ],
)
def test_a_guarantee_the_guarantor_or_cap_rules_out_is_refused(world, guarantor, amount, code, words):
    chain, members, borrower, loan_id = world
    named = {"borrower": borrower, "servicer": members[0], "stranger": seeded_key(66), "gina": GINA}[
        guarantor
    ]
    refused = propose(chain, members[0], loan_id, named, amount=amount)
    assert refused.code == code and words in refused.message, refused.message
    assert refused.message.startswith("loan.guarantee field ")
    assert loan(chain, loan_id)["guarantees"] == []


def test_a_cap_of_zero_an_unknown_kind_or_a_bad_evidence_hash_is_malformed(world):
    chain, members, borrower, loan_id = world
    good = {"loan_id": loan_id, "guarantor": GINA.did, "amount": 1, "kind": "personal", "evidence_hash": DEED}
    for change, name in (
        ({"amount": 0}, "'amount'"),
        ({"kind": "aunt"}, "'kind'"),
        ({"evidence_hash": "x"}, ""),
    ):
        _, execution = chain.cut([chain.tx(members[0], "loan.guarantee", {**good, **change}, nonce=99)])
        assert execution.dropped[0].code == "bad_payload" and name in execution.dropped[0].message


def test_only_the_servicer_proposes_and_only_while_the_loan_has_one(world):
    chain, members, borrower, loan_id = world
    refused = propose(chain, members[1], loan_id)
    assert refused.code == "forbidden" and "only the lender whose offer was accepted" in refused.message
    # Before an offer is accepted the loan has no servicer; once closed, no claim to guarantee.
    applied = ok(
        chain, borrower, "loan.apply", {"amount": 1000, "currency": "EUR", "term_months": 1, "purpose": "x"}
    )
    refused = propose(chain, members[0], applied.tx_id.hex(), amount=1)
    assert refused.code == "invalid_state" and "in state 'applied'" in refused.message
    assert repay(chain, members[0], loan_id, loan(chain, loan_id)["amount_owed"]).ok
    refused = propose(chain, members[0], loan_id)
    assert refused.code == "invalid_state" and "in state 'closed'" in refused.message


def test_an_expiry_must_lie_ahead_and_one_guarantor_has_one_live_guarantee_per_loan(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    refused = propose(chain, bank1, loan_id, expires_ms=chain.head_ms + 1000)
    assert refused.code == "bad_payload" and "field 'expires_ms'" in refused.message
    first = propose(chain, bank1, loan_id).tx_id.hex()
    again = propose(chain, bank1, loan_id, amount=1_000)
    assert again.code == "duplicate" and f"proposed guarantee {first[:16]}" in again.message
    assert act(chain, bank1, "withdraw", loan_id, first).ok
    assert propose(chain, bank1, loan_id, amount=1_000).ok  # the withdrawn one no longer counts


def test_a_loan_takes_at_most_max_per_loan_guarantees(world):
    chain, members, borrower, loan_id = world
    for _ in range(MAX_PER_LOAN):
        withdrawn = propose(chain, members[0], loan_id, amount=1)
        assert act(chain, members[0], "withdraw", loan_id, withdrawn.tx_id.hex()).ok
    refused = propose(chain, members[0], loan_id, amount=1)
    assert refused.code == "invalid_state" and f"{MAX_PER_LOAN} guarantees, the most" in refused.message


def test_only_the_named_guarantor_accepts_once_and_not_after_a_withdrawal(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    guarantee_id = propose(chain, bank1, loan_id).tx_id.hex()
    for stranger in (HAL, borrower, bank1):
        refused = act(chain, stranger, "accept", loan_id, guarantee_id)
        assert refused.code == "forbidden" and "only the guarantor the guarantee names" in refused.message
    assert act(chain, GINA, "accept", loan_id, guarantee_id).ok
    twice = act(chain, GINA, "accept", loan_id, guarantee_id)
    assert twice.code == "invalid_state" and "is active, not proposed" in twice.message
    other = propose(chain, bank1, loan_id, HAL).tx_id.hex()
    assert act(chain, bank1, "withdraw", loan_id, other).ok
    late = act(chain, HAL, "accept", loan_id, other)
    assert late.code == "invalid_state" and "is withdrawn, not proposed" in late.message
    unknown = act(chain, GINA, "accept", loan_id, "ab" * 32)
    assert unknown.code == "not_found" and "field 'guarantee_id' names no guarantee" in unknown.message


def test_an_expired_guarantee_cannot_be_accepted(world):
    chain, members, borrower, loan_id = world
    guarantee_id = propose(chain, members[0], loan_id, expires_ms=chain.head_ms + 2500).tx_id.hex()
    chain.head_ms += 5000
    refused = act(chain, GINA, "accept", loan_id, guarantee_id)
    assert refused.code == "expired" and "it no longer binds" in refused.message


# Withdrawing and releasing ---------------------------------------------------------------------------


def test_the_servicer_withdraws_before_and_releases_after_the_acceptance_and_nobody_else(world):
    chain, members, borrower, loan_id = world
    bank1, bank2 = members[0], members[1]
    guarantee_id = propose(chain, bank1, loan_id).tx_id.hex()
    early = act(chain, bank1, "release", loan_id, guarantee_id)
    assert early.code == "invalid_state" and "is proposed, not active" in early.message
    assert act(chain, GINA, "accept", loan_id, guarantee_id).ok
    late = act(chain, bank1, "withdraw", loan_id, guarantee_id)
    assert late.code == "invalid_state" and "an accepted guarantee is released" in late.message
    for other in (bank2, GINA):
        refused = act(chain, other, "release", loan_id, guarantee_id)
        assert refused.code == "forbidden"
    released = act(chain, bank1, "release", loan_id, guarantee_id)
    assert released.ok, released.message
    assert [e["event"] for e in domain_events(released.events)] == ["loan.guarantee_released"]
    assert stored(chain, guarantee_id)["ended_height"] == chain.height
    assert listed(chain, loan_id) == [("released", 60_000, 0, 0)]
    again = act(chain, bank1, "release", loan_id, guarantee_id)
    assert again.code == "invalid_state"


def test_the_guarantees_follow_the_servicing_to_a_new_lender(world):
    chain, members, borrower, loan_id = world
    bank1, bank2 = members[0], members[1]
    guarantee_id = guaranteed_by(chain, bank1, loan_id)
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert act(chain, bank1, "release", loan_id, guarantee_id).code == "forbidden"
    assert act(chain, bank2, "release", loan_id, guarantee_id).ok


def test_a_loan_is_not_handed_to_a_member_that_guarantees_it_until_that_guarantee_ends(world):
    chain, members, borrower, loan_id = world
    bank1, bank2 = members[0], members[1]
    bank = guaranteed_by(chain, bank1, loan_id, bank2, amount=20_000, kind="bank")
    refused = transfer(chain, bank1, loan_id, bank2)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"loan.transfer on loan {loan_id[:16]}: {bank2.did} guarantees the loan (active guarantee "
        f"{bank[:16]}), and a lender cannot guarantee a loan it services: the servicer withdraws or "
        "releases that guarantee first",
    )
    assert act(chain, bank1, "release", loan_id, bank).ok
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok


def test_under_rules_6_a_transfer_checks_no_guarantees():
    chain, members, borrower, loan_id = guarantee_world(version=6)
    assert transfer(chain, members[0], loan_id, members[1]).ok


# The ledger's releases at the claim's end -------------------------------------------------------------


def ledger_released(chain, guarantee_id, because, state="released"):
    record = stored(chain, guarantee_id)
    assert (record["state"], record["because"], record["ended_height"]) == (state, because, chain.height)


def test_a_loan_repaid_in_full_releases_its_guarantees_and_lets_proposed_ones_lapse(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    active = guaranteed_by(chain, bank1, loan_id)
    proposed = propose(chain, bank1, loan_id, HAL).tx_id.hex()
    closing = repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"])
    assert closing.ok and loan(chain, loan_id)["state"] == "closed"
    ledger_released(chain, active, "closed")
    ledger_released(chain, proposed, "closed", state="lapsed")
    events = [(e["event"], e.get("because")) for e in domain_events(closing.events)][-2:]
    assert events == [("loan.guarantee_released", "closed"), ("loan.guarantee_lapsed", "closed")]
    assert [g["status"] for g in loan(chain, loan_id)["guarantees"]] == ["released", "lapsed"]


def test_a_loan_that_goes_unfunded_releases_its_guarantees(world):
    chain, members, borrower, _ = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1, disburse=False, funding_window_ms=1000)
    guarantee_id = guaranteed_by(chain, bank1, loan_id, amount=1_000)
    chain.head_ms += 5000
    assert ok(chain, members[2], "loan.fund_expire", {"loan_id": loan_id})
    ledger_released(chain, guarantee_id, "unfunded")


def test_a_written_off_loan_keeps_its_guarantees_until_recovered_in_full_or_its_recovery_ends(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    guarantee_id = guaranteed_by(chain, bank1, loan_id)
    default(chain, loan_id)
    assert write_off(chain, bank1, loan_id).ok
    assert stored(chain, guarantee_id)["state"] == "active"
    assert recover(chain, bank1, loan_id, loan(chain, loan_id)["net_loss"]["total"]).ok
    ledger_released(chain, guarantee_id, "recovered")

    other = open_loan(chain, borrower, bank1)
    second = guaranteed_by(chain, bank1, other, HAL)
    default(chain, other)
    assert write_off(chain, bank1, other).ok and end(chain, bank1, other).ok
    ledger_released(chain, second, "recovery_ended")


# Calls ------------------------------------------------------------------------------------------------


def test_a_guarantee_is_called_once_the_loan_defaulted_up_to_what_is_left_of_its_cap(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    guarantee_id = guaranteed_by(chain, bank1, loan_id)
    early = act(chain, bank1, "call", loan_id, guarantee_id, amount=1_000)
    assert (
        early.code == "invalid_state"
        and "loan.guarantee_call is only allowed in state defaulted" in early.message
    )
    default(chain, loan_id)
    called = act(chain, bank1, "call", loan_id, guarantee_id, amount=40_000)
    assert called.ok, called.message
    [event] = domain_events(called.events)
    assert event == {
        "event": "loan.guarantee_called",
        "loan_id": loan_id,
        "guarantee_id": guarantee_id,
        "guarantor": GINA.did,
        "amount": 40_000,
        "called": 40_000,
        "cap": 60_000,
        "currency": "EUR",
    }
    too_much = act(chain, bank1, "call", loan_id, guarantee_id, amount=20_001)
    assert (
        too_much.code == "bad_payload"
        and "more than is left of the guarantee's cap: 20000" in too_much.message
    )
    assert act(chain, GINA, "call", loan_id, guarantee_id, amount=1).code == "forbidden"
    # The guarantor pays: the servicer records the money as a repayment, the existing way.
    assert chain.run_one(
        chain.tx(bank1, "loan.repay", {"loan_id": loan_id, "amount": 40_000, "reference": "guarantor call"})
    ).ok
    assert listed(chain, loan_id) == [("active", 60_000, 40_000, 20_000)]
    assert write_off(chain, bank1, loan_id).ok
    assert act(chain, bank1, "call", loan_id, guarantee_id, amount=20_000).ok
    record = stored(chain, guarantee_id)
    assert (record["called"], record["calls"], record["called_height"]) == (60_000, 2, chain.height)


def test_a_guarantee_not_accepted_or_expired_cannot_be_called(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    proposed = propose(chain, bank1, loan_id).tx_id.hex()
    expiring = guaranteed_by(chain, bank1, loan_id, HAL, expires_ms=chain.head_ms + 10 * 86_400_000)
    default(chain, loan_id)
    refused = act(chain, bank1, "call", loan_id, proposed, amount=1)
    assert refused.code == "invalid_state" and "only an accepted guarantee binds" in refused.message
    refused = act(chain, bank1, "call", loan_id, expiring, amount=1)
    assert refused.code == "expired"


# Rules --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["guarantee", "guarantee_accept", "guarantee_withdraw", "guarantee_release"])
def test_under_rules_6_the_kinds_do_not_exist(kind):
    chain, members, borrower, loan_id = guarantee_world(version=6)
    payload = {"loan_id": loan_id, "guarantee_id": "ab" * 32}
    if kind == "guarantee":
        payload = {
            "loan_id": loan_id,
            "guarantor": GINA.did,
            "amount": 1,
            "kind": "bank",
            "evidence_hash": DEED,
        }
    _, execution = chain.cut([chain.tx(members[0], f"loan.{kind}", payload)])
    assert execution.results == []
    assert execution.dropped[0].code == "unknown_kind"
    assert f"loan.{kind} exists from rules version 7" in execution.dropped[0].message


def test_a_written_off_loan_refusal_names_the_guarantee_kinds_it_takes(world):
    chain, members, borrower, loan_id = world
    default(chain, loan_id)
    assert write_off(chain, members[0], loan_id).ok
    refused = repay(chain, members[0], loan_id, 1)
    assert refused.message.endswith(
        "and loan.guarantee_release and loan.guarantee_call, by which its servicer releases or calls a "
        "guarantee of it"
    )
