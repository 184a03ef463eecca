"""Blocks: header, body, hashing, and the two ways to get one (cut or check).

Wire form: the canonical msgpack array ``[header, txs]``. ``header`` is the
fixed array ``[chain_id, height, prev_hash, timestamp_ms, proposer, tx_count,
tx_root, state_root, results_root]`` and ``txs`` the list of transaction wire
bytes. The block hash is ``sha256(pack(["lendchain/block/1", header]))``: it
covers the header only, and the header commits to the body through roots.

- ``tx_root`` is the RFC 6962 Merkle root of the transactions' wire bytes, so
  a tx's inclusion can be proved with ``merkle.inclusion_proof``.
- ``state_root`` is the state root AFTER this block (``state.py`` says how it
  is built). Carrying the post-state root means a validator that executes the
  proposal and gets another root refuses the block before voting, so nodes
  can never commit diverging states under one block hash.
- ``results_root`` is the Merkle root of the per-tx results (code, message,
  events), so receipts are committed too; when the ledger's own work at the
  start of the block (``execute.run_block_hooks``) emitted events, one more
  leaf after the tx results commits them.
- ``timestamp_ms`` comes from the proposer: strictly after the parent's, and
  validators refuse one more than ``max_skew_ms`` ahead of their own clock.

The commit certificate is not part of the block (it signs the block hash); the
store keeps it next to the block.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from lendchain import codec
from lendchain.lazy import lazy_attribute
from lendchain.ledger import merkle
from lendchain.ledger.errors import InvalidBlock, TxRejected
from lendchain.ledger.execute import execute_txs, results_root
from lendchain.ledger.state import BlockExecution, StateReader
from lendchain.ledger.transactions import (
    Transaction,
    decode_transaction,
    verify_signatures,
)

__all__ = ["Block", "BlockHeader", "InvalidBlock", "check_block", "make_block"]

BLOCK_TAG = "lendchain/block/1"
MAX_BLOCK_SIZE = 64 << 20
_HASH_SIZE = 32


@dataclass(frozen=True)
class BlockHeader:
    chain_id: str
    height: int
    prev_hash: bytes
    timestamp_ms: int
    proposer: str
    tx_count: int
    tx_root: bytes
    state_root: bytes
    results_root: bytes

    def to_value(self) -> list[Any]:
        return [
            self.chain_id,
            self.height,
            self.prev_hash,
            self.timestamp_ms,
            self.proposer,
            self.tx_count,
            self.tx_root,
            self.state_root,
            self.results_root,
        ]

    def hash(self) -> bytes:
        return self._hash

    @lazy_attribute
    def _hash(self) -> bytes:
        """Computed once per header: a backup hashes a proposal as it arrives, then validates and
        stores that same decoded block, and a proposer stores the block it built and hashed."""
        return codec.hash_value([BLOCK_TAG, self.to_value()])

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "prev_hash": self.prev_hash.hex(),
            "timestamp_ms": self.timestamp_ms,
            "proposer": self.proposer,
            "tx_count": self.tx_count,
            "tx_root": self.tx_root.hex(),
            "state_root": self.state_root.hex(),
            "results_root": self.results_root.hex(),
        }


_HEADER_TYPES = (
    ("chain_id", str),
    ("height", int),
    ("prev_hash", bytes),
    ("timestamp_ms", int),
    ("proposer", str),
    ("tx_count", int),
    ("tx_root", bytes),
    ("state_root", bytes),
    ("results_root", bytes),
)


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    txs: list[bytes]

    def encode(self) -> bytes:
        return codec.pack([self.header.to_value(), self.txs])

    @classmethod
    def decode(cls, raw: bytes) -> Block:
        """Decode wire bytes strictly; the roots are checked by ``check_block``."""
        try:
            value = codec.unpack(raw, max_size=MAX_BLOCK_SIZE)
        except codec.CodecError as e:
            raise InvalidBlock(f"block is not canonical msgpack: {e}") from None
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidBlock("block must be the array [header, txs]")
        header, txs = value
        if not isinstance(header, list) or len(header) != len(_HEADER_TYPES):
            raise InvalidBlock(f"block header must be an array of {len(_HEADER_TYPES)} fields")
        for (name, expected), item in zip(_HEADER_TYPES, header, strict=True):
            if not isinstance(item, expected) or isinstance(item, bool):
                raise InvalidBlock(f"block header field {name!r} must be {expected.__name__}")
            if expected is bytes and len(item) != _HASH_SIZE:
                raise InvalidBlock(f"block header field {name!r} must be {_HASH_SIZE} bytes")
            if expected is int and item < 0:
                raise InvalidBlock(f"block header field {name!r} must not be negative")
        if not isinstance(txs, list) or not all(map(isinstance, txs, repeat(bytes))):
            raise InvalidBlock("block body must be a list of transaction byte strings")
        decoded = BlockHeader(*header)
        if decoded.tx_count != len(txs):
            raise InvalidBlock(f"block header says {decoded.tx_count} txs but the body has {len(txs)}")
        return cls(decoded, txs)

    def hash(self) -> bytes:
        return self.header.hash()

    def tx_proof(self, index: int) -> list[bytes]:
        """Audit path proving tx ``index`` is in this block (check with ``merkle.verify_inclusion``)."""
        return merkle.inclusion_proof(self.txs, index)

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash().hex(),
            "header": self.header.to_json(),
            "txs": [codec.sha256(tx).hex() for tx in self.txs],
        }


def tx_root(txs: Sequence[bytes]) -> bytes:
    return merkle.merkle_root(txs)


def next_timestamp(parent_timestamp_ms: int, now_ms: int) -> int:
    return max(now_ms, parent_timestamp_ms + 1)


def make_block(
    *,
    parent_hash: bytes,
    parent_timestamp_ms: int,
    height: int,
    proposer: str,
    candidate_txs: Sequence[Transaction],
    reader: StateReader,
    now_ms: int,
    chain_id: str,
) -> tuple[Block, BlockExecution]:
    """Cut a block from ``candidate_txs`` (signatures already checked, e.g. by the mempool).

    Candidates that cannot be included (wrong nonce, duplicate, bad shape) are
    left out and listed in ``execution.dropped``; the rest execute in order.
    """
    timestamp_ms = next_timestamp(parent_timestamp_ms, now_ms)
    included, execution = execute_txs(
        reader, candidate_txs, height=height, timestamp_ms=timestamp_ms, chain_id=chain_id, strict=False
    )
    body = [tx.encode() for tx in included]
    header = BlockHeader(
        chain_id=chain_id,
        height=height,
        prev_hash=parent_hash,
        timestamp_ms=timestamp_ms,
        proposer=proposer,
        tx_count=len(body),
        tx_root=tx_root(body),
        state_root=execution.state_root,
        results_root=results_root(execution.results, execution.ledger_events),
    )
    return Block(header, body), execution


def check_block(
    raw: bytes,
    *,
    expected_height: int,
    parent_hash: bytes,
    parent_timestamp_ms: int,
    reader: StateReader,
    now_ms: int | None,
    max_skew_ms: int,
    chain_id: str,
    verified_tx_ids: Container[bytes] = (),
    signature_workers: int = 2,
    decoded: Block | None = None,
) -> tuple[Block, BlockExecution]:
    """Decode, check and execute a proposed or received block; InvalidBlock says what is wrong.

    ``now_ms=None`` skips the clock-skew check (a committed block replayed
    later). Signatures of txs whose ids are in ``verified_tx_ids`` are not
    checked again; the others are checked in bulk. ``decoded`` is
    ``Block.decode(raw)`` when the caller has it already (a node hashes a
    proposal's header before it validates the proposal).
    """
    block = Block.decode(raw) if decoded is None else decoded
    header = block.header
    if header.chain_id != chain_id:
        raise InvalidBlock(f"block is for chain {header.chain_id!r}, this chain is {chain_id!r}")
    if header.height != expected_height:
        raise InvalidBlock(f"block height is {header.height}, expected {expected_height}")
    if header.prev_hash != parent_hash:
        raise InvalidBlock(
            f"block {header.height} builds on {header.prev_hash.hex()[:16]}, "
            f"but its parent is {parent_hash.hex()[:16]}"
        )
    if header.timestamp_ms <= parent_timestamp_ms:
        raise InvalidBlock(
            f"block {header.height} timestamp {header.timestamp_ms} is not after "
            f"its parent's {parent_timestamp_ms}"
        )
    if now_ms is not None and header.timestamp_ms > now_ms + max_skew_ms:
        raise InvalidBlock(
            f"block {header.height} timestamp {header.timestamp_ms} is more than {max_skew_ms} ms "
            f"ahead of this node's clock ({now_ms})"
        )
    if tx_root(block.txs) != header.tx_root:
        raise InvalidBlock(f"block {header.height} tx root does not match its transactions")
    txs = []
    for index, tx_bytes in enumerate(block.txs):
        try:
            txs.append(decode_transaction(tx_bytes))
        except TxRejected as e:
            raise InvalidBlock(f"block {header.height} tx {index} cannot be decoded: {e}") from None
    unchecked = [tx for tx in txs if tx.id not in verified_tx_ids]
    for tx, good in zip(unchecked, verify_signatures(unchecked, signature_workers), strict=True):
        if not good:
            raise InvalidBlock(
                f"block {header.height} tx {tx.id.hex()[:16]} has a bad signature "
                f"(not {tx.sender}'s signature of its body)"
            )
    _, execution = execute_txs(
        reader, txs, height=header.height, timestamp_ms=header.timestamp_ms, chain_id=chain_id, strict=True
    )
    if execution.state_root != header.state_root:
        raise InvalidBlock(
            f"block {header.height} state root {header.state_root.hex()[:16]} does not match "
            f"the state root {execution.state_root.hex()[:16]} its execution gives here"
        )
    if results_root(execution.results, execution.ledger_events) != header.results_root:
        raise InvalidBlock(f"block {header.height} results root does not match its execution here")
    return block, execution
