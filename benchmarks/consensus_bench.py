"""PBFT core throughput in-process, with zero network cost.

Usage: ``python benchmarks/consensus_bench.py [--blocks 100] [--n 4,7,10,13,16]``

Every member runs a real ``Replica`` (real Ed25519 signing and verification,
canonical msgpack); messages go through a FIFO queue with no delay and no
loss. The block app is the simulator's trivial one (no transaction
verification), so the numbers are the consensus cost per block: blocks/s,
consensus messages received per block, and CPU ms per block for the whole
cluster (divide by n for one node).
"""

from __future__ import annotations

import argparse
import time
from collections import deque

from lendchain import codec
from lendchain.consensus.events import Broadcast, Deliver, Executed, Receive, Send, Tick
from lendchain.consensus.replica import Replica
from lendchain.crypto import SigningKey
from lendchain.genesis import ConsensusParams
from lendchain.sim.app import SimApp, Workload

GENESIS = codec.sha256(b"bench genesis")


def run(n: int, blocks: int) -> dict[str, float]:
    names = [f"m{i}" for i in range(n)]
    keys = {name: SigningKey(codec.sha256(name.encode())) for name in names}
    members = [(name, keys[name].public_key) for name in names]
    workload = Workload()
    for i in range(blocks * 4):
        workload.submit(b"tx" + i.to_bytes(6, "big"))
    params = ConsensusParams()
    apps = {name: SimApp(name, workload, GENESIS) for name in names}
    replicas = {
        name: Replica("bench", members, name, keys[name], apps[name], params, 0, GENESIS) for name in names
    }
    queue: deque[tuple[str, object]] = deque()
    received = 0
    now = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while replicas[names[-1]].committed_height < blocks:
        now += 1
        for name in names:
            queue.append((name, Tick(now)))
        while queue:
            name, event = queue.popleft()
            if isinstance(event, Receive):
                received += 1
            for action in replicas[name].step(event):
                if isinstance(action, Broadcast):
                    queue.extend((to, Receive(name, action.payload)) for to in names if to != name)
                elif isinstance(action, Send):
                    queue.append((action.to, Receive(name, action.payload)))
                elif isinstance(action, Deliver):
                    root = apps[name].execute(action.block, action.digest)
                    queue.append((name, Executed(action.height, action.digest, root)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "n": n,
        "blocks_per_s": blocks / wall,
        "messages_per_block": received / blocks,
        "cpu_ms_per_block": 1000 * cpu / blocks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--n", default="4,7,10,13,16")
    args = parser.parse_args()
    print("| n | blocks/s | messages/block | CPU ms/block (cluster) | CPU ms/block (one node) |")
    print("|---|---|---|---|---|")
    for n in (int(x) for x in args.n.split(",")):
        r = run(n, args.blocks)
        print(
            f"| {n} | {r['blocks_per_s']:.1f} | {r['messages_per_block']:.1f} | "
            f"{r['cpu_ms_per_block']:.2f} | {r['cpu_ms_per_block'] / n:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
