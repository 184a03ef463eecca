"""Canonical msgpack: one encoding per value, strict decoding, domain-separated signing."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lendchain import codec
from lendchain.crypto import SigningKey, verify

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=64)
    | st.text(max_size=32)
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)


@given(values)
def test_round_trip_is_identity_and_canonical(value):
    encoded = codec.pack(value)
    assert codec.unpack(encoded) == value
    assert codec.pack(codec.unpack(encoded)) == encoded


@given(st.dictionaries(st.text(max_size=8), st.integers(0, 1000), min_size=2, max_size=8))
def test_map_key_order_does_not_change_the_encoding(mapping):
    reversed_map = dict(reversed(list(mapping.items())))
    assert codec.pack(mapping) == codec.pack(reversed_map)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (msgpack.packb({"b": 1, "a": 2}), "not canonical"),  # unsorted keys
        (b"\xcd\x00\x05", "not canonical"),  # 5 as uint16: a long form
        (msgpack.packb(1.5), "float"),
        (msgpack.packb(msgpack.ExtType(1, b"x")), "ext type"),
        (msgpack.packb({1: 2}, strict_types=False), "malformed"),  # non-str key
        (b"\x92\x01", "malformed"),  # truncated array
        (b"\xc1", "malformed"),  # reserved byte
        (b"", "empty"),
        (msgpack.packb(1) + b"\x00", "malformed"),  # trailing bytes
    ],
)
def test_non_canonical_or_malformed_input_is_refused(raw, reason):
    with pytest.raises(codec.CodecError, match=reason):
        codec.unpack(raw)


def test_oversized_input_is_refused_before_decoding():
    with pytest.raises(codec.CodecError, match="more than the limit"):
        codec.unpack(codec.pack(b"x" * 2000), max_size=1000)


def test_deep_nesting_is_refused():
    value = []
    for _ in range(codec.MAX_DEPTH + 2):
        value = [value]
    with pytest.raises(codec.CodecError, match="nested deeper"):
        codec.pack(value)


@pytest.mark.parametrize("bad", [1.0, object(), {1: "x"}, 2**64, -(2**63) - 1, {"a": {2}}])
def test_unencodable_values_are_refused(bad):
    with pytest.raises(codec.CodecError):
        codec.pack(bad)


def test_signature_is_bound_to_purpose_and_chain():
    key = SigningKey(bytes(range(32)))
    body = {"amount": 100}
    signature = key.sign("lendchain/tx/1", "chain-a", body)
    assert verify(key.public_key, signature, "lendchain/tx/1", "chain-a", body)
    assert not verify(key.public_key, signature, "lendchain/tx/1", "chain-b", body)
    assert not verify(key.public_key, signature, "lendchain/commit/1", "chain-a", body)
    assert not verify(key.public_key, signature, "lendchain/tx/1", "chain-a", {"amount": 101})


def test_signing_tags_must_be_namespaced():
    with pytest.raises(codec.CodecError, match="must start with"):
        codec.signing_bytes("tx", "chain", {})


# The fast path of codec._canonical (exact dict/list/str/bytes/bool/None/int) must
# accept, refuse and encode exactly what the isinstance checks behind it do.


class _Key(str):
    pass


class _Amount(int):
    pass


def _nested(depth, innermost, wrap):
    value = innermost
    for _ in range(depth):
        value = wrap(value)
    return value


@pytest.mark.parametrize("wrap", [lambda v: [v], lambda v: {"k": v}], ids=["list", "map"])
def test_depth_limit_counts_the_same_for_scalars_inside_containers(wrap):
    assert codec.unpack(codec.pack(_nested(codec.MAX_DEPTH, 7, wrap))) == _nested(codec.MAX_DEPTH, 7, wrap)
    assert codec.pack(_nested(codec.MAX_DEPTH, [], wrap))  # an empty container at the limit holds nothing
    with pytest.raises(codec.CodecError, match="nested deeper"):
        codec.pack(_nested(codec.MAX_DEPTH + 1, 7, wrap))
    with pytest.raises(codec.CodecError, match="nested deeper"):
        codec.pack(_nested(codec.MAX_DEPTH, [None], wrap))


@pytest.mark.parametrize("container", [lambda v: [1, v], lambda v: {"a": 1, "b": v}], ids=["list", "map"])
@pytest.mark.parametrize(
    "item, error",
    [
        (2**64 - 1, None),
        (-(2**63), None),
        (2**64, "outside the 64-bit range"),
        (-(2**63) - 1, "outside the 64-bit range"),
        (1.0, "cannot be encoded"),
        ({1: "x"}, "is not a str"),
        ({b"k": "x"}, "is not a str"),
        ({"x": {2}}, "cannot be encoded"),
    ],
)
def test_items_of_containers_are_checked_like_top_level_values(container, item, error):
    if error is None:
        assert codec.unpack(codec.pack(container(item))) == container(item)
    else:
        with pytest.raises(codec.CodecError, match=error):
            codec.pack(container(item))


def test_bool_inside_containers_stays_bool():
    assert codec.pack([True, {"a": False}]) == b"\x92\xc3\x81\xa1a\xc2"


def test_subclasses_tuples_and_byte_views_encode_as_their_plain_forms():
    fancy = {_Key("b"): (_Amount(5), bytearray(b"xy")), "a": [memoryview(b"z"), (True, None)]}
    plain = {"b": [5, b"xy"], "a": [b"z", [True, None]]}
    assert (
        codec.pack(fancy)
        == codec.pack(plain)
        == msgpack.packb({"a": [b"z", [True, None]], "b": [5, b"xy"]}, use_bin_type=True)
    )


def test_threads_packing_at_once_get_the_same_bytes():
    from concurrent.futures import ThreadPoolExecutor

    values = [{"n": n, "items": list(range(n % 50)), "name": str(n)} for n in range(2000)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        packed = list(pool.map(codec.pack, values))
    assert packed == [msgpack.packb(codec._canonical_checked(v, 0), use_bin_type=True) for v in values]


def test_a_refused_value_leaves_the_packer_usable():
    with pytest.raises(codec.CodecError, match="outside the 64-bit range"):
        codec.pack({"a": [1, {"b": 2**64}]})
    assert codec.pack({"a": 1}) == b"\x81\xa1a\x01"


@given(st.lists(values, max_size=20))
def test_a_list_of_packed_items_packs_as_the_list(items):
    assert codec.pack_packed_list([codec.pack(item) for item in items]) == codec.pack(items)


@pytest.mark.parametrize("length", [15, 16, 65535, 65536])
def test_a_packed_list_gets_the_header_its_length_needs(length):
    items = [i % 3 for i in range(length)]  # array16 from 16 items, array32 from 65536
    assert codec.pack_packed_list([codec.pack(item) for item in items]) == codec.pack(items)


@given(values, st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=20))
def test_pairs_with_one_first_item_pack_as_each_pair(first, seconds):
    assert codec.pack_pairs(first, seconds) == [codec.pack([first, n]) for n in seconds]


def test_pairs_take_each_int_in_its_shortest_form():
    """The tx index's [height, index] values, across every width an index can need."""
    edges = [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
    assert codec.pack_pairs(2**40, edges) == [codec.pack([2**40, n]) for n in edges]
    assert codec.pack_pairs(7, range(300)) == [codec.pack([7, n]) for n in range(300)]
