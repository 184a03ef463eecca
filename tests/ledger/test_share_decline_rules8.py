"""Rules 8's share decline (``share_decline``, ``lifecycle.ACTORS_SINCE``): the buyer a pending offer names
declines it whatever its roles now, and everyone else is refused as under rules 7.

The loan is ``test_share_decline``'s (alice, bank1 and bob fund it); bank2, a lender member, is offered a
share and governance then takes its lender role away, leaving it a bureau. Rules 7 still refuses that
decline.
"""

from __future__ import annotations

from tests.ledger.test_loan_transfer import loan
from tests.ledger.test_membership import vote_through
from tests.ledger.test_restructure_consent import ALICE, BOB, CAROL
from tests.ledger.test_share_assignment import ACCEPT, WITHDRAW, offer
from tests.ledger.test_share_decline import DECLINE, decline, decline_world, nothing_to_decline
from tests.ledger.test_write_off import default, write_off


def ex_lender_world(version):
    """``decline_world`` with alice's offer of 10,000 to bank2 pending, and bank2's lender role removed
    by governance since."""
    chain, members, borrower, loan_id = decline_world(version=version)
    bank1, bank2 = members[0], members[1]
    assert offer(chain, ALICE, loan_id, bank2, 10_000).ok
    vote_through(chain, bank1, members[2:4], "member.roles", bank2.did, "bureau")
    return chain, members, borrower, loan_id


def offers(chain, loan_id):
    return [(o["from"], o["to"]) for o in loan(chain, loan_id)["funding"]["share_offers"]]


def test_a_buyer_that_lost_its_lender_role_declines_the_offer_and_the_seller_may_offer_again():
    chain, members, borrower, loan_id = ex_lender_world(8)
    bank2 = members[1]
    # Taking the share on still needs the role: acceptance is asked of a funder, as under rules 7.
    accepted = chain.run_one(chain.tx(bank2, ACCEPT, {"loan_id": loan_id}))
    assert accepted.code == "forbidden"
    assert accepted.message.endswith(
        "is refused: only a registered investor or a lender member other than the borrower may do this"
    )
    declined = decline(chain, bank2, loan_id, note="no longer lending")
    assert declined.ok, declined.message
    funding = loan(chain, loan_id)["funding"]
    assert offers(chain, loan_id) == []
    assert [(d["from"], d["to"], d["amount"], d["note"]) for d in funding["share_declines"]] == [
        (ALICE.did, bank2.did, 10_000, "no longer lending")
    ]
    assert loan(chain, loan_id)["history"][-1]["event"] == DECLINE
    assert offer(chain, ALICE, loan_id, CAROL, 10_000).ok


def test_under_rules_7_a_buyer_that_lost_its_lender_role_cannot_decline():
    chain, members, borrower, loan_id = ex_lender_world(7)
    refused = decline(chain, members[1], loan_id)
    assert refused.code == "forbidden"
    assert refused.message.endswith(
        "is refused: only a registered investor or a lender member other than the borrower may do this"
    )
    assert offers(chain, loan_id) == [(ALICE.did, members[1].did)]  # the seller must withdraw it


def test_anyone_an_offer_does_not_name_and_the_seller_are_still_refused():
    chain, members, borrower, loan_id = ex_lender_world(8)
    bank2 = members[1]
    refused = decline(chain, ALICE, loan_id)
    assert (refused.code, refused.message) == (
        "forbidden",
        f"{DECLINE} on loan {loan_id[:16]}: the offer of 10000 to {bank2.did} is {ALICE.did}'s own: only "
        f"the buyer it names declines it, and its seller takes it back with {WITHDRAW}",
    )
    refused = decline(chain, BOB, loan_id)  # a funder the offer does not name
    assert (refused.code, refused.message) == (
        "forbidden",
        f"{DECLINE} on loan {loan_id[:16]}: only the buyer an offer names declines it, and no pending "
        f"offer names {BOB.did} (they name {bank2.did})",
    )
    for outsider in (borrower, members[2]):  # the borrower, and a member an offer does not name
        refused = decline(chain, outsider, loan_id)
        assert refused.code == "forbidden"
        assert refused.message.endswith(
            "is refused: only a registered investor or a lender member other than the borrower, or the buyer "
            "a share offer of the loan names may do this"
        )
    assert offers(chain, loan_id) == [(ALICE.did, bank2.did)]


def test_an_ex_lender_named_by_a_lapsed_offer_is_told_it_lapsed():
    chain, members, borrower, loan_id = ex_lender_world(8)
    bank2 = members[1]
    default(chain, loan_id)
    assert write_off(chain, members[0], loan_id).ok
    refused = decline(chain, bank2, loan_id)
    lapsed = f" (the one from {ALICE.did} lapsed: the loan was written off after it was offered)"
    assert (refused.code, refused.message) == nothing_to_decline(loan_id, bank2.did, lapsed=lapsed)
