"""A loan's next history entry names the hash of the one before without hashing its bytes again.

``loans.with_history`` remembers the hash of every entry it wrote lately, by
the entry's bytes; an entry written in an earlier block is read back as the
same bytes and found there. The hashes must be the ones hashing gives, on any
chain, whatever the memory held before.
"""

from __future__ import annotations

import pytest

from lendchain.ledger import loans
from lendchain.ledger.state import history_entry_hash
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key

LENDER = member_key(0)
APPLY = {"amount": 9_000, "currency": "EUR", "term_months": 3, "purpose": "tools"}


@pytest.fixture
def hashed(monkeypatch):
    """Every history entry ``with_history`` hashes, in order (the memory starts empty)."""
    monkeypatch.setattr(loans, "_entry_hashes", {})
    monkeypatch.setattr(loans, "_older_entry_hashes", {})
    entries: list[bytes] = []
    monkeypatch.setattr(
        loans, "history_entry_hash", lambda raw: entries.append(raw) or history_entry_hash(raw)
    )
    return entries


def walk(chain: Chain, borrower_seed: int, forget_between_blocks: bool = False) -> list[dict]:
    """One loan from application to its first repayment, a block per step; its history events."""
    borrower = seeded_key(borrower_seed)
    chain.onboard(borrower, member_key(KYC_MEMBER))
    steps = [lambda: chain.tx(borrower, "loan.apply", APPLY)]
    loan: dict[str, str] = {}
    steps.append(lambda: chain.tx(LENDER, "loan.offer", {"loan_id": loan["id"], "rate_bps": 700}))
    steps.append(
        lambda: chain.tx(borrower, "loan.accept", {"loan_id": loan["id"], "offer_id": loan["offer"]})
    )
    steps.append(lambda: chain.tx(LENDER, "loan.disburse", {"loan_id": loan["id"]}))
    steps.append(lambda: chain.tx(LENDER, "loan.repay", {"loan_id": loan["id"], "amount": 3_000}))
    heads = []
    for step in steps:
        if forget_between_blocks:
            loans._entry_hashes.clear()
            loans._older_entry_hashes.clear()
        tx = step()
        result = chain.run_one(tx)
        assert result.ok, result
        loan.setdefault("id", tx.id.hex())
        if tx.kind == "loan.offer":
            loan["offer"] = tx.id.hex()
        heads += [event for event in result.events if event["event"] == "loan.history"]
    return heads


def test_the_entry_before_is_not_hashed_again_and_the_heads_are_those_hashing_gives(hashed):
    remembered = walk(Chain.start(make_genesis()[0]), 1)
    # Each of the 5 blocks is executed twice (proposer, then validator): one new entry hashed
    # each time, and never the entry an earlier block wrote.
    assert len(hashed) == 10 and len(set(hashed)) == 5
    hashed.clear()
    recomputed = walk(Chain.start(make_genesis()[0]), 1, forget_between_blocks=True)
    assert recomputed == remembered and [head["length"] for head in remembered] == [1, 2, 3, 4, 5]
    # Forgetting between blocks, each step after the first hashes the entry before it too.
    assert len(hashed) == 10 + 2 * 4


def test_an_entry_remembered_from_another_chain_gives_the_same_hash(hashed):
    genesis = make_genesis()[0]
    walk(Chain.start(genesis), 1)
    other = make_genesis([("lender",), ("lender",), ("regulator",), ("kyc",)])[0]
    assert other.hash() != genesis.hash()
    on_other = walk(Chain.start(other), 1)
    loans._entry_hashes.clear()
    loans._older_entry_hashes.clear()
    assert walk(Chain.start(other), 1, forget_between_blocks=True) == on_other


def test_the_memory_is_bounded(hashed, monkeypatch):
    monkeypatch.setattr(loans, "ENTRY_HASH_MEMORY", 4)
    chain = Chain.start(make_genesis()[0])
    for seed in (1, 2, 3):
        walk(chain, seed)
        assert len(loans._entry_hashes) < 2 and len(loans._older_entry_hashes) <= 2
