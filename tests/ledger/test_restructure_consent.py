"""Funders' consent to restructuring a syndicated loan: who consents, how much is a majority, and
what a refused acceptance says (``loan.restructure_consent``, rules 5; see ``ledger.funder_consent``).

The chains start on rules 5 from the genesis. bank1 and bank2 are the
lenders (``make_genesis``'s roles), bank3 a regulator and bank4 the kyc
member; alice, bob and carol are registered investors. Every syndicated loan
here lends 120,000 EUR (``APPLY``), is offered by bank1 (its servicer) and
disbursed once funded.
"""

from __future__ import annotations

import pytest

from lendchain.ledger.funder_consent import percent
from tests.ledger.chain import domain_events, seeded_key
from tests.ledger.test_loan_transfer import loan, ok, open_loan, with_borrower
from tests.ledger.test_membership import vote_through
from tests.ledger.test_restructure import TERMS, accept_terms, propose

ALICE, BOB, CAROL = seeded_key(2), seeded_key(3), seeded_key(4)
NOT_A_FUNDER = "is refused: only a funder of the loan whose commitment is not released may do this"


def funders_world(version=5):
    """``with_borrower``'s chain (rules 5 unless told), its members and borrower, with alice, bob and
    carol registered as investors."""
    chain, members, borrower = with_borrower(version=version)
    for investor in (ALICE, BOB, CAROL):
        ok(chain, investor, "party.register", {"role": "investor"})
    return chain, members, borrower


@pytest.fixture
def world():
    return funders_world()


def syndicate(chain, borrower, servicer, shares):
    """A loan ``servicer`` offered with a funding window, funded by ``shares`` ((funder, amount) in
    order, adding up to 120,000) and disbursed by ``servicer``; its id."""
    loan_id = open_loan(chain, borrower, servicer, disburse=False, funding_window_ms=60_000)
    for funder, amount in shares:
        ok(chain, funder, "loan.fund", {"loan_id": loan_id, "amount": amount})
    ok(chain, servicer, "loan.disburse", {"loan_id": loan_id})
    return loan_id


def consent(chain, key, loan_id):
    return chain.run_one(chain.tx(key, "loan.restructure_consent", {"loan_id": loan_id}))


def consents(chain, loan_id):
    """(funder, amount, by_proposal) of each consent the pending proposal holds."""
    return [
        (c["funder"], c["amount"], c["by_proposal"])
        for c in loan(chain, loan_id)["restructuring"]["consents"]
    ]


def test_the_servicers_proposal_is_its_consent_and_one_funder_more_makes_the_majority(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    proposal = loan(chain, loan_id)["restructuring"]
    assert proposal["consents"] == [
        {"funder": bank1.did, "amount": 40_000, "height": offered_at, "by_proposal": True}
    ]
    assert proposal["consent"] == {
        "committed": 120_000,
        "consented": 40_000,
        "consented_bps": 3333,
        "needed": 60_001,
        "missing": 20_001,
        "missing_bps": 1667,
        "majority": False,
    }

    refused = accept_terms(chain, borrower, loan_id)
    assert refused.code == "invalid_state"
    assert refused.message.endswith(
        f"loan.restructure_accept on loan {loan_id[:16]}: its restructuring offered at height {offered_at} needs "
        "the consent of the funders holding more than half of the 120000 committed to the loan, at least "
        f"60001; consented so far 40000 (33.33 %) by {bank1.did} (40000, by proposing); still missing 20001 "
        "(16.67 %): each funder consents with loan.restructure_consent"
    )
    assert loan(chain, loan_id)["state"] == "disbursed" and "restructurings" not in loan(chain, loan_id)

    given = consent(chain, ALICE, loan_id)
    assert given.ok, given.message
    assert domain_events(given.events) == [
        {
            "event": "loan.restructure_consented",
            "loan_id": loan_id,
            "funder": ALICE.did,
            "amount": 30_000,
            "consented": 70_000,
            "committed": 120_000,
            "offered_height": offered_at,
        }
    ]
    entry = loan(chain, loan_id)["history"][-1]
    assert (entry["event"], entry["tx_id"], entry["funder"], entry["amount"]) == (
        "loan.restructure_consent",
        given.tx_id.hex(),
        ALICE.did,
        30_000,
    )
    proposal = loan(chain, loan_id)["restructuring"]
    assert proposal["consents"][-1] == {
        "funder": ALICE.did,
        "amount": 30_000,
        "height": chain.height,
        "by_proposal": False,
    }
    counted = proposal["consent"]
    assert (counted["consented"], counted["consented_bps"], counted["missing"], counted["missing_bps"]) == (
        70_000,
        5833,
        0,
        0,
    )
    assert counted["majority"] is True

    accepted = accept_terms(chain, borrower, loan_id)
    assert accepted.ok, accepted.message
    [record] = loan(chain, loan_id)["restructurings"]
    assert record["consents"] == proposal["consents"]
    assert (record["new"], loan(chain, loan_id)["rate_bps"]) == (TERMS, TERMS["rate_bps"])


@pytest.mark.parametrize(
    ("shares", "consenting", "accepted"),
    [
        pytest.param([(ALICE, 59_999), (BOB, 60_001)], [ALICE], False, id="below half"),
        pytest.param([(ALICE, 60_000), (BOB, 60_000)], [ALICE], False, id="exactly half"),
        pytest.param([(ALICE, 60_001), (BOB, 59_999)], [ALICE], True, id="one unit above half"),
        pytest.param([(ALICE, 60_000), (BOB, 60_000)], [ALICE, BOB], True, id="everyone"),
        pytest.param([(ALICE, 40_000), (BOB, 40_000), (CAROL, 40_000)], [], False, id="nobody"),
        pytest.param([("servicer", 60_000), (ALICE, 60_000)], [], False, id="the servicer holds half"),
        pytest.param([("servicer", 60_001), (ALICE, 59_999)], [], True, id="the servicer holds more"),
    ],
)
def test_the_consents_must_hold_strictly_more_than_half_of_the_commitments(
    world, shares, consenting, accepted
):
    chain, members, borrower = world
    bank1 = members[0]
    shares = [(bank1 if funder == "servicer" else funder, amount) for funder, amount in shares]
    loan_id = syndicate(chain, borrower, bank1, shares)
    assert propose(chain, bank1, loan_id).ok
    for funder in consenting:
        assert consent(chain, funder, loan_id).ok
    consented = sum(amount for funder, amount in shares if funder in consenting or funder == bank1)
    counted = loan(chain, loan_id)["restructuring"]["consent"]
    assert (counted["consented"], counted["majority"]) == (consented, accepted)
    assert counted["missing"] == max(0, 60_001 - consented)
    result = accept_terms(chain, borrower, loan_id)
    assert result.ok is accepted, result.message
    if not accepted:
        assert result.code == "invalid_state"
        missing = 60_001 - consented
        assert (
            f"consented so far {consented} ({percent(consented * 10_000 // 120_000)}) by " in result.message
        )
        assert f"still missing {missing} ({percent(-(-missing * 10_000 // 120_000))})" in result.message
        assert loan(chain, loan_id)["restructuring"]["status"] == "pending"


def test_exactly_half_refused_names_the_one_unit_missing_rounded_up_and_who_consented(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 60_000), (BOB, 60_000)])
    assert propose(chain, bank1, loan_id).ok
    nobody = accept_terms(chain, borrower, loan_id)
    assert "consented so far 0 (0.00 %) by none; still missing 60001 (50.01 %)" in nobody.message
    assert consent(chain, ALICE, loan_id).ok
    half = accept_terms(chain, borrower, loan_id)
    assert (
        f"consented so far 60000 (50.00 %) by {ALICE.did} (60000); still missing 1 (0.01 %)" in half.message
    )


def test_a_refused_acceptance_names_the_first_five_consents_and_counts_the_rest(world):
    chain, members, borrower = world
    bank1 = members[0]
    small = [seeded_key(10 + n) for n in range(6)]
    for investor in small:
        ok(chain, investor, "party.register", {"role": "investor"})
    loan_id = syndicate(chain, borrower, bank1, [*((key, 10_000) for key in small), (ALICE, 60_000)])
    assert propose(chain, bank1, loan_id).ok
    for investor in small:
        assert consent(chain, investor, loan_id).ok
    refused = accept_terms(chain, borrower, loan_id)
    named = ", ".join(f"{key.did} (10000)" for key in small[:5])
    assert (
        f"consented so far 60000 (50.00 %) by {named} and 1 more (the loan view lists them); still missing 1"
    ) in refused.message
    assert small[5].did not in refused.message
    assert len(loan(chain, loan_id)["restructuring"]["consents"]) == 6


# Who ---------------------------------------------------------------------------------------


def test_only_a_funder_holding_a_commitment_consents(world):
    chain, members, borrower = world
    bank1, bank2, regulator = members[0], members[1], members[2]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    assert propose(chain, bank1, loan_id).ok
    for sender in (bank2, CAROL, regulator, borrower):  # a lender, an investor, neither, the borrower
        refused = consent(chain, sender, loan_id)
        assert refused.code == "forbidden", sender
        assert f"on loan {loan_id[:16]} in state 'disbursed' {NOT_A_FUNDER}" in refused.message
    assert consents(chain, loan_id) == [(bank1.did, 40_000, True)]


def test_a_funder_consents_once_and_the_servicer_has_consented_by_proposing(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    assert consent(chain, ALICE, loan_id).ok
    consented_at = chain.height
    again = consent(chain, ALICE, loan_id)
    assert again.code == "invalid_state"
    assert (
        f"loan.restructure_consent on loan {loan_id[:16]}: {ALICE.did} already consented to its "
        f"restructuring offered at height {offered_at}, at height {consented_at}; a funder consents once to "
        "a proposal"
    ) in again.message
    servicer = consent(chain, bank1, loan_id)
    assert servicer.code == "invalid_state"
    assert (
        f"{bank1.did} already consented to its restructuring offered at height {offered_at}, by proposing it"
        in (servicer.message)
    )
    assert consents(chain, loan_id) == [(bank1.did, 40_000, True), (ALICE.did, 30_000, False)]


def test_a_funder_that_lost_the_lender_role_still_consents(world):
    chain, members, borrower = world
    bank1, bank2 = members[0], members[1]
    loan_id = syndicate(chain, borrower, bank1, [(bank2, 70_000), (ALICE, 50_000)])
    vote_through(chain, bank1, members[2:4], "member.roles", bank2.did, "bureau")
    assert propose(chain, bank1, loan_id).ok
    given = consent(chain, bank2, loan_id)
    assert given.ok, given.message  # its money is still in the loan
    assert accept_terms(chain, borrower, loan_id).ok


def test_consent_and_acceptance_in_one_block_apply_in_order(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    assert propose(chain, bank1, loan_id).ok
    accept_tx = chain.tx(borrower, "loan.restructure_accept", {"loan_id": loan_id})
    consent_tx = chain.tx(BOB, "loan.restructure_consent", {"loan_id": loan_id})
    early, late = chain.run(accept_tx, consent_tx)
    assert (early.code, late.code) == ("invalid_state", "ok")
    accept_tx = chain.tx(borrower, "loan.restructure_accept", {"loan_id": loan_id})
    assert chain.run_one(accept_tx).ok
    assert [c["funder"] for c in loan(chain, loan_id)["restructurings"][0]["consents"]] == [
        bank1.did,
        BOB.did,
    ]


# A loan that is not syndicated ---------------------------------------------------------------


def test_a_loan_without_funders_needs_no_consent_and_takes_none(world):
    chain, members, borrower = world
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    proposal = loan(chain, loan_id)["restructuring"]
    assert "consents" not in proposal and "consent" not in proposal
    for sender in (bank1, members[1], ALICE):
        refused = consent(chain, sender, loan_id)
        assert refused.code == "invalid_state", sender
        assert (
            f"loan.restructure_consent on loan {loan_id[:16]}: the loan is not syndicated (no funders' "
            "commitments fund it): its restructuring needs no funder's consent, only the borrower's acceptance"
        ) in refused.message
    assert accept_terms(chain, borrower, loan_id).ok
    assert "consents" not in loan(chain, loan_id)["restructurings"][0]
