"""Handing a loan's servicing to another lender (``loan.transfer``, rules 4; see ``ledger.transfers``).

The chains here start on rules 4 from the genesis unless a test says
otherwise. bank1 and bank2 are the lenders (``make_genesis``'s roles), bank3
a regulator and bank4 the kyc member; ``rules_world`` makes bank1..bank4 the
voters, so a member leaves by demotion then ``member.remove``.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lendchain.cli.governance import describe_members
from lendchain.ledger import pagedlist, queries
from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from lendchain.ledger.state import lender_loans_key, next_nonce, read_value
from lendchain.ledger.transfers import servicing_duties
from tests.ledger.chain import Chain, make_genesis, seeded_key
from tests.ledger.test_admission import rules_world
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_membership import DELAY, advance_to, propose, vote, vote_through
from tests.ledger.test_removal import demote

APPLY = {"amount": 120_000, "currency": "EUR", "term_months": 12, "purpose": "a delivery van"}


def with_borrower(version=4):
    """A chain on rules ``version`` (``rules_world``), its members and borrower seeded_key(1),
    onboarded by bank4 (kyc)."""
    chain, members = rules_world(version=version)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    return chain, members, borrower


@pytest.fixture
def world():
    return with_borrower()


def ok(chain, key, kind, payload):
    result = chain.run_one(chain.tx(key, kind, payload))
    assert result.ok, result.message
    return result


def open_loan(chain, borrower, lender, *, disburse=True, **terms):
    """A loan ``lender`` offered and ``borrower`` accepted (and, unless told, ``lender`` disbursed)."""
    loan_id = ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
    offer_id = ok(chain, lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 900, **terms}).tx_id.hex()
    ok(chain, borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
    if disburse:
        ok(chain, lender, "loan.disburse", {"loan_id": loan_id})
    return loan_id


def loan(chain, loan_id):
    return queries.lookup(chain.state, "loan", loan_id)


def transfer(chain, lender, loan_id, to):
    return chain.run_one(chain.tx(lender, "loan.transfer", {"loan_id": loan_id, "to": to.did}))


def accept(chain, key, loan_id):
    return chain.run_one(chain.tx(key, "loan.transfer_accept", {"loan_id": loan_id}))


def withdraw(chain, key, loan_id):
    return chain.run_one(chain.tx(key, "loan.transfer_withdraw", {"loan_id": loan_id}))


def indexed(chain, did):
    """The loan ids in ``did``'s lender index, in order."""
    return [
        loan_id.hex()
        for loan_id in pagedlist.items(lambda k: read_value(chain.state, k), lender_loans_key(did))
    ]


def repay(chain, key, loan_id, amount):
    return chain.run_one(chain.tx(key, "loan.repay", {"loan_id": loan_id, "amount": amount}))


def test_the_named_lender_takes_the_loan_over_and_everything_read_from_the_lender_follows(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert repay(chain, bank1, loan_id, 10_000).ok

    offered = transfer(chain, bank1, loan_id, bank2)
    assert offered.ok, offered.message
    assert offered.events[0] == {
        "event": "loan.transfer_offered",
        "loan_id": loan_id,
        "lender": bank1.did,
        "to": bank2.did,
    }
    offered_at = chain.height
    pending = loan(chain, loan_id)
    # nothing moves until bank2 accepts; the view names the members (read from their records, not stored)
    assert (pending["lender"], pending["lender_name"]) == (bank1.did, "bank1")
    assert pending["transfer"] == {
        "to": bank2.did,
        "height": offered_at,
        "status": "pending",
        "to_name": "bank2",
    }
    assert repay(chain, bank2, loan_id, 1).code == "forbidden"
    portfolio = queries.lookup(chain.state, "portfolio", bank2.did)
    assert portfolio["currencies"] == {}
    assert portfolio["pending_transfers"] == [
        {
            "loan_id": loan_id,
            "lender": bank1.did,
            "to": bank2.did,
            "lender_name": "bank1",  # both members named at read time
            "to_name": "bank2",
            "offered_height": offered_at,
        }
    ]

    accepted = accept(chain, bank2, loan_id)
    assert accepted.ok, accepted.message
    assert accepted.events[0] == {
        "event": "loan.transferred",
        "loan_id": loan_id,
        "previous_lender": bank1.did,
        "lender": bank2.did,
    }
    moved = loan(chain, loan_id)
    assert moved["lender"] == bank2.did and "transfer" not in moved
    assert [e["event"] for e in moved["history"][-2:]] == ["loan.transfer", "loan.transfer_accept"]
    assert moved["history"][-2]["to"] == bank2.did
    assert (moved["history"][-1]["previous_lender"], moved["history"][-1]["lender"]) == (bank1.did, bank2.did)

    # The new lender services it; the old one no longer can.
    refused = repay(chain, bank1, loan_id, 10_000)
    assert refused.code == "forbidden" and "only the lender whose offer was accepted" in refused.message
    assert (
        chain.run_one(chain.tx(bank1, "loan.prepay", {"loan_id": loan_id, "amount": 1})).code == "forbidden"
    )
    assert repay(chain, bank2, loan_id, 10_000).ok
    assert loan(chain, loan_id)["principal_paid"] > 0

    # Indexes and views: bank2's index holds the loan once, bank1's still lists it but it is not bank1's.
    assert indexed(chain, bank2.did) == [loan_id] and indexed(chain, bank1.did) == [loan_id]
    outstanding = APPLY["amount"] - loan(chain, loan_id)["principal_paid"]
    carried = queries.lookup(chain.state, "exposure", borrower.did)["carriers"]
    assert [(c["did"], c["outstanding"]) for c in carried] == [(bank2.did, outstanding)]
    assert (
        queries.lookup(chain.state, "portfolio", bank2.did)["currencies"]["EUR"]["outstanding"] == outstanding
    )
    assert queries.lookup(chain.state, "portfolio", bank1.did)["currencies"] == {}
    assert queries.lookup(chain.state, "portfolio", bank2.did)["pending_transfers"] == []
    reminders = queries.lookup(chain.state, "reminders", bank2.did)["loans"]
    assert [(r["loan_id"], r["role"]) for r in reminders] == [(loan_id, "servicer")]
    assert queries.lookup(chain.state, "reminders", bank1.did)["loans"] == []
    assert servicing_duties(lambda k: read_value(chain.state, k), bank1.did) == (0, 0, 0)
    assert servicing_duties(lambda k: read_value(chain.state, k), bank2.did) == (1, 0, 0)


def test_an_accepted_loan_is_disbursed_by_the_new_lender_and_a_loan_handed_back_is_indexed_once(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1, disburse=False)
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert chain.run_one(chain.tx(bank1, "loan.disburse", {"loan_id": loan_id})).code == "forbidden"
    assert chain.run_one(chain.tx(bank2, "loan.disburse", {"loan_id": loan_id})).ok
    # Back to bank1, then to bank2 again: each index still holds the loan once.
    assert transfer(chain, bank2, loan_id, bank1).ok and accept(chain, bank1, loan_id).ok
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert indexed(chain, bank1.did) == [loan_id] and indexed(chain, bank2.did) == [loan_id]
    assert loan(chain, loan_id)["transfer_targets"] == [bank2.did]  # bank1's index has had it from the start
    reminders = queries.lookup(chain.state, "reminders", bank2.did)["loans"]
    assert [r["loan_id"] for r in reminders] == [loan_id]


def test_a_defaulted_loan_can_be_handed_to_a_recovery_servicer(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    chain.head_ms = loan(chain, loan_id)["disbursed_ms"] + 200 * 86_400_000
    chain.run()  # the due-loan pass at the start of the block defaults it
    assert loan(chain, loan_id)["state"] == "defaulted"
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert repay(chain, bank2, loan_id, 5_000).ok  # a recovery, recorded by the new servicer
    assert loan(chain, loan_id)["state"] == "defaulted"


def syndicated_loan(chain, borrower, lender):
    """A loan ``lender`` offered with a funding window, funded by investors alice and bob and by
    ``lender`` itself (30,000 / 40,000 / 50,000), not yet disbursed; (its id, the commitments)."""
    alice, bob = seeded_key(2), seeded_key(3)
    for investor in (alice, bob):
        ok(chain, investor, "party.register", {"role": "investor"})
    loan_id = open_loan(chain, borrower, lender, disburse=False, funding_window_ms=60_000)
    commitments = ((alice, 30_000), (lender, 40_000), (bob, 50_000))
    for funder, amount in commitments:
        ok(chain, funder, "loan.fund", {"loan_id": loan_id, "amount": amount})
    return loan_id, commitments


def test_investors_keep_their_positions_and_their_shares_of_repayments_after_a_transfer(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id, ((alice, _), _, (bob, _)) = syndicated_loan(chain, borrower, bank1)
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    ok(chain, bank2, "loan.disburse", {"loan_id": loan_id})
    assert repay(chain, bank2, loan_id, 12_000).ok
    commitments = loan(chain, loan_id)["funding"]["commitments"]
    assert [(c["funder"], c["amount"], c["received"]) for c in commitments] == [
        (alice.did, 30_000, 3_000),
        (bank1.did, 40_000, 4_000),  # the old servicer stays a funder like any other
        (bob.did, 50_000, 5_000),
    ]
    position = queries.lookup(chain.state, "positions", alice.did)["positions"][0]
    assert (position["lender"], position["received"], position["commitment"]) == (bank2.did, 3_000, 30_000)
    carriers = queries.lookup(chain.state, "exposure", borrower.did)["carriers"]
    assert {c["did"] for c in carriers} == {alice.did, bank1.did, bob.did}  # the funders carry it, not bank2
    book = queries.lookup(chain.state, "portfolio", bank2.did)["currencies"]["EUR"]
    assert book["funded_by_others"] == book["outstanding"]


def test_a_transfer_is_offered_by_the_lender_alone_to_another_lender_that_is_still_a_member(world):
    chain, members, borrower = world
    bank1, bank2, bank3 = members[0], members[1], members[2]
    loan_id = open_loan(chain, borrower, bank1)
    for sender in (bank2, borrower):  # another lender, the borrower
        refused = transfer(chain, sender, loan_id, bank2 if sender is borrower else bank1)
        assert refused.code == "forbidden" and "only the lender whose offer was accepted" in refused.message
    cases = [
        (bank1, "is did:key", "the loan's lender already"),
        (bank3, "names bank3", "does not hold the lender role"),
        (seeded_key(50), "names no consortium member", "only a lender can service a loan"),
    ]
    for to, first, second in cases:
        refused = transfer(chain, bank1, loan_id, to)
        assert refused.code == "bad_payload", refused
        assert "loan.transfer field 'to'" in refused.message and first in refused.message
        assert second in refused.message
    assert "transfer" not in loan(chain, loan_id)
    malformed = chain.tx(bank1, "loan.transfer", {"loan_id": loan_id, "to": "bank2"})
    _, execution = chain.cut([malformed])
    assert execution.dropped[0].code == "bad_payload" and "'to'" in execution.dropped[0].message


def test_a_removed_member_cannot_be_named(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    demote(chain, members, bank2)
    vote_through(chain, bank1, [], "member.remove", bank2.did, "sold its book")
    refused = transfer(chain, bank1, loan_id, bank2)
    assert refused.code == "bad_payload"
    assert f"names bank2, removed from the consortium at height {chain.height - 1}" in refused.message


@pytest.mark.parametrize("state", ["applied", "offered", "cancelled", "closed", "unfunded"])
def test_a_loan_without_a_servicer_to_hand_on_cannot_be_transferred(world, state):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
    if state != "applied":
        terms = {"funding_window_ms": 1000} if state == "unfunded" else {}
        offered = ok(chain, bank1, "loan.offer", {"loan_id": loan_id, "rate_bps": 900, **terms})
    if state == "cancelled":
        ok(chain, borrower, "loan.cancel", {"loan_id": loan_id})
    if state in ("closed", "unfunded"):
        ok(chain, borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offered.tx_id.hex()})
    if state == "closed":
        ok(chain, bank1, "loan.disburse", {"loan_id": loan_id})
        assert repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"]).ok
    if state == "unfunded":
        chain.head_ms += 1000
        ok(chain, members[2], "loan.fund_expire", {"loan_id": loan_id})
    assert loan(chain, loan_id)["state"] == state
    refused = transfer(chain, bank1, loan_id, bank2)
    assert refused.code == "invalid_state" and f"in state '{state}'" in refused.message
    assert "loan.transfer is only allowed in state accepted, defaulted, disbursed" in refused.message


def test_one_transfer_is_pending_at_a_time_and_only_the_named_lender_accepts_it(world):
    chain, members, borrower = world
    bank1, bank2, bank3 = members[0], members[1], members[2]
    loan_id = open_loan(chain, borrower, bank1)
    nothing = accept(chain, bank2, loan_id)
    assert nothing.code == "invalid_state" and "no transfer is pending" in nothing.message
    assert transfer(chain, bank1, loan_id, bank2).ok
    offered_at = chain.height
    second = transfer(chain, bank1, loan_id, bank2)
    assert second.code == "invalid_state"
    assert f"its transfer to {bank2.did} (offered at height {offered_at}) is still pending" in second.message
    assert "loan.transfer_withdraw" in second.message
    for stranger in (bank1, bank3, borrower):
        refused = accept(chain, stranger, loan_id)
        assert refused.code == "forbidden", stranger
        assert "only the lender the loan's pending transfer names may do this" in refused.message
    assert loan(chain, loan_id)["lender"] == bank1.did


def test_the_lender_alone_withdraws_a_pending_transfer(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    nothing = withdraw(chain, bank1, loan_id)
    assert nothing.code == "invalid_state" and "no transfer is pending to withdraw" in nothing.message
    assert transfer(chain, bank1, loan_id, bank2).ok
    for other in (bank2, borrower):  # the named lender declines by not accepting
        refused = withdraw(chain, other, loan_id)
        assert refused.code == "forbidden" and "only the lender whose offer was accepted" in refused.message
    withdrawn = withdraw(chain, bank1, loan_id)
    assert withdrawn.ok
    assert withdrawn.events[0] == {"event": "loan.transfer_withdrawn", "loan_id": loan_id, "to": bank2.did}
    assert "transfer" not in loan(chain, loan_id)
    assert loan(chain, loan_id)["history"][-1]["event"] == "loan.transfer_withdraw"
    late = accept(chain, bank2, loan_id)
    assert late.code == "invalid_state" and "no transfer is pending" in late.message
    assert transfer(chain, bank1, loan_id, bank2).ok  # a new offer may follow


def test_a_member_that_lost_the_lender_role_since_the_offer_cannot_accept(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert transfer(chain, bank1, loan_id, bank2).ok
    vote_through(chain, bank1, members[2:4], "member.roles", bank2.did, "bureau")
    refused = accept(chain, bank2, loan_id)
    assert refused.code == "forbidden"
    assert "its pending transfer names bank2, which does not hold the lender role now" in refused.message
    assert loan(chain, loan_id)["lender"] == bank1.did
    assert withdraw(chain, bank1, loan_id).ok


def test_a_transfer_pending_when_the_loan_closes_lapses(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert transfer(chain, bank1, loan_id, bank2).ok
    assert repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"]).ok
    for result in (accept(chain, bank2, loan_id), withdraw(chain, bank1, loan_id)):
        assert result.code == "invalid_state" and "in state 'closed'" in result.message
    assert servicing_duties(lambda k: read_value(chain.state, k), bank2.did) == (0, 0, 0)
    assert queries.lookup(chain.state, "portfolio", bank2.did)["pending_transfers"] == []


def test_an_audit_export_of_a_transferred_loan_verifies_with_each_transfer_step_and_its_signer(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert repay(chain, bank2, loan_id, 10_000).ok
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    rows = [(e["kind"], e["signer"]) for e in document["entries"]][-3:]
    assert rows == [
        ("loan.transfer", bank1.did),
        ("loan.transfer_accept", bank2.did),
        ("loan.repay", bank2.did),
    ]
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id


# Rules versions ------------------------------------------------------------------------------


def test_under_rules_3_the_kinds_are_unknown_until_rules_4_is_in_force():
    chain, members = rules_world(version=3)
    bank1, bank2 = members[0], members[1]
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, bank1)
    offer = chain.tx(bank1, "loan.transfer", {"loan_id": loan_id, "to": bank2.did})
    txs = [
        offer,
        chain.tx(bank2, "loan.transfer_accept", {"loan_id": loan_id}),
        chain.tx(bank1, "loan.transfer_withdraw", {"loan_id": loan_id}, nonce=offer.nonce),
    ]
    block, execution = chain.cut(txs)
    assert not block.txs  # left out, as every kind a later rules version adds: no nonce is used
    assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id) for tx in txs]
    assert all("exists from rules version 4; block" in d.message for d in execution.dropped)
    for key in (bank1, bank2):
        chain.nonces[key.did] = next_nonce(chain.state, key.did)
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    vote_through(chain, members[2], [members[3], bank1], "rules.upgrade", "4", str(activation))
    advance_to(chain, activation)
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert loan(chain, loan_id)["lender"] == bank2.did


# Removing a member that services loans --------------------------------------------------------


def test_a_member_that_lends_on_open_loans_is_removed_only_once_they_are_transferred(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    first, second = open_loan(chain, borrower, bank2), open_loan(chain, borrower, bank2, disburse=False)
    open_loan(chain, borrower, bank1)
    demote(chain, members, bank2)
    refused = propose(chain, bank1, "member.remove", bank2.did, "sold its book")
    assert refused.code == "bad_payload"
    assert "bank2 is the lender of 2 open loans" in refused.message
    assert "loan.transfer" in refused.message
    for loan_id in (first, second):
        assert transfer(chain, bank2, loan_id, bank1).ok
    named = propose(chain, bank1, "member.remove", bank2.did, "sold its book")
    assert "bank2 is the lender of 2 open loans" in named.message  # offered, not accepted yet
    accept(chain, bank1, first)
    assert (
        "bank2 is the lender of 1 open loan,"
        in propose(chain, bank1, "member.remove", bank2.did, "x").message
    )
    accept(chain, bank1, second)
    removed = vote_through(chain, bank1, [], "member.remove", bank2.did, "sold its book")
    assert any(e["event"] == "member.removed" for e in removed.events)
    assert repay(chain, bank1, first, 10_000).ok  # its loans go on being serviced


def test_a_member_named_by_a_pending_transfer_is_not_removed_until_it_is_withdrawn(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert transfer(chain, bank1, loan_id, bank2).ok
    demote(chain, members, bank2)
    refused = propose(chain, bank1, "member.remove", bank2.did, "leaves")
    assert refused.code == "bad_payload"
    assert "bank2 is named by 1 pending loan transfer," in refused.message
    assert "lender of" not in refused.message
    assert withdraw(chain, bank1, loan_id).ok
    assert vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves").ok


def test_the_vote_that_would_remove_a_member_that_took_a_loan_over_meanwhile_is_refused():
    genesis, members = make_genesis([("lender",), ("lender",), ("regulator",), ("kyc",), ("lender",)])
    chain = Chain.start(replace(genesis, app={"key_rotation_delay_blocks": DELAY, "rules_version": 4}))
    bank1, bank5 = members[0], members[4]
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = open_loan(chain, borrower, bank1)
    vote_through(chain, bank1, members[1:3], "member.voting", bank5.did, "observer")  # 3 of 5 voters
    advance_to(chain, chain.height + DELAY + 1)
    proposal_id = propose(chain, bank1, "member.remove", bank5.did, "leaves").tx_id.hex()
    assert vote(chain, members[1], proposal_id).ok  # two of the three of four voters
    assert transfer(chain, bank1, loan_id, bank5).ok and accept(chain, bank5, loan_id).ok
    refused = vote(chain, members[2], proposal_id)
    assert refused.code == "invalid_state"
    assert "member.remove: bank5 is the lender of 1 open loan," in refused.message
    assert "(not so when it was proposed)" in refused.message


@pytest.mark.parametrize("version", [3, 4])
def test_from_rules_4_the_offer_of_a_member_removed_since_cannot_be_accepted(version):
    chain, members = rules_world(version=version)
    bank1, bank2 = members[0], members[1]
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
    offers = [
        ok(chain, b, "loan.offer", {"loan_id": loan_id, "rate_bps": 900}).tx_id.hex() for b in (bank2, bank1)
    ]
    demote(chain, members, bank2)
    vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves")  # an offer is no open loan
    removed_at = chain.height
    accepted = chain.run_one(chain.tx(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offers[0]}))
    if version == 3:  # as before: the loan gets a lender that can sign nothing
        assert accepted.ok and loan(chain, loan_id)["lender"] == bank2.did
        return
    assert accepted.code == "invalid_state"
    assert f"an offer by bank2, removed from the consortium at height {removed_at}" in accepted.message
    ok(chain, borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offers[1]})
    assert loan(chain, loan_id)["lender"] == bank1.did


def test_under_rules_3_a_member_with_open_loans_is_removed_as_before():
    chain, members = rules_world(version=3)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    open_loan(chain, borrower, members[1])
    demote(chain, members, members[1])
    removed = vote_through(chain, members[0], [], "member.remove", members[1].did, "leaves")
    assert any(e["event"] == "member.removed" for e in removed.events)


@pytest.mark.parametrize("version", [3, 4])
def test_from_rules_4_a_removed_members_policies_are_withdrawn_with_it(version):
    chain, members = rules_world(version=version)
    bank1, bank2 = members[0], members[1]
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    bands = {"currency": "EUR", "min_amount": 1_000, "max_amount": 500_000, "max_term_months": 24}
    policy = {**bands, "bands": "0:1200", "max_exposure": 10**9}
    theirs = ok(chain, bank2, "policy.publish", policy).tx_id
    ours = ok(chain, bank1, "policy.publish", policy).tx_id
    demote(chain, members, bank2)
    removed = vote_through(chain, bank1, [], "member.remove", bank2.did, "sold its book")
    withdrawn = [e for e in removed.events if e["event"] == "policy.withdrawn"]
    loan_id = ok(chain, borrower, "loan.apply", APPLY).tx_id.hex()
    offers = {offer["lender"] for offer in loan(chain, loan_id)["offers"]}
    active = [bytes(p) for p in read_value(chain.state, b"policies")]
    if version == 3:  # as before: its policy goes on offering
        assert withdrawn == [] and offers == {bank1.did, bank2.did} and active == [theirs, ours]
        return
    assert withdrawn == [
        {"event": "policy.withdrawn", "policy_id": theirs.hex(), "why": "member.remove: sold its book"}
    ]
    assert offers == {bank1.did} and active == [ours]
    assert queries.lookup(chain.state, "policy", theirs.hex())["status"] == "withdrawn"


def test_one_members_view_counts_the_loans_its_removal_waits_for(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    first = open_loan(chain, borrower, bank2)
    open_loan(chain, borrower, bank2, disburse=False)
    assert transfer(chain, bank2, first, bank1).ok

    def shown(name):
        return queries.lookup(chain.state, "members", name)["members"]

    (one,) = shown("bank2")
    assert (one["open_loans_serviced"], one["transfers_pending_to"]) == (2, 0)
    (other,) = shown("bank1")
    assert (other["open_loans_serviced"], other["transfers_pending_to"]) == (0, 1)
    assert all("open_loans_serviced" not in m for m in shown("*"))  # a walk per member: asked for one only
    text = describe_members({"members": [one, other]})
    assert "services 2 open loans, 0 transfers pending to it" in text
    assert "services 0 open loans, 1 transfer pending to it" in text
