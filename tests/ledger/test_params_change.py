"""``params.set`` (rules 6): the members change a chain parameter by governance.

Each class of parameter: one that applies from the next block (currencies, the
voting period), one that applies to loans disbursed after the change (the
servicing terms), and the ones governance may not change (the key rotation
delay, the rules version); the refusals, the check again at execution, the
view of where each value came from, and an audit export across a change.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.audit import export_loan, verify_export
from lendchain.ledger.params import PARAMS
from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from lendchain.ledger.state import PARAMS_KEY, read_value
from tests.ledger.test_domain_audit import CertifiedBlocks
from tests.ledger.test_loan_transfer import APPLY, loan, ok, open_loan, with_borrower
from tests.ledger.test_membership import propose, vote, vote_through
from tests.ledger.test_restructure import accept_terms
from tests.ledger.test_restructure import propose as restructure

ACTION = "params.set"
FIRST_CURRENCIES = ["CHF", "EUR", "GBP", "INR", "KES", "USD"]


@pytest.fixture
def world():
    return with_borrower(version=6)


def set_param(chain, members, key, value):
    """bank1 proposes, bank2 and bank3 vote: the change executes; the executing result."""
    return vote_through(chain, members[0], members[1:3], ACTION, key, value)


def changed_event(result):
    return next(event for event in result.events if event["event"] == "params.changed")


def test_params_set_does_not_exist_before_rules_6():
    chain, members, _ = with_borrower(version=5)
    early = chain.tx(members[0], "gov.propose", {"action": ACTION, "key": "max_term_months", "value": "360"})
    block, execution = chain.cut([early])
    assert len(block.txs) == 0
    [dropped] = execution.dropped
    assert dropped.code == "bad_payload"
    assert dropped.message.startswith("gov.propose field 'action' must be one of scorecard.set")
    assert dropped.message.endswith(f"member.address, got '{ACTION}'")  # the actions of rules 5


def test_a_currency_added_is_lent_in_from_the_block_after_the_change(world):
    chain, members, borrower = world
    yen = {**APPLY, "currency": "JPY"}
    before = chain.run_one(chain.tx(borrower, "loan.apply", yen))
    assert (before.code, before.message) == (
        "bad_payload",
        "loan.apply field 'currency' is 'JPY'; this chain lends in CHF, EUR, GBP, INR, KES, USD",
    )
    proposal_id = propose(chain, members[0], ACTION, "currencies", "CHF,EUR,GBP,INR,KES,USD,JPY").tx_id.hex()
    assert vote(chain, members[1], proposal_id).ok
    # The executing vote and an application in one block: a block reads its parameters at its start.
    executing, same_block = chain.run(
        chain.tx(members[2], "gov.vote", {"proposal_id": proposal_id}), chain.tx(borrower, "loan.apply", yen)
    )
    assert executing.ok and same_block.code == "bad_payload"
    assert changed_event(executing) == {
        "event": "params.changed",
        "key": "currencies",
        "value": [*FIRST_CURRENCIES, "JPY"],
        "previous": FIRST_CURRENCIES,
        "proposal_id": proposal_id,
        "from_height": chain.height + 1,
    }
    assert queries.lookup(chain.state, "proposal", proposal_id)["status"] == "executed"
    assert chain.run_one(chain.tx(borrower, "loan.apply", yen)).ok


def test_a_currency_removed_takes_no_new_loan_and_its_live_loans_are_serviced_as_before(world):
    chain, members, borrower = world
    euros = open_loan(chain, borrower, members[0])
    assert set_param(chain, members, "currencies", "USD,CHF").ok
    refused = chain.run_one(chain.tx(borrower, "loan.apply", APPLY))
    assert refused.message == "loan.apply field 'currency' is 'EUR'; this chain lends in USD, CHF"
    ok(chain, members[0], "loan.repay", {"loan_id": euros, "amount": 10_000})
    assert loan(chain, euros)["principal_paid"] > 0


@pytest.mark.parametrize(
    "key, value, refusal",
    [
        (
            "max_term_month",
            "360",
            "field 'key': 'max_term_month' is no chain parameter; did you mean 'max_term_months'?",
        ),
        (
            "colour",
            "red",
            "field 'key': 'colour' is no chain parameter; they are currencies, max_term_months, ",
        ),
        (
            "key_rotation_delay_blocks",
            "40",
            "field 'key': governance does not change key_rotation_delay_blocks: every node trusts its key "
            "schedule to be complete up to the executed height plus this delay (its horizon)",
        ),
        (
            "rules_version",
            "6",
            "field 'key': governance does not change rules_version: rules.upgrade changes the rules, at a "
            "height the members vote for",
        ),
        (
            "max_term_months",
            "forever",
            "field 'value': max_term_months is a whole number from 1 to 1200 (months), not 'forever'",
        ),
        ("max_term_months", "1201", "not '1201'"),
        ("max_term_months", "-5", "not '-5'"),
        ("voting_period_ms", "59999", "voting_period_ms is a whole number from 60000 to 31536000000 (ms)"),
        (
            "voting_period_ms",
            "3599999",
            "field 'value': governance sets voting_period_ms no lower than 3600000 (ms), not 3599999: a "
            "shorter one could leave the members too little time to vote the next change",
        ),
        ("require_kyc", "no", "field 'value': require_kyc is true or false, not 'no'"),
        (
            "currencies",
            "",
            "field 'value': currencies is comma-separated currency codes such as 'EUR,USD': '' must name 1 to 32 currencies, not 0",
        ),
        ("currencies", "EUR,EUR", "'EUR,EUR' names EUR twice"),
        ("currencies", "EUR,euro", "'EUR,euro' has 'euro', which is no currency code"),
        (
            "max_term_months",
            "480",
            "field 'value': max_term_months is 480 already; the change would do nothing",
        ),
        ("require_kyc", "true", "require_kyc is true already"),
    ],
)
def test_a_change_that_cannot_be_is_refused_with_its_reason(world, key, value, refusal):
    chain, members, _ = world
    result = propose(chain, members[0], ACTION, key, value)
    assert result.code == "bad_payload"
    assert result.message.startswith(f"gov.propose {ACTION} field '"), result.message
    assert refusal in result.message, result.message
    assert read_value(chain.state, b"params/changes") is None


def test_a_change_is_checked_again_when_its_vote_executes_it(world):
    chain, members, _ = world
    first = propose(chain, members[0], ACTION, "max_term_months", "360").tx_id.hex()
    second = propose(chain, members[1], ACTION, "max_term_months", "360").tx_id.hex()
    assert vote(chain, members[1], first).ok and vote(chain, members[2], first).ok
    assert vote(chain, members[0], second).ok
    moot = vote(chain, members[2], second)
    assert (moot.code, moot.message) == (
        "invalid_state",
        f"gov.propose {ACTION} field 'value': max_term_months is 360 already; the change would do nothing "
        "(not so when it was proposed)",
    )
    assert queries.lookup(chain.state, "proposal", second)["status"] == "open"
    assert read_value(chain.state, PARAMS_KEY)["max_term_months"] == 360


def test_a_shorter_voting_period_leaves_open_proposals_their_expiry(world):
    chain, members, _ = world
    earlier = propose(chain, members[0], "scorecard.set", "base", "310").tx_id.hex()
    expires_ms = queries.lookup(chain.state, "proposal", earlier)["expires_ms"]
    assert set_param(chain, members, "voting_period_ms", "3600000").ok
    assert queries.lookup(chain.state, "proposal", earlier)["expires_ms"] == expires_ms
    later = propose(chain, members[0], "scorecard.set", "base", "320")
    assert (
        queries.lookup(chain.state, "proposal", later.tx_id.hex())["expires_ms"] == chain.head_ms + 3_600_000
    )


def test_a_lower_restructuring_limit_applies_to_the_next_proposal(world):
    chain, members, borrower = world
    loan_id = open_loan(chain, borrower, members[0])
    assert restructure(chain, members[0], loan_id).ok and accept_terms(chain, borrower, loan_id).ok
    assert set_param(chain, members, "max_restructurings", "1").ok
    refused = restructure(chain, members[0], loan_id, rate_bps=500, term_months=24)
    assert refused.code == "invalid_state"
    assert "restructured once, and this chain allows at most 1 restructuring of a loan" in refused.message


def test_servicing_terms_change_for_loans_disbursed_after_and_earlier_loans_keep_theirs(world):
    chain, members, borrower = world
    earlier = open_loan(chain, borrower, members[0])
    grace = propose(chain, members[0], ACTION, "grace_days", "30").tx_id.hex()
    penalty = propose(chain, members[0], ACTION, "penalty_bps", "2000").tx_id.hex()
    for proposal_id in (grace, penalty):
        assert vote(chain, members[1], proposal_id).ok
    # Both execute in one block: the loans disbursed up to it keep one set of terms, the block's own.
    results = chain.run(*(chain.tx(members[2], "gov.vote", {"proposal_id": p}) for p in (grace, penalty)))
    assert [result.ok for result in results] == [True, True]
    changed_ms, changed_at = chain.head_ms, chain.height
    stored = read_value(chain.state, PARAMS_KEY)
    assert stored["servicing_eras"] == [[changed_ms, 5, 90, 1000]]
    assert (stored["grace_days"], stored["penalty_bps"]) == (30, 2000)
    later = open_loan(chain, borrower, members[0])

    # Six days past the later loan's first due time: the earlier loan, a few blocks older, is
    # overdue under its five days of grace; the later one has thirty.
    chain.head_ms = loan(chain, later)["disbursed_ms"] + MONTH_MS + 6 * DAY_MS
    chain.run()
    ok(chain, members[0], "loan.service", {"loan_id": later})
    assert (loan(chain, earlier)["state"], loan(chain, later)["state"]) == ("overdue", "disbursed")

    view = queries.lookup(chain.state, "params", "grace_days")["parameters"][0]
    assert view["value"] == 30 and view["source"] == "governance" and view["changed_height"] == changed_at
    assert view["proposal_id"] == grace
    assert view["earlier_loans"] == [{"disbursed_until_ms": changed_ms, "value": 5}]

    document = export_loan(chain.state, CertifiedBlocks(chain, members), bytes.fromhex(later))
    summary = verify_export(document, chain.genesis)
    assert summary["entries"] == len(loan(chain, later)["history"])


def test_the_view_says_where_each_value_came_from(world):
    chain, members, _ = world
    assert queries.lookup(chain.state, "params", "colour") is None
    executed = set_param(chain, members, "max_term_months", "360")
    rows = {row["name"]: row for row in queries.lookup(chain.state, "params", "*")["parameters"]}
    assert list(rows) == list(PARAMS)
    assert rows["max_term_months"] == {
        "name": "max_term_months",
        "value": 360,
        "default": 480,
        "source": "governance",
        "changed_height": chain.height,
        "proposal_id": changed_event(executed)["proposal_id"],
        "what": PARAMS["max_term_months"].what,
        "values": "1 to 1200 months",
        "changeable": True,
        "change": PARAMS["max_term_months"].change,
    }
    # The test chain's genesis sets these two; the rest are the defaults.
    assert {name for name, row in rows.items() if row["source"] == "genesis"} == {
        "key_rotation_delay_blocks",
        "rules_version",
    }
    assert rows["key_rotation_delay_blocks"]["changeable"] is False
    assert rows["key_rotation_delay_blocks"]["change"] == PARAMS["key_rotation_delay_blocks"].fixed_because
    assert rows["currencies"] == {**rows["currencies"], "value": FIRST_CURRENCIES, "source": "default"}
