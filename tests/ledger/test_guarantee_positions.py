"""What a funder's positions show of the guarantees of its loans (rules 7; ``positions``,
``guarantee_views``): its pro-rata part of what the loan's active guarantees cover, per position and
in totals, judged at the reader's time, and what ``fund positions`` prints of it."""

from __future__ import annotations

from lendchain.cli.domain import describe_positions
from lendchain.ledger import queries
from tests.ledger.test_guarantees import GINA, act, guaranteed_by, propose
from tests.ledger.test_loan_transfer import ok, repay
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, funders_world, syndicate
from tests.ledger.test_share_assignment import sell


def positions(chain, did, as_of_ms=None):
    return queries.lookup(chain.state, "positions", did, as_of_ms=as_of_ms)


def guaranteed_world():
    """alice funds 90,000 and bob 30,000 of bank1's 120,000 EUR loan; gina is registered to guarantee it."""
    chain, members, borrower = funders_world(version=7)
    ok(chain, GINA, "party.register", {"role": "borrower"})
    loan_id = syndicate(chain, borrower, members[0], [(ALICE, 90_000), (BOB, 30_000)])
    return chain, members, loan_id


def position(view, loan_id):
    [row] = [p for p in view["positions"] if p["loan_id"] == loan_id]
    return row


def test_each_funder_sees_its_pro_rata_part_of_what_the_active_guarantees_cover():
    chain, members, loan_id = guaranteed_world()
    bank1 = members[0]
    proposed = propose(chain, bank1, loan_id, amount=40_000)
    assert proposed.ok, proposed.message
    alice = positions(chain, ALICE.did)
    assert position(alice, loan_id)["guaranteed"] == 0  # a proposed guarantee binds nobody yet
    assert alice["guaranteed"] == {}

    assert act(chain, GINA, "accept", loan_id, proposed.tx_id.hex()).ok
    alice, bob = positions(chain, ALICE.did), positions(chain, BOB.did)
    assert position(alice, loan_id)["guaranteed"] == 30_000  # 3/4 of 40,000
    assert position(bob, loan_id)["guaranteed"] == 10_000
    assert alice["guaranteed"] == {"EUR": {"guaranteed": 30_000, "guaranteed_loans": 1}}
    assert bob["guaranteed"] == {"EUR": {"guaranteed": 10_000, "guaranteed_loans": 1}}


def test_the_guaranteed_part_never_passes_the_share_of_the_principal_still_at_risk():
    chain, members, loan_id = guaranteed_world()
    guaranteed_by(chain, members[0], loan_id, amount=120_000)
    assert repay(chain, members[0], loan_id, 60_000).ok
    alice = position(positions(chain, ALICE.did), loan_id)
    assert alice["share_of"] == "outstanding"
    assert alice["guaranteed"] == alice["share"] < 90_000  # all it carries, and no more


def test_an_expired_guarantee_covers_nothing_at_the_readers_time():
    chain, members, loan_id = guaranteed_world()
    expires = chain.head_ms + 10_000
    guaranteed_by(chain, members[0], loan_id, amount=40_000, expires_ms=expires)
    assert position(positions(chain, BOB.did, as_of_ms=expires - 1), loan_id)["guaranteed"] == 10_000
    bob = positions(chain, BOB.did, as_of_ms=expires)
    assert position(bob, loan_id)["guaranteed"] == 0 and bob["guaranteed"] == {}


def test_a_share_sold_whole_carries_no_guaranteed_part_and_its_buyer_takes_it():
    chain, members, loan_id = guaranteed_world()
    guaranteed_by(chain, members[0], loan_id, amount=40_000)
    sell(chain, BOB, CAROL, loan_id, 30_000)
    bob = positions(chain, BOB.did)
    assert position(bob, loan_id)["status"] == "assigned"
    assert position(bob, loan_id)["guaranteed"] is None and bob["guaranteed"] == {}
    assert position(positions(chain, CAROL.did), loan_id)["guaranteed"] == 10_000


def test_fund_positions_prints_the_guaranteed_share_in_totals_and_per_loan():
    chain, members, loan_id = guaranteed_world()
    guaranteed_by(chain, members[0], loan_id, amount=40_000)
    lines = describe_positions(positions(chain, ALICE.did)).splitlines()
    assert "EUR: guaranteed share 30000 in 1 loans" in lines
    [row] = [line for line in lines if line.startswith(f"  {loan_id[:16]}")]
    assert row.endswith(", guaranteed 30000")


def test_a_chain_without_guarantees_shows_none():
    chain, members, loan_id = guaranteed_world()
    alice = positions(chain, ALICE.did)
    assert alice["guaranteed"] == {} and position(alice, loan_id)["guaranteed"] == 0
    assert "guaranteed" not in describe_positions(alice)
