"""A rules-6 chain's bytes: a seeded scenario that uses every guard rail of rules 6 executes to the head
hash recorded when they were built (``restructuring_limits``, ``consent_withdrawal``,
``identity.default_episodes``).

Like ``test_forbearance_bytes`` for rules 5: fixed keys and block times, and
the last block's hash commits to every state root and results root before
it (refusals included: their sentences are hashed). A change that alters
what rules 6 store or say fails here; it belongs to a new rules version.
Reading every view after every step leaves the state as it was.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.servicing import DAY_MS
from tests.ledger.chain import seeded_key
from tests.ledger.test_forbearance_bytes import at
from tests.ledger.test_loan_transfer import loan, ok, open_loan, syndicated_loan, with_borrower
from tests.ledger.test_restructure import accept_terms, propose
from tests.ledger.test_write_off import default, write_off

# The head hash of ``scenario`` when rules 6 were built (branch rules6-guardrails).
RULES_6_HEAD = "01fc817ddd1e7446aff130e989f447795e061d0b919cbecd76aafda22af51c06"


def scenario(after_step=None):
    """Three loans through rules 6's guard rails; ``after_step(chain, loans)`` runs after each step."""
    chain, members, borrower = with_borrower(version=6)
    bank1, bank2 = members[0], members[1]
    twice = open_loan(chain, borrower, bank1)  # defaults, is restructured, defaults again, written off
    limited = open_loan(chain, borrower, bank1)  # restructured up to the limit
    shared, ((alice, _), _, (bob, _)) = syndicated_loan(chain, borrower, bank2)  # consents come and go
    ok(chain, bank2, "loan.disburse", {"loan_id": shared})
    loans = [twice, limited, shared]

    def step():
        if after_step is not None:
            after_step(chain, loans)

    def consent(funder, kind="loan.restructure_consent"):
        return chain.run_one(chain.tx(funder, kind, {"loan_id": shared}))

    assert propose(chain, bank2, shared, rate_bps=700, term_months=18).ok
    assert consent(alice).ok
    step()
    at(chain, loan(chain, shared)["restructuring"]["expires_ms"])
    assert consent(bob).code == "expired"
    assert accept_terms(chain, borrower, shared).code == "expired"
    assert propose(chain, bank2, shared, rate_bps=650, term_months=20, holiday_months=1).ok  # replaces it
    assert consent(alice).ok
    assert consent(alice, "loan.restructure_consent_withdraw").ok
    assert accept_terms(chain, borrower, shared).code == "invalid_state"  # 40,000 of 120,000
    assert consent(bob).ok and accept_terms(chain, borrower, shared).ok
    assert consent(bob, "loan.restructure_consent_withdraw").code == "invalid_state"  # accepted
    step()
    for rate in (600, 500, 400):
        assert propose(chain, bank1, limited, rate_bps=rate, term_months=24).ok
        assert accept_terms(chain, borrower, limited).ok
    assert propose(chain, bank1, limited, rate_bps=300, term_months=24).code == "invalid_state"
    step()
    default(chain, twice)
    assert propose(chain, bank1, twice, rate_bps=300, term_months=36).ok
    assert accept_terms(chain, borrower, twice).ok
    at(chain, loan(chain, twice)["restructurings"][-1]["first_due_ms"] + 100 * DAY_MS)
    assert loan(chain, twice)["state"] == "defaulted"
    assert write_off(chain, bank1, twice).ok
    step()
    assert [loan(chain, loan_id)["state"] for loan_id in loans] == ["written_off", "defaulted", "defaulted"]
    history = queries.lookup(chain.state, "party", borrower.did)["repayment_history"]
    assert (history["defaults"], history["restructurings"]) == (4, 5)  # twice's two, one each of the others
    return chain, loans


@pytest.mark.parametrize("read_views", [False, True])
def test_a_rules_6_chain_has_the_head_hash_recorded_when_rules_6_were_built(read_views):
    def read_every_view(chain, loans):
        before = dict(chain.state.values)
        for loan_id in loans:
            queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
        for kind, key in (("exposure", 1), ("portfolio", 100), ("portfolio", 101), ("positions", 2)):
            queries.lookup(chain.state, kind, seeded_key(key).did, as_of_ms=chain.head_ms)
        assert chain.state.values == before

    chain, _ = scenario(read_every_view if read_views else None)
    assert chain.head_hash.hex() == RULES_6_HEAD
