"""A few Network instances in one trio run, on free 127.0.0.1 ports."""

from __future__ import annotations

import logging
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from lendchain.crypto import SigningKey
from lendchain.genesis import Member
from lendchain.node.network import Network

CHAIN_ID = "lendchain-test"
# Tests use short liveness timers so failures show up in seconds.
FAST = {
    "ping_interval_s": 0.2,
    "dead_after_s": 2.0,
    "dial_timeout_s": 2.0,
    "redial_max_s": 0.5,
    "gossip_heartbeat_s": 0.1,
}


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def make_members(count: int, observers: int = 0) -> tuple[list[Member], dict[str, SigningKey]]:
    ports = free_ports(count + observers)
    members, keys = [], {}
    for i, port in enumerate(ports):
        name = f"node{i}" if i < count else f"observer{i - count}"
        key = SigningKey.generate()
        keys[name] = key
        members.append(
            Member(name, key.public_key, f"/ip4/127.0.0.1/tcp/{port}", ("lender",), voting=i < count)
        )
    return members, keys


class Peer:
    """One Network plus everything it delivered, for assertions."""

    def __init__(
        self,
        name: str,
        key: SigningKey,
        members: list[Member],
        validate: Callable[[bytes], bool] = lambda data: True,
        on_request: Callable[[str, bytes], Awaitable[bytes]] | None = None,
        chain_id: str = CHAIN_ID,
        **options,
    ) -> None:
        self.name = name
        self.frames: dict[str, list[bytes]] = defaultdict(list)
        self.gossip: list[bytes] = []
        self.changed = trio.Event()

        async def echo(sender: str, payload: bytes) -> bytes:
            return name.encode() + b" answers " + sender.encode() + b": " + payload

        self.network = Network(
            key=key,
            me=name,
            members=members,
            listen="",
            chain_id=chain_id,
            on_frame=self._on_frame,
            on_request=on_request or echo,
            validate_gossip=validate,
            on_gossip=self._on_gossip,
            log=logging.getLogger(f"test.{name}"),
            **{**FAST, **options},
        )
        self.cancel_scope: trio.CancelScope | None = None
        self.stopped = trio.Event()

    def _on_frame(self, sender: str, payload: bytes) -> None:
        self.frames[sender].append(payload)
        self._kick()

    def _on_gossip(self, data: bytes) -> None:
        self.gossip.append(data)
        self._kick()

    def _kick(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def _run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            self.cancel_scope = scope
            try:
                await self.network.run(task_status=task_status)
            finally:
                self.stopped.set()

    async def start(self, nursery: trio.Nursery) -> None:
        self.stopped = trio.Event()
        await nursery.start(self._run)

    async def stop(self) -> None:
        assert self.cancel_scope is not None
        self.cancel_scope.cancel()
        await self.stopped.wait()


def logged(caplog: pytest.LogCaptureFixture, *texts: str) -> bool:
    """Whether a captured log line holds one of ``texts``."""
    return any(text in r.getMessage() for r in caplog.records for text in texts)


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` with short sleeps; fail naming ``what`` after ``timeout_s``."""
    with trio.move_on_after(timeout_s):
        while not condition():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def sender_and_receiver(**receiver_options) -> list[Peer]:
    """Two members: node0 with default options, node1 with ``receiver_options``."""
    members, keys = make_members(2)
    return [Peer("node0", keys["node0"], members), Peer("node1", keys["node1"], members, **receiver_options)]


async def wait_full_mesh(peers: list[Peer], timeout_s: float = 15.0) -> None:
    def meshed() -> bool:
        return all(p.network.connected_members() == {q.name for q in peers if q is not p} for p in peers)

    await wait_for(meshed, "every node to connect to every other", timeout_s)


@asynccontextmanager
async def running(peers: list[Peer]):
    async with trio.open_nursery() as nursery:
        for peer in peers:
            await peer.start(nursery)
        try:
            yield nursery
        finally:
            nursery.cancel_scope.cancel()
