"""A written-off loan's recovery changes servicer, and its servicer ends it (rules 6; see
``ledger.transfers``, ``ledger.recovery_end`` and ``ledger.removal``).

The chains start on rules 6 from the genesis unless a test says otherwise.
bank1 and bank2 are the lenders (``make_genesis``'s roles), bank3 a
regulator and bank4 the kyc member; ``rules_world`` makes bank1..bank4 the
voters. A loan is written off as in ``test_recovery``: repaid in part,
defaulted by a block's due-loan pass, then written off by its servicer.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.ledger import queries
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from lendchain.ledger.state import read_value
from lendchain.ledger.transfers import servicing_duties
from tests.ledger.chain import Chain, domain_events, make_genesis, seeded_key
from tests.ledger.test_loan_transfer import accept, loan, open_loan, repay, transfer, with_borrower, withdraw
from tests.ledger.test_membership import DELAY, advance_to, propose, vote, vote_through
from tests.ledger.test_recovery import FINAL_FROM_RULES_5, recover, stored, written_off
from tests.ledger.test_removal import demote
from tests.ledger.test_write_off import default, write_off

FINAL_FROM_RULES_6 = (
    "the loan was written off, which is final; the transactions it still takes are loan.recover, by which "
    "its servicer records money recovered on it, loan.recovery_end, by which its servicer ends its "
    "recovery, loan.transfer, loan.transfer_accept and loan.transfer_withdraw, by which its recovery "
    "moves to another lender, collateral.release and collateral.revalue, by which its servicer keeps the "
    "collateral securing it up to date, and on a syndicated loan loan.share_assign, loan.share_accept and "
    "loan.share_withdraw, by which a funder sells its share of the recoveries"
)
HOPELESS = "the borrower's estate is closed: nothing more will come"


@pytest.fixture
def world():
    return with_borrower(version=6)


def end(chain, key, loan_id, reason=HOPELESS):
    return chain.run_one(chain.tx(key, "loan.recovery_end", {"loan_id": loan_id, "reason": reason}))


def hand_over(chain, old, new, loan_id):
    """``old`` offers the loan's recovery to ``new``, which accepts."""
    assert transfer(chain, old, loan_id, new).ok
    accepted = accept(chain, new, loan_id)
    assert accepted.ok, accepted.message
    return accepted


def duties(chain, key):
    return servicing_duties(lambda k: read_value(chain.state, k), key.did)


# Handing the recovery on ---------------------------------------------------------------------


def test_the_new_servicer_records_the_recoveries_and_the_old_one_no_longer_can(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    assert recover(chain, bank1, loan_id, 4_000).ok
    before = loan(chain, loan_id)

    offered = transfer(chain, bank1, loan_id, bank2)
    assert offered.ok, offered.message
    assert loan(chain, loan_id)["transfer"] == {
        "to": bank2.did,
        "height": chain.height,
        "written_off": True,
        "status": "pending",
        "to_name": "bank2",
    }
    accepted = accept(chain, bank2, loan_id)
    assert accepted.ok, accepted.message
    assert domain_events(accepted.events) == [
        {"event": "loan.transferred", "loan_id": loan_id, "previous_lender": bank1.did, "lender": bank2.did}
    ]
    after = loan(chain, loan_id)
    assert (after["state"], after["lender"]) == ("written_off", bank2.did)
    assert "transfer" not in after
    # What moves is the recovery: the write-off, what was recovered and the net loss stay as they were.
    for kept in ("written_off", "recovered", "net_loss", "defaulted_ms", "borrower"):
        assert after[kept] == before[kept], kept
    assert after["recovery_handovers"] == [{"lender": bank1.did, "height": chain.height, "recovered": 4_000}]
    entry = after["history"][-1]
    assert (entry["event"], entry["previous_lender"], entry["lender"], entry["recovered"]) == (
        "loan.transfer_accept",
        bank1.did,
        bank2.did,
        4_000,
    )

    refused = recover(chain, bank1, loan_id, 1_000)
    assert refused.code == "forbidden"
    assert "only the lender whose offer was accepted may do this" in refused.message
    recovered = recover(chain, bank2, loan_id, 3_000)
    assert recovered.ok, recovered.message
    view = loan(chain, loan_id)
    assert view["recovered"]["total"] == 7_000 and view["recovered"]["recoveries"] == 2
    assert view["net_loss"]["total"] == before["net_loss"]["total"] - 3_000
    assert view["recovery_handovers"] == after["recovery_handovers"]  # a recovery adds no handover


def test_the_recovery_can_move_again_and_back_and_each_handover_is_recorded(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    hand_over(chain, bank1, bank2, loan_id)
    first = chain.height
    assert recover(chain, bank2, loan_id, 2_500).ok
    hand_over(chain, bank2, bank1, loan_id)
    assert recover(chain, bank1, loan_id, 500).ok
    view = loan(chain, loan_id)
    assert view["lender"] == bank1.did
    assert view["recovery_handovers"] == [
        {"lender": bank1.did, "height": first, "recovered": 0},
        {"lender": bank2.did, "height": chain.height - 1, "recovered": 2_500},
    ]
    assert view["transfer_targets"] == [bank2.did]  # bank1's index has had it from the start


def test_the_lender_withdraws_a_pending_transfer_of_a_written_off_loan(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    assert transfer(chain, bank1, loan_id, bank2).ok
    again = transfer(chain, bank1, loan_id, bank2)
    assert again.code == "invalid_state" and "is still pending" in again.message
    assert duties(chain, bank2) == (0, 1, 0)  # named by it: it cannot leave until it is answered
    withdrawn = withdraw(chain, bank1, loan_id)
    assert withdrawn.ok, withdrawn.message
    assert "transfer" not in loan(chain, loan_id)
    late = accept(chain, bank2, loan_id)
    assert late.code == "invalid_state" and "no transfer is pending" in late.message
    assert duties(chain, bank2) == (0, 0, 0)
    assert loan(chain, loan_id)["lender"] == bank1.did


def test_a_transfer_pending_at_the_write_off_lapses_and_a_new_offer_replaces_it(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    assert transfer(chain, bank1, loan_id, bank2).ok
    offered_at = chain.height
    assert write_off(chain, bank1, loan_id).ok
    assert loan(chain, loan_id)["transfer"]["status"] == "lapsed"
    assert duties(chain, bank2) == (0, 0, 0)
    before = stored(chain, loan_id)

    refused = accept(chain, bank2, loan_id)
    assert refused.code == "invalid_state"
    assert refused.message == (
        f"loan.transfer_accept on loan {loan_id[:16]}: no transfer is pending (the one offered at height "
        f"{offered_at} lapsed when the loan was written off) (the loan's lender offers one with loan.transfer)"
    )
    nothing = withdraw(chain, bank1, loan_id)
    assert nothing.code == "invalid_state" and "no transfer is pending to withdraw" in nothing.message
    assert stored(chain, loan_id) == before

    assert transfer(chain, bank1, loan_id, bank2).ok  # the lapsed one is no obstacle
    assert loan(chain, loan_id)["transfer"]["status"] == "pending"
    assert loan(chain, loan_id)["transfer_targets"] == [bank2.did]  # indexed once, at the first offer
    assert accept(chain, bank2, loan_id).ok


def test_a_loan_written_off_under_rules_5_keeps_its_lapsed_transfer_lapsed_once_rules_6_start():
    chain, members, borrower = with_borrower(version=5)
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    assert transfer(chain, bank1, loan_id, bank2).ok
    assert write_off(chain, bank1, loan_id).ok
    refused = transfer(chain, bank1, loan_id, bank2)
    assert refused.code == "invalid_state" and refused.message.endswith(FINAL_FROM_RULES_5)  # word for word
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    vote_through(chain, bank1, members[1:3], "rules.upgrade", "6", str(activation))
    advance_to(chain, activation)

    assert loan(chain, loan_id)["transfer"]["status"] == "lapsed"  # not revived by the new rules
    assert accept(chain, bank2, loan_id).code == "invalid_state"
    assert duties(chain, bank2) == (0, 0, 0)
    repaid = chain.run_one(chain.tx(bank1, "loan.repay", {"loan_id": loan_id, "amount": 1}))
    assert repaid.code == "invalid_state" and repaid.message.endswith(FINAL_FROM_RULES_6)
    hand_over(chain, bank1, bank2, loan_id)
    assert recover(chain, bank2, loan_id, 1_000).ok


def test_under_rules_5_no_transfer_kind_is_taken_on_a_written_off_loan():
    chain, members, borrower = with_borrower(version=5)
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    before = stored(chain, loan_id)
    for tx in (
        chain.tx(bank1, "loan.transfer", {"loan_id": loan_id, "to": bank2.did}),
        chain.tx(bank1, "loan.transfer_withdraw", {"loan_id": loan_id}),
    ):
        refused = chain.run_one(tx)
        assert refused.code == "invalid_state"
        assert refused.message == (
            f"tx {tx.id.hex()[:16]} ({tx.kind}) on loan {loan_id[:16]} in state 'written_off' is refused: "
            + FINAL_FROM_RULES_5
        )
    assert stored(chain, loan_id) == before
    # The state list of a refusal elsewhere stays as rules 5 wrote it, written_off left out.
    closed = open_loan(chain, borrower, bank1)
    assert repay(chain, bank1, closed, loan(chain, closed)["amount_owed"]).ok
    refused = transfer(chain, bank1, closed, bank2)
    assert refused.message.endswith(
        "loan.transfer is only allowed in state accepted, defaulted, disbursed, funded, funding, overdue, repaying"
    )


def test_from_rules_6_a_refusal_on_a_written_off_loan_names_every_kind_it_still_takes(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    for tx in (
        chain.tx(bank1, "loan.repay", {"loan_id": loan_id, "amount": 5_000}),
        chain.tx(bank1, "loan.write_off", {"loan_id": loan_id, "reason": "again"}),
        chain.tx(bank2, "loan.service", {"loan_id": loan_id}),
    ):
        refused = chain.run_one(tx)
        assert refused.code == "invalid_state"
        assert refused.message == (
            f"tx {tx.id.hex()[:16]} ({tx.kind}) on loan {loan_id[:16]} in state 'written_off' is refused: "
            + FINAL_FROM_RULES_6
        )
    closed = open_loan(chain, borrower, bank1)
    assert repay(chain, bank1, closed, loan(chain, closed)["amount_owed"]).ok
    assert transfer(chain, bank1, closed, bank2).message.endswith(
        "loan.transfer is only allowed in state accepted, defaulted, disbursed, funded, funding, overdue, "
        "repaying, written_off"
    )


def test_only_the_servicer_offers_and_only_the_named_lender_accepts(world):
    chain, members, borrower = world
    bank1, bank2, bank3 = members[0], members[1], members[2]
    loan_id = written_off(chain, borrower, bank1)
    offered = transfer(chain, bank2, loan_id, bank1)
    assert offered.code == "forbidden" and "only the lender whose offer was accepted" in offered.message
    not_a_lender = transfer(chain, bank1, loan_id, bank3)
    assert not_a_lender.code == "bad_payload" and "does not hold the lender role" in not_a_lender.message
    assert transfer(chain, bank1, loan_id, bank2).ok
    for stranger in (bank1, bank3, borrower):
        refused = accept(chain, stranger, loan_id)
        assert refused.code == "forbidden"
        assert "only the lender the loan's pending transfer names may do this" in refused.message


def test_nothing_left_to_recover_is_not_handed_over(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    assert recover(chain, bank1, loan_id, loan(chain, loan_id)["net_loss"]["total"]).ok
    refused = transfer(chain, bank1, loan_id, bank2)
    assert refused.code == "invalid_state"
    assert refused.message == (
        f"loan.transfer on loan {loan_id[:16]}: everything written off on it was recovered: there is no "
        "recovery to hand over"
    )
    assert duties(chain, bank1) == (0, 0, 0)


# Ending the recovery -------------------------------------------------------------------------


def test_the_servicer_ends_the_recovery_and_the_loan_takes_nothing_more(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    assert recover(chain, bank1, loan_id, 6_000).ok
    lost = loan(chain, loan_id)["net_loss"]["total"]
    assert duties(chain, bank1) == (0, 0, 1)

    ended = end(chain, bank1, loan_id, f"  {HOPELESS} ")
    assert ended.ok, ended.message
    assert domain_events(ended.events) == [
        {
            "event": "loan.recovery_ended",
            "loan_id": loan_id,
            "currency": "EUR",
            "reason": HOPELESS,
            "net_loss": lost,
        }
    ]
    view = loan(chain, loan_id)
    assert view["state"] == "written_off"
    assert view["recovery_ended"] == {"height": chain.height, "time_ms": chain.head_ms, "reason": HOPELESS}
    assert view["net_loss"]["total"] == lost  # final
    entry = view["history"][-1]
    assert (entry["event"], entry["reason"], entry["net_loss"]) == ("loan.recovery_end", HOPELESS, lost)
    assert duties(chain, bank1) == (0, 0, 0)
    before = stored(chain, loan_id)

    ended_at = chain.height
    for sender in (bank1, bank2):  # said to anyone
        refused = recover(chain, sender, loan_id, 1_000)
        assert refused.code == "invalid_state"
        assert refused.message == (
            f"loan.recover on loan {loan_id[:16]}: its recovery ended at height {ended_at} (loan.recovery_end): "
            "its net loss is final and nothing more is recorded on it"
        )
    moved = transfer(chain, bank1, loan_id, bank2)
    assert moved.code == "invalid_state"
    assert moved.message == (
        f"loan.transfer on loan {loan_id[:16]}: its recovery ended at height {ended_at} (loan.recovery_end): "
        "there is no recovery to hand over"
    )
    again = end(chain, bank1, loan_id)
    assert again.code == "invalid_state"
    assert (
        again.message
        == f"loan.recovery_end on loan {loan_id[:16]}: its recovery ended at height {ended_at} already"
    )
    assert stored(chain, loan_id) == before


def test_the_recovery_is_not_ended_while_its_transfer_is_pending_nor_by_anyone_else(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    for sender in (bank2, borrower):
        refused = end(chain, sender, loan_id)
        assert refused.code == "forbidden" and "only the lender whose offer was accepted" in refused.message
    assert transfer(chain, bank1, loan_id, bank2).ok
    pending = end(chain, bank1, loan_id)
    assert pending.code == "invalid_state"
    assert pending.message == (
        f"loan.recovery_end on loan {loan_id[:16]}: its transfer to {bank2.did} (offered at height "
        f"{chain.height - 1}) is pending; withdraw it first (loan.transfer_withdraw) to end the recovery instead"
    )
    assert withdraw(chain, bank1, loan_id).ok
    blank = end(chain, bank1, loan_id, "   ")
    assert blank.code == "bad_payload"
    assert blank.message == "loan.recovery_end field 'reason' must say why the recovery ends, not only spaces"
    assert end(chain, bank1, loan_id).ok


@pytest.mark.parametrize("state", ["disbursed", "defaulted"])
def test_only_a_written_off_loans_recovery_ends(world, state):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    if state == "defaulted":
        default(chain, loan_id)
    refused = end(chain, members[0], loan_id)
    assert refused.code == "invalid_state" and "loan.recovery_end is only allowed in state written_off" in (
        refused.message
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, "missing field 'reason'"),
        ({"reason": ""}, "'reason' must be at least 1 long, got 0"),
        ({"reason": "r" * 201}, "'reason' must be at most 200 long, got 201"),
        ({"reason": "x", "amount": 5}, "unknown field 'amount'"),
    ],
)
def test_a_malformed_end_is_left_out_of_the_block(world, payload, expected):
    chain, members, borrower = world
    loan_id = written_off(chain, borrower, members[0])
    _, execution = chain.cut([chain.tx(members[0], "loan.recovery_end", {"loan_id": loan_id, **payload})])
    [dropped] = execution.dropped
    assert dropped.code == "bad_payload" and expected in dropped.message


def test_under_rules_5_loan_recovery_end_is_an_unknown_kind():
    chain, members, borrower = with_borrower(version=5)
    loan_id = written_off(chain, borrower, members[0])
    tx = chain.tx(members[0], "loan.recovery_end", {"loan_id": loan_id, "reason": HOPELESS})
    block, execution = chain.cut([tx])
    assert not block.txs
    assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id)]
    assert "exists from rules version 6; block" in execution.dropped[0].message


# Removing the member that services a recovery ------------------------------------------------


def test_a_member_servicing_recoveries_is_removed_once_it_hands_them_on_or_ends_them(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    handed, hopeless = written_off(chain, borrower, bank2), written_off(chain, borrower, bank2)
    recovered = written_off(chain, borrower, bank2)
    assert recover(chain, bank2, recovered, loan(chain, recovered)["net_loss"]["total"]).ok  # keeps nobody
    demote(chain, members, bank2)
    refused = propose(chain, bank1, "member.remove", bank2.did, "leaves")
    assert refused.code == "bad_payload"
    assert refused.message == (
        "gov.propose member.remove bank2 services the recovery of 2 written-off loans with money left to "
        "recover, and a removed member services nothing: first bank2 hands each recovery to another lender "
        "(loan.transfer, accepted with loan.transfer_accept) or ends it where nothing more will come "
        "(loan.recovery_end)"
    )
    hand_over(chain, bank2, bank1, handed)
    one = propose(chain, bank1, "member.remove", bank2.did, "leaves")
    assert "services the recovery of 1 written-off loan with" in one.message
    assert end(chain, bank2, hopeless).ok
    removed = vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves")
    assert any(e["event"] == "member.removed" for e in removed.events)
    assert recover(chain, bank1, handed, 1_000).ok  # its funders' recoveries go on being recorded
    refused = recover(chain, bank1, hopeless, 1_000)
    assert refused.code == "invalid_state" and "its recovery ended at height" in refused.message


def test_a_member_named_by_a_written_off_loans_transfer_waits_until_it_is_answered(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    assert transfer(chain, bank1, loan_id, bank2).ok
    demote(chain, members, bank2)
    refused = propose(chain, bank1, "member.remove", bank2.did, "leaves")
    assert refused.code == "bad_payload" and "bank2 is named by 1 pending loan transfer," in refused.message
    assert withdraw(chain, bank1, loan_id).ok
    assert vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves").ok


def test_the_vote_that_would_remove_a_member_that_took_a_recovery_over_meanwhile_is_refused():
    genesis, members = make_genesis([("lender",), ("lender",), ("regulator",), ("kyc",), ("lender",)])
    chain = Chain.start(replace(genesis, app={"key_rotation_delay_blocks": DELAY, "rules_version": 6}))
    bank1, bank5 = members[0], members[4]
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    loan_id = written_off(chain, borrower, bank1)
    vote_through(chain, bank1, members[1:3], "member.voting", bank5.did, "observer")  # 4 of 5 vote
    advance_to(chain, chain.height + DELAY + 1)
    proposal_id = propose(chain, bank1, "member.remove", bank5.did, "leaves").tx_id.hex()
    assert vote(chain, members[1], proposal_id).ok  # two of the three votes needed
    hand_over(chain, bank1, bank5, loan_id)
    refused = vote(chain, members[2], proposal_id)
    assert refused.code == "invalid_state"
    assert "member.remove: bank5 services the recovery of 1 written-off loan" in refused.message
    assert "(not so when it was proposed)" in refused.message


def test_under_rules_5_a_member_whose_written_off_loans_have_money_left_is_removed_as_before():
    chain, members, borrower = with_borrower(version=5)
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank2)
    assert duties(chain, bank2) == (0, 0, 1)  # counted, but no duty under rules 5
    demote(chain, members, bank2)
    assert vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves").ok
    refused = recover(chain, bank1, loan_id, 1_000)
    assert refused.code == "forbidden" and "a written-off loan never changes servicer" in refused.message


def test_from_rules_6_the_refusal_after_a_servicer_left_says_it_did_not_hand_the_recovery_on():
    chain, members, borrower = with_borrower(version=5)
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank2)
    demote(chain, members, bank2)
    vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves")  # allowed under rules 5
    removed_at = chain.height
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    vote_through(chain, bank1, [], "rules.upgrade", "6", str(activation))  # three voters: f = 0
    advance_to(chain, activation)
    refused = recover(chain, bank1, loan_id, 1_000)
    assert refused.code == "forbidden"
    assert refused.message == (
        f"loan.recover on loan {loan_id[:16]}: its servicer bank2 was removed from the consortium at height "
        f"{removed_at} without handing the recovery to another lender: nobody records recoveries on it"
    )


def test_one_members_view_counts_the_recoveries_its_removal_waits_for(world):
    chain, members, borrower = world
    bank2 = members[1]
    written_off(chain, borrower, bank2)
    ended = written_off(chain, borrower, bank2)
    assert end(chain, bank2, ended).ok
    (member,) = queries.lookup(chain.state, "members", "bank2")["members"]
    assert (
        member["open_loans_serviced"],
        member["transfers_pending_to"],
        member["written_off_recovering"],
    ) == (
        0,
        0,
        1,
    )
    (other,) = queries.lookup(chain.state, "members", "bank1")["members"]
    assert other["written_off_recovering"] == 0
