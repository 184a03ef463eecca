"""Blocks: encoding, Merkle roots and proofs, validation reasons, deterministic execution."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendchain import codec
from lendchain.crypto import SigningKey
from lendchain.ledger import merkle
from lendchain.ledger.block import Block, InvalidBlock, tx_root
from lendchain.ledger.state import (
    STATE_ROOT_KEY,
    MemoryState,
    OverlayReader,
    changes_digest,
    genesis_state_root,
    next_nonce,
    next_state_root,
)
from lendchain.ledger.transactions import TX_TAG, Transaction
from tests.ledger.chain import CHAIN_ID, Chain, make_genesis, seeded_key

APPLY = {"amount": 50_000, "currency": "USD", "term_months": 6, "purpose": "stock"}


@pytest.fixture
def chain() -> Chain:
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    chain.run(*(chain.tx(seeded_key(i), "party.register", {"role": "borrower"}) for i in range(1, 4)))
    chain.run(*(chain.attest(members[3], seeded_key(i).did) for i in range(1, 4)))
    return chain


def check(chain: Chain, raw: bytes, **overrides):
    return chain.check_next(raw, **overrides)


def reseal(block: Block, txs: list[bytes]) -> bytes:
    return Block(replace(block.header, tx_count=len(txs), tx_root=tx_root(txs)), txs).encode()


# Merkle ----------------------------------------------------------------------------


def test_merkle_known_values():
    assert merkle.merkle_root([]) == codec.sha256(b"")
    assert merkle.merkle_root([b"a"]) == codec.sha256(b"\x00a")
    a, b, c = (merkle.leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert merkle.merkle_root([b"a", b"b", b"c"]) == merkle.node_hash(merkle.node_hash(a, b), c)


def rfc6962_tree_hash(leaves: list[bytes]) -> bytes:
    """MTH of RFC 6962 section 2.1, as the RFC writes it: split at the largest power of two below n."""
    if len(leaves) == 1:
        return codec.sha256(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return codec.sha256(b"\x01" + rfc6962_tree_hash(leaves[:k]) + rfc6962_tree_hash(leaves[k:]))


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70))
def test_the_merkle_root_is_the_rfc_6962_tree_hash(leaves):
    assert merkle.merkle_root(leaves) == rfc6962_tree_hash(leaves)


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
def test_inclusion_proofs_verify_and_bind_the_leaf(leaves, data):
    root = merkle.merkle_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle.inclusion_proof(leaves, index)
    assert merkle.verify_inclusion(leaves[index], index, len(leaves), proof, root)
    assert not merkle.verify_inclusion(leaves[index] + b"x", index, len(leaves), proof, root)
    if len(leaves) > 1:
        other = (index + 1) % len(leaves)
        if leaves[other] != leaves[index]:
            assert not merkle.verify_inclusion(leaves[index], other, len(leaves), proof, root)


def test_inclusion_proof_index_out_of_range():
    with pytest.raises(ValueError, match="outside a tree of 2 leaves"):
        merkle.inclusion_proof([b"a", b"b"], 2)
    assert not merkle.verify_inclusion(b"a", 3, 2, [], merkle.merkle_root([b"a", b"b"]))


# Encoding ------------------------------------------------------------------------------


def test_block_round_trip_and_json(chain):
    block, execution = chain.cut([chain.tx(seeded_key(1), "loan.apply", APPLY)])
    decoded = Block.decode(block.encode())
    assert decoded == block and decoded.hash() == block.hash()
    doc = block.to_json()
    assert doc["header"]["height"] == chain.height + 1
    assert doc["header"]["state_root"] == execution.state_root.hex()
    assert doc["txs"] == [execution.tx_ids[0].hex()]
    assert [r.to_json()["code"] for r in execution.results] == ["ok"]
    proof = block.tx_proof(0)
    assert merkle.verify_inclusion(block.txs[0], 0, 1, proof, block.header.tx_root)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda h, t: codec.pack([h]), "[header, txs]"),
        (lambda h, t: codec.pack([h[:-1], t]), "array of 9 fields"),
        (lambda h, t: codec.pack([[h[0], "1", *h[2:]], t]), "'height' must be int"),
        (lambda h, t: codec.pack([[*h[:2], b"short", *h[3:]], t]), "'prev_hash' must be 32 bytes"),
        (lambda h, t: codec.pack([[h[0], -1, *h[2:]], t]), "'height' must not be negative"),
        (lambda h, t: codec.pack([h, ["text"]]), "list of transaction byte strings"),
        (lambda h, t: codec.pack([h, [*t, b"x"]]), "header says 1 txs but the body has 2"),
        (lambda h, t: b"\x92\xc1", "not canonical"),
    ],
)
def test_decode_refuses_malformed_blocks(chain, mutate, needle):
    block, _ = chain.cut([chain.tx(seeded_key(1), "loan.apply", APPLY)])
    with pytest.raises(InvalidBlock, match=needle.replace("[", r"\[").replace("]", r"\]")):
        Block.decode(mutate(block.header.to_value(), block.txs))


# Validation reasons ---------------------------------------------------------------------


def test_valid_block_checks_and_replays_identically(chain):
    block, execution = chain.cut([chain.tx(seeded_key(1), "loan.apply", APPLY)])
    checked, replay = check(chain, block.encode())
    assert checked == block and replay == execution


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"expected_height": 99}, "height is 5, expected 99"),
        ({"parent_hash": bytes(32)}, "but its parent is 0000"),
        ({"chain_id": "elsewhere"}, "is for chain"),
        ({"now_ms": 0}, "ahead of this node's clock"),
    ],
)
def test_block_context_errors(chain, overrides, needle):
    block, _ = chain.cut([])
    if "expected_height" in overrides:
        needle = needle.replace("5", str(chain.height + 1))
    with pytest.raises(InvalidBlock, match=needle):
        check(chain, block.encode(), **overrides)


def test_timestamp_must_follow_parent_and_skew_check_can_be_skipped(chain):
    block, _ = chain.cut([])
    raw = Block(replace(block.header, timestamp_ms=chain.head_ms), block.txs).encode()
    with pytest.raises(InvalidBlock, match="is not after its parent's"):
        check(chain, raw)
    far = Block(replace(block.header, timestamp_ms=chain.head_ms + 10**9), block.txs).encode()
    with pytest.raises(InvalidBlock, match="ahead"):
        check(chain, far)
    checked, _ = check(chain, far, now_ms=None)  # a committed block replayed later: no clock
    assert checked.header.timestamp_ms == chain.head_ms + 10**9


def test_bad_tx_root(chain):
    block, _ = chain.cut([chain.tx(seeded_key(1), "loan.apply", APPLY)])
    raw = Block(replace(block.header, tx_root=bytes(32)), block.txs).encode()
    with pytest.raises(InvalidBlock, match="tx root does not match"):
        check(chain, raw)


def test_bad_signature_unless_already_verified(chain):
    good = chain.tx(seeded_key(1), "loan.apply", APPLY)
    forged_sig = seeded_key(9).sign(TX_TAG, CHAIN_ID, good.body())
    forged = Transaction(
        *[getattr(good, f) for f in ("chain_id", "kind", "sender", "nonce", "created_ms", "payload")],
        forged_sig,
    )
    block, _ = chain.cut([forged])  # the proposer trusts its (here: lying) mempool
    with pytest.raises(InvalidBlock, match="bad signature"):
        check(chain, block.encode())
    # A tx id the node already verified is not checked again (nothing else is wrong here).
    check(chain, block.encode(), verified_tx_ids={forged.id})


def test_duplicate_tx_and_undecodable_tx(chain):
    tx = chain.tx(seeded_key(1), "loan.apply", APPLY)
    block, _ = chain.cut([tx])
    with pytest.raises(InvalidBlock, match="duplicate"):
        check(chain, reseal(block, [tx.encode(), tx.encode()]))
    with pytest.raises(InvalidBlock, match="tx 0 cannot be decoded: malformed"):
        check(chain, reseal(block, [b"\x01"]))


def test_unknown_kind_in_a_block(chain):
    key = seeded_key(1)
    odd = chain.tx(key, "loan.teleport", {})
    block, execution = chain.cut([odd])
    assert execution.dropped[0].code == "unknown_kind" and not block.txs
    with pytest.raises(InvalidBlock, match="unknown_kind"):
        check(chain, reseal(block, [odd.encode()]))


def test_state_and_results_root_mismatch(chain):
    block, _ = chain.cut([chain.tx(seeded_key(1), "loan.apply", APPLY)])
    raw = Block(replace(block.header, state_root=bytes(32)), block.txs).encode()
    with pytest.raises(InvalidBlock, match="state root 0000000000000000 does not match"):
        check(chain, raw)
    raw = Block(replace(block.header, results_root=bytes(32)), block.txs).encode()
    with pytest.raises(InvalidBlock, match="results root"):
        check(chain, raw)


# State commitment ------------------------------------------------------------------------


def test_state_root_chains_over_sorted_changes(chain):
    block, execution = chain.cut([chain.tx(seeded_key(1), "loan.apply", APPLY)])
    parent_root = chain.state.get(STATE_ROOT_KEY)
    assert execution.state_root == next_state_root(parent_root, execution.changes)
    assert execution.changes[STATE_ROOT_KEY] == execution.state_root
    # The digest ignores insertion order and the root key itself.
    shuffled = dict(reversed(list(execution.changes.items())))
    assert changes_digest(shuffled) == changes_digest(execution.changes)


def test_genesis_root_depends_on_the_genesis():
    one, _ = make_genesis()
    two, _ = make_genesis([("lender",), ("regulator",)])
    assert genesis_state_root(one) != genesis_state_root(two)
    assert genesis_state_root(one) == genesis_state_root(make_genesis()[0])


def test_overlay_reader_reads_pending_changes_first():
    base = MemoryState({b"a": b"1", b"b": b"2"})
    overlay = OverlayReader(base, {b"a": b"9", b"b": None, b"c": b"3"})
    assert [overlay.get(k) for k in (b"a", b"b", b"c", b"d")] == [b"9", None, b"3", None]


def test_block_on_a_pending_block_via_overlay(chain):
    key = seeded_key(1)
    first, first_exec = chain.cut([chain.tx(key, "loan.apply", APPLY)])
    reader = OverlayReader(chain.state, first_exec.changes)
    assert next_nonce(reader, key.did) == next_nonce(chain.state, key.did) + 1


_ACTIONS = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(["apply", "register", "offer", "junk"])), max_size=25
)


def _run(actions, keys: list[SigningKey], shuffle_blocks: int) -> tuple[bytes, list[str]]:
    genesis, members = make_genesis()
    chain = Chain.start(genesis)
    txs = []
    for who, what in actions:
        key = keys[who]
        if what == "apply":
            txs.append(chain.tx(key, "loan.apply", APPLY))
        elif what == "register":
            txs.append(chain.tx(key, "party.register", {"role": "borrower"}))
        elif what == "offer":
            txs.append(chain.tx(members[0], "loan.offer", {"loan_id": "ab" * 32, "rate_bps": who * 100}))
        else:
            txs.append(chain.tx(key, "loan.repay", {"loan_id": "cd" * 32, "amount": 1}))
    size = max(1, shuffle_blocks)
    for start in range(0, len(txs), size):
        chain.run(*txs[start : start + size])
    _run.last_state = chain.state
    return chain.state.get(STATE_ROOT_KEY), [r.code for _, e in chain.blocks for r in e.results]


@settings(max_examples=40)
@given(_ACTIONS)
def test_execution_is_deterministic(actions):
    keys = [seeded_key(i) for i in range(1, 5)]
    root_a, codes_a = _run(actions, keys, 3)
    root_b, codes_b = _run(actions, keys, 3)
    assert root_a == root_b and codes_a == codes_b
    # Every stored value is strictly canonical (the fast state packer agrees with codec).
    state = _run.last_state
    for key, value in state.values.items():
        if key == STATE_ROOT_KEY:  # the root itself is stored as its raw 32 bytes
            continue
        assert codec.pack(codec.unpack(value)) == value
    # Different block boundaries give the same per-tx outcomes but a different root chain.
    _, codes_c = _run(actions, keys, 1)
    assert codes_c == codes_a
