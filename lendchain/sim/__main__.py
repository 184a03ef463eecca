"""Run many simulation seeds: ``python -m lendchain.sim --seeds 20000 [--start 0] [--n 4,7]``.

Each seed picks its n and its Byzantine mix from the seed itself, so a
failing seed printed here replays exactly with ``--start SEED --seeds 1``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from lendchain.consensus.quorum import faulty
from lendchain.sim.byzantine import KINDS
from lendchain.sim.cluster import LivenessFailure, SafetyViolation, SimConfig, Simulation


def config_for_seed(seed: int, sizes: tuple[int, ...] = (4, 7)) -> SimConfig:
    """The fault mix of one seed: n, how many Byzantine members (0..f) and of which kinds.

    One seed in three also changes who votes: observer o0 is promoted at a
    height, then a genesis member is demoted a few heights later (n, n + 1, n).
    In half of those the promoted member is a0, one the genesis does not name
    (admitted later, ``member.admit``), last in member order.
    """
    rng = random.Random(f"mix/{seed}")
    n = sizes[seed % len(sizes)]
    count = rng.randint(0, faulty(n))
    names = rng.sample([f"m{i}" for i in range(n)], count)
    byzantine = {name: rng.choice(KINDS) for name in names}
    changes = random.Random(f"membership/{seed}")
    if changes.random() >= 1 / 3:
        return SimConfig(n=n, byzantine=byzantine)
    joins = changes.randint(2, 8)
    leaves = joins + changes.randint(1, 6)
    demoted = f"m{changes.randrange(n)}"
    if random.Random(f"admitted/{seed}").random() < 1 / 2:
        voting_changes = (("a0", joins, True), (demoted, leaves, False))
        return SimConfig(n=n, byzantine=byzantine, admitted=1, voting_changes=voting_changes)
    voting_changes = (("o0", joins, True), (demoted, leaves, False))
    return SimConfig(n=n, byzantine=byzantine, observers=1, voting_changes=voting_changes)


def run_seed(seed: int, sizes: tuple[int, ...] = (4, 7)) -> Simulation:
    return Simulation(seed, config_for_seed(seed, sizes)).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lendchain.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", default="4,7", help="comma-separated member counts")
    args = parser.parse_args(argv)
    sizes = tuple(int(x) for x in args.n.split(","))
    started = time.perf_counter()
    failures = 0
    for seed in range(args.start, args.start + args.seeds):
        try:
            run_seed(seed, sizes)
        except (SafetyViolation, LivenessFailure) as e:
            failures += 1
            print(f"FAIL {type(e).__name__}: {e}", flush=True)
    elapsed = time.perf_counter() - started
    print(f"{args.seeds} seeds, {failures} failures, {elapsed:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
