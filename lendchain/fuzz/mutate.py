"""Byte-level mutations of valid encodings."""

from __future__ import annotations

import random

_INTERESTING = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xc0",
    b"\xc1",
    b"\xd9\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xcf" + b"\xff" * 8,
    b"\x90",
    b"\x80",
]


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            i = min(pos, len(buf) - 1)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 2:
            del buf[pos:]
        elif op == 3:
            buf[pos:pos] = rng.choice(_INTERESTING)
        elif op == 4 and buf:
            end = min(len(buf), pos + rng.randrange(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randrange(1, 4)
        elif op == 5:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            buf = buf[:pos] + bytearray(other[cut:])
        elif op == 6:
            buf[pos:pos] = rng.randbytes(rng.randrange(1, 32))
        elif op == 7 and len(buf) > 1:
            end = min(len(buf), pos + rng.randrange(1, 16))
            del buf[pos:end]
    return bytes(buf)
