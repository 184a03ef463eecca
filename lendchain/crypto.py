"""Ed25519 keys (pynacl), key files, did:key identifiers and sealed boxes.

One 32-byte seed is a member's whole identity: its consensus signing key, its
libp2p PeerID and its did:key. Key files hold the seed, optionally encrypted
with a passphrase (argon2id + XSalsa20-Poly1305), and must not be readable by
group or others.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import base58
import nacl.bindings
import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.signing
import nacl.utils
from nacl.public import PrivateKey, PublicKey, SealedBox

from lendchain.codec import signing_bytes

SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
_ED25519_PUB_MULTICODEC = b"\xed\x01"
_DID_KEY_PREFIX = "did:key:z"
_BASE58_DIGITS = {char: value for value, char in enumerate(base58.BITCOIN_ALPHABET.decode("ascii"))}
_KEY_FILE_VERSION = 1


class CryptoError(ValueError):
    """A key, signature or ciphertext problem."""


class DidError(CryptoError):
    """A string that is not an Ed25519 did:key."""


class KeyFileError(CryptoError):
    """A key file that is missing, unreadable, too open, or undecryptable."""


class SigningKey:
    """An Ed25519 signing key held as its 32-byte seed."""

    __slots__ = ("_key", "seed", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise CryptoError(f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(seed)}")
        self.seed = bytes(seed)
        self._key = nacl.signing.SigningKey(self.seed)
        self.public_key = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(nacl.utils.random(SEED_SIZE))

    @property
    def did(self) -> str:
        return did_from_public_key(self.public_key)

    def sign_raw(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def sign(self, tag: str, chain_id: str, body: Any) -> bytes:
        """Sign ``body`` for one purpose (``tag``) on one chain."""
        return self.sign_raw(signing_bytes(tag, chain_id, body))

    def __repr__(self) -> str:  # never show the seed
        return f"SigningKey(public_key={self.public_key.hex()[:16]}…)"


def verify_raw(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def verify(public_key: bytes, signature: bytes, tag: str, chain_id: str, body: Any) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``body`` for this tag and chain."""
    return verify_raw(public_key, signature, signing_bytes(tag, chain_id, body))


# did:key ------------------------------------------------------------------


def did_from_public_key(public_key: bytes) -> str:
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise DidError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}")
    encoded = base58.b58encode(_ED25519_PUB_MULTICODEC + public_key).decode("ascii")
    return _DID_KEY_PREFIX + encoded


def public_key_from_did(did: str) -> bytes:
    """The Ed25519 public key inside a did:key, or DidError naming what is wrong."""
    if not isinstance(did, str) or not did.startswith(_DID_KEY_PREFIX):
        raise DidError(f"{did!r} is not a did:key (expected 'did:key:z…')")
    try:
        raw = _base58_decode(did[len(_DID_KEY_PREFIX) :])
    except KeyError:
        raise DidError(f"{did!r} is not valid base58btc") from None
    if raw[:2] != _ED25519_PUB_MULTICODEC:
        raise DidError(f"{did!r} is not an Ed25519 did:key (multicodec 0xed01)")
    if len(raw) != 2 + PUBLIC_KEY_SIZE:
        raise DidError(f"{did!r} holds {len(raw) - 2} key bytes, expected {PUBLIC_KEY_SIZE}")
    return raw[2:]


def _base58_decode(text: str) -> bytes:
    """base58btc ``text`` as bytes; KeyError on any other character, whitespace included.

    Not ``base58.b58decode``: that strips trailing whitespace, so one key had
    many did:key spellings (senders, parties), and it builds the bytes with a
    big-integer division per byte: 17 µs per did:key here, against 3 µs for
    this, once per new sender on every node (2.8 % of a node's Python time in
    the network benchmark's closed loop, where most borrowers are new).
    """
    value = 0
    for char in text:
        value = value * 58 + _BASE58_DIGITS[char]
    zeros = len(text) - len(text.lstrip("1"))  # each leading "1" is a zero byte
    return bytes(zeros) + value.to_bytes((value.bit_length() + 7) // 8, "big")


def is_did(value: object) -> bool:
    try:
        public_key_from_did(value)  # type: ignore[arg-type]
    except DidError:
        return False
    return True


# Sealed boxes -------------------------------------------------------------


def seal_to(ed25519_public_key: bytes, plaintext: bytes) -> bytes:
    """Encrypt so that only the holder of ``ed25519_public_key``'s seed can read it."""
    curve = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public_key)
    return SealedBox(PublicKey(curve)).encrypt(plaintext)


def open_sealed(key: SigningKey, ciphertext: bytes) -> bytes:
    secret = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(key.seed + key.public_key)
    try:
        return SealedBox(PrivateKey(secret)).decrypt(ciphertext)
    except nacl.exceptions.CryptoError:
        raise CryptoError("this sealed box is not addressed to this key, or was altered") from None


# Key files ----------------------------------------------------------------


def write_key_file(path: str | Path, key: SigningKey, passphrase: str | None = None) -> Path:
    """Create a new 0600 key file; refuses to overwrite an existing one."""
    path = Path(path)
    doc: dict[str, Any] = {
        "version": _KEY_FILE_VERSION,
        "type": "ed25519",
        "public_key": key.public_key.hex(),
        "did": key.did,
    }
    if passphrase:
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        ops = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
        mem = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
        box_key = nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit=ops, memlimit=mem
        )
        doc["encryption"] = {
            "kdf": "argon2id",
            "opslimit": ops,
            "memlimit": mem,
            "salt": salt.hex(),
        }
        doc["ciphertext"] = bytes(nacl.secret.SecretBox(box_key).encrypt(key.seed)).hex()
    else:
        doc["seed"] = key.seed.hex()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists; choose another path") from None
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return path


def key_file_is_encrypted(path: str | Path) -> bool:
    return "encryption" in _read_key_doc(Path(path))


def _read_key_doc(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist; create one with 'lendchain keys new'") from None
    except OSError as e:
        raise KeyFileError(f"key file {path} cannot be read: {e.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise KeyFileError(f"key file {path} is not a lendchain key file (invalid JSON)") from None
    if not isinstance(doc, dict) or doc.get("type") != "ed25519":
        raise KeyFileError(f"key file {path} is not a lendchain Ed25519 key file")
    return doc


def read_key_file(path: str | Path, passphrase: str | None = None, check_mode: bool = True) -> SigningKey:
    """Load a key file, refusing one that group or others can read."""
    path = Path(path)
    doc = _read_key_doc(path)
    if check_mode:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key file {path} is readable by group or others (mode {mode:04o}); run 'chmod 600 {path}'"
            )
    try:
        if "encryption" in doc:
            if not passphrase:
                raise KeyFileError(
                    f"key file {path} is encrypted and no passphrase was given; set passphrase_file "
                    "in the node config, pass --passphrase-file, or set LENDCHAIN_PASSPHRASE"
                )
            enc = doc["encryption"]
            box_key = nacl.pwhash.argon2id.kdf(
                nacl.secret.SecretBox.KEY_SIZE,
                passphrase.encode(),
                bytes.fromhex(enc["salt"]),
                opslimit=int(enc["opslimit"]),
                memlimit=int(enc["memlimit"]),
            )
            try:
                seed = nacl.secret.SecretBox(box_key).decrypt(bytes.fromhex(doc["ciphertext"]))
            except nacl.exceptions.CryptoError:
                raise KeyFileError(f"wrong passphrase for key file {path}") from None
        else:
            seed = bytes.fromhex(doc["seed"])
    except (KeyError, ValueError, TypeError) as e:
        if isinstance(e, KeyFileError):
            raise
        raise KeyFileError(f"key file {path} is damaged ({type(e).__name__}: {e})") from None
    key = SigningKey(seed)
    if doc.get("public_key") and doc["public_key"] != key.public_key.hex():
        raise KeyFileError(f"key file {path} is damaged: its seed does not match its public key")
    return key


def read_public_key_file(path: str | Path) -> bytes:
    """The public key recorded in a key file, without needing the passphrase."""
    doc = _read_key_doc(Path(path))
    try:
        return bytes.fromhex(doc["public_key"])
    except (KeyError, ValueError):
        raise KeyFileError(f"key file {path} has no valid public_key field") from None
