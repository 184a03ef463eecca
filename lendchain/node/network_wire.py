"""Wire format of lendchain's direct streams: length-prefixed, typed frames.

A frame is a 4-byte big-endian length ``L``, one kind byte, then ``L - 1``
payload bytes. Kinds: HELLO (first frame of a consensus stream: chain id and
sender name, canonical msgpack), DATA (an opaque consensus frame), PING (an
idle-link heartbeat), REQUEST / RESPONSE / ERROR (one exchange per request
stream). A length above the receiver's limit or an unknown kind is a protocol
violation: the receiver closes the stream rather than guess.
"""

from __future__ import annotations

import enum
import struct
from typing import Protocol

from lendchain import codec

HEADER = struct.Struct(">IB")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
_READ_CHUNK = 256 * 1024


class FrameKind(enum.IntEnum):
    HELLO = 1
    DATA = 2
    PING = 3
    REQUEST = 4
    RESPONSE = 5
    ERROR = 6


class WireError(Exception):
    """A peer broke the framing protocol (garbage, unknown kind, oversize, bad hello)."""


class FrameTooLarge(WireError):
    pass


class _Readable(Protocol):
    async def read(self, n: int | None = None) -> bytes: ...


def encode_frame(kind: FrameKind, payload: bytes = b"") -> bytes:
    return HEADER.pack(len(payload) + 1, kind) + payload


class FrameReader:
    """Buffered reader of frames from one stream (one ``read`` call yields many frames)."""

    def __init__(self, stream: _Readable, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._stream = stream
        self._max_frame = max_frame
        self._buffer = bytearray()

    async def _fill(self, needed: int) -> None:
        while len(self._buffer) < needed:
            chunk = await self._stream.read(max(_READ_CHUNK, needed - len(self._buffer)))
            if not chunk:
                raise EOFError("stream closed by the peer")
            self._buffer += chunk

    async def read_frame(self) -> tuple[FrameKind, bytes]:
        """The next frame; raises WireError on a protocol violation, EOFError at end of stream."""
        await self._fill(HEADER.size)
        length, kind_byte = HEADER.unpack_from(self._buffer)
        if length == 0:
            raise WireError("frame with length 0 (a frame holds at least its kind byte)")
        if length - 1 > self._max_frame:
            raise FrameTooLarge(f"frame of {length - 1} bytes exceeds the limit of {self._max_frame}")
        try:
            kind = FrameKind(kind_byte)
        except ValueError:
            raise WireError(f"unknown frame kind {kind_byte}") from None
        end = HEADER.size - 1 + length
        await self._fill(end)
        payload = bytes(self._buffer[HEADER.size : end])
        del self._buffer[:end]
        return kind, payload


def encode_hello(chain_id: str, name: str) -> bytes:
    return encode_frame(FrameKind.HELLO, codec.pack({"chain_id": chain_id, "name": name}))


def decode_hello(payload: bytes) -> tuple[str, str]:
    """(chain_id, name) from a HELLO payload; WireError when it is not one."""
    try:
        hello = codec.unpack(payload, max_size=4096)
    except codec.CodecError as e:
        raise WireError(f"undecodable hello: {e}") from None
    if not isinstance(hello, dict) or set(hello) != {"chain_id", "name"}:
        raise WireError(f"hello must be a map with chain_id and name, got {hello!r:.80}")
    chain_id, name = hello["chain_id"], hello["name"]
    if not isinstance(chain_id, str) or not isinstance(name, str):
        raise WireError("hello chain_id and name must be strings")
    return chain_id, name
