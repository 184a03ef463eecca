"""A funder sells its share of a syndicated loan (``loan.share_assign`` and its answers, rules 6; see
``ledger.assignment``): what moves, who may, and each refusal.

The chains start on rules 6 from the genesis. bank1 and bank2 are the lenders
(``make_genesis``'s roles), bank3 a regulator and bank4 the kyc member;
alice, bob and carol are registered investors. The syndicated loan lends
120,000 EUR, is bank1's (its servicer) and is funded by alice (30,000), bank1
itself (40,000) and bob (50,000), in that order: the least part sold is 1,200
(1 % of the loan).
"""

from __future__ import annotations

import json

import pytest

from lendchain.ledger import pagedlist
from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.state import funder_loans_key, read_value
from tests.ledger.chain import domain_events, seeded_key
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import loan, ok, open_loan, repay
from tests.ledger.test_membership import vote_through
from tests.ledger.test_removal import demote
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, funders_world, syndicate
from tests.ledger.test_write_off import default, write_off

ASSIGN, ACCEPT, WITHDRAW = "loan.share_assign", "loan.share_accept", "loan.share_withdraw"
NOT_A_HOLDER = "is refused: only a funder of the loan whose commitment is not released may do this"


def share_world():
    """The chain, its members, the borrower and the syndicated loan's id (see the module docstring)."""
    chain, members, borrower = funders_world(version=6)
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    return chain, members, borrower, loan_id


@pytest.fixture
def world():
    return share_world()


def offer(chain, seller, loan_id, to, amount, **extra):
    payload = {"loan_id": loan_id, "to": getattr(to, "did", to), "amount": amount, **extra}
    return chain.run_one(chain.tx(seller, ASSIGN, payload))


def take(chain, buyer, loan_id, **extra):
    return chain.run_one(chain.tx(buyer, ACCEPT, {"loan_id": loan_id, **extra}))


def withdraw(chain, seller, loan_id):
    return chain.run_one(chain.tx(seller, WITHDRAW, {"loan_id": loan_id}))


def sell(chain, seller, buyer, loan_id, amount, **extra):
    assert offer(chain, seller, loan_id, buyer, amount, **extra).ok
    accepted = take(chain, buyer, loan_id)
    assert accepted.ok, accepted.message
    return accepted


def holdings(chain, loan_id):
    """(funder, amount, received, status) of each commitment, in order."""
    return [
        (c["funder"], c["amount"], c["received"], c["status"])
        for c in loan(chain, loan_id)["funding"]["commitments"]
    ]


def funder_index(chain, did):
    return [
        loan_id.hex()
        for loan_id in pagedlist.items(lambda k: read_value(chain.state, k), funder_loans_key(did))
    ]


# What moves -----------------------------------------------------------------------------------


def test_a_whole_share_is_offered_taken_and_every_later_repayment_follows_it(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert repay(chain, bank1, loan_id, 12_000).ok  # before the sale: alice's 3,000 stays hers
    offered = offer(chain, ALICE, loan_id, CAROL, 30_000, price=27_500)
    assert offered.ok, offered.message
    offered_at = chain.height
    fields = {"from": ALICE.did, "to": CAROL.did, "amount": 30_000, "price": 27_500}
    assert domain_events(offered.events) == [{"event": "loan.share_offered", "loan_id": loan_id, **fields}]
    assert funder_index(chain, CAROL.did) == [loan_id]  # indexed at the offer: carol sees it
    [pending] = loan(chain, loan_id)["funding"]["share_offers"]
    assert pending == {**fields, "height": offered_at, "status": "pending"}
    assert holdings(chain, loan_id)[0] == (ALICE.did, 30_000, 3_000, "committed")  # nothing moved yet

    accepted = take(chain, CAROL, loan_id)
    assert accepted.ok, accepted.message
    assert domain_events(accepted.events) == [
        {"event": "loan.share_assigned", "loan_id": loan_id, **fields, "state": "repaying"}
    ]
    entry = loan(chain, loan_id)["history"][-1]
    assert (entry["event"], entry["from"], entry["to"], entry["amount"], entry["offered_height"]) == (
        ACCEPT,
        ALICE.did,
        CAROL.did,
        30_000,
        offered_at,
    )
    funding = loan(chain, loan_id)["funding"]
    assert funding["share_offers"] == []
    assert funding["assignments"] == [{**fields, "height": chain.height, "offered_height": offered_at}]
    assert holdings(chain, loan_id) == [
        (ALICE.did, 0, 3_000, "assigned"),  # the record stays, with what it received
        (bank1.did, 40_000, 4_000, "committed"),
        (BOB.did, 50_000, 5_000, "committed"),
        (CAROL.did, 30_000, 0, "committed"),  # a new holder comes last
    ]
    assert sum(c[1] for c in holdings(chain, loan_id)) == funding["funded"] == 120_000

    assert repay(chain, bank1, loan_id, 12_001).ok
    # 12,001 over 0:40:50:30 (of 120): the unit left over goes to bob's largest remainder; alice gets nothing
    assert [c[2] for c in holdings(chain, loan_id)] == [3_000, 8_000, 10_001, 3_000]
    assert funder_index(chain, ALICE.did) == [loan_id]  # append-only: the views check the holding


def test_part_of_a_share_goes_to_a_funder_that_already_holds_one_in_its_place(world):
    chain, members, borrower, loan_id = world
    bank1, bank2 = members[0], members[1]
    sell(chain, BOB, ALICE, loan_id, 20_000)
    assert funder_index(chain, ALICE.did) == [loan_id]  # once: it was indexed when it funded
    assert holdings(chain, loan_id) == [
        (ALICE.did, 50_000, 0, "committed"),
        (bank1.did, 40_000, 0, "committed"),
        (BOB.did, 30_000, 0, "committed"),
    ]
    sell(chain, BOB, bank2, loan_id, 10_000)  # a lender member buys too, and is appended
    assert [c[:2] for c in holdings(chain, loan_id)][2:] == [(BOB.did, 20_000), (bank2.did, 10_000)]
    assert repay(chain, bank1, loan_id, 7)
    # 7 over 50:40:20:10 (of 120): exact shares 2.92, 2.33, 1.17, 0.58; the largest remainders get the units
    assert [c[2] for c in holdings(chain, loan_id)] == [3, 2, 1, 1]


def test_a_seller_that_sold_everything_buys_back_into_its_own_record(world):
    chain, members, borrower, loan_id = world
    sell(chain, ALICE, CAROL, loan_id, 30_000)
    sell(chain, CAROL, ALICE, loan_id, 10_000)
    assert holdings(chain, loan_id)[0] == (ALICE.did, 10_000, 0, "committed")
    assert holdings(chain, loan_id)[3] == (CAROL.did, 20_000, 0, "committed")


@pytest.mark.parametrize("state", ["funded", "overdue", "defaulted"])
def test_a_share_is_sold_in_every_state_from_funded_until_closed(world, state):
    chain, members, borrower, _ = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1, disburse=False, funding_window_ms=60_000)
    for funder, amount in ((ALICE, 60_000), (BOB, 60_000)):
        ok(chain, funder, "loan.fund", {"loan_id": loan_id, "amount": amount})
    if state != "funded":
        ok(chain, bank1, "loan.disburse", {"loan_id": loan_id})
        days = {"overdue": 40, "defaulted": 200}[state]
        chain.head_ms = loan(chain, loan_id)["disbursed_ms"] + days * 86_400_000
        chain.run()
    assert loan(chain, loan_id)["state"] == state
    accepted = sell(chain, ALICE, CAROL, loan_id, 1_200)
    assert domain_events(accepted.events)[0]["state"] == state
    assert loan(chain, loan_id)["state"] == state


def test_a_buyer_named_by_two_offers_says_whose_it_takes(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok
    assert offer(chain, BOB, loan_id, CAROL, 5_000).ok
    refused = take(chain, CAROL, loan_id)
    assert refused.code == "bad_payload"
    assert refused.message == (
        f"{ACCEPT} field 'from' is missing: 2 offers of a share to {CAROL.did} are pending (from "
        f"{ALICE.did}, {BOB.did}); name the funder whose offer it accepts"
    )
    assert take(chain, CAROL, loan_id, **{"from": BOB.did}).ok
    assert holdings(chain, loan_id)[3][:2] == (CAROL.did, 5_000)
    assert take(chain, CAROL, loan_id).ok  # alice's is the one left
    assert holdings(chain, loan_id)[3][:2] == (CAROL.did, 15_000)


def test_the_seller_withdraws_its_offer_and_may_offer_again(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok
    offered_at = chain.height
    taken_back = withdraw(chain, ALICE, loan_id)
    assert taken_back.ok, taken_back.message
    assert domain_events(taken_back.events) == [
        {
            "event": "loan.share_offer_withdrawn",
            "loan_id": loan_id,
            "from": ALICE.did,
            "to": CAROL.did,
            "amount": 10_000,
            "offered_height": offered_at,
        }
    ]
    refused = take(chain, CAROL, loan_id)
    assert (
        refused.code == "invalid_state"
        and f"no offer of a share to {CAROL.did} is pending" in refused.message
    )
    assert offer(chain, ALICE, loan_id, BOB, 10_000).ok  # carol stays indexed: the views read the loan
    assert funder_index(chain, CAROL.did) == [loan_id]
    assert [o["to"] for o in loan(chain, loan_id)["funding"]["share_offers"]] == [BOB.did]


def test_an_audit_export_of_a_loan_whose_shares_moved_verifies_with_each_step_and_its_signer(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert offer(chain, BOB, loan_id, CAROL, 50_000).ok and withdraw(chain, BOB, loan_id).ok
    sell(chain, BOB, CAROL, loan_id, 20_000, price=19_000)
    assert repay(chain, bank1, loan_id, 10_000).ok
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    rows = [(e["kind"], e["signer"]) for e in document["entries"]][-5:]
    assert rows == [
        (ASSIGN, BOB.did),
        (WITHDRAW, BOB.did),
        (ASSIGN, BOB.did),
        (ACCEPT, CAROL.did),
        ("loan.repay", bank1.did),
    ]
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id


# Refusals ---------------------------------------------------------------------------------------


LEAST = "less than 1200, the least part of a share that is sold (1 % of the loan's 120000), unless it is the whole"


@pytest.mark.parametrize(
    ("seller", "to", "amount", "code", "says"),
    [
        pytest.param("carol", "bob", 1_200, "forbidden", NOT_A_HOLDER, id="not a funder"),
        pytest.param("bank2", "bob", 1_200, "forbidden", NOT_A_HOLDER, id="a lender that funds nothing"),
        pytest.param("borrower", "bob", 1_200, "forbidden", NOT_A_HOLDER, id="the borrower"),
        pytest.param(
            "alice",
            "carol",
            30_001,
            "bad_payload",
            "field 'amount' is 30001, more than the 30000 it holds",
            id="more than it holds",
        ),
        pytest.param(
            "alice", "carol", 1_199, "bad_payload", f"field 'amount' is 1199, {LEAST} 30000", id="dust sold"
        ),
        pytest.param(
            "alice",
            "carol",
            29_000,
            "bad_payload",
            "field 'amount' is 29000, which would leave 1000, less than the 1200 a funder keeps; sell the whole "
            "30000, or at most 28800",
            id="dust left",
        ),
        pytest.param(
            "alice",
            "borrower",
            1_200,
            "bad_payload",
            "field 'to' names the loan's borrower ({borrower}), who cannot fund its own loan",
            id="to the borrower",
        ),
        pytest.param(
            "alice",
            "alice",
            1_200,
            "bad_payload",
            "field 'to' is {alice}, the funder that holds the share already",
            id="to itself",
        ),
        pytest.param(
            "alice",
            "bank3",
            1_200,
            "bad_payload",
            "field 'to' names bank3, which does not hold the lender role: a share is held by a registered "
            "investor or a lender member",
            id="to a member that does not lend",
        ),
        pytest.param(
            "alice",
            "stranger",
            1_200,
            "bad_payload",
            "field 'to' names no registered party or member ({stranger})",
            id="to nobody known",
        ),
        pytest.param(
            "alice",
            "other borrower",
            1_200,
            "bad_payload",
            "field 'to' names a registered borrower ({other borrower}), not an investor",
            id="to another borrower",
        ),
    ],
)
def test_an_offer_refused_says_what_is_wrong(world, seller, to, amount, code, says):
    chain, members, borrower, loan_id = world
    other_borrower = seeded_key(5)
    chain.onboard(other_borrower, members[3])
    keys = {
        "alice": ALICE,
        "bob": BOB,
        "carol": CAROL,
        "bank2": members[1],
        "bank3": members[2],
        "borrower": borrower,
        "other borrower": other_borrower,
        "stranger": seeded_key(6),
    }
    refused = offer(chain, keys[seller], loan_id, keys[to], amount)
    assert refused.code == code
    assert says.format(**{name: key.did for name, key in keys.items()}) in refused.message
    assert "share_offers" not in loan(chain, loan_id)["funding"]


def test_a_holding_below_the_least_part_is_sold_whole_and_an_offer_no_longer_fitting_is_refused(world):
    chain, members, borrower, _ = world
    bank1, bank2 = members[0], members[1]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 1_000), (bank2, 700), (BOB, 118_300)])
    refused = offer(chain, ALICE, loan_id, CAROL, 500)
    assert refused.code == "bad_payload" and f"field 'amount' is 500, {LEAST} 1000" in refused.message
    assert offer(chain, ALICE, loan_id, CAROL, 1_000).ok  # its whole holding, however small
    sell(chain, bank2, ALICE, loan_id, 700)  # alice holds 1,700 now: selling 1,000 would leave 700
    refused = take(chain, CAROL, loan_id)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{ACCEPT} on loan {loan_id[:16]}: its offer of 1000 from {ALICE.did} no longer fits the share "
        f"{ALICE.did} holds: {LEAST} 1700; {ALICE.did} withdraws it and offers again",
    )
    assert withdraw(chain, ALICE, loan_id).ok
    sell(chain, ALICE, CAROL, loan_id, 1_700)
    assert [c[:2] for c in holdings(chain, loan_id)] == [
        (ALICE.did, 0),
        (bank2.did, 0),
        (BOB.did, 118_300),
        (CAROL.did, 1_700),
    ]


def test_one_offer_is_pending_per_funder_and_only_the_named_holder_takes_it(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok
    offered_at = chain.height
    refused = offer(chain, ALICE, loan_id, BOB, 5_000)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{ASSIGN} on loan {loan_id[:16]}: its offer of 10000 to {CAROL.did} (offered at height {offered_at}) "
        f"is still pending; it must be accepted, or withdrawn with {WITHDRAW}, first",
    )
    refused = take(chain, BOB, loan_id)
    assert (
        refused.code == "invalid_state" and f"no offer of a share to {BOB.did} is pending" in refused.message
    )
    refused = take(chain, CAROL, loan_id, **{"from": BOB.did})
    assert refused.code == "invalid_state"
    assert f"no offer of a share from {BOB.did} to {CAROL.did} is pending" in refused.message
    refused = take(chain, borrower, loan_id)
    assert refused.code == "forbidden" and "a registered investor or a lender member" in refused.message
    refused = withdraw(chain, BOB, loan_id)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{WITHDRAW} on loan {loan_id[:16]}: {BOB.did} has no offer of its share pending to withdraw",
    )
    assert withdraw(chain, CAROL, loan_id).code == "forbidden"  # it holds nothing to offer


def test_a_funder_that_sold_everything_offers_nothing(world):
    chain, members, borrower, loan_id = world
    sell(chain, ALICE, CAROL, loan_id, 30_000)
    refused = offer(chain, ALICE, loan_id, BOB, 1_200)
    assert (refused.code, refused.message) == (
        "forbidden",
        f"{ASSIGN} on loan {loan_id[:16]}: {ALICE.did} has sold its whole share of the loan: it holds none",
    )


def test_a_removed_member_is_not_named_and_cannot_take_an_offer_made_before(world):
    chain, members, borrower, loan_id = world
    bank1, bank2 = members[0], members[1]
    assert offer(chain, ALICE, loan_id, bank2, 1_200).ok
    demote(chain, members, bank2)
    vote_through(chain, bank1, [], "member.remove", bank2.did, "sold its book")
    refused = offer(chain, BOB, loan_id, bank2, 1_200)
    assert refused.code == "bad_payload"
    assert (
        f"field 'to' names bank2, removed from the consortium at height {chain.height - 1}" in refused.message
    )
    refused = take(chain, bank2, loan_id)
    assert refused.code == "forbidden"  # a removed member's keys sign nothing
    assert withdraw(chain, ALICE, loan_id).ok


def test_an_offer_by_a_member_removed_since_is_still_taken(world):
    chain, members, borrower, _ = world
    bank1, bank2 = members[0], members[1]
    loan_id = syndicate(chain, borrower, bank1, [(bank2, 60_000), (BOB, 60_000)])
    assert offer(chain, bank2, loan_id, CAROL, 60_000).ok
    demote(chain, members, bank2)
    vote_through(chain, bank1, [], "member.remove", bank2.did, "leaves the consortium")
    assert take(chain, CAROL, loan_id).ok
    assert [c[:2] for c in holdings(chain, loan_id)] == [
        (bank2.did, 0),
        (BOB.did, 60_000),
        (CAROL.did, 60_000),
    ]


def test_a_loan_that_is_not_syndicated_or_still_funding_has_no_share_to_sell(world):
    chain, members, borrower, _ = world
    bank1 = members[0]
    plain = open_loan(chain, borrower, bank1)
    refused = offer(chain, bank1, plain, ALICE, 1_200)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{ASSIGN} on loan {plain[:16]}: the loan is not syndicated (no funders' commitments fund it): its "
        "lender carries it alone, and hands it on with loan.transfer",
    )
    funding = open_loan(chain, borrower, bank1, disburse=False, funding_window_ms=60_000)
    ok(chain, ALICE, "loan.fund", {"loan_id": funding, "amount": 60_000})
    deadline = loan(chain, funding)["funding"]["deadline_ms"]
    refused = offer(chain, ALICE, funding, CAROL, 1_200)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{ASSIGN} on loan {funding[:16]}: the loan is still funding (until {deadline} ms): its commitments "
        "are final once it is funded, and a funder that wants less commits less",
    )


def test_an_offer_lapses_when_the_loan_closes_and_nothing_is_sold_on_a_closed_loan(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok
    assert repay(chain, bank1, loan_id, loan(chain, loan_id)["amount_owed"]).ok
    [lapsed] = loan(chain, loan_id)["funding"]["share_offers"]
    assert (lapsed["status"], lapsed["lapsed_because"]) == ("lapsed", "the loan is closed")
    for refused in (
        take(chain, CAROL, loan_id),
        withdraw(chain, ALICE, loan_id),
        offer(chain, BOB, loan_id, CAROL, 1_200),
    ):
        assert refused.code == "invalid_state" and "in state 'closed'" in refused.message


def test_an_offer_made_before_the_write_off_lapses_with_it(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert offer(chain, ALICE, loan_id, CAROL, 1_200).ok
    offered_at = chain.height
    default(chain, loan_id)
    assert loan(chain, loan_id)["funding"]["share_offers"][0]["status"] == "pending"  # a default leaves it
    assert write_off(chain, bank1, loan_id).ok
    [lapsed] = loan(chain, loan_id)["funding"]["share_offers"]
    assert lapsed["lapsed_because"] == "the loan was written off after it was offered"
    refused = withdraw(chain, ALICE, loan_id)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{WITHDRAW} on loan {loan_id[:16]}: its offer to {CAROL.did} (offered at height {offered_at}) lapsed: "
        "the loan was written off after it was offered; there is nothing to withdraw",
    )
    refused = take(chain, CAROL, loan_id)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{ACCEPT} on loan {loan_id[:16]}: no offer of a share to {CAROL.did} is pending (the one from "
        f"{ALICE.did} lapsed: the loan was written off after it was offered) (a funder offers one with {ASSIGN})",
    )
    assert offer(chain, ALICE, loan_id, BOB, 1_200).ok  # a new offer replaces the lapsed one
    [pending] = loan(chain, loan_id)["funding"]["share_offers"]
    assert (pending["to"], pending["written_off"], pending["status"]) == (BOB.did, True, "pending")


def test_under_rules_5_the_kinds_do_not_exist():
    chain, members, borrower = funders_world(version=5)
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    before = loan(chain, loan_id)
    for kind, payload in (
        (ASSIGN, {"to": CAROL.did, "amount": 30_000}),
        (ACCEPT, {}),
        (WITHDRAW, {}),
    ):
        block, execution = chain.cut([chain.tx(ALICE, kind, {"loan_id": loan_id, **payload})])
        assert execution.results == []
        [dropped] = execution.dropped
        assert (dropped.code, dropped.message) == (
            "unknown_kind",
            f"field 'kind': {kind} exists from rules version 6; block {chain.height + 1} executes under version 5",
        )
        chain.nonces[ALICE.did] -= 1
    assert loan(chain, loan_id) == before
