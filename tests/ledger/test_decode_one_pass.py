"""``_decode_transaction`` checks the usual tx in one pass: the same tx, or the same refusal, as
the field-by-field way (``unpack_tx`` then ``_body_and_signature``), which takes everything else.

Checked on valid txs, on bodies each wrong in one way, and on 20,000 random
mutations of valid txs (bytes flipped, inserted, deleted, truncated).
"""

from __future__ import annotations

import hashlib
import random

import msgpack
import pytest

from lendchain.ledger import transactions
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.transactions import MAX_TX_SIZE
from tests.ledger.test_unpack_tx import REFUSED_OR_ODD, SIG, body, mutated, valid_txs

PLAIN = msgpack.Packer(use_bin_type=True)


def outcome(decode, raw: bytes):
    try:
        tx = decode(raw)
    except TxRejected as e:
        return ("refused", e.code, e.message)
    return ("tx", tx.chain_id, tx.kind, tx.sender, tx.nonce, tx.created_ms, tx.payload, tx.signature, tx.id)


def field_by_field(raw: bytes) -> transactions.Transaction:
    """What the decode gives along the field-by-field way alone."""
    if len(raw) > MAX_TX_SIZE:
        raise TxRejected("too_large", f"transaction is {len(raw)} bytes, more than {MAX_TX_SIZE}")
    b, signature = transactions._body_and_signature(raw)
    tx = transactions.Transaction(
        b["chain_id"], b["kind"], b["sender"], b["nonce"], b["created_ms"], b["payload"], signature, raw
    )
    assert tx.id == hashlib.sha256(raw).digest()
    return tx


def sorted_body(**fields) -> dict:
    return dict(sorted(fields.items()))


WRONG_BODIES = [
    PLAIN.pack([body(nonce=True), SIG]),
    PLAIN.pack([body(nonce=-1), SIG]),
    PLAIN.pack([body(created_ms="1"), SIG]),
    PLAIN.pack([body(kind=b"loan.repay"), SIG]),
    PLAIN.pack([body(payload=[]), SIG]),
    PLAIN.pack([body(sender=None), SIG]),
    PLAIN.pack([body(chain_id=1), SIG]),
    PLAIN.pack([body(), SIG[:63]]),
    PLAIN.pack([body(), SIG + b"\x00"]),
    PLAIN.pack([sorted_body(**body(), extra=1), SIG]),  # a seventh field
    PLAIN.pack([sorted_body(**{k: v for k, v in body().items() if k != "kind"}), SIG]),  # five
    PLAIN.pack([sorted_body(**{k: v for k, v in body().items() if k != "kind"}, kinds="x"), SIG]),
    PLAIN.pack([body(payload={"amount": None, "doc": b"\x00", "note": True}), SIG]),  # leaves: decodes
    PLAIN.pack([body(), SIG]),  # decodes
    b"\x00" * (MAX_TX_SIZE + 1),
]


@pytest.mark.parametrize("raw", valid_txs() + REFUSED_OR_ODD + WRONG_BODIES)
def test_each_case_gets_the_field_by_field_answer(raw):
    assert outcome(transactions._decode_transaction, raw) == outcome(field_by_field, raw)


def test_the_cases_above_reach_both_answers():
    answers = [outcome(field_by_field, raw)[0] for raw in valid_txs() + REFUSED_OR_ODD + WRONG_BODIES]
    # Besides the valid txs: two odd values that decode (the schemas refuse one later) and two bodies.
    assert answers.count("tx") == len(valid_txs()) + 4
    assert answers.count("refused") == len(answers) - answers.count("tx")


def test_a_usual_tx_takes_the_one_pass(monkeypatch):
    slow: list[bytes] = []
    real = transactions._body_and_signature
    monkeypatch.setattr(transactions, "_body_and_signature", lambda raw: slow.append(raw) or real(raw))
    for raw in valid_txs() + [PLAIN.pack([body(), SIG])]:
        transactions._decode_transaction(raw)
    assert slow == []
    with pytest.raises(TxRejected):
        transactions._decode_transaction(PLAIN.pack([body(nonce=-1), SIG]))
    assert len(slow) == 1  # a refusal is named by the field-by-field way


def test_random_mutations_of_valid_txs_get_the_field_by_field_answer():
    rng = random.Random(20261207)
    seeds = valid_txs()
    decoded = 0
    for _ in range(20_000):
        data = mutated(rng, seeds)
        got = outcome(transactions._decode_transaction, data)
        assert got == outcome(field_by_field, data), data.hex()
        decoded += got[0] == "tx"
    assert 0 < decoded < 20_000  # both answers were reached
