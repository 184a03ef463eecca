"""Frame codec of the direct streams, against a scripted byte stream."""

from __future__ import annotations

import pytest
import trio

from lendchain import codec
from lendchain.node.network_wire import (
    FrameKind,
    FrameReader,
    FrameTooLarge,
    WireError,
    decode_hello,
    encode_frame,
    encode_hello,
)


class ScriptedStream:
    """Returns the given chunks one per read, then end of stream."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self, n: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.chunks.pop(0) if self.chunks else b""


def read_all(stream: ScriptedStream, max_frame: int = 1024) -> list[tuple[FrameKind, bytes]]:
    async def main():
        reader = FrameReader(stream, max_frame)
        frames = []
        while True:
            try:
                frames.append(await reader.read_frame())
            except EOFError:
                return frames

    return trio.run(main)


def test_frames_split_and_coalesced_across_reads():
    wire = b"".join(encode_frame(FrameKind.DATA, bytes([i]) * i) for i in range(50)) + encode_frame(
        FrameKind.PING
    )
    # One byte per read, then odd-sized chunks, then all at once: same frames every time.
    expected = [(FrameKind.DATA, bytes([i]) * i) for i in range(50)] + [(FrameKind.PING, b"")]
    assert read_all(ScriptedStream(*[wire[i : i + 1] for i in range(len(wire))])) == expected
    assert read_all(ScriptedStream(*[wire[i : i + 7] for i in range(0, len(wire), 7)])) == expected
    assert read_all(ScriptedStream(wire)) == expected


def test_frame_at_the_limit_passes_and_one_byte_more_is_refused():
    assert read_all(ScriptedStream(encode_frame(FrameKind.DATA, b"x" * 1024))) == [
        (FrameKind.DATA, b"x" * 1024)
    ]
    with pytest.raises(FrameTooLarge, match="1025 bytes exceeds the limit of 1024"):
        read_all(ScriptedStream(encode_frame(FrameKind.DATA, b"x" * 1025)))


def test_oversize_header_is_refused_before_the_body_arrives():
    # A 4 GiB length must not make the reader wait for (or buffer) 4 GiB.
    with pytest.raises(FrameTooLarge):
        read_all(ScriptedStream(b"\xff\xff\xff\xff\x02"))


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x00\x00\x00\x00\x02", "length 0"),
        (b"\x00\x00\x00\x02\x63!", "unknown frame kind 99"),
        (b"\x00\x00\x00\x01\x00", "unknown frame kind 0"),
    ],
)
def test_garbage_is_a_wire_error(wire, message):
    with pytest.raises(WireError, match=message):
        read_all(ScriptedStream(wire))


def test_end_of_stream_inside_a_frame_is_eof_not_a_short_frame():
    async def main():
        reader = FrameReader(ScriptedStream(encode_frame(FrameKind.DATA, b"abcdef")[:-2]))
        with pytest.raises(EOFError):
            await reader.read_frame()

    trio.run(main)


def test_hello_round_trip_and_bad_hellos():
    frame = encode_hello("chain-a", "node1")
    [(kind, payload)] = read_all(ScriptedStream(frame))
    assert kind is FrameKind.HELLO
    assert decode_hello(payload) == ("chain-a", "node1")
    with pytest.raises(WireError, match="undecodable hello"):
        decode_hello(b"\xc1")
    with pytest.raises(WireError, match="chain_id and name"):
        decode_hello(codec.pack({"chain_id": "c"}))
    with pytest.raises(WireError, match="must be strings"):
        decode_hello(codec.pack({"chain_id": "c", "name": 7}))
