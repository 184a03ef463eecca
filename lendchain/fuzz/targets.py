"""The fuzzed decoders, each with its seed corpus and its one clean error type."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from lendchain import codec
from lendchain.consensus import messages
from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.crypto import SigningKey
from lendchain.ledger.block import Block, InvalidBlock, make_block
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.state import genesis_state
from lendchain.ledger.transactions import build_transaction, check_stateless, decode_transaction
from lendchain.node.config import ConfigError, genesis_from_doc, load_node_config
from lendchain.node.network_wire import FrameKind, FrameReader, WireError, decode_hello, encode_frame
from lendchain.node.testnet import generate_testnet

CHAIN = "lendchain-fuzz-1"


@dataclass(frozen=True)
class Target:
    name: str
    seeds: list[bytes]
    run: Callable[[bytes], object]
    clean: tuple[type[BaseException], ...]


def _tx_seeds(key: SigningKey) -> list[bytes]:
    payloads = [
        ("party.register", {"role": "borrower"}),
        ("loan.apply", {"amount": 250_000, "currency": "EUR", "term_months": 12, "purpose": "fuzz"}),
        ("loan.offer", {"loan_id": "ab" * 32, "rate_bps": 700}),
        ("loan.repay", {"loan_id": "cd" * 32, "amount": 1234, "reference": "r-1"}),
        ("loan.transfer", {"loan_id": "ef" * 32, "to": key.did}),  # a did:key field (rules 4)
    ]
    return [
        build_transaction(key, CHAIN, kind, payload=p, nonce=i, created_ms=1_700_000_000_000).encode()
        for i, (kind, p) in enumerate(payloads)
    ]


def _decode_and_check_tx(raw: bytes) -> None:
    check_stateless(decode_transaction(raw), CHAIN)


def _block_seeds(txs: list[bytes], genesis) -> list[bytes]:
    state = genesis_state(genesis)
    block, _ = make_block(
        parent_hash=genesis.hash(),
        parent_timestamp_ms=genesis.genesis_time_ms,
        height=1,
        proposer=genesis.members[0].name,
        candidate_txs=[decode_transaction(t) for t in txs[:1]],
        reader=state,
        now_ms=genesis.genesis_time_ms + 10,
        chain_id=genesis.chain_id,
    )
    return [block.encode()]


def _consensus_seeds(key: SigningKey) -> list[bytes]:
    digest = b"\x11" * 32
    out = []
    for cls, fields in (
        (messages.Prepare, {"view": 0, "height": 1, "digest": digest}),
        (messages.Commit, {"view": 3, "height": 9, "digest": digest}),
    ):
        try:
            out.append(messages.sign(key, CHAIN, cls, "bank1", **fields).encode())
        except Exception:  # the seed builder follows the message API; a missing one is skipped
            continue
    cert = CommitCertificate(0, 1, digest, ((0, b"\x00" * 64),)) if out else None
    if cert is not None:
        out.append(cert.encode())
    return out or [codec.pack(["prepare", "bank1", [0, 1, digest], b"\x00" * 64, b""])]


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int | None = None) -> bytes:
        chunk, self.data = self.data[: n or 65536], self.data[n or 65536 :]
        return chunk


def _read_frames(data: bytes) -> None:
    async def go() -> None:
        reader = FrameReader(_Bytes(data), max_frame=1 << 16)
        while True:
            kind, payload = await reader.read_frame()
            if kind == FrameKind.HELLO:
                decode_hello(payload)

    # _Bytes.read never suspends, so the coroutine runs to completion in one send().
    coroutine = go()
    try:
        coroutine.send(None)
    except StopIteration:
        pass
    finally:
        coroutine.close()


def build_targets(workdir: Path) -> list[Target]:
    key = SigningKey(b"\x07" * 32)
    layout = generate_testnet(workdir / "net", 4, chain_id=CHAIN)
    genesis = layout.genesis
    txs = _tx_seeds(key)
    config_text = layout.configs[0].read_bytes()
    genesis_text = (workdir / "net" / "genesis.toml").read_bytes()
    config_path = workdir / "net" / "fuzz.toml"

    def load_config(data: bytes) -> None:
        config_path.write_bytes(data)
        load_node_config(config_path)

    def load_genesis_doc(data: bytes) -> None:
        try:
            doc = tomllib.loads(data.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(str(e)) from None
        genesis_from_doc(doc, Path("genesis.toml"))

    frames = encode_frame(FrameKind.HELLO, codec.pack({"chain_id": CHAIN, "name": "bank1"}))
    return [
        Target(
            "codec.unpack",
            txs + [codec.pack({"a": [1, b"x", None, True, "s"]})],
            codec.unpack,
            (codec.CodecError,),
        ),
        Target("transaction", txs, _decode_and_check_tx, (TxRejected,)),
        Target("block", _block_seeds(txs, genesis), Block.decode, (InvalidBlock,)),
        Target(
            "consensus message",
            _consensus_seeds(key),
            lambda d: messages.decode(d, 1 << 20),
            (messages.MessageError, CertificateError),
        ),
        Target(
            "commit certificate",
            [c for c in _consensus_seeds(key)],
            CommitCertificate.decode,
            (CertificateError,),
        ),
        Target("wire frames", [frames, frames + frames], _read_frames, (WireError, EOFError)),
        Target("node config", [config_text], load_config, (ConfigError,)),
        Target("genesis", [genesis_text], load_genesis_doc, (ConfigError,)),
    ]


def workdir() -> TemporaryDirectory:
    return TemporaryDirectory(prefix="lendchain-fuzz-")
