"""The deterministic simulator: n replicas, a virtual clock and a hostile network.

Everything random comes from one ``random.Random(seed)``, so a seed replays
exactly. The network delays, drops, duplicates and reorders messages and
partitions the members; honest replicas crash (also between persisting a vote
and sending it, and between being told to deliver a block and storing it) and
restart from their WAL and chain; up to f members are Byzantine. Observers
(members that do not vote) hear everything and follow, as do members the
genesis does not name (``admitted``, as the ledger's ``member.admit`` adds
them); ``voting_changes`` promote or demote members at heights, as the
ledger's ``member.voting`` does.

Safety is checked at every delivery, which is the only step that changes what
a replica has committed: heights contiguous, every certificate valid, and no
two honest replicas with different blocks at one height. Liveness is checked
after the faults heal: every honest replica commits new blocks within a bound.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lendchain import codec
from lendchain.consensus.certificate import CommitCertificate
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
from lendchain.consensus.quorum import faulty
from lendchain.consensus.replica import Replica
from lendchain.crypto import SigningKey, verify_raw
from lendchain.genesis import ConsensusParams
from lendchain.sim.app import SimApp, Workload
from lendchain.sim.byzantine import Byzantine

CHAIN_ID = "lendchain-sim"
GENESIS = codec.sha256(b"lendchain-sim genesis")
TICK_MS = 10


class SafetyViolation(AssertionError):
    pass


class LivenessFailure(AssertionError):
    pass


@dataclass
class SimConfig:
    n: int = 4
    fault_ms: int = 2000  # the hostile phase
    liveness_ms: int = 30000  # bound for progress after healing
    liveness_blocks: int = 3
    drop: float = 0.05
    duplicate: float = 0.03
    delay_ms: tuple[int, int] = (1, 40)
    crash_rate: float = 0.0005  # per honest node per tick
    crash_points: float = 0.002  # chance to crash right after a Persist / at a Deliver
    partition_rate: float = 0.001  # per tick
    byzantine: dict[str, str] = field(default_factory=dict)  # member -> kind
    observers: int = 0  # members o0, o1, … that do not vote at genesis
    admitted: int = 0  # members a0, a1, … the genesis does not name (``KeySchedule.admit``)
    voting_changes: tuple[tuple[str, int, bool], ...] = ()  # (member, effective height, votes)
    tx_interval_ms: int = 25
    params: ConsensusParams = field(
        default_factory=lambda: ConsensusParams(
            checkpoint_interval=4, watermark_window=12, view_change_timeout_ms=200
        )
    )


@dataclass
class Node:
    name: str
    key: SigningKey
    app: SimApp
    replica: Replica | None
    wal: dict[bytes, bytes] = field(default_factory=dict)
    chain: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)  # (digest, block, certificate)
    faults: list[Fault] = field(default_factory=list)
    byzantine: Byzantine | None = None


class Simulation:
    def __init__(self, seed: int, config: SimConfig) -> None:
        self.seed, self.config = seed, config
        self.rng = random.Random(seed)
        self.now = 0
        self._queue: list[tuple[int, int, str, Any]] = []
        self._seq = 0
        self.workload = Workload()
        self.names = [f"m{i}" for i in range(config.n)] + [f"o{i}" for i in range(config.observers)]
        self.names += [f"a{i}" for i in range(config.admitted)]
        self.keys = {name: SigningKey(codec.sha256(f"{seed}/{name}".encode())) for name in self.names}
        keys = [(name, self.keys[name].public_key) for name in self.names]
        split = config.n + config.observers
        self.members, self.observers, self.admitted = keys[: config.n], keys[config.n : split], keys[split:]
        schedule = self.schedule()
        heights = [0, *(height for _, height, _ in config.voting_changes)]
        # Faults stay within what every height's members tolerate.
        self.f = min(faulty(len(schedule.voters_at(height))) for height in heights)
        if len(config.byzantine) > self.f:
            raise ValueError(f"{len(config.byzantine)} Byzantine members, the members tolerate {self.f}")
        self.nodes: dict[str, Node] = {}
        for name in self.names:
            node = Node(name, self.keys[name], SimApp(name, self.workload, GENESIS), None)
            if name in config.byzantine:
                node.byzantine = Byzantine(config.byzantine[name], name, self.keys[name], CHAIN_ID, self.rng)
            self.nodes[name] = node
            self._start(node)
        self.committed: dict[int, bytes] = {}
        self.partition: set[str] | None = None
        self.crashed: set[str] = set()
        self.healed = False
        self.messages = 0
        self._verified: dict[tuple[bytes, bytes, str, str, str], bool] = {}
        self._certs_ok: set[bytes] = set()
        self._members = self.schedule()  # the checker's own copy

    # -- plumbing -----------------------------------------------------------------------

    def schedule(self) -> KeySchedule:
        """Who votes when, known to every replica from its start (each gets its own copy)."""
        schedule = KeySchedule(self.members, others=self.observers)
        for name, public_key in self.admitted:
            schedule.admit(name, public_key)
        for change in self.config.voting_changes:
            schedule.set_voting(*change)
        return schedule

    def _verify(self, public_key: bytes, signature: bytes, tag: str, chain_id: str, body: Any) -> bool:
        """Real Ed25519, memoised across replicas (each signature is checked by n - 1 of them)."""
        key = (public_key, signature, tag, chain_id, repr(body))  # repr of msgpack values is exact
        found = self._verified.get(key)
        if found is None:
            message = codec.signing_bytes(tag, chain_id, body)
            found = self._verified[key] = verify_raw(public_key, signature, message)
        return found

    def _start(self, node: Node) -> None:
        head_height = len(node.chain)
        head = node.chain[-1][0] if node.chain else GENESIS
        node.app = SimApp(node.name, self.workload, GENESIS)
        for digest, block, _ in node.chain:
            node.app.execute(block, digest)
        node.replica = Replica(
            CHAIN_ID,
            self.schedule(),
            node.name,
            node.key,
            node.app,
            self.config.params,
            head_height,
            head,
            list(node.wal.items()),
            verify=self._verify,
        )

    def _schedule(self, at: int, kind: str, data: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, data))

    def _honest(self) -> list[Node]:
        return [node for node in self.nodes.values() if node.byzantine is None]

    def describe(self) -> str:
        byz = ",".join(f"{k}={v}" for k, v in sorted(self.config.byzantine.items())) or "none"
        changes = "".join(
            f" {name}{'+' if votes else '-'}@{height}" for name, height, votes in self.config.voting_changes
        )
        return f"seed={self.seed} n={self.config.n} byzantine={byz}{changes}"

    # -- network ----------------------------------------------------------------------------

    def _connected(self, a: str, b: str) -> bool:
        return self.partition is None or ((a in self.partition) == (b in self.partition))

    def _send(self, sender: str, to: str, payload: bytes) -> None:
        self.messages += 1
        if not self._connected(sender, to):
            return
        if not self.healed and self.rng.random() < self.config.drop:
            return
        copies = 2 if not self.healed and self.rng.random() < self.config.duplicate else 1
        low, high = self.config.delay_ms
        for _ in range(copies):
            self._schedule(self.now + self.rng.randint(low, high), "msg", (to, Receive(sender, payload)))

    # -- stepping -------------------------------------------------------------------------------

    def _step(self, name: str, first: Any) -> None:
        node = self.nodes[name]
        work = deque([first])
        while work and node.replica is not None:
            actions = node.replica.step(work.popleft())
            for index, action in enumerate(actions):
                follow_up = self._perform(node, action)
                if follow_up == "crash":
                    self._crash(node)
                    return
                if follow_up is not None:
                    work.append(follow_up)
                if isinstance(action, Persist) and index + 1 < len(actions) and self._crash_point(node):
                    self._crash(node)  # crash between persisting a vote and sending it
                    return

    def _crash_point(self, node: Node) -> bool:
        return (
            not self.healed
            and node.byzantine is None
            and len(self.crashed) < self.f
            and self.rng.random() < self.config.crash_points
        )

    def _perform(self, node: Node, action: Any) -> Any:
        if isinstance(action, Persist):
            for key, value in action.entries:
                if value:
                    node.wal[key] = value
                else:
                    node.wal.pop(key, None)
        elif isinstance(action, Broadcast | Send):
            others = [action.to] if isinstance(action, Send) else [n for n in self.names if n != node.name]
            if node.byzantine is not None:
                for to, payload in node.byzantine.outgoing(action.payload, others):
                    self._send(node.name, to, payload)
            else:
                for to in others:
                    self._send(node.name, to, action.payload)
        elif isinstance(action, Deliver):
            if self._crash_point(node):
                return "crash"  # told to deliver, crashed before the block was stored
            return self._deliver(node, action)
        elif isinstance(action, FetchBlocks):
            self._serve_fetch(node.name, action)
        elif isinstance(action, Fault):
            node.faults.append(action)
        return None

    def _deliver(self, node: Node, action: Deliver) -> Executed:
        where = f"{self.describe()} t={self.now}ms {node.name} height {action.height}"
        if action.height != len(node.chain) + 1:
            raise SafetyViolation(f"{where}: delivered after height {len(node.chain)} (not contiguous)")
        cert = CommitCertificate.decode(action.certificate)
        if cert.height != action.height or cert.digest != action.digest:
            raise SafetyViolation(f"{where}: certificate is for another block")
        if action.certificate not in self._certs_ok:
            cert.verify(CHAIN_ID, self._members)
            self._certs_ok.add(action.certificate)
        if codec.sha256(action.block) != action.digest:
            raise SafetyViolation(f"{where}: block does not match its digest")
        if node.byzantine is None:
            known = self.committed.setdefault(action.height, action.digest)
            if known != action.digest:
                raise SafetyViolation(
                    f"{where}: {action.digest.hex()[:12]} conflicts with {known.hex()[:12]}"
                )
        node.chain.append((action.digest, action.block, action.certificate))
        root = node.app.execute(action.block, action.digest)
        return Executed(action.height, action.digest, root)

    def _serve_fetch(self, name: str, fetch: FetchBlocks) -> None:
        peers = [
            p for p in fetch.peers if p in self.nodes and p not in self.crashed and self._connected(name, p)
        ]
        if not peers:
            return
        peer = self.nodes[self.rng.choice(peers)]
        low, high = self.config.delay_ms
        at = self.now + self.rng.randint(low, high)
        for height in range(
            fetch.from_height, min(fetch.to_height, len(peer.chain), fetch.from_height + 63) + 1
        ):
            _digest, block, certificate = peer.chain[height - 1]
            self._schedule(at, "msg", (name, SyncedBlock(height, block, certificate)))

    def _crash(self, node: Node) -> None:
        node.replica = None
        self.crashed.add(node.name)
        self._schedule(self.now + self.rng.randint(50, 800), "restart", node.name)

    # -- running ------------------------------------------------------------------------------

    def run(self) -> Simulation:
        cfg = self.config
        for name in self.names:
            self._schedule(self.rng.randint(0, TICK_MS), "tick", name)
        self._schedule(0, "tx", None)
        self._schedule(cfg.fault_ms, "heal", None)
        deadline = cfg.fault_ms + cfg.liveness_ms
        target: int | None = None
        while self._queue:
            at, _, kind, data = heapq.heappop(self._queue)
            self.now = at
            if at > deadline:
                break
            if kind == "tick":
                self._on_tick(data)
            elif kind == "msg":
                to, event = data
                if self.nodes[to].replica is not None:
                    self._step(to, event)
            elif kind == "tx":
                self.workload.submit(b"tx" + self.rng.randbytes(6))
                self._schedule(at + cfg.tx_interval_ms, "tx", None)
            elif kind == "restart":
                if data in self.crashed:
                    self.crashed.discard(data)
                    self._start(self.nodes[data])
            elif kind == "heal":
                self.healed, self.partition = True, None
                for name in sorted(self.crashed):
                    self.crashed.discard(name)
                    self._start(self.nodes[name])
                target = max(len(n.chain) for n in self._honest()) + cfg.liveness_blocks
            if target is not None and all(len(n.chain) >= target for n in self._honest()):
                return self
        heights = {n.name: len(n.chain) for n in self._honest()}
        raise LivenessFailure(
            f"{self.describe()}: after healing at {cfg.fault_ms}ms, honest replicas did not all reach "
            f"height {target} within {cfg.liveness_ms}ms; heights {heights}, views "
            f"{ {n.name: n.replica.view for n in self._honest() if n.replica} }"
        )

    def _on_tick(self, name: str) -> None:
        cfg = self.config
        node = self.nodes[name]
        self._schedule(self.now + TICK_MS, "tick", name)
        if not self.healed:
            if node.byzantine is None and node.replica is not None and len(self.crashed) < self.f:
                if self.rng.random() < cfg.crash_rate:
                    self._crash(node)
                    return
            if name == self.names[0] and self.rng.random() < cfg.partition_rate * cfg.n:
                side = set(self.rng.sample(self.names, self.rng.randint(1, cfg.n - 1)))
                self.partition = None if self.partition else side
        if node.replica is not None:
            self._step(name, Tick(self.now))
