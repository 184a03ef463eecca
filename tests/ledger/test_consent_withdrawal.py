"""A funder takes back its consent to a syndicated loan's pending restructuring, until the borrower
accepts it (``loan.restructure_consent_withdraw``, rules 6; see ``ledger.consent_withdrawal``).

The chains start on rules 6 from the genesis. The syndicated loan is bank1's
(its servicer), funded by alice (30,000), bank1 itself (40,000) and bob
(50,000): bank1's proposal and alice's consent are a majority (70,000 of
120,000), bank1's alone is not.
"""

from __future__ import annotations

import json

import pytest

from lendchain.ledger.audit import export_loan, verify_export
from tests.ledger.chain import domain_events, seeded_key
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import loan, ok, open_loan, with_borrower
from tests.ledger.test_restructure import accept_terms, propose, withdraw
from tests.ledger.test_restructure_consent import ALICE, BOB, NOT_A_FUNDER, consent, consents, syndicate
from tests.ledger.test_write_off import default

KIND = "loan.restructure_consent_withdraw"


@pytest.fixture
def world():
    chain, members, borrower = with_borrower(version=6)
    for investor in (ALICE, BOB, seeded_key(4)):
        ok(chain, investor, "party.register", {"role": "investor"})
    bank1 = members[0]
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    return chain, members, borrower, loan_id


def take_back(chain, key, loan_id):
    return chain.run_one(chain.tx(key, KIND, {"loan_id": loan_id}))


def test_a_withdrawn_consent_no_longer_counts_and_may_be_given_again(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert propose(chain, bank1, loan_id).ok
    offered_at = chain.height
    assert consent(chain, ALICE, loan_id).ok
    assert loan(chain, loan_id)["restructuring"]["consent"]["majority"] is True

    taken = take_back(chain, ALICE, loan_id)
    assert taken.ok, taken.message
    assert domain_events(taken.events) == [
        {
            "event": "loan.restructure_consent_withdrawn",
            "loan_id": loan_id,
            "funder": ALICE.did,
            "amount": 30_000,
            "consented": 40_000,
            "committed": 120_000,
            "offered_height": offered_at,
        }
    ]
    entry = loan(chain, loan_id)["history"][-1]
    assert (entry["event"], entry["tx_id"], entry["funder"], entry["amount"]) == (
        KIND,
        taken.tx_id.hex(),
        ALICE.did,
        30_000,
    )
    assert consents(chain, loan_id) == [(bank1.did, 40_000, True)]
    counted = loan(chain, loan_id)["restructuring"]["consent"]
    assert (counted["consented"], counted["missing"], counted["majority"]) == (40_000, 20_001, False)
    refused = accept_terms(chain, borrower, loan_id)
    assert refused.code == "invalid_state" and "consented so far 40000 (33.33 %)" in refused.message

    assert consent(chain, ALICE, loan_id).ok  # it changed its mind again
    assert consents(chain, loan_id) == [(bank1.did, 40_000, True), (ALICE.did, 30_000, False)]
    assert accept_terms(chain, borrower, loan_id).ok


@pytest.mark.parametrize(
    ("who", "code", "says"),
    [
        pytest.param(
            "bob",
            "invalid_state",
            "{bob} has not consented to its restructuring offered at height {offered}, so there is no consent "
            "to withdraw",
            id="never consented",
        ),
        pytest.param(
            "bank1",
            "invalid_state",
            "{bank1} consented by proposing its restructuring offered at height {offered}; as its servicer it "
            "takes the proposal back with loan.restructure_withdraw instead",
            id="the proposing servicer",
        ),
        pytest.param("carol", "forbidden", NOT_A_FUNDER, id="no funder of the loan"),
        pytest.param("bank2", "forbidden", NOT_A_FUNDER, id="a lender that funds nothing"),
        pytest.param("borrower", "forbidden", NOT_A_FUNDER, id="the borrower"),
    ],
)
def test_only_a_funder_that_consented_withdraws_a_consent(world, who, code, says):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert propose(chain, bank1, loan_id).ok
    offered = chain.height
    assert consent(chain, ALICE, loan_id).ok
    keys = {"bob": BOB, "bank1": bank1, "carol": seeded_key(4), "bank2": members[1], "borrower": borrower}
    refused = take_back(chain, keys[who], loan_id)
    assert refused.code == code
    assert refused.message.endswith(says.format(bob=BOB.did, bank1=bank1.did, offered=offered))
    assert len(consents(chain, loan_id)) == 2  # alice's still counts


def test_no_consent_is_withdrawn_without_a_pending_proposal_nor_after_the_acceptance(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    where = f"{KIND} on loan {loan_id[:16]}"
    refused = take_back(chain, ALICE, loan_id)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{where}: no restructuring is pending (the loan's servicer proposes one with loan.restructure)",
    )
    assert propose(chain, bank1, loan_id).ok
    offered = chain.height
    assert consent(chain, ALICE, loan_id).ok
    assert take_back(chain, ALICE, loan_id).ok
    again = take_back(chain, ALICE, loan_id)  # withdrawn already
    assert again.code == "invalid_state" and "has not consented" in again.message
    assert consent(chain, ALICE, loan_id).ok and accept_terms(chain, borrower, loan_id).ok
    refused = take_back(chain, ALICE, loan_id)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{where}: its restructuring offered at height {offered} was accepted at height {chain.height - 1} "
        f"with {ALICE.did}'s consent; a consent cannot be withdrawn once the borrower has accepted",
    )
    refused = take_back(chain, BOB, loan_id)  # bob had no part in it: nothing is pending
    assert refused.code == "invalid_state" and "no restructuring is pending" in refused.message


def test_a_consent_to_an_expired_or_lapsed_proposal_is_not_withdrawn(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert propose(chain, bank1, loan_id).ok
    assert consent(chain, ALICE, loan_id).ok
    expires_ms = loan(chain, loan_id)["restructuring"]["expires_ms"]
    chain.head_ms = expires_ms - 1000
    refused = take_back(chain, ALICE, loan_id)
    assert refused.code == "expired" and "the servicer may propose again" in refused.message

    assert propose(chain, bank1, loan_id, rate_bps=500, term_months=30).ok  # made while current
    assert consent(chain, ALICE, loan_id).ok
    default(chain, loan_id)  # 200 days after the disbursement: the proposal lapses (and expired too)
    assert loan(chain, loan_id)["restructuring"]["expires_ms"] < chain.head_ms
    refused = take_back(chain, ALICE, loan_id)  # the lapse is said first
    assert refused.code == "invalid_state" and "lapsed: the loan defaulted after it was offered" in (
        refused.message
    )


def test_a_loan_that_is_not_syndicated_has_no_consent_to_withdraw():
    chain, members, borrower = with_borrower(version=6)
    loan_id = open_loan(chain, borrower, members[0])
    assert propose(chain, members[0], loan_id).ok
    refused = take_back(chain, members[0], loan_id)
    assert (refused.code, refused.message) == (
        "invalid_state",
        f"{KIND} on loan {loan_id[:16]}: the loan is not syndicated (no funders' commitments fund it): its "
        "restructuring takes no funder's consent, so there is none to withdraw",
    )


def test_under_rules_5_the_kind_is_unknown():
    chain, members, borrower = with_borrower(version=5)
    loan_id = open_loan(chain, borrower, members[0])
    tx = chain.tx(members[0], KIND, {"loan_id": loan_id})
    block, execution = chain.cut([tx])
    assert not block.txs
    assert [(d.code, d.tx_id) for d in execution.dropped] == [("unknown_kind", tx.id)]
    assert f"field 'kind': {KIND} exists from rules version 6; block" in execution.dropped[0].message


def test_an_audit_export_verifies_the_withdrawal_with_the_funders_signature(world):
    chain, members, borrower, loan_id = world
    bank1 = members[0]
    assert propose(chain, bank1, loan_id).ok
    assert consent(chain, BOB, loan_id).ok and take_back(chain, BOB, loan_id).ok
    assert withdraw(chain, bank1, loan_id).ok
    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(loan_id))
    assert [(e["kind"], e["signer"]) for e in document["entries"]][-4:] == [
        ("loan.restructure", bank1.did),
        ("loan.restructure_consent", BOB.did),
        (KIND, BOB.did),
        ("loan.restructure_withdraw", bank1.did),
    ]
    assert verify_export(json.loads(json.dumps(document)), chain.genesis)["loan_id"] == loan_id
