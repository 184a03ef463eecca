"""The signed transaction envelope and its stateless checks.

Wire form: the canonical msgpack array ``[body, signature]`` where ``body`` is
the map ``{chain_id, created_ms, kind, nonce, payload, sender}`` and
``signature`` is the sender's 64-byte Ed25519 signature of
``codec.signing_bytes('lendchain/tx/1', chain_id, body)``. The tx id is the
sha256 of the whole wire form, so it commits to the signature as well.

A decoded transaction keeps its wire bytes: nothing is encoded twice, and the
signed bytes are sliced out of the wire form rather than packed again (a
msgpack array is its header followed by its elements, so
``pack([tag, chain_id, body])`` is ``0x93 + pack(tag) + pack(chain_id) +
body_bytes``).

Checks are split by cost: ``check_stateless(..., check_signature=False)`` is
cheap (size, encoding, chain id, kind, payload schema, sender);
``verify_signature`` is the Ed25519 check, which the node runs once per tx
and remembers by tx id.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import ormsgpack

from lendchain import codec
from lendchain.bounded import BoundedCache, ByteBoundedCache
from lendchain.crypto import DidError, SigningKey, public_key_from_did, verify_raw
from lendchain.lazy import lazy_attribute
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.kinds import lookup_kind
from lendchain.ledger.schema import check_payload

TX_TAG = "lendchain/tx/1"
MAX_TX_SIZE = 64 * 1024
_SIGNATURE_SIZE = 64
# msgpack bin8 header (0xc4, length 64) + 64 signature bytes ends every wire form.
_SIGNATURE_TAIL = 2 + _SIGNATURE_SIZE
_BODY_FIELDS = {
    "chain_id": str,
    "created_ms": int,
    "kind": str,
    "nonce": int,
    "payload": dict,
    "sender": str,
}
_BODY_NAMES = tuple(_BODY_FIELDS)
_BODY_TYPES = tuple(_BODY_FIELDS.values())
_TAG_PREFIX = b"\x93" + codec.pack(TX_TAG)


@dataclass(frozen=True)
class Transaction:
    chain_id: str
    kind: str
    sender: str
    nonce: int
    created_ms: int
    payload: dict[str, Any]
    signature: bytes
    _encoded: bytes = field(default=b"", repr=False, compare=False)

    def body(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "created_ms": self.created_ms,
            "kind": self.kind,
            "nonce": self.nonce,
            "payload": self.payload,
            "sender": self.sender,
        }

    def encode(self) -> bytes:
        """The canonical wire form (cached: the bytes this tx was decoded from or built as)."""
        if not self._encoded:
            object.__setattr__(self, "_encoded", codec.pack([self.body(), self.signature]))
        return self._encoded

    @lazy_attribute
    def id(self) -> bytes:
        """The sha256 of the wire form, hashed on the first read and kept: a node reads a tx's id
        about ten times, and ``lazy_attribute`` is ``cached_property`` without its lock."""
        return codec.sha256(self.encode())

    def signing_bytes(self) -> bytes:
        """Exactly ``codec.signing_bytes(TX_TAG, chain_id, body)``, sliced from the wire form."""
        return _signing_prefix(self.chain_id) + (self._encoded or self.encode())[1:-_SIGNATURE_TAIL]


@lru_cache(maxsize=16)
def _signing_prefix(chain_id: str) -> bytes:
    """What the signed bytes of a tx for ``chain_id`` start with: packed once per chain, not per tx."""
    return _TAG_PREFIX + codec.pack(chain_id)


def build_transaction(
    key: SigningKey,
    chain_id: str,
    kind: str,
    nonce: int,
    payload: dict[str, Any],
    created_ms: int,
) -> Transaction:
    """Sign a new transaction from ``key``'s did:key."""
    body = {
        "chain_id": chain_id,
        "created_ms": created_ms,
        "kind": kind,
        "nonce": nonce,
        "payload": payload,
        "sender": key.did,
    }
    signature = key.sign(TX_TAG, chain_id, body)
    return Transaction(chain_id, kind, key.did, nonce, created_ms, payload, signature)


# A node meets each tx many times (API or gossip, proposal, validation, commit,
# queries), always as the same bytes: decoded txs are kept by their bytes.
# Transactions are immutable, so sharing one object is safe; the bound keeps
# a few seconds of traffic at thousands of tx/s (a loan tx is ~300 bytes).
# A tx is kept once ``check_stateless`` finds it well-formed, not when it is
# decoded: a payload the schemas refuse can decode to ~65 times its size (60 KB
# of empty arrays: 3.9 MB), and a client could send thousands. A well-formed
# payload is flat, so its decoded size follows its bytes, which the byte bound
# caps (documents carry up to 48 KiB each).
DECODE_CACHE_SIZE = 16384
DECODE_CACHE_BYTES = 16 * 1024 * 1024
_decoded: ByteBoundedCache[Transaction] = ByteBoundedCache(DECODE_CACHE_SIZE, DECODE_CACHE_BYTES)
# Every decoded tx that something still holds (the node's mempool holds up to 100,000, far
# more than the bounded cache), by its bytes: a block carrying a tx that waited in the mempool
# longer than the cache remembers gets the mempool's object back, not a second decode.
# A dict of ``_HeldTx``, not a ``WeakValueDictionary``: that one's miss raises and catches a
# KeyError and its entries are built by Python code (``KeyedRef``), which cost each new tx
# 3,500 instructions more in ``benchmarks/intake_bench.py`` (valgrind, RESULTS.md).
_alive: dict[bytes, _HeldTx] = {}


class _HeldTx(weakref.ref):
    """A weak reference to a decoded tx that knows its bytes: its entry in ``_alive``."""

    __slots__ = ("raw",)
    raw: bytes


def _hold(raw: bytes, tx: Transaction) -> None:
    held = _HeldTx(tx, _forget)
    held.raw = raw
    _alive[raw] = held


def _forget(held: _HeldTx, alive: dict[bytes, _HeldTx] = _alive) -> None:
    """The tx died: drop its entry, unless a newer tx holds its bytes (at exit too: the default)."""
    if alive.get(held.raw) is held:
        alive.pop(held.raw, None)


def _held(raw: bytes) -> Transaction | None:
    held = _alive.get(raw)
    return None if held is None else held()


def decode_transaction(raw: bytes) -> Transaction:
    """Decode wire bytes, refusing oversize, malformed or non-canonical input."""
    raw = bytes(raw)
    tx = _decoded.get(raw)
    if tx is None:
        held = _alive.get(raw)  # ``_held(raw)``, without a Python call: this runs for every tx
        tx = None if held is None else held()
        if tx is None:
            tx = _decode_transaction(raw)
            held = _alive[raw] = _HeldTx(tx, _forget)  # ``_hold(raw, tx)``, without its Python call
            held.raw = raw
    return tx


# What a tx's body and payload hold: leaves only (the payload schemas have no containers).
_LEAVES = frozenset({str, bytes, int, bool, type(None)})
_LEAVES_OR_MAP = _LEAVES | {dict}


def unpack_tx(raw: bytes) -> Any:
    """``codec.unpack(raw, max_size=MAX_TX_SIZE)``, at native speed for a tx's usual shape.

    ``[body, signature]`` with a body of leaves and one map (the payload) of
    leaves is accepted when ormsgpack's sorted re-encoding gives back ``raw``
    exactly: that refuses the same second spellings (unsorted or duplicate
    keys, long forms, trailing bytes) as ``codec.unpack``, and the shape
    leaves no room for a float or deep nesting. Anything else, valid or not,
    goes to ``codec.unpack``, so it is refused with the same message as ever.
    """
    try:
        value = ormsgpack.unpackb(raw)
    except ValueError:  # malformed, a non-str key, an ext type: codec.unpack says which
        return codec.unpack(raw, max_size=MAX_TX_SIZE)
    if type(value) is list and len(value) == 2 and type(value[0]) is dict and type(value[1]) is bytes:
        body = value[0]
        types = list(map(type, body.values()))
        payload = body.get("payload")
        if (
            type(payload) is dict
            and types.count(dict) == 1
            and _LEAVES_OR_MAP.issuperset(types)
            and _LEAVES.issuperset(map(type, payload.values()))
            and ormsgpack.packb(value, option=ormsgpack.OPT_SORT_KEYS) == raw
        ):
            return value
    return codec.unpack(raw, max_size=MAX_TX_SIZE)


def _decode_transaction(raw: bytes) -> Transaction:
    if len(raw) > MAX_TX_SIZE:
        raise TxRejected("too_large", f"transaction is {len(raw)} bytes, more than {MAX_TX_SIZE}")
    try:
        value = ormsgpack.unpackb(raw)
    except ValueError:
        value = None
    body = signature = None
    if type(value) is list and len(value) == 2:
        body, signature = value
    # The usual tx passes every check at once: the six fields' exact types in their sorted
    # order, a payload of leaves, a 64-byte signature, a nonce of at least 0, and bytes that
    # ormsgpack's sorted re-encoding gives back. ``unpack_tx`` and ``_body_and_signature``
    # accept exactly such a tx too, along a way that walks the body twice; anything else goes
    # that way, which refuses it and names what is wrong.
    if not (
        type(body) is dict
        and tuple(map(type, body.values())) == _BODY_TYPES
        and tuple(body) == _BODY_NAMES
        and type(signature) is bytes
        and len(signature) == _SIGNATURE_SIZE
        and body["nonce"] >= 0
        and _LEAVES.issuperset(map(type, body["payload"].values()))
        and ormsgpack.packb(value, option=ormsgpack.OPT_SORT_KEYS) == raw
    ):
        body, signature = _body_and_signature(raw)
    # What ``Transaction(...)`` builds, and its id: the frozen dataclass's ``__init__`` sets each
    # of eight fields through ``object.__setattr__`` (a quarter of a decode's time, timeit). A
    # decoded tx's id is always read, so it is hashed here.
    tx = object.__new__(Transaction)
    tx.__dict__.update(
        chain_id=body["chain_id"],
        kind=body["kind"],
        sender=body["sender"],
        nonce=body["nonce"],
        created_ms=body["created_ms"],
        payload=body["payload"],
        signature=signature,
        _encoded=raw,
        id=hashlib.sha256(raw).digest(),
    )
    return tx


def _body_and_signature(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """The body and signature of wire bytes of at most ``MAX_TX_SIZE``, checked one by one."""
    try:
        value = unpack_tx(raw)
    except codec.CodecError as e:
        raise TxRejected("malformed", f"transaction is not canonical msgpack: {e}") from None
    if not isinstance(value, list) or len(value) != 2:
        raise TxRejected("malformed", "transaction must be the array [body, signature]")
    body, signature = value
    if not isinstance(signature, bytes) or len(signature) != _SIGNATURE_SIZE:
        raise TxRejected("malformed", f"field 'signature' must be {_SIGNATURE_SIZE} bytes")
    if not isinstance(body, dict):
        raise TxRejected("malformed", "transaction body must be a map")
    if body.keys() != _BODY_FIELDS.keys():
        extra = sorted(set(body) ^ set(_BODY_FIELDS))
        raise TxRejected("malformed", f"transaction body has a missing or unknown field {extra[0]!r}")
    for name, expected in _BODY_FIELDS.items():
        if not isinstance(body[name], expected) or isinstance(body[name], bool):
            raise TxRejected("malformed", f"field {name!r} must be {expected.__name__}")
    if body["nonce"] < 0:
        raise TxRejected("malformed", f"field 'nonce' must not be negative, got {body['nonce']}")
    return body, signature


@lru_cache(maxsize=65536)
def sender_public_key(did: str) -> bytes:
    """The public key of a did:key (cached: base58 decoding costs more than hashing)."""
    return public_key_from_did(did)


def verify_signature(tx: Transaction) -> bool:
    """True when ``tx.signature`` is its sender's signature of its body for its chain."""
    try:
        public_key = sender_public_key(tx.sender)
    except DidError:
        return False
    return verify_raw(public_key, tx.signature, tx.signing_bytes())


def verify_signatures(txs: Sequence[Transaction], workers: int = 2) -> list[bool]:
    """``verify_signature`` for many txs, on ``workers`` threads (libsodium releases the GIL)."""
    if workers <= 1 or len(txs) < 2 * workers:
        return [verify_signature(tx) for tx in txs]
    # One slice per worker: ThreadPoolExecutor.map ignores chunksize, and a future per tx
    # costs more than the check itself.
    step = -(-len(txs) // workers)
    slices = [txs[start : start + step] for start in range(0, len(txs), step)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        checked = pool.map(lambda part: [verify_signature(tx) for tx in part], slices)
        return [good for part in checked for good in part]


# Ids of txs that passed the checks of ``check_stateless`` without the signature, with the
# chain id they passed for. Those checks depend only on the tx's bytes (which its id is the
# hash of) and the chain id, so a node checks each tx once: at admission, not again in every
# block that executes it. Only passes are kept; kinds are only ever added, so a pass stays one.
WELL_FORMED_CACHE_SIZE = 65536
_well_formed: BoundedCache[bytes, str] = BoundedCache(WELL_FORMED_CACHE_SIZE)


def check_stateless(tx: Transaction, chain_id: str, *, check_signature: bool = True) -> None:
    """Raise TxRejected unless ``tx`` is well-formed for ``chain_id`` (no state needed).

    Pass ``check_signature=False`` for a tx whose signature was already
    verified (the caller keeps the set of verified tx ids).
    """
    tx_id = tx.id
    if _well_formed.get(tx_id) != chain_id:
        # What is checked besides the signature, written out here: this runs once for every tx
        # a node takes in, and a call per step costs more than some of the steps.
        raw = tx._encoded or tx.encode()
        if len(raw) > MAX_TX_SIZE:
            raise TxRejected("too_large", f"transaction is {len(raw)} bytes, more than {MAX_TX_SIZE}")
        if tx.chain_id != chain_id:
            raise TxRejected(
                "wrong_chain", f"field 'chain_id' is {tx.chain_id!r}, this chain is {chain_id!r}"
            )
        kind = lookup_kind(tx.kind)
        if kind is None:
            raise TxRejected("unknown_kind", f"field 'kind' names unknown transaction kind {tx.kind!r}")
        try:
            sender_public_key(tx.sender)
        except DidError as e:
            raise TxRejected("malformed", f"field 'sender' is not an Ed25519 did:key ({e})") from None
        check_payload(tx.kind, kind.schema, tx.payload)
        _well_formed.put(tx_id, chain_id)
        _decoded.put(raw, tx)
        held = _alive.get(raw)  # ``_held(raw)``, without its Python call
        if held is None or held() is None:  # a tx built here, not decoded, is found by its bytes too
            _hold(raw, tx)
    if check_signature and not verify_signature(tx):
        raise TxRejected("bad_signature", f"field 'signature' is not {tx.sender}'s signature of this body")
