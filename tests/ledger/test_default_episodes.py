"""A loan that defaults twice counts twice (rules 6; ``identity.default_episodes``): a loan restructured
after its default, that defaults again, is two defaults in the borrower's repayment history and score.

Under rules 5 the loan kept only its last ``defaulted_ms``, so it counted
once, and it still does there: a rules-5 chain's bytes do not change.
"""

from __future__ import annotations

from lendchain.ledger import queries
from lendchain.ledger.rules import MIN_NOTICE_BLOCKS
from lendchain.ledger.scoring import DEFAULTS_SOURCE
from lendchain.ledger.servicing import DAY_MS
from tests.ledger.test_loan_transfer import loan, open_loan, with_borrower
from tests.ledger.test_membership import advance_to, vote_through
from tests.ledger.test_restructure import accept_terms, propose, stored
from tests.ledger.test_write_off import default, write_off


def restructure_and_default_again(chain, servicer, borrower, loan_id):
    """Restructure the defaulted loan (current again), then run a block 100 days after its first new
    instalment fell due: it defaults again."""
    assert propose(chain, servicer, loan_id, rate_bps=300, term_months=36).ok
    assert accept_terms(chain, borrower, loan_id).ok
    assert loan(chain, loan_id)["state"] == "repaying"
    chain.head_ms = loan(chain, loan_id)["restructurings"][-1]["first_due_ms"] + 100 * DAY_MS
    chain.run()
    assert loan(chain, loan_id)["state"] == "defaulted"


def defaults_factor(chain, did):
    history = queries.lookup(chain.state, "party", did)["repayment_history"]
    factor = next(
        f for f in queries.lookup(chain.state, "score", did)["factors"] if f["factor"] == "defaults"
    )
    return history["defaults"], factor


def test_a_loan_that_defaults_again_after_a_restructuring_counts_twice():
    chain, members, borrower = with_borrower(version=6)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    assert stored(chain, loan_id)["defaults"] == 1
    first = loan(chain, loan_id)["defaulted_ms"]
    restructure_and_default_again(chain, bank1, borrower, loan_id)
    assert stored(chain, loan_id)["defaults"] == 2
    assert loan(chain, loan_id)["defaulted_ms"] > first  # the last default's time, as before
    defaults, factor = defaults_factor(chain, borrower.did)
    assert defaults == 2
    assert factor == {"factor": "defaults", "value": 2, "points": -400, "source": DEFAULTS_SOURCE}
    assert "a loan that defaulted again after a restructuring counts again" in factor["source"]
    assert write_off(chain, bank1, loan_id).ok  # a write-off keeps both
    assert defaults_factor(chain, borrower.did)[0] == 2
    other = open_loan(chain, borrower, bank1)  # another loan's default adds one
    default(chain, other)
    assert defaults_factor(chain, borrower.did)[0] == 3


def test_under_rules_5_the_loan_counts_once_and_stores_no_count():
    chain, members, borrower = with_borrower(version=5)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    restructure_and_default_again(chain, bank1, borrower, loan_id)
    assert "defaults" not in stored(chain, loan_id)
    defaults, factor = defaults_factor(chain, borrower.did)
    assert (defaults, factor["value"], factor["points"]) == (1, 1, -200)


def test_a_default_under_rules_5_counts_once_and_each_default_under_rules_6_once_more():
    chain, members, borrower = with_borrower(version=5)
    bank1 = members[0]
    loan_id = open_loan(chain, borrower, bank1)
    default(chain, loan_id)
    activation = chain.height + 4 + MIN_NOTICE_BLOCKS
    vote_through(chain, bank1, members[1:3], "rules.upgrade", "6", str(activation))
    advance_to(chain, activation)
    assert "defaults" not in stored(chain, loan_id)  # nothing rewrites a loan at the upgrade
    assert defaults_factor(chain, borrower.did)[0] == 1
    restructure_and_default_again(chain, bank1, borrower, loan_id)
    assert stored(chain, loan_id)["defaults"] == 2
    assert defaults_factor(chain, borrower.did)[0] == 2
