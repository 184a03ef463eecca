"""The forbearance views store nothing: a rules-5 chain that restructures loans in every way
executes to the same head hash as before they existed (``forbearance``).

The status of a forborne loan is computed when a view is read, from the
loan's record and its history; no handler calls it. The scenario below
restructures loans while overdue, current and defaulted, restructures one
again, repays on time and late, closes one, defaults one again, writes it
off and records a recovery, with fixed keys and block times. Its last
block's hash, which commits to every state root and results root before it,
is the one the release before the forbearance views (main at 7c6dabd)
computed for the same blocks, and it is the same when every view is read
after every block; reading them leaves the state as it was.

The servicing steps here (``at``, ``pay_due``, ``cure``) are the forbearance
tests' too.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import queries
from lendchain.ledger.amortization import loan_schedule
from lendchain.ledger.servicing import DAY_MS, MONTH_MS, payoff, penalty_due, unpaid_instalments
from lendchain.ledger.state import loan_key, read_value
from tests.ledger.chain import seeded_key
from tests.ledger.test_loan_transfer import ok, open_loan, repay, syndicated_loan, with_borrower
from tests.ledger.test_restructure import accept_terms, propose
from tests.ledger.test_write_off import write_off

# The head hash main computed for ``scenario`` before the forbearance views: at 7c6dabd, and again
# at the merge of funders' consent (which changed what rules 5 stores; the scenario then consents).
BEFORE_FORBEARANCE_VIEWS = "2e9f0c8ba97e6dd750a8a2a9384f5ccaf20c8785b1ec37c122fea05fc514f3a4"


def at(chain, time_ms):
    """Run a block (nothing but the due-loan pass) whose time is ``time_ms``."""
    chain.head_ms = time_ms - 1000
    chain.run()


def owed_now(chain, loan_id):
    """The penalty due and the rest of the loan's first unpaid instalment, as of its last evaluation."""
    stored = read_value(chain.state, loan_key(bytes.fromhex(loan_id)))
    unpaid = unpaid_instalments(stored, loan_schedule(stored))
    return penalty_due(stored) + unpaid[0][1]


def pay_due(chain, until_ms, *loans):
    """Repay every instalment of ``loans`` ((servicer, loan id) pairs) falling due before ``until_ms``
    a day before it is due (each on time, in due order), then run a block at ``until_ms``."""
    while True:
        due = []
        for servicer, loan_id in loans:
            view = queries.lookup(chain.state, "loan", loan_id)
            if view["state"] != "closed":
                due.append((view["schedule"][view["instalments_paid"]]["due_ms"], loan_id, servicer))
        if not due or min(due)[0] >= until_ms:
            break
        due_ms, loan_id, servicer = min(due)
        chain.head_ms = max(chain.head_ms, due_ms - DAY_MS)
        assert repay(chain, servicer, loan_id, owed_now(chain, loan_id)).ok
    at(chain, until_ms)


def cure(chain, servicer, loan_id):
    """Pay an overdue loan's arrear (its penalty and first unpaid instalment) a second later: it is
    current again."""
    assert repay(chain, servicer, loan_id, owed_now(chain, loan_id)).ok
    assert queries.lookup(chain.state, "loan", loan_id)["state"] == "repaying"


def first_unpaid_due(chain, loan_id):
    view = queries.lookup(chain.state, "loan", loan_id)
    return view["schedule"][view["instalments_paid"]]["due_ms"]


def consent(chain, loan_id, commitments, servicer):
    """Every funder but the servicer (its proposal is its consent) consents: ``funder_consent``."""
    for funder, _ in commitments:
        if funder is not servicer:
            ok(chain, funder, "loan.restructure_consent", {"loan_id": loan_id})


def scenario(after_block=None):
    """Four loans restructured in every way over four years of block time; ``after_block(chain, loans)``
    runs after each step that cuts blocks."""
    chain, members, borrower = with_borrower(version=5)
    bank1, bank2 = members[0], members[1]
    late = open_loan(chain, borrower, bank1)  # restructured while overdue, later paid late once
    current = open_loan(chain, borrower, bank2)  # restructured while current, then prepaid in full
    lost = open_loan(chain, borrower, bank1)  # defaults, restructured, defaults again, written off
    shared, commitments = syndicated_loan(chain, borrower, bank2)  # restructured while overdue, then again
    ok(chain, bank2, "loan.disburse", {"loan_id": shared})
    loans = [late, current, lost, shared]

    def step():
        if after_block is not None:
            after_block(chain, loans)

    start = chain.head_ms
    assert repay(chain, bank2, current, owed_now(chain, current)).ok  # current stays current
    at(chain, start + MONTH_MS + 10 * DAY_MS)  # the others are overdue
    step()
    assert propose(chain, bank1, late, rate_bps=600, term_months=60, holiday_months=3).ok
    assert accept_terms(chain, borrower, late).ok
    assert propose(chain, bank2, current, rate_bps=500, term_months=30).ok
    assert accept_terms(chain, borrower, current).ok
    assert propose(chain, bank2, shared, rate_bps=700, term_months=18, holiday_months=1).ok
    consent(chain, shared, commitments, bank2)
    assert accept_terms(chain, borrower, shared).ok
    step()
    paid = ((bank1, late), (bank2, current), (bank2, shared))
    pay_due(chain, start + 200 * DAY_MS, *paid)  # lost defaults meanwhile
    step()
    assert propose(chain, bank1, lost, rate_bps=400, term_months=36).ok
    assert accept_terms(chain, borrower, lost).ok
    pay_due(chain, start + 260 * DAY_MS, *paid)
    step()
    assert propose(chain, bank2, shared, rate_bps=650, term_months=20).ok  # forborne again
    consent(chain, shared, commitments, bank2)
    assert accept_terms(chain, borrower, shared).ok
    ok(chain, bank2, "loan.prepay", {"loan_id": current, "amount": payoff_now(chain, current)})
    step()
    at(chain, first_unpaid_due(chain, late) + 10 * DAY_MS)  # late falls overdue, lost too
    step()
    cure(chain, bank1, late)
    pay_due(chain, start + 500 * DAY_MS, (bank1, late), (bank2, shared))  # lost defaults again meanwhile
    step()
    assert write_off(chain, bank1, lost).ok
    ok(chain, bank1, "loan.recover", {"loan_id": lost, "amount": 1_000})
    pay_due(chain, start + 4 * 365 * DAY_MS, (bank1, late), (bank2, shared))
    step()
    return chain, members, borrower, loans


def payoff_now(chain, loan_id):
    """What settles the loan in the next block (``servicing.payoff``)."""
    stored = read_value(chain.state, loan_key(bytes.fromhex(loan_id)))
    return sum(payoff(stored, loan_schedule(stored), chain.head_ms + 1000))


@pytest.mark.parametrize("read_views", [False, True])
def test_a_chain_that_restructures_loans_has_the_head_hash_it_had_before_the_forbearance_views(read_views):
    def read_every_view(chain, loans):
        before = dict(chain.state.values)
        for loan_id in loans:
            queries.lookup(chain.state, "loan", loan_id, as_of_ms=chain.head_ms)
        for kind, key in (("exposure", 1), ("portfolio", 100), ("portfolio", 101), ("positions", 2)):
            queries.lookup(chain.state, kind, seeded_key(key).did, as_of_ms=chain.head_ms)
        assert chain.state.values == before

    chain, *_ = scenario(read_every_view if read_views else None)
    assert chain.head_hash.hex() == BEFORE_FORBEARANCE_VIEWS
