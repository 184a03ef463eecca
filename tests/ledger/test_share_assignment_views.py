"""What follows a share sold (rules 6; see ``ledger.assignment``): pro-rata splits that still add up
exactly, consents counted at what each funder holds, both parties' positions, the borrower's carriers,
and a written-off loan's recoveries split before and after the sale.

The world is ``test_share_assignment``'s: a 120,000 EUR loan of bank1's funded by alice (30,000),
bank1 (40,000) and bob (50,000); carol is an investor without a share.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain.ledger import queries
from lendchain.ledger.assignment import credit_recoveries, move_share, recovery_shares
from lendchain.ledger.funding import distribute, pro_rata
from tests.ledger.test_loan_transfer import loan, repay
from tests.ledger.test_recovery import recover
from tests.ledger.test_restructure import accept_terms, propose
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL, consent
from tests.ledger.test_share_assignment import holdings, offer, sell, share_world
from tests.ledger.test_write_off import default, write_off


@pytest.fixture
def world():
    return share_world()


def positions(chain, did):
    return queries.lookup(chain.state, "positions", did, as_of_ms=chain.head_ms)


def position(chain, did, loan_id):
    return next(p for p in positions(chain, did)["positions"] if p["loan_id"] == loan_id)


# Pro-rata splits ------------------------------------------------------------------------------


@given(
    funded=st.lists(st.integers(1, 10**9), min_size=1, max_size=6),
    moves=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(1, 10_000)), min_size=1, max_size=12
    ),
    payments=st.lists(st.integers(0, 10**12), min_size=1, max_size=4),
)
def test_after_any_sales_each_split_adds_up_exactly_and_a_share_sold_whole_gets_nothing(
    funded, moves, payments
):
    commitments = [
        {"funder": f"f{n}", "amount": amount, "received": 0, "status": "committed"}
        for n, amount in enumerate(funded)
    ]
    for seller_pick, buyer_pick, per_10k in moves:
        held = [c for c in commitments if c["amount"]]
        seller = held[seller_pick % len(held)]["funder"]
        buyer = f"f{buyer_pick}"  # f0..f7: an existing funder, or a new one appended last
        if buyer == seller:
            continue
        amount = max(1, next(c["amount"] for c in commitments if c["funder"] == seller) * per_10k // 10_000)
        before = [c["funder"] for c in commitments]
        commitments = move_share(commitments, seller, buyer, amount)
        order = [c["funder"] for c in commitments]
        assert order[: len(before)] == before  # nobody moves; a new holder comes last
        assert len({c["funder"] for c in commitments}) == len(commitments)  # one record per funder
    total = sum(c["amount"] for c in commitments)
    assert total == sum(funded)
    loan = {"funding": {"commitments": commitments}}
    for payment in payments:
        received = [c["received"] for c in loan["funding"]["commitments"]]
        loan = distribute(loan, payment)
        parts = [c["received"] - r for c, r in zip(loan["funding"]["commitments"], received, strict=True)]
        assert sum(parts) == payment
        for c, part in zip(commitments, parts, strict=True):
            assert abs(part * total - payment * c["amount"]) < total  # within one unit of the exact share
            if c["amount"] == 0:
                assert part == 0 and c["status"] == "assigned"


def test_a_repayment_after_a_sale_adds_up_to_the_payment_on_the_chain(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    sell(chain, BOB, CAROL, loan_id, 33_333)
    sell(chain, ALICE, CAROL, loan_id, 30_000)
    for payment in (1, 2, 9_999, 10_007):
        before = [c[2] for c in holdings(chain, loan_id)]
        assert repay(chain, bank1, loan_id, payment).ok
        after = [c[2] for c in holdings(chain, loan_id)]
        parts = [a - b for a, b in zip(after, before, strict=True)]
        assert sum(parts) == payment
        assert parts == pro_rata(payment, [0, 40_000, 16_667, 63_333])


# Consent to a restructuring ---------------------------------------------------------------------


def test_a_consent_stays_with_its_giver_counted_at_what_it_holds_and_the_buyer_consents_itself(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert propose(chain, bank1, loan_id).ok  # bank1's 40,000 consents by proposing
    assert consent(chain, BOB, loan_id).ok  # 90,000 of 120,000
    assert loan(chain, loan_id)["restructuring"]["consent"]["consented"] == 90_000
    sell(chain, BOB, CAROL, loan_id, 30_000)  # bob keeps 20,000: its consent counts that much
    counted = loan(chain, loan_id)["restructuring"]["consent"]
    assert (counted["committed"], counted["consented"], counted["majority"]) == (120_000, 60_000, False)
    refused = accept_terms(chain, borrower, loan_id)
    assert refused.code == "invalid_state" and "consented so far 60000 (50.00 %)" in refused.message
    assert [c["funder"] for c in loan(chain, loan_id)["restructuring"]["consents"]] == [bank1.did, BOB.did]
    assert positions(chain, CAROL.did)["consents_requested"] == [loan_id]  # the buyer is asked
    assert consent(chain, CAROL, loan_id).ok
    assert loan(chain, loan_id)["restructuring"]["consent"]["consented"] == 90_000
    assert accept_terms(chain, borrower, loan_id).ok


def test_a_funder_that_sold_its_whole_share_counts_for_nothing_and_is_no_longer_asked(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert propose(chain, bank1, loan_id).ok
    assert consent(chain, ALICE, loan_id).ok  # 70,000: a majority
    assert positions(chain, BOB.did)["consents_requested"] == [loan_id]
    sell(chain, ALICE, BOB, loan_id, 30_000)  # to a funder that has not consented
    counted = loan(chain, loan_id)["restructuring"]["consent"]
    assert (counted["consented"], counted["majority"]) == (40_000, False)
    assert position(chain, ALICE.did, loan_id)["consent_requested"] is None
    refused = consent(chain, ALICE, loan_id)
    assert refused.code == "forbidden"
    assert consent(chain, BOB, loan_id).ok and accept_terms(chain, borrower, loan_id).ok


# Positions and carriers ---------------------------------------------------------------------------


def test_both_parties_positions_say_what_was_bought_sold_and_offered(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert repay(chain, bank1, loan_id, 12_000).ok
    sell(chain, ALICE, CAROL, loan_id, 30_000, price=27_000)
    assert offer(chain, BOB, loan_id, CAROL, 10_000, price=9_500).ok
    offered_at = chain.height
    assert repay(chain, bank1, loan_id, 12_000).ok
    outstanding = loan(chain, loan_id)["outstanding_principal"]

    sold = positions(chain, ALICE.did)
    assert sold["positions"][0] | {"lender": None, "borrower": None} == {
        "loan_id": loan_id,
        "state": "repaying",
        "currency": "EUR",
        "lender": None,
        "borrower": None,
        "commitment": 0,
        "status": "assigned",
        "received": 3_000,  # what it received before the sale stays its own
        "share": 0,
        "share_of": None,
        "recovered": 0,
        "secured": None,
        "guaranteed": None,  # rules 7: no share, so no part of what guarantees cover
        "forbearance": None,
        "stage": None,  # sold whole: it carries none of the loan's credit risk, so no stage
        "days_past_due": None,
        "consent_requested": None,
        "bought": 0,
        "sold": 30_000,
        "share_offer": None,
        "offers_declined": [],
    }
    assert sold["currencies"]["EUR"] | {"received": 3_000} == {
        "committed": 0,
        "received": 3_000,
        "outstanding": 0,
        "loans": 0,
        "overdue_loans": 0,
        "defaulted_loans": 0,
    }
    assert sold["stages"] == {}  # it carries nothing

    bought = positions(chain, CAROL.did)
    mine = bought["positions"][0]
    assert (mine["commitment"], mine["status"], mine["received"], mine["bought"], mine["sold"]) == (
        30_000,
        "committed",
        3_000,
        30_000,
        0,
    )
    assert mine["share"] == pro_rata(outstanding, [0, 40_000, 50_000, 30_000])[3]
    pending = {"from": BOB.did, "to": CAROL.did, "amount": 10_000, "price": 9_500, "height": offered_at}
    assert bought["share_offers_to"] == [
        {"loan_id": loan_id, "currency": "EUR", "state": "repaying", **pending}
    ]
    assert position(chain, BOB.did, loan_id)["share_offer"] == pending


def test_a_position_sold_whole_has_no_stage_and_counts_in_no_stage_total(world):
    chain, members, borrower, loan_id = world
    sell(chain, ALICE, CAROL, loan_id, 30_000)  # alice sells its whole share
    sell(chain, BOB, CAROL, loan_id, 20_000)  # bob keeps 30,000
    default(chain, loan_id)  # stage 3: credit-impaired
    outstanding = loan(chain, loan_id)["outstanding_principal"]
    sold = positions(chain, ALICE.did)
    mine = sold["positions"][0]
    assert (mine["status"], mine["stage"], mine["days_past_due"]) == ("assigned", None, None)
    assert (sold["stages"], sold["ageing"], sold["commitment_stages"]) == ({}, {}, {})
    kept = positions(chain, BOB.did)
    part = pro_rata(outstanding, [0, 40_000, 30_000, 50_000])[2]
    assert (kept["positions"][0]["stage"], kept["stages"]["EUR"]["stage_3_outstanding"]) == (3, part)
    assert positions(chain, CAROL.did)["stages"]["EUR"]["stage_3_loans"] == 1


def test_a_holder_only_offered_a_share_has_it_listed_and_no_position(world):
    chain, members, borrower, loan_id = world
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok
    view = positions(chain, CAROL.did)
    assert (view["positions"], view["currencies"], [o["from"] for o in view["share_offers_to"]]) == (
        [],
        {},
        [ALICE.did],
    )


def test_the_borrowers_exposure_is_carried_by_the_holders_now(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    sell(chain, ALICE, CAROL, loan_id, 30_000)
    sell(chain, BOB, bank1, loan_id, 20_000)
    exposure = queries.lookup(chain.state, "exposure", borrower.did, as_of_ms=chain.head_ms)
    carried = {row["did"]: row["outstanding"] for row in exposure["carriers"]}
    assert carried == {bank1.did: 60_000, BOB.did: 30_000, CAROL.did: 30_000}
    [row] = exposure["loans"]
    assert {c["did"] for c in row["carried_by"]} == {bank1.did, BOB.did, CAROL.did}
    book = queries.lookup(chain.state, "portfolio", bank1.did, as_of_ms=chain.head_ms)["currencies"]["EUR"]
    assert book["funded_by_others"] == 60_000


# A written-off loan's recoveries -------------------------------------------------------------------


def written_off_syndicate(chain, members, loan_id):
    bank1 = members[0]
    assert repay(chain, bank1, loan_id, 10_000).ok
    default(chain, loan_id)
    assert write_off(chain, bank1, loan_id).ok


def test_recoveries_before_a_sale_stay_with_the_seller_and_later_ones_go_to_the_buyer(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    written_off_syndicate(chain, members, loan_id)
    assert recover(
        chain, bank1, loan_id, 12_001
    ).ok  # alice 3,000, bank1 4,000, bob 5,001 (largest remainder)
    offered = offer(chain, ALICE, loan_id, CAROL, 30_000, price=2_000)  # a non-performing share, cheap
    assert offered.ok, offered.message
    assert loan(chain, loan_id)["funding"]["share_offers"][0]["written_off"] is True
    assert recover(chain, bank1, loan_id, 1_200).ok  # before the acceptance: still alice's
    sell_accepted = chain.run_one(chain.tx(CAROL, "loan.share_accept", {"loan_id": loan_id}))
    assert sell_accepted.ok, sell_accepted.message
    funding = loan(chain, loan_id)["funding"]
    assert funding["recovered_credited"] == 13_201
    assert [c.get("recovered") for c in funding["commitments"]] == [3_300, 4_400, 5_501, None]
    assert recover(chain, bank1, loan_id, 6_000).ok  # after: carol takes alice's part

    shares = {
        did: position(chain, did, loan_id)["recovered"] for did in (ALICE.did, bank1.did, BOB.did, CAROL.did)
    }
    assert shares == {ALICE.did: 3_300, bank1.did: 6_400, BOB.did: 8_001, CAROL.did: 1_500}
    assert sum(shares.values()) == loan(chain, loan_id)["recovered"]["total"] == 19_201
    assert recovery_shares(queries.lookup(chain.state, "loan", loan_id)) == list(shares.values())

    lost = loan(chain, loan_id)
    seller = positions(chain, ALICE.did)
    assert seller["written_off"]["EUR"] == {
        "principal": 0,
        "loans": 0,
        "recovered": 3_300,
        "net_principal": 0,
    }
    buyer = positions(chain, CAROL.did)
    weights = [0, 40_000, 50_000, 30_000]
    assert buyer["written_off"]["EUR"] == {
        "principal": pro_rata(lost["written_off"]["principal"], weights)[3],
        "loans": 1,
        "recovered": 1_500,
        "net_principal": pro_rata(lost["net_loss"]["principal"], weights)[3],
    }
    # over every funder, each column adds up to the loan's figures again
    views = [
        positions(chain, did)["written_off"]["EUR"] for did in (ALICE.did, bank1.did, BOB.did, CAROL.did)
    ]
    assert sum(v["principal"] for v in views) == lost["written_off"]["principal"]
    assert sum(v["net_principal"] for v in views) == lost["net_loss"]["principal"]


def test_a_second_sale_credits_only_what_was_recovered_since_the_first():
    commitments = [
        {"funder": "a", "amount": 1, "received": 0, "status": "committed"},
        {"funder": "b", "amount": 2, "received": 0, "status": "committed"},
    ]
    loan = {"state": "written_off", "recovered": {"total": 10}, "funding": {"commitments": commitments}}
    funding = credit_recoveries(loan)
    assert [c["recovered"] for c in funding["commitments"]] == [3, 7] and funding["recovered_credited"] == 10
    assert credit_recoveries({**loan, "funding": funding}) is funding  # nothing new to credit
    moved = {**funding, "commitments": move_share(funding["commitments"], "b", "c", 2)}
    later = {**loan, "recovered": {"total": 13}, "funding": moved}
    assert recovery_shares(later) == [3 + 1, 7 + 0, 0 + 2]
    assert [c.get("recovered") for c in credit_recoveries(later)["commitments"]] == [4, 7, 2]


@pytest.mark.parametrize("ended", [True, False])
def test_a_written_off_share_is_not_sold_once_nothing_is_left_to_recover(world, ended):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    written_off_syndicate(chain, members, loan_id)
    assert offer(chain, ALICE, loan_id, CAROL, 30_000).ok
    if ended:
        payload = {"loan_id": loan_id, "reason": "the borrower is insolvent"}
        assert chain.run_one(chain.tx(bank1, "loan.recovery_end", payload)).ok
        why = f"its recovery ended at height {chain.height} (loan.recovery_end)"
    else:
        assert recover(chain, bank1, loan_id, loan(chain, loan_id)["net_loss"]["total"]).ok
        why = "everything written off on it was recovered"
    assert loan(chain, loan_id)["funding"]["share_offers"][0]["lapsed_because"] == why
    refused = offer(chain, BOB, loan_id, CAROL, 1_200)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"loan.share_assign on loan {loan_id[:16]}: {why}: there is no share of recoveries left to sell",
    )
