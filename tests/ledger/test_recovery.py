"""Recoveries after a write-off (``loan.recover``, rules 5; see ``ledger.writeoff``).

The chains start on rules 5 from the genesis unless a test says otherwise.
bank1 and bank2 are the lenders (``make_genesis``'s roles), bank3 a
regulator and bank4 the kyc member; ``rules_world`` makes bank1..bank4 the
voters. A loan is written off as in ``test_write_off``: repaid in part,
defaulted by a block's due-loan pass, then written off by its servicer, so
what was written off has principal, interest and penalty all above zero.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain.ledger import due, queries
from lendchain.ledger.loans import MAX_AMOUNT
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from lendchain.ledger.state import loan_key, read_value
from lendchain.ledger.writeoff import RECOVERY_ORDER, allocate_recovery, net_loss
from tests.ledger.chain import domain_events
from tests.ledger.test_loan_transfer import accept, loan, open_loan, repay, transfer, with_borrower
from tests.ledger.test_membership import advance_to, vote_through
from tests.ledger.test_removal import demote
from tests.ledger.test_write_off import RECOVERIES, default, write_off

NOTE = "the guarantor paid under the guarantee"
FINAL_FROM_RULES_5 = (
    "the loan was written off, which is final; the one transaction it still takes is loan.recover, "
    "by which its servicer records money recovered on it"
)


@pytest.fixture
def world():
    return with_borrower(version=5)


def written_off(chain, borrower, lender):
    """A loan ``lender`` serviced, repaid in part, defaulted and wrote off; its id."""
    loan_id = open_loan(chain, borrower, lender)
    assert repay(chain, lender, loan_id, 10_000).ok
    default(chain, loan_id)
    assert write_off(chain, lender, loan_id).ok
    return loan_id


def recover(chain, key, loan_id, amount, note=None):
    payload = {"loan_id": loan_id, "amount": amount, **({"note": note} if note is not None else {})}
    return chain.run_one(chain.tx(key, "loan.recover", payload))


def stored(chain, loan_id):
    return read_value(chain.state, loan_key(bytes.fromhex(loan_id)))


# Recording recoveries ---------------------------------------------------------------------


def test_recoveries_cover_principal_then_interest_then_penalty_and_the_loan_stays_written_off(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = written_off(chain, borrower, bank1)
    lost = loan(chain, loan_id)["written_off"]
    principal, interest, penalty = lost["principal"], lost["interest"], lost["penalty"]
    total = principal + interest + penalty
    assert min(principal, interest, penalty) > 1
    assert loan(chain, loan_id)["net_loss"] == {
        "principal": principal,
        "interest": interest,
        "penalty": penalty,
        "total": total,
    }

    first = recover(chain, bank1, loan_id, principal - 1_000, note=NOTE)
    assert first.ok, first.message
    assert domain_events(first.events) == [
        {
            "event": "loan.recovered",
            "loan_id": loan_id,
            "currency": "EUR",
            "amount": principal - 1_000,
            "principal": principal - 1_000,
            "interest": 0,
            "penalty": 0,
            "note": NOTE,
            "recovered": principal - 1_000,
            "net_loss": total - principal + 1_000,
        }
    ]
    view = loan(chain, loan_id)
    assert view["state"] == "written_off"
    assert view["recovered"] == {
        "principal": principal - 1_000,
        "interest": 0,
        "penalty": 0,
        "total": principal - 1_000,
        "recoveries": 1,
        "height": chain.height,
        "time_ms": chain.head_ms,
    }
    assert view["net_loss"] == {
        "principal": 1_000,
        "interest": interest,
        "penalty": penalty,
        "total": total - principal + 1_000,
    }
    assert (view["outstanding_principal"], view["amount_owed"]) == (0, 0)  # still nothing owed on chain
    entry = view["history"][-1]
    assert entry["event"] == "loan.recover" and entry["tx_id"] == first.tx_id.hex()
    assert {k: entry[k] for k in ("amount", "principal", "interest", "penalty", "note")} == {
        "amount": principal - 1_000,
        "principal": principal - 1_000,
        "interest": 0,
        "penalty": 0,
        "note": NOTE,
    }

    # The rest of the principal, then into the interest; without a note, none is recorded.
    crossing = recover(chain, bank1, loan_id, 1_000 + interest // 2)
    assert crossing.ok, crossing.message
    assert domain_events(crossing.events)[0] | {"loan_id": None} == {
        "event": "loan.recovered",
        "loan_id": None,
        "currency": "EUR",
        "amount": 1_000 + interest // 2,
        "principal": 1_000,
        "interest": interest // 2,
        "penalty": 0,
        "recovered": principal + interest // 2,
        "net_loss": interest - interest // 2 + penalty,
    }
    assert "note" not in loan(chain, loan_id)["history"][-1]
    # The rest of the interest and all but one unit of the penalty, then the last unit.
    assert recover(chain, bank1, loan_id, interest - interest // 2 + penalty - 1).ok
    last = recover(chain, bank1, loan_id, 1)
    assert last.ok, last.message
    assert domain_events(last.events)[0]["penalty"] == 1 and domain_events(last.events)[0]["net_loss"] == 0
    view = loan(chain, loan_id)
    assert view["recovered"] == {
        "principal": principal,
        "interest": interest,
        "penalty": penalty,
        "total": total,
        "recoveries": 4,
        "height": chain.height,
        "time_ms": chain.head_ms,
    }
    assert view["net_loss"] == {"principal": 0, "interest": 0, "penalty": 0, "total": 0}
    assert view["state"] == "written_off"
    assert [e["event"] for e in view["history"][-5:]] == ["loan.write_off", *["loan.recover"] * 4]

    # Everything written off is recovered: nothing more can be.
    refused = recover(chain, bank1, loan_id, 1)
    assert refused.code == "bad_payload"
    assert refused.message == (
        f"loan.recover field 'amount' is 1, more than the 0 that can still be recovered on loan "
        f"{loan_id[:16]} (written off {total}, recovered {total} so far)"
    )


def test_a_recovery_leaves_the_loan_out_of_servicing(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = written_off(chain, borrower, bank1)
    assert recover(chain, bank1, loan_id, 5_000).ok
    assert due.index_size(lambda k: read_value(chain.state, k)) == 0
    kept = stored(chain, loan_id)
    assert kept["next_check_ms"] is None
    chain.head_ms += 400 * DAY_MS
    chain.run()
    assert chain.ledger_events == () and stored(chain, loan_id) == kept
    assert queries.lookup(chain.state, "reminders", bank1.did)["loans"] == []


def test_a_recovery_above_what_can_still_be_recovered_is_refused_naming_it(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = written_off(chain, borrower, bank1)
    total = loan(chain, loan_id)["net_loss"]["total"]
    before = stored(chain, loan_id)
    refused = recover(chain, bank1, loan_id, total + 1)
    assert refused.code == "bad_payload"
    assert refused.message == (
        f"loan.recover field 'amount' is {total + 1}, more than the {total} that can still be recovered "
        f"on loan {loan_id[:16]} (written off {total}, recovered 0 so far)"
    )
    assert stored(chain, loan_id) == before
    assert recover(chain, bank1, loan_id, 7_000).ok
    refused = recover(chain, bank1, loan_id, total - 7_000 + 1)
    assert refused.code == "bad_payload"
    assert f"more than the {total - 7_000} that can still be recovered" in refused.message
    assert f"(written off {total}, recovered 7000 so far)" in refused.message
    assert recover(chain, bank1, loan_id, total - 7_000).ok  # exactly what is left


def test_the_servicer_a_transfer_made_records_the_recoveries(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    assert transfer(chain, bank1, loan_id, bank2).ok and accept(chain, bank2, loan_id).ok
    assert write_off(chain, bank2, loan_id).ok
    refused = recover(chain, bank1, loan_id, 1_000)
    assert refused.code == "forbidden" and "only the lender whose offer was accepted" in refused.message
    assert recover(chain, bank2, loan_id, 1_000).ok


# Allocation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lost", "amount", "parts"),
    [
        ((100, 20, 5), 1, (1, 0, 0)),
        ((100, 20, 5), 100, (100, 0, 0)),
        ((100, 20, 5), 101, (100, 1, 0)),
        ((100, 20, 5), 120, (100, 20, 0)),
        ((100, 20, 5), 123, (100, 20, 3)),
        ((100, 20, 5), 125, (100, 20, 5)),
        ((0, 20, 5), 21, (0, 20, 1)),  # the principal is all recovered already
        ((0, 0, 5), 5, (0, 0, 5)),
        ((100, 0, 5), 102, (100, 0, 2)),  # no interest was written off
    ],
)
def test_allocation_fills_principal_then_interest_then_penalty(lost, amount, parts):
    named = dict(zip(RECOVERY_ORDER, lost, strict=True))
    assert allocate_recovery({**named, "total": sum(lost)}, amount) == dict(
        zip(RECOVERY_ORDER, parts, strict=True)
    )


@given(
    lost=st.tuples(*[st.integers(0, MAX_AMOUNT)] * 3).filter(lambda t: sum(t) > 0),
    fraction=st.integers(1, 1000),
)
def test_allocation_is_exact_in_integers_and_never_skips_a_component(lost, fraction):
    named = {**dict(zip(RECOVERY_ORDER, lost, strict=True)), "total": sum(lost)}
    amount = max(1, sum(lost) * fraction // 1000)
    parts = allocate_recovery(named, amount)
    assert sum(parts.values()) == amount
    assert all(type(part) is int and 0 <= part <= named[name] for name, part in parts.items())
    for earlier, later in zip(RECOVERY_ORDER, RECOVERY_ORDER[1:], strict=False):
        assert parts[later] == 0 or parts[earlier] == named[earlier]


def test_the_net_loss_is_what_was_written_off_less_what_was_recovered():
    loan_record = {"written_off": {"principal": 900, "interest": 80, "penalty": 20, "reason": "x"}}
    assert net_loss(loan_record) == {"principal": 900, "interest": 80, "penalty": 20, "total": 1000}
    recovered = {"principal": 900, "interest": 30, "penalty": 0, "total": 930, "recoveries": 2}
    assert net_loss({**loan_record, "recovered": recovered}) == {
        "principal": 0,
        "interest": 50,
        "penalty": 20,
        "total": 70,
    }


# Refusals ---------------------------------------------------------------------------------


def test_only_the_loans_servicer_records_a_recovery(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank1)
    before = stored(chain, loan_id)
    for sender in (bank2, borrower, members[2]):  # another lender, the borrower, the regulator
        refused = recover(chain, sender, loan_id, 1_000)
        assert refused.code == "forbidden", sender
        assert (
            f"(loan.recover) on loan {loan_id[:16]} in state 'written_off' is refused: only the lender "
            "whose offer was accepted may do this"
        ) in refused.message
    assert stored(chain, loan_id) == before


@pytest.mark.parametrize("state", ["accepted", "disbursed", "repaying", "overdue", "defaulted", "closed"])
def test_only_a_written_off_loan_takes_a_recovery(world, state):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1, disburse=state != "accepted")
    if state == "repaying":
        assert repay(chain, bank1, loan_id, 10_000).ok
    if state == "overdue":
        chain.head_ms = loan(chain, loan_id)["disbursed_ms"] + MONTH_MS + 10 * DAY_MS
        chain.run()
    if state == "defaulted":
        default(chain, loan_id)
    if state == "closed":
        assert repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"]).ok
    assert loan(chain, loan_id)["state"] == state
    before = stored(chain, loan_id)
    refused = recover(chain, bank1, loan_id, 1_000)
    assert refused.code == "invalid_state" and f"in state '{state}'" in refused.message
    assert "loan.recover is only allowed in state written_off" in refused.message
    assert stored(chain, loan_id) == before


def test_an_unknown_loan_takes_no_recovery(world):
    chain, members, _ = world
    refused = recover(chain, members[0], "ab" * 32, 1_000)
    assert refused.code == "not_found"
    assert "loan.recover field 'loan_id' names no known loan" in refused.message


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"amount": 0}, "'amount' must be at least 1, got 0"),
        ({"amount": -500}, "'amount' must be at least 1, got -500"),
        ({"amount": MAX_AMOUNT + 1}, f"'amount' must be at most {MAX_AMOUNT}"),
        ({"amount": "500"}, "'amount' must be int, got str"),
        ({}, "missing field 'amount'"),
        ({"amount": 500, "note": ""}, "'note' must be at least 1 long, got 0"),
        ({"amount": 500, "note": "n" * 201}, "'note' must be at most 200 long, got 201"),
        ({"amount": 500, "reference": "x"}, "unknown field 'reference'"),
    ],
)
def test_a_malformed_recovery_is_left_out_of_the_block(world, fields, expected):
    chain, members, borrower = world
    loan_id = written_off(chain, borrower, members[0])
    tx = chain.tx(members[0], "loan.recover", {"loan_id": loan_id, **fields})
    block, execution = chain.cut([tx])
    assert not block.txs
    [dropped] = execution.dropped
    assert dropped.code == "bad_payload" and "loan.recover" in dropped.message
    assert expected in dropped.message


def test_a_note_of_spaces_is_refused_and_one_of_200_characters_is_kept_stripped(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = written_off(chain, borrower, bank1)
    blank = recover(chain, bank1, loan_id, 1_000, note="   ")
    assert blank.code == "bad_payload"
    assert blank.message == "loan.recover field 'note' must say something when given, not only spaces"
    assert "recovered" not in loan(chain, loan_id)
    assert recover(chain, bank1, loan_id, 1_000, note=" sold the van ").ok
    assert loan(chain, loan_id)["history"][-1]["note"] == "sold the van"
    longest = "n" * 200
    assert recover(chain, bank1, loan_id, 1_000, note=longest).ok
    assert loan(chain, loan_id)["history"][-1]["note"] == longest


# Who may record once the servicer changed ----------------------------------------------


def test_once_its_servicer_is_removed_nobody_records_recoveries_on_the_loan(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = written_off(chain, borrower, bank2)
    assert recover(chain, bank2, loan_id, 2_000).ok  # while it is a member
    demote(chain, members, bank2)
    vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves")
    removed_at = chain.height
    before = stored(chain, loan_id)

    own = recover(chain, bank2, loan_id, 1_000)  # a removed member's keys sign nothing
    assert own.code == "forbidden" and f"removed from the consortium at height {removed_at}" in own.message
    for sender in (bank1, members[2]):  # another lender, the regulator: told why nobody can
        refused = recover(chain, sender, loan_id, 1_000)
        assert refused.code == "forbidden"
        assert refused.message == (
            f"loan.recover on loan {loan_id[:16]}: its servicer bank2 was removed from the consortium at "
            f"height {removed_at}, and a written-off loan never changes servicer: nobody records "
            "recoveries on it"
        )
    moved = chain.run_one(chain.tx(bank1, "loan.transfer", {"loan_id": loan_id, "to": bank1.did}))
    assert moved.code == "invalid_state" and FINAL_FROM_RULES_5 in moved.message
    assert stored(chain, loan_id) == before
    assert loan(chain, loan_id)["recovered"]["total"] == 2_000  # what it recorded stays


def test_a_servicer_without_the_lender_role_records_recoveries_again_once_it_is_back(world):
    chain, members, borrower = world
    bank1, bank2, bank3, bank4 = members
    loan_id = written_off(chain, borrower, bank1)
    vote_through(chain, bank2, [bank3, bank4], "member.roles", bank1.did, "bureau")
    refused = recover(chain, bank1, loan_id, 1_000)
    assert refused.code == "forbidden"
    assert refused.message == (
        f"loan.recover on loan {loan_id[:16]}: its servicer bank1 does not hold the lender role now: it "
        "records recoveries again once the members give it back (member.roles)"
    )
    vote_through(chain, bank2, [bank3, bank4], "member.roles", bank1.did, "lender")
    assert recover(chain, bank1, loan_id, 1_000).ok


# Rules versions ---------------------------------------------------------------------------


def test_under_rules_5_a_refusal_on_a_written_off_loan_names_loan_recover(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    assert transfer(chain, bank1, loan_id, bank2).ok
    assert write_off(chain, bank1, loan_id).ok
    attempts = [
        chain.tx(bank1, "loan.repay", {"loan_id": loan_id, "amount": 5_000}),
        chain.tx(bank1, "loan.prepay", {"loan_id": loan_id, "amount": 5_000}),
        chain.tx(bank1, "loan.transfer", {"loan_id": loan_id, "to": bank2.did}),
        chain.tx(bank2, "loan.transfer_accept", {"loan_id": loan_id}),  # it lapsed at the write-off
        chain.tx(bank1, "loan.transfer_withdraw", {"loan_id": loan_id}),
        chain.tx(bank2, "loan.service", {"loan_id": loan_id}),
        chain.tx(bank1, "loan.write_off", {"loan_id": loan_id, "reason": "again"}),
        chain.tx(bank1, "loan.disburse", {"loan_id": loan_id}),
    ]
    before = stored(chain, loan_id)
    for tx in attempts:
        refused = chain.run_one(tx)
        assert refused.code == "invalid_state", refused
        assert refused.message == (
            f"tx {tx.id.hex()[:16]} ({tx.kind}) on loan {loan_id[:16]} in state 'written_off' is refused: "
            + FINAL_FROM_RULES_5
        )
        assert RECOVERIES not in refused.message
    assert stored(chain, loan_id) == before


def test_under_rules_4_loan_recover_is_an_unknown_kind():
    chain, members, borrower = with_borrower(version=4)
    loan_id = written_off(chain, borrower, members[0])
    tx = chain.tx(members[0], "loan.recover", {"loan_id": loan_id, "amount": 1_000})
    block, execution = chain.cut([tx])
    assert not block.txs
    assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id)]
    assert "exists from rules version 5; block" in execution.dropped[0].message


def test_a_loan_written_off_under_rules_4_takes_recoveries_once_rules_5_are_in_force():
    chain, members, borrower = with_borrower(version=4)
    bank1 = members[0]
    loan_id = written_off(chain, borrower, bank1)
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    vote_through(chain, bank1, members[1:3], "rules.upgrade", "5", str(activation))
    repaid = repay(chain, bank1, loan_id, 1_000)
    assert repaid.code == "invalid_state" and repaid.message.endswith(RECOVERIES)  # rules 4: word for word
    advance_to(chain, activation)
    repaid = repay(chain, bank1, loan_id, 1_000)
    assert chain.height == activation
    assert repaid.code == "invalid_state" and repaid.message.endswith(FINAL_FROM_RULES_5)
    assert recover(chain, bank1, loan_id, 1_000).ok
    assert loan(chain, loan_id)["recovered"]["principal"] == 1_000
