"""Test-only fault injection for real node processes.

A multi-process test cannot reach inside a node, so a node started with
``LENDCHAIN_FAULTS_FILE=/path/faults.json`` re-reads that file every
``POLL_S`` seconds and applies what it says to its own traffic:

- ``"isolate": true`` — drop every consensus frame, sync request and gossip
  message in and out: the node is partitioned from everyone (the libp2p
  connections stay up, as behind a black-holing firewall).
- ``"drop_from": ["bank2", ...]`` — drop consensus frames and sync traffic
  from and to these members only.
- ``"gossip_drop": 0.0..1.0`` — drop this share of gossip messages, in and out.
- ``"delay_ms": 200`` — hold every consensus frame this node sends that long.
- ``"clock_skew_ms": 1500`` — this node's clock runs that far ahead (or
  behind, if negative).
- ``"censor": ["did:key:…", ...]`` — as primary, this member leaves these
  senders' transactions out of its proposals and commits everyone else's.
- ``"byzantine": "equivocate"`` — this member lies on every consensus
  frame it sends, in the way named (``lendchain.node.byzantine``).
- ``"store_fault": "disk_full"`` — every block write fails as LevelDB fails on
  a full disk (nothing written; "No space left on device").
  ``"store_fault": "fsync_error"`` — the block's batch reaches the OS unsynced,
  then the write fails as on a failed fsync ("Input/output error"), so after
  a restart the block may or may not be there. Either way the store refuses
  all further writes and the node stops (see store.py).

Without the variable nothing here runs and nothing is dropped. The docker
tests cut real links with ``docker network disconnect`` instead.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import trio

from lendchain.node.byzantine import KINDS as BYZANTINE_KINDS
from lendchain.node.driver import set_clock_skew

ENV = "LENDCHAIN_FAULTS_FILE"
POLL_S = 0.2
STORE_FAULTS = ("disk_full", "fsync_error")


@dataclass
class Faults:
    path: Path | None = None
    isolate: bool = False
    drop_from: frozenset[str] = field(default_factory=frozenset)
    gossip_drop: float = 0.0
    delay_ms: int = 0
    clock_skew_ms: int = 0
    byzantine: str = ""  # a kind from lendchain.node.byzantine.KINDS: this member lies
    censor: set[str] = field(default_factory=set)  # updated in place: the node's app holds it
    store_fault: str | None = None
    dropped: int = 0
    _mtime: float = 0.0
    _random: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_env(cls) -> Faults:
        value = os.environ.get(ENV)
        return cls(Path(value)) if value else cls()

    @property
    def active(self) -> bool:
        return self.path is not None

    def cuts(self, member: str) -> bool:
        """Whether traffic to or from ``member`` is dropped right now."""
        if self.isolate or member in self.drop_from:
            self.dropped += 1
            return True
        return False

    def drops_gossip(self) -> bool:
        if self.isolate or (self.gossip_drop and self._random.random() < self.gossip_drop):
            self.dropped += 1
            return True
        return False

    def block_write_fault(self) -> str | None:
        """The store's hook: which failure the next block write meets (None: it succeeds)."""
        return self.store_fault

    def reload(self, log: logging.Logger) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = -1.0
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            doc = json.loads(self.path.read_text()) if mtime >= 0 else {}
        except (OSError, ValueError) as e:
            log.warning("fault file %s unreadable (%s); keeping the previous faults", self.path, e)
            return
        self.isolate = bool(doc.get("isolate", False))
        self.drop_from = frozenset(doc.get("drop_from", []))
        self.gossip_drop = float(doc.get("gossip_drop", 0.0))
        self.censor.clear()
        self.censor.update(doc.get("censor", []))
        store_fault = doc.get("store_fault")
        if store_fault is not None and store_fault not in STORE_FAULTS:
            log.warning("fault file %s: unknown store_fault %r; ignoring it", self.path, store_fault)
            store_fault = None
        self.store_fault = store_fault
        self.delay_ms = max(0, int(doc.get("delay_ms", 0)))
        self.clock_skew_ms = int(doc.get("clock_skew_ms", 0))
        set_clock_skew(self.clock_skew_ms)
        byzantine = str(doc.get("byzantine", ""))
        if byzantine and byzantine not in BYZANTINE_KINDS:
            log.warning("fault file %s: unknown byzantine kind %r; staying honest", self.path, byzantine)
            byzantine = ""
        self.byzantine = byzantine
        log.warning(
            "fault injection now: isolate=%s drop_from=%s gossip_drop=%.2f delay_ms=%d clock_skew_ms=%d "
            "store_fault=%s byzantine=%s censor=%s",
            self.isolate,
            sorted(self.drop_from),
            self.gossip_drop,
            self.delay_ms,
            self.clock_skew_ms,
            self.store_fault,
            self.byzantine or "no",
            sorted(self.censor),
        )

    async def watch(self, log: logging.Logger) -> None:
        while True:
            self.reload(log)
            await trio.sleep(POLL_S)
