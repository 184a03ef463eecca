"""Rules 8's guarantee cap (``guarantees``, ``LIVE_LIST_SINCE``): it counts a loan's live guarantees, an
ended one leaves the loan record in the transaction that ends it, and every one stays findable.

The chains start on rules 8 from the genesis unless a test says otherwise; the loan and gina are
``test_guarantees``'s. Rules 7's behaviour, the cap counting the ended ones, is checked here too.
"""

from __future__ import annotations

import pytest

from lendchain import codec
from lendchain.ledger import pagedlist
from lendchain.ledger.guarantees import MAX_PER_LOAN, guarantor_index_key, loan_guarantees_key
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from lendchain.ledger.state import loan_key, read_value
from tests.ledger.chain import seeded_key
from tests.ledger.test_guarantees import GINA, HAL, act, guarantee_world, guaranteed_by, propose
from tests.ledger.test_loan_transfer import loan, ok, open_loan, repay
from tests.ledger.test_membership import advance_to, vote_through

# Sixteen more registered parties, one live guarantee each
GUARANTORS = [seeded_key(40 + n) for n in range(MAX_PER_LOAN)]


@pytest.fixture
def world():
    return guarantee_world(version=8)


def record(chain, loan_id):
    """The loan as stored (not the view)."""
    return read_value(chain.state, loan_key(bytes.fromhex(loan_id)))


def live_ids(chain, loan_id):
    return [gid.hex() for gid in record(chain, loan_id).get("guarantees", [])]


def every_id(chain, loan_id):
    key = loan_guarantees_key(bytes.fromhex(loan_id))
    return [gid.hex() for gid in pagedlist.items(lambda k: read_value(chain.state, k), key)]


def statuses(chain, loan_id):
    return [(g["guarantee_id"], g["status"]) for g in loan(chain, loan_id)["guarantees"]]


def churn(chain, servicer, loan_id, times):
    """Propose a guarantee by gina and withdraw it, ``times`` times; the ids in order."""
    ids = []
    for _ in range(times):
        proposed = propose(chain, servicer, loan_id, amount=1)
        assert proposed.ok, proposed.message
        ids.append(proposed.tx_id.hex())
        assert act(chain, servicer, "withdraw", loan_id, ids[-1]).ok
    return ids


def test_a_loan_takes_a_guarantee_after_max_per_loan_ended_ones_and_still_shows_every_one(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    ended = churn(chain, bank1, loan_id, MAX_PER_LOAN)
    assert live_ids(chain, loan_id) == []  # each left the record as it was withdrawn
    seventeenth = propose(chain, bank1, loan_id, amount=1)
    assert seventeenth.ok, seventeenth.message
    new = seventeenth.tx_id.hex()
    assert live_ids(chain, loan_id) == [new]
    assert every_id(chain, loan_id) == [*ended, new]
    assert statuses(chain, loan_id) == [*((gid, "withdrawn") for gid in ended), (new, "proposed")]
    index = pagedlist.items(lambda k: read_value(chain.state, k), guarantor_index_key(GINA.did))
    assert [gid.hex() for gid in index] == [*ended, new]
    history = [entry["event"] for entry in loan(chain, loan_id)["history"]]
    assert history.count("loan.guarantee") == MAX_PER_LOAN + 1
    assert history.count("loan.guarantee_withdraw") == MAX_PER_LOAN


def test_under_rules_7_the_cap_counts_the_ended_guarantees():
    chain, members, borrower, loan_id = guarantee_world(version=7)
    ended = churn(chain, members[0], loan_id, MAX_PER_LOAN)
    assert live_ids(chain, loan_id) == ended  # rules 7 keeps them in the record
    assert every_id(chain, loan_id) == []  # and keeps no paged list
    refused = propose(chain, members[0], loan_id, amount=1)
    assert (refused.code, refused.message.split(": ", 1)[1]) == (
        "invalid_state",
        f"the loan has had {MAX_PER_LOAN} guarantees, the most a loan may have",
    )


def test_the_cap_counts_live_guarantees_and_a_sixteen_live_loan_takes_one_once_one_ends(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    for party in GUARANTORS:
        ok(chain, party, "party.register", {"role": "borrower"})
    ids = [propose(chain, bank1, loan_id, party, amount=1).tx_id.hex() for party in GUARANTORS]
    assert act(chain, GUARANTORS[0], "accept", loan_id, ids[0]).ok
    refused = propose(chain, bank1, loan_id, amount=1)
    assert (refused.code, refused.message.split(": ", 1)[1]) == (
        "invalid_state",
        f"the loan has {MAX_PER_LOAN} live guarantees (proposed or active), the most a loan may have at "
        "once; withdraw or release one first",
    )
    assert act(chain, bank1, "release", loan_id, ids[0]).ok  # an accepted one ends
    assert live_ids(chain, loan_id) == ids[1:]
    assert propose(chain, bank1, loan_id, amount=1).ok
    assert len(live_ids(chain, loan_id)) == MAX_PER_LOAN
    assert len(every_id(chain, loan_id)) == MAX_PER_LOAN + 1


def test_proposing_and_withdrawing_does_not_grow_the_loan_record(world):
    chain, members, borrower, loan_id = world
    churn(chain, members[0], loan_id, 10)
    size = len(codec.pack(record(chain, loan_id)))
    churn(chain, members[0], loan_id, 30)
    assert len(codec.pack(record(chain, loan_id))) == size
    assert record(chain, loan_id)["guarantees"] == []  # kept, empty: the loan had guarantees


def test_an_ended_guarantee_is_still_named_and_refused_for_its_state(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    withdrawn = churn(chain, bank1, loan_id, 1)[0]
    late = act(chain, GINA, "accept", loan_id, withdrawn)
    assert late.code == "invalid_state" and "is withdrawn, not proposed" in late.message
    again = act(chain, bank1, "withdraw", loan_id, withdrawn)
    assert again.code == "invalid_state" and "is withdrawn, not proposed" in again.message
    released = guaranteed_by(chain, bank1, loan_id, HAL, amount=1)
    assert act(chain, bank1, "release", loan_id, released).ok
    twice = act(chain, bank1, "release", loan_id, released)
    assert twice.code == "invalid_state" and "is released, not active" in twice.message


def test_a_guarantee_of_another_loan_or_none_is_not_found(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    other_loan = open_loan(chain, borrower, bank1)
    elsewhere = propose(chain, bank1, other_loan, amount=1).tx_id.hex()
    for guarantee_id in (elsewhere, "ab" * 32):
        refused = act(chain, GINA, "accept", loan_id, guarantee_id)
        assert (refused.code, refused.message) == (
            "not_found",
            f"loan.guarantee_accept field 'guarantee_id' names no guarantee of loan {loan_id[:16]} "
            f"({guarantee_id[:16]}): see the loan's guarantees",
        )


def test_the_ledgers_own_release_empties_the_list_and_the_views_keep_every_guarantee(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    withdrawn = churn(chain, bank1, loan_id, 1)[0]
    active = guaranteed_by(chain, bank1, loan_id, amount=50_000)
    proposed = propose(chain, bank1, loan_id, HAL, amount=1).tx_id.hex()
    assert loan(chain, loan_id)["guaranteed"] == 50_000
    assert repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"]).ok
    assert loan(chain, loan_id)["state"] == "closed"
    assert live_ids(chain, loan_id) == []
    assert statuses(chain, loan_id) == [(withdrawn, "withdrawn"), (active, "released"), (proposed, "lapsed")]
    assert loan(chain, loan_id)["guaranteed"] == 0


def test_a_loan_of_rules_7_moves_to_the_live_list_at_its_first_guarantee_under_rules_8():
    chain, members, borrower, loan_id = guarantee_world(version=7)
    bank1 = members[0]
    ended = churn(chain, bank1, loan_id, MAX_PER_LOAN - 1)
    kept = guaranteed_by(chain, bank1, loan_id, HAL, amount=10_000)
    assert len(live_ids(chain, loan_id)) == MAX_PER_LOAN  # full under rules 7
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    assert vote_through(chain, bank1, members[1:3], "rules.upgrade", "8", str(activation)).ok
    advance_to(chain, activation)
    assert statuses(chain, loan_id) == [*((gid, "withdrawn") for gid in ended), (kept, "active")]
    new = propose(chain, bank1, loan_id, amount=1)
    assert new.ok, new.message
    assert live_ids(chain, loan_id) == [kept, new.tx_id.hex()]
    assert every_id(chain, loan_id) == [*ended, kept, new.tx_id.hex()]
    assert statuses(chain, loan_id)[-2:] == [(kept, "active"), (new.tx_id.hex(), "proposed")]
    assert loan(chain, loan_id)["guaranteed"] == 10_000


def test_a_loan_of_rules_7_moves_to_the_live_list_when_rules_8_first_ends_one():
    chain, members, borrower, loan_id = guarantee_world(version=7)
    bank1 = members[0]
    ended = churn(chain, bank1, loan_id, 2)
    pending = propose(chain, bank1, loan_id, HAL, amount=1).tx_id.hex()
    active = guaranteed_by(chain, bank1, loan_id, amount=1)
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    assert vote_through(chain, bank1, members[1:3], "rules.upgrade", "8", str(activation)).ok
    advance_to(chain, activation)
    assert act(chain, bank1, "withdraw", loan_id, pending).ok
    assert live_ids(chain, loan_id) == [active]
    assert every_id(chain, loan_id) == [*ended, pending, active]
    assert [status for _, status in statuses(chain, loan_id)] == ["withdrawn"] * 3 + ["active"]
