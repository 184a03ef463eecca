"""Strict decoding: ``codec.unpack`` accepts exactly the bytes ``codec.pack`` produces.

``unpack`` checks a decoded value in place and encodes it without sorting
copies; its definition is still "decode, then ``pack`` must give back the
input". These tests hold it to that definition: every kind of second
spelling is refused with the same error as before, and on arbitrary msgpack
(floats, bin keys, unsorted and duplicate keys, long forms, deep nesting) the
outcome equals the definition's, error message included.
"""

import struct

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain import codec


def defined_unpack(data: bytes):
    """What ``unpack`` must do: decode, then re-encoding with ``pack`` must give the input back."""
    if not data:
        raise codec.CodecError("empty input")
    try:
        value = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True, ext_hook=codec._refuse_ext
        )
    except codec.CodecError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise codec.CodecError(f"malformed msgpack ({type(e).__name__}: {e})") from None
    if codec.pack(value) != data:
        raise codec.CodecError("encoding is not canonical (unsorted or duplicate keys, or a long form)")
    return value


def outcome(decode, data: bytes):
    try:
        return ("value", decode(data))
    except codec.CodecError as e:
        return ("refused", str(e))


def nested_lists(depth: int, innermost: bytes) -> bytes:
    """``depth`` one-element arrays around ``innermost``, written by hand."""
    return b"\x91" * depth + innermost


def nested_maps(depth: int, innermost: bytes) -> bytes:
    return b"\x81\xa1k" * depth + innermost


PLAIN = msgpack.Packer(use_bin_type=True)  # writes maps in insertion order, floats, bin keys


@pytest.mark.parametrize(
    "raw, reason",
    [
        # unsorted and duplicate keys, at the top and inside containers
        (PLAIN.pack({"b": 1, "a": 2}), "not canonical"),
        (PLAIN.pack([1, {"b": 1, "a": 2}]), "not canonical"),
        (PLAIN.pack({"a": {"y": None, "x": b""}}), "not canonical"),
        (PLAIN.pack({"a": 1, "b": [{"d": 1, "c": 2}]}), "not canonical"),
        (PLAIN.pack({"": 1, "a": 2, "B": 3}), "not canonical"),  # "B" < "a" in code point order
        (b"\x82\xa1a\x01\xa1a\x02", "not canonical"),  # {"a": 1, "a": 2}
        (b"\x82\xa1a\x01\xa1a\x01", "not canonical"),  # the same pair twice
        (b"\x83\xa1a\x01\xa1b\x02\xa1a\x03", "not canonical"),  # a duplicate after a larger key
        (b"\x91\x82\xa1a\xc0\xa1a\xc0", "not canonical"),  # a duplicate inside an array
        # keys that are not str
        (PLAIN.pack({b"k": 1}), "is not a str"),
        (PLAIN.pack({"a": {b"k": 1}}), "is not a str"),
        (PLAIN.pack({"a": 1, b"b": 2}), "is not a str"),
        (msgpack.packb({1: 2}, strict_types=False), "malformed"),
        (b"\x81\xc0\x01", "malformed"),  # nil key
        # floats and ext types, also nested
        (PLAIN.pack(1.5), "float"),
        (b"\xca" + struct.pack(">f", 1.5), "float"),
        (PLAIN.pack({"a": [1, 2.0]}), "float"),
        (PLAIN.pack([{"a": float("nan")}]), "float"),
        (PLAIN.pack([b"tx"] * 20 + [0.5]), "float"),  # a long list, as a block's
        (PLAIN.pack([b"tx"] * 20 + [{"b": 1, "a": 2}]), "not canonical"),
        (PLAIN.pack({f"k{n:02}": n for n in range(20)} | {"a": 1.0}), "float"),
        (PLAIN.pack(msgpack.ExtType(1, b"x")), "ext type"),
        (PLAIN.pack([msgpack.ExtType(5, b"")]), "ext type"),
        (b"\xd6\xff\x00\x00\x00\x01", "Timestamp cannot be encoded"),  # ext -1 decodes as a Timestamp
        (b"\x92\x01\xd6\xff\x00\x00\x00\x01", "Timestamp cannot be encoded"),
        # integers in a longer form than needed
        (b"\xcc\x05", "not canonical"),  # 5 as uint8
        (b"\xcd\x00\x05", "not canonical"),  # 5 as uint16
        (b"\xcf" + (200).to_bytes(8, "big"), "not canonical"),  # 200 as uint64
        (b"\xd0\x05", "not canonical"),  # 5 as int8
        (b"\xd1\xff\xff", "not canonical"),  # -1 as int16
        (b"\x91\xd2\xff\xff\xff\x80", "not canonical"),  # -128 as int32, in an array
        # lengths in a longer form than needed; str and bin kept apart
        (b"\xd9\x01a", "not canonical"),  # "a" as str8
        (b"\xda\x00\x01a", "not canonical"),  # "a" as str16
        (b"\xc5\x00\x01x", "not canonical"),  # b"x" as bin16
        (b"\xdc\x00\x01\x01", "not canonical"),  # [1] as array16
        (b"\xde\x00\x01\xa1a\x01", "not canonical"),  # {"a": 1} as map16
        (b"\x81\xd9\x01a\x01", "not canonical"),  # key "a" as str8
        (msgpack.packb(b"\xff\xfe", use_bin_type=False), "malformed"),  # bytes written as raw str
        # malformed or extra input
        (PLAIN.pack([1, 2]) + b"\x00", "malformed"),
        (PLAIN.pack({"a": 1})[:-1], "malformed"),
        (b"\xc1", "malformed"),
        (b"", "empty"),
    ],
)
def test_every_second_spelling_is_refused_as_before(raw, reason):
    with pytest.raises(codec.CodecError, match=reason):
        codec.unpack(raw)
    assert outcome(codec.unpack, raw) == outcome(defined_unpack, raw)


@pytest.mark.parametrize("nest", [nested_lists, nested_maps], ids=["arrays", "maps"])
def test_depth_limit_is_the_same_in_unpack_as_in_pack(nest):
    # MAX_DEPTH containers may hold a scalar; one more level, or anything in an innermost
    # container at the limit, is refused.
    assert codec.unpack(nest(codec.MAX_DEPTH, b"\x07")) is not None
    assert codec.unpack(nest(codec.MAX_DEPTH, b"\x90")) is not None
    assert codec.unpack(nest(codec.MAX_DEPTH, b"\x80")) is not None
    for too_deep in (
        nest(codec.MAX_DEPTH + 1, b"\x07"),
        nest(codec.MAX_DEPTH, b"\x91\xc0"),
        nest(200, b"\x90"),
    ):
        with pytest.raises(codec.CodecError, match="nested deeper"):
            codec.unpack(too_deep)


def test_oversized_input_is_refused_at_the_limit_and_not_below():
    encoded = codec.pack({"a": b"x" * 1000})
    assert codec.unpack(encoded, max_size=len(encoded)) == {"a": b"x" * 1000}
    with pytest.raises(codec.CodecError, match="more than the limit"):
        codec.unpack(encoded, max_size=len(encoded) - 1)


def test_decoded_maps_keep_their_sorted_order_and_values_their_types():
    value = codec.unpack(codec.pack({"b": [True, 1], "a": {"d": None, "c": b"x"}, "": "s"}))
    assert list(value) == ["", "a", "b"] and list(value["a"]) == ["c", "d"]
    assert type(value["b"][0]) is bool and type(value["b"][1]) is int


keys = st.text(max_size=6)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=16)
    | st.text(max_size=8)
)
canonical_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)


@given(canonical_values)
def test_unpack_of_pack_is_the_value(value):
    assert codec.unpack(codec.pack(value)) == value


@given(
    st.data(), st.dictionaries(keys, leaves, min_size=1, max_size=8), st.sampled_from(["top", "list", "map"])
)
def test_a_map_written_in_any_key_order_is_refused_unless_sorted(data, mapping, where):
    order = data.draw(st.permutations(sorted(mapping)), label="key order")
    shuffled = {key: mapping[key] for key in order}
    value = {"top": shuffled, "list": [0, shuffled], "map": {"inner": shuffled, "z": 1}}[where]
    raw = PLAIN.pack(value)
    if order == sorted(mapping):
        assert codec.unpack(raw) == value
    else:
        with pytest.raises(codec.CodecError, match="not canonical"):
            codec.unpack(raw)


# Anything plain msgpack can write: floats, timestamps, bin and int keys, maps in any order.
loose_leaves = (
    leaves | st.floats(allow_nan=False) | st.integers(0, 2**40).map(msgpack.Timestamp.from_unix_nano)
)
loose_values = st.recursive(
    loose_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.dictionaries(keys | st.binary(max_size=2) | st.integers(0, 3), children, max_size=2)
    ),
    max_leaves=20,
)


@given(loose_values)
def test_unpack_agrees_with_its_definition_on_any_msgpack_value(value):
    raw = PLAIN.pack(value)
    assert outcome(codec.unpack, raw) == outcome(defined_unpack, raw)


@given(canonical_values, st.data())
def test_unpack_agrees_with_its_definition_on_mutated_bytes(value, data):
    raw = bytearray(codec.pack(value))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        at = data.draw(st.integers(0, len(raw)), label="at")
        byte = data.draw(st.integers(0, 255), label="byte")
        action = data.draw(st.sampled_from(["set", "insert", "delete"]), label="action")
        if action == "insert" or at == len(raw):
            raw[at:at] = bytes([byte])
        elif action == "set":
            raw[at] = byte
        else:
            del raw[at]
    assert outcome(codec.unpack, bytes(raw)) == outcome(defined_unpack, bytes(raw))


INT_FORMS = [(0xCC, ">B"), (0xCD, ">H"), (0xCE, ">I"), (0xCF, ">Q"), (0xD0, ">b"), (0xD1, ">h"), (0xD2, ">i")]
INT_FORMS += [(0xD3, ">q")]


def int_spellings(n: int) -> list[bytes]:
    """Every msgpack spelling of the integer ``n``: fixint if it fits, and each fixed width it fits in."""
    spellings = [struct.pack(">b", n)] if -32 <= n <= 127 else []
    for marker, layout in INT_FORMS:
        try:
            spellings.append(bytes([marker]) + struct.pack(layout, n))
        except struct.error:
            pass  # does not fit this width
    return spellings


def length_spellings(value: str | bytes | list | dict) -> list[bytes]:
    """Every msgpack spelling of ``value``'s header, each followed by its canonical contents."""
    n = len(value)
    if isinstance(value, str):
        body = value.encode()
        n = len(body)  # a str's length is counted in UTF-8 bytes
        fixed, widths = 0xA0, [(0xD9, ">B"), (0xDA, ">H"), (0xDB, ">I")]
    elif isinstance(value, bytes):
        body, fixed, widths = value, None, [(0xC4, ">B"), (0xC5, ">H"), (0xC6, ">I")]
    elif isinstance(value, list):
        body = b"".join(codec.pack(item) for item in value)
        fixed, widths = 0x90, [(0xDC, ">H"), (0xDD, ">I")]
    else:
        body = b"".join(codec.pack(key) + codec.pack(value[key]) for key in sorted(value))
        fixed, widths = 0x80, [(0xDE, ">H"), (0xDF, ">I")]
    limit = 31 if isinstance(value, str) else 15
    headers = [bytes([fixed + n])] if fixed is not None and n <= limit else []
    headers += [
        bytes([marker]) + struct.pack(layout, n)
        for marker, layout in widths
        if n < 256 ** struct.calcsize(layout)
    ]
    return [header + body for header in headers]


@given(st.integers(min_value=-(2**63), max_value=2**64 - 1))
def test_an_integer_is_accepted_in_its_shortest_spelling_only(n):
    for raw in int_spellings(n):
        if raw == codec.pack(n):
            assert codec.unpack(raw) == n
        else:
            with pytest.raises(codec.CodecError, match="not canonical"):
                codec.unpack(raw)


@given(
    st.text(max_size=40)
    | st.binary(max_size=300)
    | st.lists(st.integers(0, 3), max_size=20)
    | st.dictionaries(st.text(max_size=3), st.none(), max_size=20)
)
def test_a_length_is_accepted_in_its_shortest_spelling_only(value):
    spellings = length_spellings(value)
    assert codec.pack(value) in spellings
    for raw in spellings:
        if raw == codec.pack(value):
            assert codec.unpack(raw) == value
        else:
            with pytest.raises(codec.CodecError, match="not canonical"):
                codec.unpack(raw)
