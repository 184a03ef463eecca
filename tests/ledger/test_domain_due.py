"""The due-loan pass: loans turn overdue and defaulted at each block by themselves (issue 6)."""

from __future__ import annotations

from dataclasses import replace

from lendchain.ledger import merkle, queries
from lendchain.ledger.block import Block
from lendchain.ledger.due import SLOT_MS, index_size, slot_of
from lendchain.ledger.execute import ledger_result_leaf
from lendchain.ledger.kinds import LEDGER_TX_ID
from lendchain.ledger.servicing import DAY_MS, MONTH_MS, YEAR_MS
from lendchain.ledger.state import read_value
from tests.ledger.chain import KYC_MEMBER, Chain, domain_events, make_genesis, member_key, seeded_key

APPLY = {"amount": 120_000, "currency": "EUR", "term_months": 12, "purpose": "a kitchen"}
GRACE_MS = 5 * DAY_MS
DEFAULT_MS = 90 * DAY_MS


def disbursed_loans(chain: Chain, borrowers: list, lender) -> list[str]:
    """Onboard ``borrowers`` and walk one loan each to disbursed, every step for all in one block."""
    for borrower in borrowers:
        chain.onboard(borrower, member_key(KYC_MEMBER))
    loan_ids = [r.tx_id.hex() for r in chain.run(*(chain.tx(b, "loan.apply", APPLY) for b in borrowers))]
    offers = chain.run(*(chain.tx(lender, "loan.offer", {"loan_id": i, "rate_bps": 1200}) for i in loan_ids))
    accepts = [
        chain.tx(b, "loan.accept", {"loan_id": i, "offer_id": o.tx_id.hex()})
        for b, i, o in zip(borrowers, loan_ids, offers, strict=True)
    ]
    assert all(r.ok for r in chain.run(*accepts))
    assert all(
        r.ok for r in chain.run(*(chain.tx(lender, "loan.disburse", {"loan_id": i}) for i in loan_ids))
    )
    return loan_ids


def at(chain: Chain, ms: int) -> None:
    """Make the next block's timestamp ``ms`` (the test chain adds 1000 ms to its head)."""
    chain.head_ms = ms - 1000


def unrelated(chain: Chain, n: int) -> None:
    """One block whose only tx registers a party that has nothing to do with any loan."""
    assert chain.run_one(chain.tx(seeded_key(60 + n), "party.register", {"role": "investor"})).ok


def loan(chain: Chain, loan_id: str) -> dict:
    return queries.lookup(chain.state, "loan", loan_id)


def index_holds(chain: Chain) -> int:
    return index_size(lambda key: read_value(chain.state, key))


def test_a_loan_nobody_pays_turns_overdue_then_defaulted_through_unrelated_blocks():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    borrower = seeded_key(1)
    (loan_id,) = disbursed_loans(chain, [borrower], members[0])
    view = loan(chain, loan_id)
    due1 = view["disbursed_ms"] + MONTH_MS
    payment = view["schedule"][0]["payment"]
    assert view["next_check_ms"] == due1 + GRACE_MS + 1 and index_holds(chain) == 1

    # Up to the end of the hour of the check, nothing happens.
    check_slot = slot_of(due1 + GRACE_MS + 1)
    at(chain, check_slot - 1)
    unrelated(chain, 1)
    assert chain.ledger_events == () and loan(chain, loan_id)["state"] == "disbursed"

    # The first block at or after it finds the loan overdue, with no tx naming the loan.
    at(chain, check_slot)
    unrelated(chain, 2)
    assert domain_events(chain.ledger_events) == [
        {"event": "loan.overdue", "loan_id": loan_id, "instalment": 1, "due_ms": due1},
    ]
    view = loan(chain, loan_id)
    assert view["state"] == "overdue"
    assert view["penalty_owed"] == payment * (check_slot - due1 - GRACE_MS) * 1000 // (YEAR_MS * 10_000)
    assert {k: v for k, v in view["history"][-1].items() if k != "prev"} == {
        "event": "loan.overdue",
        "height": chain.height,
        "tx_id": LEDGER_TX_ID.hex(),
        "instalment": 1,
        "due_ms": due1,
    }
    # Filed again under the next time its state may change: instalment 2 falling overdue.
    assert view["next_check_ms"] == due1 + MONTH_MS + GRACE_MS + 1

    # That check accrues penalty on both instalments but changes no state, so no event.
    second_slot = slot_of(due1 + MONTH_MS + GRACE_MS + 1)
    at(chain, second_slot)
    unrelated(chain, 3)
    assert chain.ledger_events == ()
    late = payment * (second_slot - check_slot) + payment * (second_slot - due1 - MONTH_MS - GRACE_MS)
    expected = view["penalty_owed"] + late * 1000 // (YEAR_MS * 10_000)
    assert loan(chain, loan_id)["penalty_owed"] == expected

    # An empty block past the default threshold: defaulted, and out of the index.
    at(chain, slot_of(due1 + DEFAULT_MS + 1))
    chain.run()
    assert [e["event"] for e in chain.ledger_events] == ["loan.defaulted", "loan.history"]
    view = loan(chain, loan_id)
    assert view["state"] == "defaulted" and view["next_check_ms"] is None
    assert index_holds(chain) == 0
    assert queries.lookup(chain.state, "party", borrower.did)["repayment_history"]["defaults"] == 1


def test_the_ledger_events_are_the_last_leaf_of_the_results_root():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    (loan_id,) = disbursed_loans(chain, [seeded_key(1)], members[0])
    at(chain, slot_of(loan(chain, loan_id)["next_check_ms"]))
    unrelated(chain, 1)
    raw, execution = chain.blocks[-1]
    header = Block.decode(raw).header
    leaves = [result.leaf() for result in execution.results] + [ledger_result_leaf(chain.ledger_events)]
    assert merkle.merkle_root(leaves) == header.results_root
    proof = merkle.inclusion_proof(leaves, 1)
    assert merkle.verify_inclusion(leaves[1], 1, 2, proof, header.results_root)


def test_on_time_payments_move_the_check_and_closure_leaves_the_index():
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    (loan_id,) = disbursed_loans(chain, [seeded_key(1)], members[0])
    view = loan(chain, loan_id)
    for row in view["schedule"]:
        at(chain, view["disbursed_ms"] + row["number"] * MONTH_MS - DAY_MS)
        paid = chain.run_one(
            chain.tx(members[0], "loan.repay", {"loan_id": loan_id, "amount": row["payment"]})
        )
        assert paid.ok and chain.ledger_events == ()
        if row["number"] < len(view["schedule"]):
            expected = view["disbursed_ms"] + (row["number"] + 1) * MONTH_MS + GRACE_MS + 1
            assert loan(chain, loan_id)["next_check_ms"] == expected
    assert loan(chain, loan_id)["state"] == "closed" and index_holds(chain) == 0


def run_scenario() -> Chain:
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    first = disbursed_loans(chain, [seeded_key(1), seeded_key(2)], members[0])
    chain.head_ms += 3 * DAY_MS
    second = disbursed_loans(chain, [seeded_key(3)], members[1])
    chain.run_one(chain.tx(members[0], "loan.repay", {"loan_id": first[0], "amount": 5_000}))
    for month in range(1, 6):
        at(chain, loan(chain, second[0])["disbursed_ms"] + month * MONTH_MS + 9 * DAY_MS)
        chain.run()
    return chain


def test_two_fresh_states_given_the_same_blocks_reach_the_same_roots():
    one, two = run_scenario(), run_scenario()
    assert [execution.state_root for _, execution in one.blocks] == [
        execution.state_root for _, execution in two.blocks
    ]
    assert [raw for raw, _ in one.blocks] == [raw for raw, _ in two.blocks]
    assert one.state.values == two.state.values
    events = [e["event"] for _, execution in one.blocks for e in execution.ledger_events]
    assert events.count("loan.overdue") == 3 and events.count("loan.defaulted") == 3


def test_the_pass_evaluates_at_most_the_cap_per_block_and_continues_in_filing_order():
    genesis, members = make_genesis()
    genesis = replace(genesis, app={"max_evaluations_per_block": 2})
    chain = Chain.start(genesis)
    loan_ids = disbursed_loans(chain, [seeded_key(i) for i in range(1, 6)], members[0])
    check = loan(chain, loan_ids[0])["next_check_ms"]
    assert {loan(chain, i)["next_check_ms"] for i in loan_ids} == {check}  # one slot
    at(chain, slot_of(check) + SLOT_MS)
    seen = []
    for block, expected in enumerate((2, 2, 1, 0)):
        unrelated(chain, block)
        assert [e["event"] for e in domain_events(chain.ledger_events)] == ["loan.overdue"] * expected
        seen += [e["loan_id"] for e in domain_events(chain.ledger_events)]
    assert seen == loan_ids  # disbursed (filed) in this order, in one block
    assert all(loan(chain, i)["state"] == "overdue" for i in loan_ids)
