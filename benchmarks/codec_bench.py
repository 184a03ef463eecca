"""Micro-benchmark of ``codec.unpack``: µs per call on the bytes a node decodes most.

Inputs, all from the signed loan workload of ``loan_workload.py``:

  tx          every tx of 100 loan lifecycles (1,100 txs, the workload's mix of
              kinds), unpacked one by one; µs per tx
  block       a block's wire form: header and 1,000 tx byte strings
  tx values   one array of 1,000 decoded txs (1,000 nested maps); µs per call

Each figure is the median of ``--repeat`` timings. ``decode only`` is
``msgpack.unpackb`` with unpack's options and no canonical check: the floor
any check sits on. To compare with another version of lendchain, put its
tree first on the path: ``PYTHONPATH=/tmp/other python benchmarks/codec_bench.py``.

Usage: python benchmarks/codec_bench.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import msgpack
from loan_workload import loan_lifecycles

from lendchain import codec
from lendchain.crypto import SigningKey
from lendchain.ledger.block import Block, BlockHeader

CHAIN_ID = "lendchain-bench"
CREATED_MS = 1_700_000_000_000


def workload_txs() -> list[bytes]:
    """Wire bytes of 100 signed loan lifecycles (1,100 txs)."""
    lender = SigningKey(b"\x01" * 32)
    txs = loan_lifecycles(CHAIN_ID, [lender], [lender], 100, cohort=100, created_ms=CREATED_MS)
    return [tx.encode() for tx in txs]


def block_bytes(txs: list[bytes]) -> bytes:
    header = BlockHeader(CHAIN_ID, 7, b"\x11" * 32, CREATED_MS, "bank1", len(txs), *[b"\x22" * 32] * 3)
    return Block(header, txs).encode()


def decode_only(data: bytes) -> object:
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, ext_hook=codec._refuse_ext)


def unpack_each(unpack: Callable[[bytes], object], inputs: list[bytes]) -> None:
    """``unpack`` each input, keeping no result alive (a node drops most of what it decodes)."""
    for data in inputs:
        unpack(data)


def median_us(run: Callable[[], object], calls: int, repeat: int) -> float:
    """Median over ``repeat`` timings of ``run``, in µs per one of its ``calls`` unpacks."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        timings.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    txs = workload_txs()
    block = block_bytes(txs[:1000])
    values = codec.pack([codec.unpack(tx) for tx in txs[:1000]])
    rounds = 20  # passes over the 1,100 txs per timing
    inputs = [
        ("tx", lambda fn: unpack_each(fn, txs * rounds), rounds * len(txs)),
        ("block", lambda fn: unpack_each(fn, [block] * 200), 200),
        ("tx values", lambda fn: unpack_each(fn, [values] * 10), 10),
    ]
    print(f"codec: {codec.__file__}")
    print(
        f"sizes: tx {statistics.mean(map(len, txs)):.0f} B mean, block {len(block):,} B, tx values {len(values):,} B"
    )
    print(f"{'input':<10} {'unpack µs':>11} {'decode only µs':>15} {'check µs':>9}")
    for name, loop, calls in inputs:
        loop(codec.unpack)  # warm up
        unpack_us = median_us(lambda loop=loop: loop(codec.unpack), calls, args.repeat)
        decode_us = median_us(lambda loop=loop: loop(decode_only), calls, args.repeat)
        print(f"{name:<10} {unpack_us:>11.2f} {decode_us:>15.2f} {unpack_us - decode_us:>9.2f}")


if __name__ == "__main__":
    main()
