"""A Byzantine member on the real network, for tests only.

A node started with ``LENDCHAIN_FAULTS_FILE`` whose file says
``"byzantine": "<kind>"`` keeps running its honest replica — so it always
knows the current view and height — and passes every consensus frame it sends
through ``ByzantineSender``, which lies with the member's real key:

- the simulator's behaviours (``lendchain.sim.byzantine``): ``silent``
  (withholds every vote and proposal), ``garbage`` (adds undecodable frames),
  ``equivocate`` (as primary, sends half the members a different valid block),
  ``invalid-block`` (as primary, proposes a block whose state root is wrong),
  ``conflicting-votes`` (PREPARE/COMMIT for a made-up digest to every other
  member), ``replay`` (re-sends old messages), ``lying-view-change`` (claims
  nothing committed or prepared);
- ``oversized``: adds a frame larger than any receiver accepts;
- ``flood``: besides its frames, replays ``FLOOD_BURST`` old ones to every
  member each time the daemon calls ``flood_tick`` (every 10 ms), as fast as
  the links take them.

Changing the file switches behaviour at run time; an empty kind is honest.
Receivers must never fork, must keep committing, and must name this member
in their metrics and logs.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from lendchain.crypto import SigningKey
from lendchain.ledger.block import Block
from lendchain.node.app import NodeApp
from lendchain.sim.byzantine import KINDS as SIM_KINDS
from lendchain.sim.byzantine import Byzantine

KINDS = (*SIM_KINDS, "oversized", "flood")
FLOOD_BURST = 50
REPLAY_MEMORY = 256


def ledger_forger(app: NodeApp) -> Callable[[int, bytes, bool], tuple[bytes, bytes]]:
    """Forges ledger blocks: a valid empty block one ms later, or one with a wrong state root."""

    def forge(height: int, raw: bytes, valid: bool) -> tuple[bytes, bytes]:
        block = Block.decode(raw)
        if valid:
            other = app.empty_block(height, block.header.prev_hash, block.header.timestamp_ms + 1)
            return other, app.digest(other)
        bad = Block(dataclasses.replace(block.header, state_root=bytes(32)), block.txs)
        return bad.encode(), bad.hash()

    return forge


class ByzantineSender:
    """Turns the honest replica's sends into a Byzantine member's sends."""

    def __init__(
        self,
        name: str,
        key: SigningKey,
        chain_id: str,
        app: NodeApp,
        send: Callable[[str, bytes], bool],
        send_unchecked: Callable[[str, bytes], bool],
        max_frame_size: int,
    ) -> None:
        self.name, self.key, self.chain_id, self.app = name, key, chain_id, app
        self._send, self._send_unchecked = send, send_unchecked
        self.max_frame_size = max_frame_size
        self.rng = random.Random()
        self.kind = ""
        self._filter: Byzantine | None = None
        self._recent: list[bytes] = []

    def set_kind(self, kind: str) -> None:
        if kind and kind not in KINDS:
            raise ValueError(f"unknown Byzantine kind {kind!r}; choose one of {KINDS}")
        self.kind = kind
        self._filter = None
        if kind in SIM_KINDS:
            self._filter = Byzantine(
                kind, self.name, self.key, self.chain_id, self.rng, forge_block=ledger_forger(self.app)
            )

    def send(self, to: str, payload: bytes) -> None:
        self.broadcast(payload, [to])

    def broadcast(self, payload: bytes, others: list[str]) -> None:
        if not others:
            return
        self._recent.append(payload)
        del self._recent[:-REPLAY_MEMORY]
        if self._filter is not None:
            frames = self._filter.outgoing(payload, others)
        else:
            frames = [(to, payload) for to in others]
        if self.kind == "oversized":
            frames.append((self.rng.choice(others), bytes(self.max_frame_size + 1)))
        self._emit(frames)

    def flood_tick(self, others: list[str]) -> None:
        if self.kind == "flood" and self._recent:
            self._emit([(to, self.rng.choice(self._recent)) for to in others for _ in range(FLOOD_BURST)])

    def _emit(self, frames: list[tuple[str, bytes]]) -> None:
        for to, frame in frames:
            if len(frame) > self.max_frame_size:
                self._send_unchecked(to, frame)
            else:
                self._send(to, frame)
