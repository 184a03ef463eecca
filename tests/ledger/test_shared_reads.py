"""The handlers that read records without a copy (``TxContext.peek``, ``load_loan(shared=True)``)
never change what they read: every record they were handed is, after the block, what it was.

Covers the kinds that read shared records (offer, accept, disburse, repay, and ``loan_actors`` for
any lifecycle kind), with a repayment late enough to take ``evaluate``'s penalty path.
"""

from __future__ import annotations

import copy

import pytest

from lendchain.ledger.context import TxContext
from lendchain.ledger.servicing import DAY_MS
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key

LENDER = member_key(0)
APPLY = {"amount": 9_000, "currency": "EUR", "term_months": 3, "purpose": "tools"}


@pytest.fixture
def handed_out(monkeypatch):
    """Every value ``peek`` returned, with a deep copy of it as it was then."""
    seen: list[tuple[object, object]] = []
    real = TxContext.peek

    def peek(self, key):
        value = real(self, key)
        seen.append((value, copy.deepcopy(value)))
        return value

    monkeypatch.setattr(TxContext, "peek", peek)
    return seen


def test_records_read_without_a_copy_are_unchanged_after_the_block(handed_out):
    chain = Chain.start(make_genesis()[0])
    borrowers = [seeded_key(1), seeded_key(2)]
    for borrower in borrowers:
        chain.onboard(borrower, member_key(KYC_MEMBER))
    applies = [chain.tx(b, "loan.apply", APPLY) for b in borrowers]
    assert all(r.ok for r in chain.run(*applies))
    loans = [tx.id.hex() for tx in applies]
    offers = [chain.tx(LENDER, "loan.offer", {"loan_id": loan, "rate_bps": 700}) for loan in loans]
    steps = [
        offers,
        [
            chain.tx(b, "loan.accept", {"loan_id": loan, "offer_id": offer.id.hex()})
            for b, loan, offer in zip(borrowers, loans, offers, strict=True)
        ],
        [chain.tx(LENDER, "loan.disburse", {"loan_id": loan}) for loan in loans],
    ]
    for txs in steps:
        assert all(r.ok for r in chain.run(*txs))
    chain.head_ms += 50 * DAY_MS  # the first instalment is overdue, with penalty
    repays = [chain.tx(LENDER, "loan.repay", {"loan_id": loan, "amount": 1_000}) for loan in loans]
    repays.append(chain.tx(borrowers[0], "loan.repay", {"loan_id": loans[0], "amount": 5}))  # forbidden
    results = chain.run(*repays)
    assert [r.code for r in results] == ["ok", "ok", "forbidden"]
    assert any(e["event"] == "loan.overdue" for e in chain.ledger_events)
    assert any(isinstance(value, dict) and "progress" in value for value, _ in handed_out)
    for value, before in handed_out:
        assert value == before
