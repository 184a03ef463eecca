"""The least part of a share sold as a chain parameter, ``min_share_part_bps`` (rules 7; see
``ledger.assignment`` and ``ledger.params``): its bounds, a ``params.set`` change from the next block,
pending offers judged by the part they were made under, and rules 6 unchanged.

The loan is ``test_share_assignment``'s: 120,000 EUR of bank1's, funded by alice (30,000), bank1
(40,000) and bob (50,000); the default least part is 1,200 (100 basis points).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.ledger.params import PARAMS, value
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from lendchain.ledger.state import PARAMS_KEY, read_value
from tests.ledger.chain import Chain, make_genesis, seeded_key
from tests.ledger.test_admission import DELAY
from tests.ledger.test_loan_transfer import loan, ok
from tests.ledger.test_membership import advance_to, propose, vote, vote_through
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, syndicate
from tests.ledger.test_share_assignment import ACCEPT, ASSIGN, LEAST, offer, take
from tests.ledger.test_share_decline import decline_world

ACTION = "params.set"
NAME = "min_share_part_bps"


def least_part(least, bps, held):
    """The rules-7 refusal of a part below the least, ``bps`` of the 120,000 loan."""
    percent = f"{bps // 100}" if bps % 100 == 0 else f"{bps / 100:g}"
    return (
        f"less than {least}, the least part of a share that is sold ({percent} % of the loan's 120000: the "
        f"chain's {NAME} is {bps}), unless it is the whole {held}"
    )


def set_part(chain, members, bps):
    return vote_through(chain, members[0], members[1:3], ACTION, NAME, str(bps))


@pytest.fixture
def world():
    return decline_world()


def test_the_parameter_is_registered_from_rules_7_with_its_bounds():
    param = PARAMS[NAME]
    assert (param.default, param.bounds(), param.since, param.changeable) == (100, (1, 5000), 7, True)
    assert value({}, NAME) == 100


def test_by_default_an_offer_needs_1_percent_and_records_the_part_it_was_made_under(world):
    chain, members, borrower, loan_id = world
    refused = offer(chain, ALICE, loan_id, CAROL, 1_199)
    assert (refused.code, refused.message) == (
        "bad_payload",
        f"{ASSIGN} field 'amount' is 1199, {least_part(1_200, 100, 30_000)}",
    )
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok
    [made] = loan(chain, loan_id)["funding"]["share_offers"]
    assert made["min_part_bps"] == 100


def test_a_change_applies_from_the_next_block(world):
    chain, members, borrower, loan_id = world
    proposal_id = propose(chain, members[0], ACTION, NAME, "250").tx_id.hex()
    assert vote(chain, members[1], proposal_id).ok
    # The last vote and an offer in one block: the block read its parameters at its start.
    executed, same_block = chain.run(
        chain.tx(members[2], "gov.vote", {"proposal_id": proposal_id}),
        chain.tx(ALICE, ASSIGN, {"loan_id": loan_id, "to": CAROL.did, "amount": 1_200}),
    )
    assert executed.ok and same_block.ok, (executed.message, same_block.message)
    assert (
        next(e for e in executed.events if e["event"] == "params.changed")["from_height"] == chain.height + 1
    )
    assert value(read_value(chain.state, PARAMS_KEY), NAME) == 250
    refused = offer(chain, BOB, loan_id, CAROL, 2_999)
    assert (refused.code, refused.message) == (
        "bad_payload",
        f"{ASSIGN} field 'amount' is 2999, {least_part(3_000, 250, 50_000)}",
    )
    refused = offer(chain, BOB, loan_id, CAROL, 48_000)  # leaves 2,000, less than the 3,000 kept
    assert refused.code == "bad_payload" and "less than the 3000 a funder keeps" in refused.message
    assert offer(chain, BOB, loan_id, CAROL, 3_000).ok
    assert [o.get("min_part_bps") for o in loan(chain, loan_id)["funding"]["share_offers"]] == [100, 250]


def test_a_pending_offer_is_accepted_by_the_part_it_was_made_under(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok  # 1 % when offered
    assert set_part(chain, members, 5_000).ok  # half the loan from now on
    assert take(chain, CAROL, loan_id).ok, "a raised least part re-judges no pending offer"
    refused = offer(chain, ALICE, loan_id, BOB, 1_200)
    assert refused.code == "bad_payload" and least_part(60_000, 5_000, 28_800) in refused.message
    assert offer(chain, ALICE, loan_id, BOB, 28_800).ok  # its whole holding, however small


def test_a_whole_holding_that_grew_is_judged_at_its_acceptance_by_the_part_it_was_offered_under(world):
    chain, members, borrower, _ = world
    bank1, bank2 = members[0], members[1]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 1_000), (bank2, 700), (BOB, 118_300)])
    assert offer(chain, ALICE, loan_id, CAROL, 1_000).ok  # its whole holding, below the 1,200
    assert set_part(chain, members, 50).ok  # 600 from now on: a 1,000 part of 1,700 would fit it
    assert offer(chain, bank2, loan_id, ALICE, 700).ok and take(chain, ALICE, loan_id).ok
    refused = take(chain, CAROL, loan_id)
    least = (
        "less than 1200, the least part of a share that is sold (1 % of the loan's 120000: the chain's "
        f"{NAME} was 100 when it was offered), unless it is the whole 1700"
    )
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{ACCEPT} on loan {loan_id[:16]}: its offer of 1000 from {ALICE.did} no longer fits the share "
        f"{ALICE.did} holds: {least}; {ALICE.did} withdraws it and offers again",
    )


def test_a_lower_least_part_lets_a_smaller_part_be_sold(world):
    chain, members, borrower, loan_id = world
    assert set_part(chain, members, 1).ok  # 0.01 %: 12 of the loan
    refused = offer(chain, ALICE, loan_id, CAROL, 11)
    assert least_part(12, 1, 30_000) in refused.message and "(0.01 % of the loan's" in refused.message
    assert offer(chain, ALICE, loan_id, CAROL, 12).ok and take(chain, CAROL, loan_id).ok


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0", f"field 'value': {NAME} is a whole number from 1 to 5000 (basis points of the loan), not '0'"),
        ("5001", "not '5001'"),
        ("1.5", "not '1.5'"),
        ("100", f"field 'value': {NAME} is 100 already; the change would do nothing"),
    ],
)
def test_a_change_out_of_bounds_is_refused(world, text, says):
    chain, members, borrower, loan_id = world
    refused = propose(chain, members[0], ACTION, NAME, text)
    assert refused.code == "bad_payload" and says in refused.message, refused.message


# Rules 6 ------------------------------------------------------------------------------------------


def rules6_world(app=None):
    """A rules-6 chain whose genesis sets ``app`` too, with the loan."""
    genesis, members = make_genesis()
    genesis = replace(genesis, app={"key_rotation_delay_blocks": DELAY, "rules_version": 6, **(app or {})})
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    for investor in (ALICE, BOB, CAROL):
        ok(chain, investor, "party.register", {"role": "investor"})
    loan_id = syndicate(chain, borrower, members[0], [(ALICE, 30_000), (members[0], 40_000), (BOB, 50_000)])
    return chain, members, loan_id


def test_under_rules_6_the_part_is_1_percent_whatever_the_genesis_says_and_no_change_is_proposed():
    chain, members, loan_id = rules6_world({NAME: 500})
    refused = offer(chain, ALICE, loan_id, CAROL, 1_199)
    assert (refused.code, refused.message) == (
        "bad_payload",
        f"{ASSIGN} field 'amount' is 1199, {LEAST} 30000",
    )
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok  # not the genesis's 5 %
    [made] = loan(chain, loan_id)["funding"]["share_offers"]
    assert "min_part_bps" not in made  # rules 6 stores what it stored before
    refused = propose(chain, members[0], ACTION, NAME, "200")
    assert refused.code == "bad_payload"
    assert f"field 'key': '{NAME}' is no chain parameter" in refused.message


def test_an_offer_made_under_rules_6_is_accepted_under_rules_7_by_its_1_percent():
    chain, members, loan_id = rules6_world()
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    assert vote_through(chain, members[0], members[1:3], "rules.upgrade", "7", str(activation)).ok
    advance_to(chain, activation)
    assert set_part(chain, members, 2_000).ok
    accepted = take(chain, CAROL, loan_id)
    assert accepted.ok, accepted.message
    assert loan(chain, loan_id)["funding"]["assignments"][0]["amount"] == 1_200
    refused = chain.run_one(chain.tx(CAROL, ACCEPT, {"loan_id": loan_id}))
    assert refused.code == "invalid_state"
