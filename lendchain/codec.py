"""Canonical msgpack, hashing and domain-separated signing bytes.

Every value that is hashed, signed, stored or sent is encoded here, so that
all nodes produce the same bytes for the same value:

- Only nil, bool, int (-2**63 .. 2**64-1), bytes, str, arrays and maps with
  str keys are allowed. Floats, ext types and non-str map keys are refused.
- Maps are written with their keys sorted (code point order, which equals
  UTF-8 byte order); integers in their shortest form (msgpack's own rule);
  str and bytes are kept apart (``use_bin_type=True``).
- Decoding is strict: the decoded value must be one ``pack`` accepts and its
  encoding must give back exactly the input. That refuses non-minimal
  integers and lengths, unsorted or duplicate map keys, floats and every
  other second spelling. A decoded value whose maps are already sorted needs
  none of ``pack``'s sorted copies: it is checked in place and encoded as it
  is (``unpack``), and only what that refuses goes through ``pack``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from typing import Any

import msgpack
import ormsgpack

MAX_DEPTH = 32
DEFAULT_MAX_SIZE = 1 << 20
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1


class CodecError(ValueError):
    """Bytes or a value that are not canonical lendchain msgpack."""


# Exact types msgpack encodes as they are. An exact int's range is left to msgpack, which
# refuses what is outside -2**63 .. 2**64-1 (the same range) with OverflowError.
_LEAF_TYPES = frozenset({str, bytes, bool, int, type(None)})
_STR_ONLY = frozenset({str})
_CONTAINER_TYPES = frozenset({list, dict})


def _canonical(value: Any, depth: int) -> Any:
    """What msgpack must be given for ``value``, or CodecError; ints are range-checked by ``pack``.

    The fast path covers what almost every value is made of: dicts with
    exact-str keys and lists, holding exact str, bytes, bool, int and None;
    a container of leaves only is checked at C speed, without a Python step
    per item. Everything else (tuples, subclasses, byte views, bad keys or
    values, the depth limit) goes to ``_canonical_checked``, which decides
    as it always has.
    """
    kind = type(value)
    if depth < MAX_DEPTH:
        if kind is list:
            if _LEAF_TYPES.issuperset(map(type, value)):
                return value
            inner = depth + 1
            return [item if type(item) in _LEAF_TYPES else _canonical(item, inner) for item in value]
        if kind is dict and _STR_ONLY.issuperset(map(type, value)):
            if _LEAF_TYPES.issuperset(map(type, value.values())):
                return dict(sorted(value.items()))
            inner = depth + 1
            return {
                key: item if type(item) in _LEAF_TYPES else _canonical(item, inner)
                for key, item in sorted(value.items())
            }
    return _canonical_checked(value, depth)


def _canonical_checked(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CodecError(f"value is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError(f"integer {value} is outside the 64-bit range")
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(item, depth + 1) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CodecError(f"map key {key!r} is not a str")
        return {key: _canonical(value[key], depth + 1) for key in sorted(value)}
    raise CodecError(f"type {type(value).__name__} cannot be encoded (no floats, no objects)")


def _find_out_of_range_int(value: Any) -> None:
    """Raise the CodecError naming the first integer of ``value`` outside the 64-bit range."""
    if isinstance(value, int) and not isinstance(value, bool) and not _INT_MIN <= value <= _INT_MAX:
        raise CodecError(f"integer {value} is outside the 64-bit range")
    if isinstance(value, (list, tuple)):
        for item in value:
            _find_out_of_range_int(item)
    elif isinstance(value, dict):
        for key in sorted(value):
            _find_out_of_range_int(value[key])


# Sorted keys; and what ormsgpack would encode on its own but pack refuses or encodes
# otherwise (dataclasses, datetimes, UUIDs, enums, subclasses of str, int, dict and list)
# goes to its ``default``, of which there is none: TypeError, then ``pack`` decides.
_TRUSTED_OPTIONS = (
    ormsgpack.OPT_SORT_KEYS
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_UUID
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
)
# Set for the test suite (tests/conftest.py, inherited by the node processes tests start):
# pack_trusted then also packs with pack and refuses a difference.
CHECK_TRUSTED_ENV = "LENDCHAIN_CHECK_TRUSTED_PACK"
_check_trusted = os.environ.get(CHECK_TRUSTED_ENV) == "1"

# One Packer per thread: msgpack.packb builds (and allocates a buffer for) a new one per call.
_packers = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's Packer (created on first use)."""
    try:
        return _packers.packer
    except AttributeError:
        _packers.packer = msgpack.Packer(use_bin_type=True)
        return _packers.packer


def pack(value: Any) -> bytes:
    """Encode ``value`` canonically."""
    canonical = _canonical(value, 0)
    try:
        return _packer().pack(canonical)
    except OverflowError:
        _find_out_of_range_int(canonical)
        raise  # msgpack refused an int that is in range: not expected, so not hidden


def pack_trusted(value: Any) -> bytes:
    """``pack(value)`` at native speed, for a value the ledger built itself.

    ormsgpack with sorted keys writes the bytes ``pack`` writes (ints in their
    shortest form, str and bin apart, maps sorted by code point) for every
    value ``pack`` accepts, in a seventh of the time; what it does not do is
    refuse a float or a value nested deeper than ``MAX_DEPTH``. So this is for
    what the ledger's handlers build from decoded state, checked txs and
    integer arithmetic (their source holds no float:
    ``tests/ledger/test_integer_only.py``), never for outside input. A value
    ormsgpack refuses goes to ``pack``, which names what is wrong.
    """
    try:
        encoded = ormsgpack.packb(value, option=_TRUSTED_OPTIONS)
    except TypeError:  # ormsgpack.MsgpackEncodeError: a non-str key, an int out of range, …
        return pack(value)
    if _check_trusted and encoded != pack(value):
        raise CodecError(f"pack_trusted and pack disagree on {value!r:.200}")
    return encoded


def unpack_trusted(data: bytes) -> Any:
    """Decode bytes this ledger wrote with ``pack`` (its own state), without ``unpack``'s checks.

    They were canonical when written, so re-encoding them to check would
    double the cost of every state read. Input from outside always goes
    through ``unpack``.
    """
    return ormsgpack.unpackb(data)


def pack_packed_list(items: list[bytes]) -> bytes:
    """``pack(values)`` for values already packed one by one (``items[i] == pack(values[i])``).

    A msgpack array is its header followed by its items' encodings, so this
    gives the same bytes without walking the values a second time.
    """
    packer = _packer()
    return packer.pack_array_header(len(items)) + b"".join(items)


def pack_pairs(first: Any, seconds: Iterable[int]) -> list[bytes]:
    """``[pack([first, n]) for n in seconds]``, for ints ``n`` from 0 to 2**64-1.

    The array header and ``first`` are packed once; each int by msgpack
    itself, whose shortest form is the one canonical form of an int.
    """
    packer = _packer()
    prefix = packer.pack_array_header(2) + pack(first)
    return [prefix + packed for packed in map(packer.pack, seconds)]


def _refuse_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"msgpack ext type {code} is not allowed")


def unpack(data: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Decode canonical bytes, refusing anything that is not exactly canonical."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise CodecError(f"encoded value is {len(data)} bytes, more than the limit of {max_size}")
    if not data:
        raise CodecError("empty input")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_refuse_ext,
        )
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise CodecError(f"malformed msgpack ({type(e).__name__}: {e})") from None
    # A value that _canonical would give back unchanged is written by a plain Packer exactly
    # as pack writes it, without pack's sorted copy of every map.
    kind = type(value)
    if kind in _LEAF_TYPES or (kind in _CONTAINER_TYPES and _is_plainly_canonical(value, 0)):
        if _packer().pack(value) == data:
            return value
    # Refused (an unsorted map, a value pack cannot encode or a long form): pack says which.
    if pack(value) != data:
        raise CodecError("encoding is not canonical (unsorted or duplicate keys, or a long form)")
    return value


def _is_plainly_canonical(container: list[Any] | dict[str, Any], depth: int) -> bool:
    """Whether ``_canonical`` would give back a decoded ``container`` (at ``depth``) unchanged.

    That is: every map's keys are str in strictly increasing code point order,
    every leaf is a str, bytes, bool, int or None (decoded ints are always in
    range) and nothing lies deeper than ``MAX_DEPTH``. A decoded dict cannot
    hold a duplicate key, but the input can: its re-encoding then has fewer
    entries than the input, so the byte comparison in ``unpack`` refuses it.
    """
    if type(container) is dict:
        keys = [*container]
        try:
            "".join(keys)  # refuses any key that is not a str (a bin key decodes as bytes)
        except TypeError:
            return False
        if keys != sorted(keys):
            return False
        items = container.values()
    else:
        items = container
    if depth >= MAX_DEPTH:
        return not items
    # A long run of leaves (a block's list of txs) is checked at C speed; for a few
    # items, as in a tx's maps, the loop below costs less than setting that up.
    if len(items) > 8 and _LEAF_TYPES.issuperset(map(type, items)):
        return True
    inner = depth + 1
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            if not _is_plainly_canonical(item, inner):
                return False
        elif kind not in _LEAF_TYPES:
            return False
    return True


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hash_value(value: Any) -> bytes:
    """sha256 of the canonical encoding of ``value``."""
    return hashlib.sha256(pack(value)).digest()


def signing_bytes(tag: str, chain_id: str, body: Any) -> bytes:
    """The bytes a signature covers: purpose tag, chain id and canonical body.

    A signature made for one purpose (tag) or one chain never verifies for
    another, because both are inside the signed bytes.
    """
    if not tag.startswith("lendchain/"):
        raise CodecError(f"signing tag {tag!r} must start with 'lendchain/'")
    return pack([tag, chain_id, body])
