"""``python -m lendchain.fuzz [--inputs N] [--seed S] [--only NAME]``."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from pathlib import Path

from lendchain.fuzz.mutate import mutate
from lendchain.fuzz.targets import build_targets, workdir


def fuzz(inputs: int, seed: int, only: str | None, slow_ms: float, quiet: bool = False) -> dict:
    report = {}
    with workdir() as tmp:
        for target in build_targets(Path(tmp)):
            if only and only not in target.name:
                continue
            rng = random.Random(f"{seed}/{target.name}")
            rejected = accepted = 0
            slowest = 0.0
            started = time.perf_counter()
            for i in range(inputs):
                data = mutate(rng, rng.choice(target.seeds), target.seeds)
                t0 = time.perf_counter()
                try:
                    target.run(data)
                    accepted += 1
                except target.clean:
                    rejected += 1
                except Exception:
                    print(
                        f"CRASH in {target.name} on input #{i} (seed {seed}): {data.hex()[:400]}",
                        file=sys.stderr,
                    )
                    traceback.print_exc()
                    raise SystemExit(1) from None
                took = (time.perf_counter() - t0) * 1000
                slowest = max(slowest, took)
                if took > slow_ms:
                    print(f"HANG? {target.name} took {took:.0f} ms on {data.hex()[:200]}", file=sys.stderr)
                    raise SystemExit(1)
            elapsed = time.perf_counter() - started
            report[target.name] = {
                "inputs": inputs,
                "clean_rejections": rejected,
                "accepted": accepted,
                "slowest_ms": round(slowest, 2),
                "inputs_per_s": round(inputs / elapsed),
            }
            if not quiet:
                print(
                    f"{target.name:<20} {inputs} inputs, {rejected} rejected cleanly, {accepted} accepted, "
                    f"slowest {slowest:.1f} ms, {inputs / elapsed:,.0f}/s",
                    flush=True,
                )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=100_000, help="Inputs per decoder.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", help="Fuzz only decoders whose name contains this.")
    parser.add_argument("--slow-ms", type=float, default=1000.0, help="Fail on an input slower than this.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = fuzz(args.inputs, args.seed, args.only, args.slow_ms, quiet=args.json)
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
