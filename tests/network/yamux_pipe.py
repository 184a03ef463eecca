"""Two yamux connections facing each other over in-memory byte pipes (no sockets, no security)."""

from __future__ import annotations

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.stream_muxer.yamux.yamux import Yamux


class OneWay:
    """A byte pipe holding at most ``capacity`` bytes: a sender waits while it is full.

    ``carried`` counts the bytes read out of it; with ``keep=True`` they are also
    kept in ``log``, to be parsed as the frames one side wrote.
    """

    def __init__(self, capacity: int, keep: bool = False) -> None:
        self.buffer = bytearray()
        self.capacity = capacity
        self.lot = trio.lowlevel.ParkingLot()
        self.carried = 0
        self.log = bytearray() if keep else None

    async def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            while len(self.buffer) >= self.capacity:
                await self.lot.park()
            room = self.capacity - len(self.buffer)
            self.buffer += view[:room]
            view = view[room:]
            self.lot.unpark_all()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int) -> bytes:
        while not self.buffer:
            await self.lot.park()
        out = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        self.carried += len(out)
        if self.log is not None:
            self.log += out
        self.lot.unpark_all()
        await trio.lowlevel.checkpoint()
        return out


class PipeEnd:
    """The secured-connection face yamux reads and writes."""

    def __init__(self, inbound: OneWay, outbound: OneWay, is_initiator: bool) -> None:
        self.inbound, self.outbound, self.is_initiator = inbound, outbound, is_initiator

    async def read(self, n: int | None = None) -> bytes:
        return await self.inbound.receive_some(n or 65536)

    async def write(self, data: bytes) -> None:
        await self.outbound.send_all(data)

    async def close(self) -> None:
        pass

    def get_remote_address(self) -> None:
        return None


def peer_id() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


def pair(muxer: type[Yamux], capacity: int, keep: bool = False) -> tuple[Yamux, Yamux]:
    """The initiator and the responder; each one's ``secured_conn.outbound`` is what it wrote."""
    there, back = OneWay(capacity, keep), OneWay(capacity, keep)
    return muxer(PipeEnd(back, there, True), peer_id()), muxer(PipeEnd(there, back, False), peer_id())
