"""What the views show of guarantees (rules 7 and 8; see ``ledger.guarantee_views``): a guarantor's
contingent exposure across lenders, what it was ever called for, the borrower's guaranteed part, and
expiry judged at the reader's time."""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from tests.ledger.chain import seeded_key
from tests.ledger.test_guarantees import GINA, act, guarantee_world, guaranteed_by, propose
from tests.ledger.test_loan_transfer import loan, open_loan, repay
from tests.ledger.test_write_off import default


def exposure(chain, did, as_of_ms=None):
    return queries.lookup(chain.state, "exposure", did, as_of_ms=as_of_ms)


def test_a_guarantor_sees_its_contingent_exposure_at_every_lender_with_what_was_called():
    chain, members, borrower, at_bank1 = guarantee_world()
    bank1, bank2 = members[0], members[1]
    other_borrower = seeded_key(5)
    chain.onboard(other_borrower, members[3])
    at_bank2 = open_loan(chain, other_borrower, bank2)
    guaranteed_by(chain, bank1, at_bank1, amount=60_000)
    called = guaranteed_by(chain, bank2, at_bank2, amount=50_000)
    pending = propose(chain, bank1, open_loan(chain, borrower, bank1), amount=5_000).tx_id.hex()
    default(chain, at_bank2)
    assert act(chain, bank2, "call", at_bank2, called, amount=10_000).ok

    view = exposure(chain, GINA.did)["guarantees"]
    assert view["currencies"] == {
        "EUR": {
            "contingent": 60_000 + 40_000,
            "called": 10_000,
            "active": 2,
            "proposed": 1,
            "called_total": 10_000,
            "called_guarantees": 1,
        }
    }
    lenders = {
        (r["name"], r["contingent"], r["called"], r["active"], r["proposed"]) for r in view["by_lender"]
    }
    assert lenders == {("bank1", 60_000, 0, 1, 1), ("bank2", 40_000, 10_000, 1, 0)}
    rows = {row["guarantee_id"]: row for row in view["guarantees"]}
    assert rows[pending]["status"] == "proposed" and rows[pending]["contingent"] == 0
    assert rows[called]["loan_state"] == "defaulted" and rows[called]["lender"] == bank2.did
    assert rows[called]["borrower"] == other_borrower.did


@pytest.mark.parametrize("version", [7, 8])
def test_what_a_guarantor_was_called_for_stays_in_its_called_total_once_the_guarantee_ended(version):
    """A view, read the same way under every rules version: a release ends the claim, not the record
    that the guarantor was called."""
    chain, members, borrower, loan_id = guarantee_world(version=version)
    bank1 = members[0]
    first = guaranteed_by(chain, bank1, loan_id, amount=60_000)
    default(chain, loan_id)
    assert act(chain, bank1, "call", loan_id, first, amount=15_000).ok
    assert act(chain, bank1, "call", loan_id, first, amount=5_000).ok
    live = exposure(chain, GINA.did)["guarantees"]["currencies"]["EUR"]
    assert (live["called"], live["called_total"], live["called_guarantees"]) == (20_000, 20_000, 1)

    assert act(chain, bank1, "release", loan_id, first).ok
    view = exposure(chain, GINA.did)["guarantees"]
    assert view["currencies"] == {
        "EUR": {
            "contingent": 0,
            "called": 0,  # on live guarantees: none is left
            "active": 0,
            "proposed": 0,
            "called_total": 20_000,
            "called_guarantees": 1,
        }
    }
    assert view["by_lender"] == []  # live figures only
    assert [(row["status"], row["called"]) for row in view["guarantees"]] == [("released", 20_000)]


def test_a_guarantee_ended_without_a_call_adds_no_currency_row():
    chain, members, borrower, loan_id = guarantee_world(version=8)
    withdrawn = propose(chain, members[0], loan_id, amount=5_000).tx_id.hex()
    assert act(chain, members[0], "withdraw", loan_id, withdrawn).ok
    view = exposure(chain, GINA.did)["guarantees"]
    assert view["currencies"] == {} and [row["status"] for row in view["guarantees"]] == ["withdrawn"]


def test_the_contingent_exposure_is_limited_by_the_principal_still_outstanding():
    chain, members, borrower, loan_id = guarantee_world()
    bank1 = members[0]
    guaranteed_by(chain, bank1, loan_id, amount=120_000)
    assert repay(chain, bank1, loan_id, 50_000).ok
    left = loan(chain, loan_id)["outstanding_principal"]
    assert left < 120_000
    assert exposure(chain, GINA.did)["guarantees"]["currencies"]["EUR"]["contingent"] == left


def test_the_borrowers_exposure_notes_what_is_guaranteed():
    chain, members, borrower, loan_id = guarantee_world()
    guaranteed_by(chain, members[0], loan_id, amount=30_000)
    view = exposure(chain, borrower.did)
    assert view["guaranteed"] == {"EUR": {"guaranteed": 30_000, "guaranteed_loans": 1}}
    assert [row["guaranteed"] for row in view["loans"]] == [30_000]
    assert view["guarantees"] == {"currencies": {}, "by_lender": [], "guarantees": []}


def test_a_member_that_only_guarantees_has_an_exposure_view():
    chain, members, borrower, loan_id = guarantee_world()
    bank2 = members[1]
    assert exposure(chain, bank2.did) is None
    guaranteed_by(chain, members[0], loan_id, bank2, amount=80_000, kind="bank")
    view = exposure(chain, bank2.did)
    assert view["loans"] == [] and view["guarantees"]["currencies"]["EUR"]["contingent"] == 80_000
    assert view["guarantees"]["guarantees"][0]["kind"] == "bank"


def test_an_expired_guarantee_stops_counting_at_the_readers_time():
    chain, members, borrower, loan_id = guarantee_world()
    expires = chain.head_ms + 100_000
    guaranteed_by(chain, members[0], loan_id, amount=60_000, expires_ms=expires)
    before, after = exposure(chain, GINA.did, expires - 1), exposure(chain, GINA.did, expires)
    assert before["guarantees"]["currencies"]["EUR"]["contingent"] == 60_000
    assert after["guarantees"]["currencies"] == {}
    assert after["guarantees"]["guarantees"][0]["status"] == "expired"
    assert exposure(chain, borrower.did, expires)["loans"][0]["guaranteed"] == 0
    as_loan = queries.lookup(chain.state, "loan", loan_id, as_of_ms=expires)
    assert [(g["status"], g["contingent"]) for g in as_loan["guarantees"]] == [("expired", 0)]
    assert as_loan["guaranteed"] == 0
    # Nothing was stored when it passed: without a time the guarantee reads as stored.
    assert loan(chain, loan_id)["guarantees"][0]["status"] == "active"
