"""State values decoded lately are kept by their bytes (``ledger/decoded.py``): the next blocks read
them back without decoding, every block executes as it would without them, and a value changed in
place is caught (the test suite runs with ``LENDCHAIN_CHECK_TRUSTED_PACK=1``)."""

from __future__ import annotations

import pytest

from lendchain import codec
from lendchain.ledger import context as context_module
from lendchain.ledger.decoded import MISSING, ChangedInPlace, DecodedValues
from lendchain.ledger.state import party_key
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key

LENDER = member_key(0)
APPLY = {"amount": 9_000, "currency": "EUR", "term_months": 3, "purpose": "tools"}


@pytest.fixture
def memory(monkeypatch):
    """A fresh memory for the overlay, and every decode it still makes."""
    fresh = DecodedValues()
    monkeypatch.setattr(context_module, "DECODED", fresh)
    decoded: list[bytes] = []
    real = context_module.decode_state_value
    monkeypatch.setattr(context_module, "decode_state_value", lambda raw: decoded.append(raw) or real(raw))
    return fresh, decoded


def lifecycle(chain: Chain, forget_between_blocks: DecodedValues | None = None) -> list[bytes]:
    """Two loans from registration to a repayment, a block per step; each block's state root."""
    borrowers = [seeded_key(1), seeded_key(2)]
    steps = [
        lambda: [chain.tx(b, "party.register", {"role": "borrower"}) for b in borrowers],
        lambda: [chain.attest(member_key(KYC_MEMBER), b.did) for b in borrowers],
        lambda: [chain.tx(b, "loan.apply", APPLY) for b in borrowers],
    ]
    roots = []
    offers: list[str] = []
    for step in steps:
        results = run(chain, step(), forget_between_blocks)
        roots.append(chain.blocks[-1][1].state_root)
    loans = [r.tx_id.hex() for r in results]
    more = [
        lambda: [chain.tx(LENDER, "loan.offer", {"loan_id": loan, "rate_bps": 700}) for loan in loans],
        lambda: [
            chain.tx(b, "loan.accept", {"loan_id": loan, "offer_id": offer})
            for b, loan, offer in zip(borrowers, loans, offers, strict=True)
        ],
        lambda: [chain.tx(LENDER, "loan.disburse", {"loan_id": loan}) for loan in loans],
        lambda: [chain.tx(LENDER, "loan.repay", {"loan_id": loan, "amount": 3_000}) for loan in loans],
    ]
    for step in more:
        results = run(chain, step(), forget_between_blocks)
        offers = offers or [r.tx_id.hex() for r in results]
        roots.append(chain.blocks[-1][1].state_root)
    return roots


def run(chain: Chain, txs, forget: DecodedValues | None):
    if forget is not None:
        forget.clear()
    results = chain.run(*txs)
    assert all(r.ok for r in results), results
    return results


def test_what_a_block_wrote_is_read_by_the_next_without_decoding(memory):
    fresh, decoded = memory
    chain = Chain.start(make_genesis()[0])
    borrower = seeded_key(1)
    chain.run(chain.tx(borrower, "party.register", {"role": "borrower"}))
    party = chain.state.get(party_key(borrower.did))
    decoded.clear()
    chain.onboard(seeded_key(2), member_key(KYC_MEMBER))  # reads other keys
    chain.run(chain.attest(member_key(KYC_MEMBER), borrower.did))
    chain.run(chain.tx(borrower, "loan.apply", APPLY))  # reads the party record block 1 packed
    assert party not in decoded and fresh.get(party) == codec.unpack(party)


def test_blocks_execute_as_they_do_without_the_memory(memory):
    fresh, _ = memory
    kept = lifecycle(Chain.start(make_genesis()[0]))
    forgotten = lifecycle(Chain.start(make_genesis()[0]), forget_between_blocks=fresh)
    assert kept == forgotten and len(set(kept)) == len(kept)


def test_a_value_changed_in_place_is_caught():
    values = DecodedValues()
    raw = codec.pack({"offers": [b"a"], "state": "offered"})
    values.remember(raw, codec.unpack(raw))
    shared = values.get(raw)
    assert shared == {"offers": [b"a"], "state": "offered"}
    shared["offers"].append(b"b")  # what no handler may do to what it was handed
    with pytest.raises(ChangedInPlace, match="changed in place"):
        values.get(raw)


def test_the_memory_is_bounded_by_values_and_by_bytes():
    values = DecodedValues(max_values=4, max_bytes=1_000)
    for n in range(5):
        values.remember(codec.pack(n), n)
    # Two generations of two: 0 and 1 were dropped whole when 2 and 3 were retired.
    assert len(values) == 3 and values.get(codec.pack(4)) == 4 and values.get(codec.pack(2)) == 2
    assert values.get(codec.pack(0)) is MISSING
    values = DecodedValues(max_values=100, max_bytes=1_000)
    big = codec.pack("x" * 600)  # past half the bytes on its own: retired at once
    values.remember(big, "x" * 600)
    values.remember(codec.pack("y"), "y")
    assert values.get(big) == "x" * 600 and len(values) == 2
    values.remember(codec.pack("z" * 600), "z" * 600)
    assert values.get(big) is MISSING and values.get(codec.pack("y")) == "y"
