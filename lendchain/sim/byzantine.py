"""Byzantine behaviours: filters over an honest replica's outgoing messages.

A Byzantine member runs the honest replica (so it knows the current view and
height) and then lies on the way out, signing its lies with its real key.
The filter knows nothing of block contents: ``forge_block(height, block,
valid)`` returns another block for the same height and its digest — one the
honest members would accept (``valid``, for equivocation) or one they must
refuse. The
simulator passes ``sim_forger``; a real node passes one built on its ledger.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from lendchain import codec
from lendchain.consensus import messages as m
from lendchain.crypto import SigningKey
from lendchain.sim.app import decode_block, encode_block

KINDS = (
    "silent",
    "garbage",
    "equivocate",
    "conflicting-votes",
    "replay",
    "invalid-block",
    "lying-view-change",
)


BlockForger = Callable[[int, bytes, bool], tuple[bytes, bytes]]


def sim_forger(name: str, rng: random.Random) -> BlockForger:
    """Forges blocks in the simulator's block format."""

    def forge(height: int, block: bytes, valid: bool) -> tuple[bytes, bytes]:
        txs = [b"tx" + bytes(rng.randrange(256) for _ in range(6))] if valid else [b"bad-tx!!"]
        _h, prev, timestamp_ms, _p, _txs = decode_block(block)
        forged = encode_block(height, prev, timestamp_ms, name, txs)
        return forged, codec.sha256(forged)

    return forge


class Byzantine:
    def __init__(
        self,
        kind: str,
        name: str,
        key: SigningKey,
        chain_id: str,
        rng: random.Random,
        forge_block: BlockForger | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown Byzantine kind {kind!r}; choose one of {KINDS}")
        self.kind, self.name, self.key, self.chain_id, self.rng = kind, name, key, chain_id, rng
        self.forge_block = forge_block or sim_forger(name, rng)
        self.seen: list[bytes] = []

    def _sign(self, cls: type[m.Message], **fields: object) -> bytes:
        return m.sign(self.key, self.chain_id, cls, self.name, **fields).encode()

    def outgoing(self, payload: bytes, others: list[str]) -> list[tuple[str, bytes]]:
        """What this member really sends instead of broadcasting ``payload`` to ``others``."""
        honest = [(to, payload) for to in others]
        if self.kind == "silent":
            return []
        if self.kind == "garbage":
            junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 40)))
            return honest + [(self.rng.choice(others), junk)]
        if self.kind == "replay":
            self.seen.append(payload)
            old = self.rng.choice(self.seen)
            return honest + [(self.rng.choice(others), old)]
        message = m.decode(payload, 1 << 30)
        if self.kind in ("equivocate", "invalid-block") and isinstance(message, m.PrePrepare):
            forged = self._other_block(message)
            if self.kind == "invalid-block":
                return [(to, forged) for to in others]
            half = len(others) // 2
            return [(to, payload) for to in others[:half]] + [(to, forged) for to in others[half:]]
        if self.kind == "conflicting-votes" and isinstance(message, m.Prepare | m.Commit):
            fake = bytes(self.rng.randrange(256) for _ in range(32))
            lie = self._sign(type(message), view=message.view, height=message.height, digest=fake)
            return [(to, lie if i % 2 else payload) for i, to in enumerate(others)]
        if self.kind == "lying-view-change" and isinstance(message, m.ViewChange):
            lie = self._sign(
                m.ViewChange,
                new_view=message.new_view,
                committed_height=0,
                commit_certificate=None,
                prepared=None,
                block=b"",
            )
            return [(to, lie) for to in others]
        return honest

    def _other_block(self, pp: m.PrePrepare) -> bytes:
        block, digest = self.forge_block(pp.height, pp.block, self.kind == "equivocate")
        return self._sign(m.PrePrepare, view=pp.view, height=pp.height, digest=digest, block=block)
