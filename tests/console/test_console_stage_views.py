"""A node judges days past due and IFRS 9 stages at its head block's time (``staging``, ``node.views``).

No network and no processes: a real ChainStore with real blocks, read through
the node's views as the API and the console read them.
"""

from __future__ import annotations

from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from tests.console.test_console_views import Views, disbursed_on_a_store
from tests.ledger.chain import seeded_key


def test_the_node_judges_days_past_due_and_the_stage_at_its_head_blocks_time(tmp_path):
    # rules 1: staging is a view, it needs no rules version
    with disbursed_on_a_store(tmp_path) as (store, genesis, run, members, borrower, loan_id):
        lender = members[0]
        views = Views(store, genesis)
        first_due = views.query("loan", loan_id)["schedule"][0]["due_ms"]
        assert views.query("loan", loan_id)["stage"] == 1

        # A block for someone else moves the head 40 days past the first instalment's due time.
        run(seeded_key(2), "party.register", {"role": "investor"}, now_ms=first_due + 40 * DAY_MS)
        loan = views.query("loan", loan_id)
        assert (loan["days_past_due"], loan["stage"], loan["stage_as_of_ms"]) == (
            40,
            2,
            store.head().timestamp_ms,
        )
        book = views.query("portfolio", lender.did)
        assert (book["stages"]["EUR"]["stage_2_loans"], book["ageing"]["EUR"]["dpd_31_60_loans"]) == (1, 1)
        assert views.query("exposure", borrower.did)["loans"][0]["days_past_due"] == 40
        assert first_due == loan["disbursed_ms"] + MONTH_MS
