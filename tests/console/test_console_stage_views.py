"""A node judges days past due and IFRS 9 stages at its head block's time (``staging``, ``node.views``).

No network and no processes: a real ChainStore with real blocks, read through
the node's views as the API and the console read them.
"""

from __future__ import annotations

from lendchain.ledger.servicing import DAY_MS, MONTH_MS
from lendchain.node.store import ChainStore
from tests.console.test_console_views import APPLY, Views
from tests.ledger.chain import GENESIS_MS, Chain, make_genesis, seeded_key


def test_the_node_judges_days_past_due_and_the_stage_at_its_head_blocks_time(tmp_path):
    genesis, members = make_genesis()  # rules 1: staging is a view, it needs no rules version
    lender, borrower = members[0], seeded_key(1)
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:

        def run(key, kind, payload, now_ms=None):
            if now_ms is not None:
                chain.head_ms = now_ms - 1000
            block, execution = chain.cut([chain.tx(key, kind, payload)])
            assert execution.results[0].ok, execution.results[0]
            store.commit_block(block.encode(), b"certificate", execution)
            chain.apply(block, execution)
            return execution.results[0].tx_id.hex()

        run(borrower, "party.register", {"role": "borrower"})
        attest = {
            "subject": borrower.did,
            "level": 2,
            "expires_ms": GENESIS_MS + 10**13,
            "evidence_hash": "ab" * 32,
        }
        run(members[3], "kyc.attest", attest)
        loan_id = run(borrower, "loan.apply", APPLY)
        offer_id = run(lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 1200})
        run(borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
        run(lender, "loan.disburse", {"loan_id": loan_id})
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
