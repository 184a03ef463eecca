"""``unpack_tx`` is ``codec.unpack`` for txs, only faster: the same value or the same refusal.

Checked on valid txs of every shape the schemas allow, on hand-made second
spellings and values ``codec.unpack`` refuses, and on 20,000 random
mutations of valid txs (bytes flipped, inserted, deleted, truncated).
"""

from __future__ import annotations

import random

import msgpack
import pytest

from lendchain import codec
from lendchain.crypto import SigningKey
from lendchain.ledger.transactions import MAX_TX_SIZE, build_transaction, unpack_tx

KEY = SigningKey(bytes(range(32)))
PLAIN = msgpack.Packer(use_bin_type=True)  # writes maps in insertion order, floats, anything


def outcome(decode, raw: bytes):
    try:
        return ("value", decode(raw))
    except codec.CodecError as e:
        return ("refused", str(e))


def strict(raw: bytes):
    return codec.unpack(raw, max_size=MAX_TX_SIZE)


def valid_txs() -> list[bytes]:
    payloads = [
        ("loan.repay", {"loan_id": "ab" * 32, "amount": 9000}),
        ("loan.apply", {"amount": 2**40, "currency": "EUR", "term_months": 12, "purpose": "é" * 40}),
        ("party.register", {"role": "borrower"}),
        ("loan.offer", {"loan_id": "cd" * 32, "rate_bps": 0}),
        ("doc.add", {"hash": b"\x00" * 32, "public": True, "note": None}),
        ("loan.repay", {}),
    ]
    return [
        build_transaction(KEY, "lendchain-test", kind, nonce, payload, 1_700_000_000_000 + nonce).encode()
        for nonce, (kind, payload) in enumerate(payloads)
    ]


def body(**changes):
    base = {
        "chain_id": "c",
        "created_ms": 1,
        "kind": "loan.repay",
        "nonce": 0,
        "payload": {"amount": 1},
        "sender": "did:key:z",
    }
    return {**base, **changes}


SIG = b"\x01" * 64
REFUSED_OR_ODD = [
    PLAIN.pack([body(payload={"amount": 1.5}), SIG]),  # a float in the payload
    PLAIN.pack([body(created_ms=1.0), SIG]),  # a float in the body
    PLAIN.pack([body(payload={"amount": [1, 2]}), SIG]),  # a container in the payload (canonical)
    PLAIN.pack([body(payload={"a": {"b": 1.5}}), SIG]),  # … holding a float
    PLAIN.pack([body(chain_id={"x": 1}), SIG]),  # a second map in the body (canonical)
    PLAIN.pack([body(chain_id={"x": 0.5}), SIG]),
    PLAIN.pack([{"sender": "s", **body()}, SIG]),  # keys out of order
    PLAIN.pack([body(payload={"b": 1, "a": 2}), SIG]),  # payload keys out of order
    b"\x92\x86" + PLAIN.pack(body())[1:] + PLAIN.pack(SIG),  # one field short of its header
    PLAIN.pack([body(), SIG]) + b"\x00",  # trailing bytes
    PLAIN.pack([body(), SIG])[:-1],  # truncated
    PLAIN.pack([body(), SIG, 1]),
    PLAIN.pack([body(), "sig"]),
    PLAIN.pack([[1], SIG]),
    PLAIN.pack({"body": body()}),
    PLAIN.pack([body(nonce=-1), SIG]),  # decodes: the tx checks refuse it later
    PLAIN.pack([{b"chain_id": "c"}, SIG]),  # a bin key
    PLAIN.pack([{1: "c"}, SIG]),  # an int key
    PLAIN.pack([body(payload={"x": msgpack.ExtType(1, b"")}), SIG]),
    b"\x92\x81\xa1a\xcd\x00\x01" + PLAIN.pack(SIG),  # a long form of 1
    b"\x92\x82\xa1a\x01\xa1a\x02" + PLAIN.pack(SIG),  # a duplicate key
    b"\x92\x81\xa2\xff\xfe\x01" + PLAIN.pack(SIG),  # a key that is not UTF-8
    b"",
    b"\xc1",
]


@pytest.mark.parametrize("raw", valid_txs())
def test_valid_txs_decode_to_what_codec_unpack_gives(raw):
    assert outcome(unpack_tx, raw) == outcome(strict, raw)
    assert outcome(unpack_tx, raw)[0] == "value"


@pytest.mark.parametrize("raw", REFUSED_OR_ODD)
def test_second_spellings_and_refused_values_get_codec_unpacks_answer(raw):
    assert outcome(unpack_tx, raw) == outcome(strict, raw)


def test_every_odd_case_above_that_codec_unpack_refuses_is_refused_here_too():
    refused = [raw for raw in REFUSED_OR_ODD if outcome(strict, raw)[0] == "refused"]
    assert len(refused) == 16  # the list holds refusals, not only odd values that decode
    assert all(outcome(unpack_tx, raw)[0] == "refused" for raw in refused)


def mutated(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with one to three bytes overwritten, inserted or deleted, or cut short."""
    raw = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 3)):
        where = rng.randrange(len(raw))
        action = rng.random()
        if action < 0.5:
            raw[where] = rng.randrange(256)
        elif action < 0.7:
            raw.insert(where, rng.randrange(256))
        elif action < 0.9:
            del raw[where]
        else:
            del raw[where:]
            break
    return bytes(raw)


def test_random_mutations_of_valid_txs_get_codec_unpacks_answer():
    rng = random.Random(20261205)
    seeds = valid_txs()
    checked = accepted = 0
    for _ in range(20_000):
        data = mutated(rng, seeds)
        got = outcome(unpack_tx, data)
        assert got == outcome(strict, data), data.hex()
        checked += 1
        accepted += got[0] == "value"
    assert checked == 20_000 and 0 < accepted < checked  # both sides of the decision were reached
