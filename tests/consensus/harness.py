"""A hand-driven cluster for paper tests: messages go only where the test sends them."""

from __future__ import annotations

from collections import deque
from typing import Any

from lendchain import codec
from lendchain.consensus import messages as m
from lendchain.consensus.events import (
    Broadcast,
    Deliver,
    Executed,
    Fault,
    FetchBlocks,
    Persist,
    Receive,
    Send,
    SyncedBlock,
    Tick,
)
from lendchain.consensus.keys import KeySchedule
from lendchain.consensus.replica import Replica
from lendchain.crypto import SigningKey
from lendchain.genesis import ConsensusParams
from lendchain.sim.app import SimApp, Workload

CHAIN = "test-chain"
GENESIS = codec.sha256(b"test genesis")
PARAMS = ConsensusParams(checkpoint_interval=2, watermark_window=4, view_change_timeout_ms=100)


class Cluster:
    def __init__(
        self, n: int = 4, params: ConsensusParams = PARAMS, observers: int = 0, admitted: int = 0
    ) -> None:
        self.names = [f"r{i}" for i in range(n + observers + admitted)]
        self.keys = {name: SigningKey(codec.sha256(name.encode())) for name in self.names}
        # The first n vote from genesis; the observers are members that do not (they hear everything).
        self.members = [(name, self.keys[name].public_key) for name in self.names[:n]]
        self.observers = [(name, self.keys[name].public_key) for name in self.names[n : n + observers]]
        # Members the genesis does not name, admitted later (``member.admit``): known to every replica.
        self.admitted = [(name, self.keys[name].public_key) for name in self.names[n + observers :]]
        self.params = params
        self.workload = Workload()
        self.apps: dict[str, SimApp] = {}
        self.replicas: dict[str, Replica] = {}
        self.wals: dict[str, dict[bytes, bytes]] = {name: {} for name in self.names}
        self.chains: dict[str, list[Deliver]] = {name: [] for name in self.names}
        self.faults: dict[str, list[Fault]] = {name: [] for name in self.names}
        self.fetches: dict[str, list[FetchBlocks]] = {name: [] for name in self.names}
        self.outbox: deque[tuple[str, str, bytes]] = deque()  # (sender, to, payload)
        self.down: set[str] = set()
        self.now = 0
        self.rotations: list[tuple[str, int, bytes]] = []  # known to every replica from its start
        self.new_keys: dict[str, list[SigningKey]] = {}  # rotated keys each replica holds
        self.voting_changes: list[tuple[str, int, bool]] = []  # known to every replica from its start
        for name in self.names:
            self.restart(name)

    def restart(self, name: str, head_view: int = 0) -> Replica:
        app = SimApp(name, self.workload, GENESIS)
        for delivered in self.chains[name]:
            app.execute(delivered.block, delivered.digest)
        head = self.chains[name][-1].digest if self.chains[name] else GENESIS
        self.apps[name] = app
        schedule = self.schedule()
        self.replicas[name] = Replica(
            CHAIN,
            schedule,
            name,
            self.keys[name],
            app,
            self.params,
            len(self.chains[name]),
            head,
            list(self.wals[name].items()),
            other_signing_keys=self.new_keys.get(name, ()),
            head_view=head_view,
        )
        return self.replicas[name]

    def schedule(self) -> KeySchedule:
        """The member list every replica starts from: genesis roles, then the known changes."""
        schedule = KeySchedule(self.members, others=self.observers)
        for admitted in self.admitted:
            schedule.admit(*admitted)
        for rotation in self.rotations:
            schedule.add(*rotation)
        for change in self.voting_changes:
            schedule.set_voting(*change)
        return schedule

    def submit(self, count: int = 1) -> None:
        for _ in range(count):
            self.workload.submit(b"tx" + len(self.workload.txs).to_bytes(6, "big"))

    def step(self, name: str, event: Any) -> list[Any]:
        work, out = deque([event]), []
        while work:
            actions = self.replicas[name].step(work.popleft())
            out.extend(actions)
            for action in actions:
                if isinstance(action, Persist):
                    for key, value in action.entries:
                        if value:
                            self.wals[name][key] = value
                        else:
                            self.wals[name].pop(key, None)
                elif isinstance(action, Broadcast):
                    self.outbox.extend((name, to, action.payload) for to in self.names if to != name)
                elif isinstance(action, Send):
                    self.outbox.append((name, action.to, action.payload))
                elif isinstance(action, Deliver):
                    self.chains[name].append(action)
                    root = self.apps[name].execute(action.block, action.digest)
                    work.append(Executed(action.height, action.digest, root))
                elif isinstance(action, Fault):
                    self.faults[name].append(action)
                elif isinstance(action, FetchBlocks):
                    self.fetches[name].append(action)
        return out

    def tick(self, ms: int = 10, only: list[str] | None = None) -> None:
        self.now += ms
        for name in only or self.names:
            if name not in self.down:
                self.step(name, Tick(self.now))

    def deliver_all(self, drop: Any = None, limit: int = 100_000) -> None:
        """Deliver queued messages until none are left; ``drop(sender, to, message)`` filters."""
        for _ in range(limit):
            if not self.outbox:
                return
            sender, to, payload = self.outbox.popleft()
            if to in self.down or sender in self.down:
                continue
            if drop is not None and drop(sender, to, m.decode(payload, 1 << 30)):
                continue
            self.step(to, Receive(sender, payload))
        raise AssertionError("messages kept flowing after the limit")

    def run(self, ms: int, drop: Any = None, only: list[str] | None = None) -> None:
        for _ in range(ms // 10):
            self.tick(10, only)
            self.deliver_all(drop)

    def serve_fetches(self, name: str, source: str) -> None:
        """Answer ``name``'s block fetches from ``source``'s chain, as the driver would."""
        while self.fetches[name]:
            fetch = self.fetches[name].pop(0)
            for delivered in self.chains[source][fetch.from_height - 1 : fetch.to_height]:
                self.step(name, SyncedBlock(delivered.height, delivered.block, delivered.certificate))

    def heights(self) -> dict[str, int]:
        return {name: len(chain) for name, chain in self.chains.items()}

    def sign(self, signer: str, cls: type[m.Message], **fields: Any) -> bytes:
        return m.sign(self.keys[signer], CHAIN, cls, signer, **fields).encode()
