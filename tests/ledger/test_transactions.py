"""Transaction envelope: encoding, ids, signatures and stateless checks."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain import codec
from lendchain.bounded import BoundedCache, ByteBoundedCache
from lendchain.ledger import transactions as transactions_module
from lendchain.ledger.transactions import (
    MAX_TX_SIZE,
    TX_TAG,
    Transaction,
    TxRejected,
    build_transaction,
    check_stateless,
    decode_transaction,
    verify_signature,
    verify_signatures,
)
from tests.ledger.chain import CHAIN_ID, seeded_key

KEY = seeded_key(7)
APPLY = {"amount": 500_00, "currency": "EUR", "term_months": 24, "purpose": "bike"}


def tx(payload=None, kind="loan.apply", chain_id=CHAIN_ID, nonce=0, key=KEY) -> Transaction:
    return build_transaction(key, chain_id, kind, nonce, payload or APPLY, 1)


def code_of(fn, *args, **kwargs) -> TxRejected:
    with pytest.raises(TxRejected) as info:
        fn(*args, **kwargs)
    return info.value


def test_round_trip_keeps_id_and_signature():
    original = tx()
    decoded = decode_transaction(original.encode())
    assert decoded == original
    assert decoded.id == original.id == codec.sha256(original.encode())
    assert verify_signature(decoded)
    check_stateless(decoded, CHAIN_ID)


@pytest.mark.parametrize("chain_id", [CHAIN_ID, "another-chain", CHAIN_ID, "x" * 40])
def test_signing_bytes_sliced_from_wire_equal_codec_signing_bytes(chain_id):
    t = tx(chain_id=chain_id)
    assert t.signing_bytes() == codec.signing_bytes(TX_TAG, chain_id, t.body())


def test_the_signing_prefix_memory_is_bounded_and_right_after_evictions():
    chains = [f"chain-{i}" for i in range(40)]
    for chain_id in [*chains, *chains[:3]]:  # the first ones again, long evicted
        t = tx(chain_id=chain_id)
        assert t.signing_bytes() == codec.signing_bytes(TX_TAG, chain_id, t.body())
    info = transactions_module._signing_prefix.cache_info()
    assert info.maxsize == 16 and info.currsize <= 16


@given(
    amount=st.integers(1, 10**15),
    term=st.integers(1, 480),
    purpose=st.text(min_size=1, max_size=140),
    nonce=st.integers(0, 2**63 - 1),
)
def test_round_trip_property(amount, term, purpose, nonce):
    t = tx({"amount": amount, "currency": "USD", "term_months": term, "purpose": purpose}, nonce=nonce)
    decoded = decode_transaction(t.encode())
    assert decoded == t and decoded.id == t.id
    assert verify_signature(decoded)


def test_signature_for_another_chain_does_not_verify():
    other = tx(chain_id="another-chain")
    # Same body, but claims this chain: the signature was made for the other one.
    forged = Transaction(
        CHAIN_ID, other.kind, other.sender, other.nonce, other.created_ms, other.payload, other.signature
    )
    assert not verify_signature(forged)
    assert code_of(check_stateless, forged, CHAIN_ID).code == "bad_signature"


def test_signature_over_tampered_payload_does_not_verify():
    t = tx()
    tampered = Transaction(
        t.chain_id, t.kind, t.sender, t.nonce, t.created_ms, {**t.payload, "amount": 1}, t.signature
    )
    assert not verify_signature(tampered)
    assert verify_signatures([t, tampered, t, tampered, t], workers=2) == [True, False, True, False, True]


def test_signature_by_another_key_for_this_sender_is_refused():
    t = tx()
    mallory = seeded_key(8)
    stolen = Transaction(
        t.chain_id,
        t.kind,
        t.sender,
        t.nonce,
        t.created_ms,
        t.payload,
        mallory.sign(TX_TAG, CHAIN_ID, t.body()),
    )
    assert not verify_signature(stolen)


def test_wrong_chain_is_refused_before_the_signature():
    error = code_of(check_stateless, tx(chain_id="other"), CHAIN_ID)
    assert error.code == "wrong_chain" and "chain_id" in error.message


def test_unknown_kind():
    error = code_of(check_stateless, tx(kind="loan.steal"), CHAIN_ID)
    assert error.code == "unknown_kind" and "loan.steal" in error.message


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**APPLY, "amount": 0}, "amount"),
        ({**APPLY, "amount": True}, "amount"),
        ({**APPLY, "amount": "100"}, "amount"),
        ({**APPLY, "currency": "euro"}, "currency"),
        ({**APPLY, "term_months": 0}, "term_months"),
        ({**APPLY, "purpose": ""}, "purpose"),
        ({k: v for k, v in APPLY.items() if k != "purpose"}, "purpose"),
        ({**APPLY, "colour": "red"}, "colour"),
    ],
)
def test_bad_payload_names_the_field(payload, field):
    error = code_of(check_stateless, tx(payload), CHAIN_ID)
    assert error.code == "bad_payload"
    assert repr(field) in error.message


def test_payload_must_be_a_map_for_the_kind():
    t = tx({"loan_id": "ab" * 32})
    error = code_of(check_stateless, t, CHAIN_ID)
    assert error.code == "bad_payload" and "'loan_id'" in error.message


def test_sender_must_be_a_did_key():
    t = tx()
    bad = Transaction(
        t.chain_id, t.kind, "did:web:bank.example", t.nonce, t.created_ms, t.payload, t.signature
    )
    error = code_of(check_stateless, bad, CHAIN_ID)
    assert error.code == "malformed" and "'sender'" in error.message


def test_a_sender_spelt_with_trailing_whitespace_is_refused_even_when_signed():
    """One key, one sender: a did:key with a space after it is not a second spelling of it."""
    sender = KEY.did + " "
    body = {"chain_id": CHAIN_ID, "created_ms": 1, "kind": "loan.apply", "nonce": 0, "payload": APPLY}
    signature = KEY.sign(TX_TAG, CHAIN_ID, {**body, "sender": sender})
    spaced = Transaction(CHAIN_ID, "loan.apply", sender, 0, 1, APPLY, signature)
    error = code_of(check_stateless, spaced, CHAIN_ID)
    assert error.code == "malformed" and "'sender'" in error.message


def test_oversized_transaction_is_refused():
    raw = b"\x00" * (MAX_TX_SIZE + 1)
    assert code_of(decode_transaction, raw).code == "too_large"
    big = tx({**APPLY, "purpose": "x" * (MAX_TX_SIZE)})
    assert code_of(check_stateless, big, CHAIN_ID).code == "too_large"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"\xc1", "canonical"),
        (codec.pack([1, 2, 3]), "[body, signature]"),
        (codec.pack([{}, b"\x00" * 64]), "field"),
        (codec.pack(["body", b"\x00" * 64]), "map"),
        (codec.pack([{}, b"short"]), "'signature'"),
    ],
)
def test_malformed_wire_bytes(raw, needle):
    error = code_of(decode_transaction, raw)
    assert error.code == "malformed" and needle in error.message


def test_wrong_field_type_and_negative_nonce():
    body = tx().body()
    sig = bytes(64)
    error = code_of(decode_transaction, codec.pack([{**body, "nonce": "1"}, sig]))
    assert error.code == "malformed" and "'nonce'" in error.message
    error = code_of(decode_transaction, codec.pack([{**body, "nonce": -1}, sig]))
    assert error.code == "malformed" and "negative" in error.message


def test_a_decoded_tx_holds_what_its_constructor_would_and_its_id():
    # Decoding fills the instance's dict at once rather than through the frozen __init__:
    # a field added to Transaction must be filled there too.
    original = tx()
    decoded = transactions_module._decode_transaction(original.encode())
    built = Transaction(*(getattr(original, f.name) for f in dataclasses.fields(Transaction)))
    assert vars(decoded) == {**vars(built), "id": codec.sha256(original.encode())}
    assert [f.name for f in dataclasses.fields(Transaction)][-1] == "_encoded"
    assert decoded == original and hash(decoded.id) == hash(original.id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.nonce = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("chain_id", 1, "field 'chain_id' must be str"),
        ("created_ms", True, "field 'created_ms' must be int"),
        ("created_ms", "1", "field 'created_ms' must be int"),
        ("kind", b"loan.apply", "field 'kind' must be str"),
        ("nonce", False, "field 'nonce' must be int"),
        ("payload", [], "field 'payload' must be dict"),
        ("sender", None, "field 'sender' must be str"),
    ],
)
def test_a_body_field_of_the_wrong_type_is_named(field, value, message):
    error = code_of(decode_transaction, codec.pack([{**tx().body(), field: value}, bytes(64)]))
    assert (error.code, error.message) == ("malformed", message)


def test_non_canonical_encoding_is_refused():
    raw = tx().encode()
    # Re-encode the nonce 0 as a uint8 (0xcc 0x00) instead of a positive fixint.
    longer = raw.replace(codec.pack("nonce") + b"\x00", codec.pack("nonce") + b"\xcc\x00", 1)
    assert longer != raw
    assert code_of(decode_transaction, longer).code == "malformed"


def test_decoding_the_same_bytes_again_gives_the_same_transaction_from_the_cache(monkeypatch):
    from lendchain.ledger import transactions

    raw = tx(nonce=41).encode()
    first = decode_transaction(raw)
    assert decode_transaction(bytearray(raw)) is first  # any bytes-like spelling of the same bytes
    assert decode_transaction(tx(nonce=42).encode()) is not first
    # Refusals are never cached: the same bad bytes are refused every time.
    bad = raw[:-1]
    assert code_of(decode_transaction, bad).code == code_of(decode_transaction, bad).code == "malformed"
    # The cache is bounded: the oldest entry goes first.
    monkeypatch.setattr(transactions, "_decoded", ByteBoundedCache(3, 1 << 20))
    raws = [tx(nonce=n).encode() for n in range(4)]
    for r in raws:
        check_stateless(decode_transaction(r), CHAIN_ID, check_signature=False)
    assert list(transactions._decoded) == raws[1:]


def test_only_well_formed_txs_are_kept_decoded_so_a_refused_payload_cannot_fill_memory(monkeypatch):
    """60 KB of empty arrays decodes to ~3.9 MB: such txs are refused and forgotten."""
    from lendchain.ledger import transactions

    monkeypatch.setattr(transactions, "_decoded", ByteBoundedCache(16, 1 << 20))
    bloated = tx({**APPLY, "purpose": [[] for _ in range(60_000)]}, nonce=43)
    raw = bloated.encode()
    assert len(raw) < transactions.MAX_TX_SIZE
    decoded = decode_transaction(raw)
    assert code_of(check_stateless, decoded, CHAIN_ID).code == "bad_payload"
    assert len(transactions._decoded) == 0
    good = decode_transaction(tx(nonce=44).encode())
    assert len(transactions._decoded) == 0  # decoding alone keeps nothing
    check_stateless(good, CHAIN_ID)
    assert list(transactions._decoded) == [good.encode()]
    # The bytes kept are bounded too: a well-formed tx larger than the budget is not kept.
    monkeypatch.setattr(transactions, "_decoded", ByteBoundedCache(16, len(good.encode()) - 1))
    transactions._well_formed.clear()
    check_stateless(good, CHAIN_ID)
    assert len(transactions._decoded) == 0


def test_a_tx_still_held_is_never_decoded_twice_however_long_ago_the_cache_forgot_it(monkeypatch):
    """The mempool holds txs longer than the bounded cache remembers; blocks carry them later."""
    from lendchain.ledger import transactions

    decodes = []
    real_decode = transactions._decode_transaction
    monkeypatch.setattr(
        transactions, "_decode_transaction", lambda raw: decodes.append(raw) or real_decode(raw)
    )
    monkeypatch.setattr(transactions, "_decoded", ByteBoundedCache(2, 1 << 20))
    raws = [tx(nonce=n).encode() for n in range(70, 75)]
    held = decode_transaction(raws[0])
    for r in raws:
        check_stateless(decode_transaction(r), CHAIN_ID, check_signature=False)
    assert raws[0] not in transactions._decoded
    assert decode_transaction(raws[0]) is held
    assert decodes == raws
    # Once nothing holds it, forgotten means decoded again (the same value).
    gone_id = decode_transaction(raws[1]).id
    decodes.clear()
    assert decode_transaction(raws[1]).id == gone_id and decodes == [raws[1]]


def test_the_held_txs_forget_a_tx_when_it_dies_and_never_a_newer_one(monkeypatch):
    """``_alive`` holds weak references only: its size follows what the node holds, no more."""
    monkeypatch.setattr(transactions_module, "_decoded", ByteBoundedCache(1, 1 << 20))
    raws = [tx(nonce=n).encode() for n in range(80, 84)]
    held = [decode_transaction(r) for r in raws]
    assert all(transactions_module._held(r) is t for r, t in zip(raws, held, strict=True))
    del held[1:]
    assert transactions_module._held(raws[0]) is held[0]
    assert not any(r in transactions_module._alive for r in raws[1:])  # dropped as each died
    # A dead entry replaced by a newer tx's: the old reference's callback leaves the new one.
    old = transactions_module._alive[raws[0]]
    newer = Transaction(*(getattr(held[0], f.name) for f in dataclasses.fields(Transaction)))
    transactions_module._hold(raws[0], newer)
    transactions_module._forget(old)
    assert transactions_module._held(raws[0]) is newer
    del held[0], newer
    assert raws[0] not in transactions_module._alive


def test_a_built_tx_is_found_by_its_bytes_once_checked_and_a_bad_did_is_still_refused():
    built = tx(nonce=90)
    raw = built.encode()
    assert transactions_module._held(raw) is None
    check_stateless(built, CHAIN_ID, check_signature=False)
    assert decode_transaction(raw) is built
    bad = dataclasses.replace(tx(nonce=91), sender="did:key:z0OIl", _encoded=b"")
    error = code_of(check_stateless, bad, CHAIN_ID)
    assert (error.code, error.message) == (
        "malformed",
        "field 'sender' is not an Ed25519 did:key ('did:key:z0OIl' is not valid base58btc)",
    )
    assert transactions_module._held(bad.encode()) is None  # a refused tx is not held


def test_a_well_formed_tx_is_checked_once_per_chain_and_refusals_are_never_remembered(monkeypatch):
    from lendchain.ledger import transactions

    checked = []
    real_check = transactions.check_payload
    monkeypatch.setattr(
        transactions, "check_payload", lambda *args: checked.append(args) or real_check(*args)
    )
    monkeypatch.setattr(transactions, "_well_formed", BoundedCache(transactions.WELL_FORMED_CACHE_SIZE))
    good = tx(nonce=51)
    check_stateless(good, CHAIN_ID, check_signature=False)
    check_stateless(decode_transaction(good.encode()), CHAIN_ID)  # same id, other object: remembered
    assert len(checked) == 1
    # The memory is per chain: the same tx is still refused for another chain.
    assert code_of(check_stateless, good, "other-chain").code == "wrong_chain"
    # The signature is checked whenever it is asked for, remembered shape or not.
    forged = dataclasses.replace(good, signature=bytes(64), _encoded=b"")
    check_stateless(forged, CHAIN_ID, check_signature=False)
    assert code_of(check_stateless, forged, CHAIN_ID).code == "bad_signature"
    bad = tx({**APPLY, "amount": 0}, nonce=52)
    assert code_of(check_stateless, bad, CHAIN_ID).code == code_of(check_stateless, bad, CHAIN_ID).code
    assert bad.id not in transactions._well_formed
    # Bounded: the oldest entry goes first.
    monkeypatch.setattr(transactions, "_well_formed", BoundedCache(2))
    fresh = [tx(nonce=n) for n in range(60, 63)]
    for t in fresh:
        check_stateless(t, CHAIN_ID, check_signature=False)
    assert list(transactions._well_formed)[-2:] == [fresh[1].id, fresh[2].id]
    assert len(transactions._well_formed) == 2
