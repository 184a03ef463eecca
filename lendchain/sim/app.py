"""A trivial in-memory BlockApp: a block is a few opaque 8-byte "transactions".

Block = canonical msgpack ``[height, prev_digest, timestamp_ms, proposer, [tx, ...]]``;
a valid tx is ``b"tx"`` + 6 bytes; executing a block folds its digest into the state root.
"""

from __future__ import annotations

from lendchain import codec

MAX_BLOCK_TXS = 4
MAX_SKEW_MS = 5000


def is_valid_tx(tx: object) -> bool:
    return isinstance(tx, bytes) and len(tx) == 8 and tx.startswith(b"tx")


class Workload:
    """Transactions submitted to the whole cluster, in submission order."""

    def __init__(self) -> None:
        self.txs: list[bytes] = []

    def submit(self, tx: bytes) -> None:
        self.txs.append(tx)


def encode_block(height: int, prev: bytes, timestamp_ms: int, proposer: str, txs: list[bytes]) -> bytes:
    return codec.pack([height, prev, timestamp_ms, proposer, txs])


def decode_block(block: bytes) -> tuple[int, bytes, int, str, list[bytes]]:
    value = codec.unpack(block)
    if not isinstance(value, list) or len(value) != 5:
        raise ValueError("a sim block is [height, prev, timestamp, proposer, txs]")
    height, prev, timestamp_ms, proposer, txs = value
    if not isinstance(height, int) or not isinstance(prev, bytes) or not isinstance(timestamp_ms, int):
        raise ValueError("bad sim block header")
    if not isinstance(proposer, str) or not isinstance(txs, list):
        raise ValueError("bad sim block body")
    return height, prev, timestamp_ms, proposer, txs


class SimApp:
    def __init__(self, name: str, workload: Workload, genesis_digest: bytes) -> None:
        self.name = name
        self.workload = workload
        self.known: dict[bytes, tuple[int, int]] = {genesis_digest: (0, 0)}  # digest -> (height, ts)
        self.committed_txs: set[bytes] = set()
        self._cursor = 0
        self.state_root = b"\x00" * 32
        self.censored: set[bytes] = set()  # txs this app leaves out of its proposals (tests)

    def _pending(self, limit: int) -> list[bytes]:
        txs = self.workload.txs
        while self._cursor < len(txs) and txs[self._cursor] in self.committed_txs:
            self._cursor += 1
        out = []
        for tx in txs[self._cursor :]:
            if tx not in self.committed_txs:
                out.append(tx)
                if len(out) == limit:
                    break
        return out

    def has_pending_work(self) -> bool:
        return bool(self._pending(1))

    def oldest_request(self) -> tuple[bytes, int] | None:
        # Blocks take the oldest pending txs first: nothing is ordered ahead of the oldest.
        pending = self._pending(1)
        return (pending[0], 0) if pending else None

    def _build(self, height: int, prev: bytes, now_ms: int, txs: list[bytes]) -> bytes | None:
        parent = self.known.get(prev)
        if parent is None:
            return None
        block = encode_block(height, prev, max(now_ms, parent[1]), self.name, txs)
        self.known[codec.sha256(block)] = (height, max(now_ms, parent[1]))
        return block

    def propose(self, height: int, prev_digest: bytes, now_ms: int) -> bytes | None:
        txs = [tx for tx in self._pending(MAX_BLOCK_TXS + len(self.censored)) if tx not in self.censored]
        txs = txs[:MAX_BLOCK_TXS]
        return self._build(height, prev_digest, now_ms, txs) if txs else None

    def empty_block(self, height: int, prev_digest: bytes, now_ms: int) -> bytes:
        block = self._build(height, prev_digest, now_ms, [])
        if block is None:
            raise ValueError(f"parent {prev_digest.hex()[:16]} is unknown")
        return block

    def digest(self, block: bytes) -> bytes:
        decode_block(block)
        return codec.sha256(block)

    def validate(self, height: int, prev_digest: bytes, block: bytes, now_ms: int) -> str | None:
        try:
            b_height, prev, timestamp_ms, _proposer, txs = decode_block(block)
        except (ValueError, codec.CodecError) as e:
            return str(e)
        parent = self.known.get(prev_digest)
        if b_height != height or prev != prev_digest:
            return f"block claims height {b_height} on another parent"
        if parent is None:
            return "parent unknown"
        if timestamp_ms < parent[1] or timestamp_ms > now_ms + MAX_SKEW_MS:
            return f"timestamp {timestamp_ms} outside [{parent[1]}, {now_ms + MAX_SKEW_MS}]"
        if len(txs) > MAX_BLOCK_TXS or len(set(txs)) != len(txs):
            return "too many or repeated transactions"
        for tx in txs:
            if not is_valid_tx(tx):
                return f"transaction {tx!r} is not valid"
            if tx in self.committed_txs:
                return f"transaction {tx!r} is already committed"
        self.known[codec.sha256(block)] = (height, timestamp_ms)
        return None

    def execute(self, block: bytes, digest: bytes) -> bytes:
        height, _prev, timestamp_ms, _proposer, txs = decode_block(block)
        self.committed_txs.update(txs)
        self.known[digest] = (height, timestamp_ms)
        self.state_root = codec.sha256(self.state_root + digest)
        return self.state_root
