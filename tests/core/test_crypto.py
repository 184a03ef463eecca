"""Keys, key files, did:key and sealed boxes."""

import os
import stat

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain import crypto
from lendchain.crypto import CryptoError, DidError, KeyFileError, SigningKey

FIXED_DID = SigningKey(bytes(32)).did


def test_did_key_round_trip_and_known_prefix():
    key = SigningKey(bytes(32))
    did = key.did
    # Ed25519 did:key identifiers always start with z6Mk (multicodec 0xed01 in base58btc).
    assert did.startswith("did:key:z6Mk")
    assert crypto.public_key_from_did(did) == key.public_key


@pytest.mark.parametrize(
    "did, message",
    [
        ("did:web:example", "not a did:key"),
        ("did:key:z0OIl", "not valid base58btc"),
        # One key, one spelling: what decodes to a key once whitespace is stripped is refused.
        (FIXED_DID + " ", "not valid base58btc"),
        (FIXED_DID + "\n", "not valid base58btc"),
        (" " + FIXED_DID[8:], "not a did:key"),
        ("did:key:z" + "1" * 10, "not an Ed25519"),
    ],
)
def test_bad_dids_are_refused_with_a_reason(did, message):
    with pytest.raises(DidError, match=message):
        crypto.public_key_from_did(did)


def test_key_file_is_created_0600_and_reloads(tmp_path):
    key = SigningKey.generate()
    path = crypto.write_key_file(tmp_path / "k.key", key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crypto.read_key_file(path).seed == key.seed
    assert crypto.read_public_key_file(path) == key.public_key


def test_existing_key_file_is_never_overwritten(tmp_path):
    path = crypto.write_key_file(tmp_path / "k.key", SigningKey.generate())
    with pytest.raises(KeyFileError, match="already exists"):
        crypto.write_key_file(path, SigningKey.generate())


def test_group_readable_key_file_is_refused_with_the_fix(tmp_path):
    path = crypto.write_key_file(tmp_path / "k.key", SigningKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        crypto.read_key_file(path)


def test_encrypted_key_file_needs_the_right_passphrase(tmp_path):
    key = SigningKey.generate()
    path = crypto.write_key_file(tmp_path / "k.key", key, passphrase="correct horse")
    assert key.seed.hex() not in path.read_text()
    assert crypto.key_file_is_encrypted(path)
    with pytest.raises(KeyFileError, match="is encrypted"):
        crypto.read_key_file(path)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        crypto.read_key_file(path, passphrase="battery staple")
    assert crypto.read_key_file(path, passphrase="correct horse").seed == key.seed


def test_damaged_key_file_is_named(tmp_path):
    path = tmp_path / "k.key"
    path.write_text("{not json")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="invalid JSON"):
        crypto.read_key_file(path)


def test_sealed_box_opens_only_for_its_addressee():
    alice, bob = SigningKey.generate(), SigningKey.generate()
    box = crypto.seal_to(alice.public_key, b"payslip.pdf contents")
    assert crypto.open_sealed(alice, box) == b"payslip.pdf contents"
    with pytest.raises(CryptoError, match="not addressed"):
        crypto.open_sealed(bob, box)


def test_repr_never_shows_the_seed():
    key = SigningKey(bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(key)


@given(st.binary(max_size=64))
def test_base58_decoding_agrees_with_the_base58_library_on_what_it_encodes(raw):
    assert crypto._base58_decode(base58.b58encode(raw).decode()) == raw
