"""Guard rails on restructuring (rules 6; see ``ledger.restructuring_limits``): a loan is restructured at
most ``max_restructurings`` times, and a proposal expires ``restructure_offer_ms`` after it is made.

The chains start on rules 6 from the genesis unless a test says otherwise;
``open_loan`` lends 120,000 EUR over 12 months at 900 bps, offered by bank1
(its servicer). Each restructuring here changes the rate (``RATES``), so
that no proposal is the loan's terms again.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lendchain.ledger import queries
from lendchain.ledger.params import PARAMS
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from lendchain.ledger.servicing import DAY_MS
from tests.ledger.chain import Chain, domain_events, make_genesis, seeded_key
from tests.ledger.test_admission import DELAY
from tests.ledger.test_loan_transfer import accept, loan, open_loan, transfer, with_borrower
from tests.ledger.test_membership import advance_to, vote_through
from tests.ledger.test_restructure import TERMS, accept_terms, overdue, propose, withdraw
from tests.ledger.test_restructure_consent import ALICE, BOB, consent, syndicate

RATES = (600, 500, 400, 300)

DEFAULT_OFFER_MS = PARAMS["restructure_offer_ms"].default


def guarded_world(version=6, **app):
    """A chain on rules ``version`` whose genesis ``[app]`` adds ``app``, its members and borrower
    seeded_key(1) (``with_borrower``'s, with chain parameters of the test's choosing)."""
    genesis, members = make_genesis()
    genesis = replace(genesis, app={"key_rotation_delay_blocks": DELAY, "rules_version": version, **app})
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    chain.onboard(borrower, members[3])
    return chain, members, borrower


def restructured(chain, servicer, borrower, loan_id, times):
    """Restructure the loan ``times`` times, each at the next of ``RATES``."""
    for rate in RATES[:times]:
        assert propose(chain, servicer, loan_id, rate_bps=rate, term_months=24).ok
        assert accept_terms(chain, borrower, loan_id).ok


def at(chain, time_ms):
    """Make the next block's time ``time_ms`` (the test chain adds 1000 ms to its head)."""
    chain.head_ms = time_ms - 1000


def limit_sentence(loan_id, done, limit):
    return (
        f"loan.restructure on loan {loan_id[:16]}: the loan has been restructured {done}, and this chain "
        f"allows at most {limit} (max_restructurings); repeated forbearance is a supervisory red flag: the "
        "servicer resolves the loan otherwise (repayment, a transfer, or a write-off once it defaults)"
    )


# The limit --------------------------------------------------------------------------------------


def test_a_fourth_restructuring_is_refused_naming_the_count_and_the_limit():
    chain, members, borrower = with_borrower(version=6)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    restructured(chain, bank1, borrower, loan_id, 3)
    refused = propose(chain, bank1, loan_id, rate_bps=RATES[3], term_months=24)
    assert refused.code == "invalid_state"
    assert refused.message == limit_sentence(loan_id, "3 times", "3 restructurings of a loan")
    after = loan(chain, loan_id)
    assert len(after["restructurings"]) == 3 and "restructuring" not in after


@pytest.mark.parametrize(("limit", "done"), [(1, "once"), (2, "twice")])
def test_the_genesis_sets_the_limit(limit, done):
    chain, members, borrower = guarded_world(max_restructurings=limit)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    restructured(chain, bank1, borrower, loan_id, limit)
    refused = propose(chain, bank1, loan_id, rate_bps=RATES[limit], term_months=24)
    what = "1 restructuring of a loan" if limit == 1 else f"{limit} restructurings of a loan"
    assert (refused.code, refused.message) == ("invalid_state", limit_sentence(loan_id, done, what))
    other = open_loan(chain, borrower, bank1)  # the limit is per loan
    assert propose(chain, bank1, other).ok


def test_under_rules_5_a_loan_is_restructured_without_limit_and_its_proposals_do_not_expire():
    chain, members, borrower = with_borrower(version=5)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    restructured(chain, bank1, borrower, loan_id, 4)
    assert len(loan(chain, loan_id)["restructurings"]) == 4
    offered = propose(chain, bank1, loan_id, rate_bps=250, term_months=24)
    assert offered.ok
    assert "expires_ms" not in domain_events(offered.events)[0]
    assert "expires_ms" not in loan(chain, loan_id)["restructuring"]
    assert "expires_ms" not in loan(chain, loan_id)["history"][-1]
    at(chain, chain.head_ms + DEFAULT_OFFER_MS + DAY_MS)
    assert accept_terms(chain, borrower, loan_id).ok  # a rules-5 proposal has no expiry


def test_a_proposal_made_under_rules_5_is_not_accepted_past_the_limit_once_rules_6_are_in_force():
    chain, members, borrower = with_borrower(version=5)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    restructured(chain, bank1, borrower, loan_id, 3)
    assert propose(chain, bank1, loan_id, rate_bps=RATES[3], term_months=24).ok  # rules 5: no limit
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    vote_through(chain, bank1, members[1:3], "rules.upgrade", "6", str(activation))
    advance_to(chain, activation)
    view = queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms + 10 * DEFAULT_OFFER_MS)
    assert view["restructuring"]["status"] == "pending"  # made under rules 5: it has no expiry
    refused = accept_terms(chain, borrower, loan_id)
    assert chain.height == activation and refused.code == "invalid_state"
    assert refused.message == limit_sentence(loan_id, "3 times", "3 restructurings of a loan").replace(
        "loan.restructure on", "loan.restructure_accept on"
    )
    assert withdraw(chain, bank1, loan_id).ok  # the servicer may still take it back


# Expiry -----------------------------------------------------------------------------------------


def test_a_proposal_records_its_expiry_and_is_refused_as_expired_from_that_time_on():
    chain, members, borrower = with_borrower(version=6)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    overdue(chain, loan_id)
    offered = propose(chain, bank1, loan_id)
    offered_at, expires_ms = chain.height, chain.head_ms + DEFAULT_OFFER_MS
    assert domain_events(offered.events) == [
        {
            "event": "loan.restructure_offered",
            "loan_id": loan_id,
            "lender": bank1.did,
            **TERMS,
            "expires_ms": expires_ms,
        }
    ]
    pending = loan(chain, loan_id)
    assert pending["restructuring"] == {
        **TERMS,
        "height": offered_at,
        "state": "overdue",
        "expires_ms": expires_ms,
        "status": "pending",  # no time to judge at: a view without a head does not expire it
    }
    assert pending["history"][-1]["expires_ms"] == expires_ms

    def status(as_of_ms):
        return queries.lookup(chain.state, "loan", loan_id, as_of_ms=as_of_ms)["restructuring"]["status"]

    assert (status(expires_ms - 1), status(expires_ms)) == ("pending", "expired")

    at(chain, expires_ms)
    refused = accept_terms(chain, borrower, loan_id)
    assert refused.code == "expired"
    assert refused.message == (
        f"loan.restructure_accept on loan {loan_id[:16]}: its restructuring offered at height {offered_at} "
        f"expired at block time {expires_ms} ms (this block's is {expires_ms} ms); the servicer may propose "
        "again with loan.restructure"
    )
    refused = withdraw(chain, bank1, loan_id)
    assert refused.code == "expired" and refused.message.startswith(
        f"loan.restructure_withdraw on loan {loan_id[:16]}: its restructuring offered at height {offered_at} "
        "expired at block time"
    )
    assert "restructurings" not in loan(chain, loan_id)

    again = propose(chain, bank1, loan_id, rate_bps=500, term_months=30)  # replaces the expired one
    assert again.ok, again.message
    renewed = loan(chain, loan_id)["restructuring"]
    assert (renewed["height"], renewed["rate_bps"], renewed["expires_ms"]) == (
        chain.height,
        500,
        chain.head_ms + DEFAULT_OFFER_MS,
    )
    assert accept_terms(chain, borrower, loan_id).ok


def test_a_proposal_is_accepted_until_the_millisecond_before_it_expires():
    chain, members, borrower = guarded_world(restructure_offer_ms=3_600_000)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    expires_ms = loan(chain, loan_id)["restructuring"]["expires_ms"]
    assert expires_ms == chain.head_ms + 3_600_000
    at(chain, expires_ms - 1)
    accepted = accept_terms(chain, borrower, loan_id)
    assert accepted.ok, accepted.message


def test_a_consent_to_an_expired_proposal_is_refused_and_the_funders_are_no_longer_asked():
    chain, members, borrower = with_borrower(version=6)
    bank1 = members[0]
    for investor in (ALICE, BOB):
        assert chain.run_one(chain.tx(investor, "party.register", {"role": "investor"})).ok
    loan_id = syndicate(chain, borrower, bank1, [(ALICE, 30_000), (bank1, 40_000), (BOB, 50_000)])
    assert propose(chain, bank1, loan_id).ok
    offered_at, expires_ms = chain.height, chain.head_ms + DEFAULT_OFFER_MS

    def requested(key, as_of_ms):
        view = queries.lookup(chain.state, "positions", key.did, as_of_ms=as_of_ms)
        [position] = view["positions"]
        assert view["consents_requested"] == ([loan_id] if position["consent_requested"] else [])
        return position["consent_requested"]

    asked = {"height": offered_at, **TERMS, "expires_ms": expires_ms}
    assert requested(ALICE, expires_ms - 1) == requested(BOB, None) == asked
    assert requested(ALICE, expires_ms) is None  # expired: nothing to consent to
    view = queries.lookup(chain.state, "loan", loan_id, as_of_ms=expires_ms)
    assert view["restructuring"]["status"] == "expired" and "consent" not in view["restructuring"]

    at(chain, expires_ms + DAY_MS)
    refused = consent(chain, ALICE, loan_id)
    assert refused.code == "expired"
    assert refused.message.startswith(
        f"loan.restructure_consent on loan {loan_id[:16]}: its restructuring offered at height {offered_at} "
        f"expired at block time {expires_ms} ms"
    )


def test_a_transfer_drops_an_expired_proposal_without_calling_it_lapsed():
    chain, members, borrower = with_borrower(version=6)
    bank1, bank2 = members[0], members[1]
    loan_id = open_loan(chain, borrower, bank1)
    assert propose(chain, bank1, loan_id).ok
    at(chain, loan(chain, loan_id)["restructuring"]["expires_ms"])
    assert transfer(chain, bank1, loan_id, bank2).ok
    taken = accept(chain, bank2, loan_id)
    assert taken.ok, taken.message
    assert [event["event"] for event in domain_events(taken.events)] == ["loan.transferred"]
    after = loan(chain, loan_id)
    assert "restructuring" not in after and "restructuring_lapsed" not in after["history"][-1]
