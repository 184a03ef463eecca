"""Frame benchmark: what one consensus frame costs between two members (issue 7).

Starts two members' ``Network`` layers in this process, on 127.0.0.1, over the
same py-libp2p stack a node runs (TCP, Noise, yamux, the member links and
their framing), and sends ``--frames`` consensus frames of ``--size`` bytes
from one to the other. With ``--in-flight 1`` (the default) each frame leaves
once the one before it arrived, as a round's votes do: every frame pays the
whole path alone. With more in flight the sender's link writes up to that many
frames at once (``batch_bytes``), so the path's cost is shared.

It prints, per frame and summed over both ends: CPU µs (this process's user
and system time), wall µs, and trio task steps (how many times a task was
resumed: each lock, checkpoint and wake-up of the path is one or more). Task
steps are the steadiest of the three on a shared machine; CPU moves by tens of
percent between runs there, so compare trees by alternated runs.

Not measured: Ed25519 checks and decoding of the frame's content (the
consensus core's work), and the receiver's inbound budget, which is raised out
of the way here (a member's budget would throttle this flood).

Usage: python benchmarks/frame_bench.py [--frames 3000] [--size 200] [--in-flight 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from dataclasses import dataclass, field

import trio
from node_probe import machine_identity, machine_line

from lendchain.crypto import SigningKey
from lendchain.genesis import Member
from lendchain.node.cluster import free_port_block
from lendchain.node.network import Network
from lendchain.node.network_link import NETWORK_OPTIONS

CHAIN_ID = "lendchain-frame-bench"
WARM_UP_FRAMES = 200
OPTIONS = {
    "ping_interval_s": 1.0,
    "dead_after_s": 30.0,
    "peer_frames_per_s": 1e9,  # out of the way: this measures the path, not the budget
    "peer_frames_burst": 1e9,
    "peer_bytes_per_s": 1e12,
    "peer_bytes_burst": 1e12,
}


class TaskSteps(trio.abc.Instrument):
    """Counts task resumptions while ``counting``."""

    def __init__(self) -> None:
        self.counting = False
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.counting:
            self.steps += 1


@dataclass
class Receiver:
    """The frames one member got, in order, and a wake-up for whoever waits on them."""

    frames: list[bytes] = field(default_factory=list)
    arrived: trio.Event = field(default_factory=trio.Event)

    def on_frame(self, sender: str, payload: bytes) -> None:
        self.frames.append(payload)
        self.arrived.set()
        self.arrived = trio.Event()

    async def wait_for(self, count: int, timeout_s: float) -> None:
        with trio.fail_after(timeout_s):
            while len(self.frames) < count:
                await self.arrived.wait()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_network(name: str, key: SigningKey, members: list[Member], on_frame) -> Network:
    async def no_request(sender: str, payload: bytes) -> bytes:
        return b""

    return Network(
        key=key,
        me=name,
        members=members,
        listen="",
        chain_id=CHAIN_ID,
        on_frame=on_frame,
        on_request=no_request,
        validate_gossip=lambda data: False,
        on_gossip=lambda data: None,
        log=logging.getLogger(f"frame_bench.{name}"),
        **OPTIONS,
    )


async def send_frames(sender: Network, receiver: Receiver, frames: list[bytes], in_flight: int) -> None:
    """Send ``frames`` to node1 keeping at most ``in_flight`` unarrived; each must arrive intact, in order."""
    start = len(receiver.frames)
    sent = 0
    while sent < len(frames):
        window = frames[sent : sent + in_flight]
        for frame in window:
            if not sender.send("node1", frame):
                raise RuntimeError(
                    "node1's link refused a frame: down, its queue full or the frame over max_frame_size"
                )
        sent += len(window)
        await receiver.wait_for(start + sent, timeout_s=60)
    if receiver.frames[start:] != frames:
        raise RuntimeError("frames arrived changed or out of order")


async def measure(frames: int, size: int, in_flight: int, steps: TaskSteps) -> dict:
    keys = {name: SigningKey.generate() for name in ("node0", "node1")}
    base = free_port_block(2)
    members = [
        Member(name, keys[name].public_key, f"/ip4/127.0.0.1/tcp/{base + i + 1}", ("lender",), voting=True)
        for i, name in enumerate(keys)
    ]
    got = {name: Receiver() for name in keys}
    nets = {name: make_network(name, keys[name], members, got[name].on_frame) for name in keys}
    async with trio.open_nursery() as nursery:
        for net in nets.values():
            await nursery.start(net.run)
        with trio.fail_after(30):
            while not all(net.connected_members() for net in nets.values()):
                await trio.sleep(0.05)

        # Each frame's first bytes count it, so a frame lost or reordered is caught.
        def batch(count: int, tag: bytes) -> list[bytes]:
            return [(tag + b"%09d" % i).ljust(size, b".") for i in range(count)]

        await send_frames(nets["node0"], got["node1"], batch(WARM_UP_FRAMES, b"w"), in_flight)
        payloads = batch(frames, b"f")
        steps.counting, steps.steps = True, 0
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        await send_frames(nets["node0"], got["node1"], payloads, in_flight)
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        steps.counting = False
        nursery.cancel_scope.cancel()
    return {
        "machine": machine_identity(),
        "frames": frames,
        "size": size,
        "in_flight": in_flight,
        "cpu_us_per_frame": round(cpu / frames * 1e6, 1),
        "wall_us_per_frame": round(wall / frames * 1e6, 1),
        "task_steps_per_frame": round(steps.steps / frames, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", type=int, default=200, help="payload bytes per frame (a vote is ~200)")
    parser.add_argument("--in-flight", type=int, default=1, help="frames sent before waiting for them")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.in_flight < 1 or args.size < 10:
        parser.error("--frames and --in-flight must be at least 1, --size at least 10")
    if args.size > NETWORK_OPTIONS["max_frame_size"] or args.in_flight > NETWORK_OPTIONS["queue_frames"]:
        parser.error(
            f"--size is at most the frame limit ({NETWORK_OPTIONS['max_frame_size']} bytes) and "
            f"--in-flight at most a link's queue ({NETWORK_OPTIONS['queue_frames']} frames)"
        )
    logging.basicConfig(level=logging.WARNING)
    steps = TaskSteps()
    result = trio.run(measure, args.frames, args.size, args.in_flight, steps, instruments=[steps])
    if args.json:
        print(json.dumps(result))
    else:
        print(machine_line(result["machine"]))
        print(
            f"{result['frames']} frames of {result['size']} bytes, {result['in_flight']} in flight: "
            f"{result['cpu_us_per_frame']} µs CPU, {result['wall_us_per_frame']} µs wall, "
            f"{result['task_steps_per_frame']} task steps per frame"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
