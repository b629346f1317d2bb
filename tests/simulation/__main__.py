"""Run the deterministic simulation from the command line.

python -m tests.simulation --seed 1234 [-v]      replay one seed, with a trace
python -m tests.simulation --seeds 100000        the long mode (parallel, all cores)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time

from tests.simulation.world import run_seed


def _one(seed: int) -> tuple[int, list[str], int, float]:
    world = run_seed(seed)
    return seed, world.violations, world.calls, world.slowest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation")
    parser.add_argument("--seed", type=int, help="replay one seed")
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds (from --start)")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.seed is not None:
        world = run_seed(args.seed, verbose=args.verbose)
        print(f"seed {args.seed}: {world.config}")
        print(f"features {world.features}")
        print(f"calls {world.calls}, slowest {world.slowest:.2f} s, failures {world.failures}")
        print(f"token requests {world.idp.requests}, store calls {world.store.calls}")
        for violation in world.violations:
            print("VIOLATION", violation)
        return 1 if world.violations else 0
    started = time.perf_counter()
    failing = 0
    calls = 0
    slowest = 0.0
    seeds = range(args.start, args.start + args.seeds)
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for seed, violations, made, slow in pool.map(_one, seeds, chunksize=16):
            calls += made
            slowest = max(slowest, slow)
            if violations:
                failing += 1
                print(f"seed {seed}: {violations[0]}")
                print(f"  replay: python -m tests.simulation --seed {seed} -v")
    took = time.perf_counter() - started
    print(
        f"{args.seeds} seeds in {took:.1f} s: {failing} failing, {calls} calls, "
        f"slowest call {slowest:.2f} virtual s"
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
