"""N seeds of DQN's ``cpu`` preset vmapped in one jitted program against N separate processes.

    python -m benchmarks.bench_seeds [--quick] [--seed-counts 1 4 16] [--out benchmarks/results]

The suite's ``seeds`` benchmark: part 2 of :mod:`benchmarks.bench_agents` (the measurement
and its child processes live there), run on its own so that it can be rerun without the
per-agent end-to-end rows. Same as ``python -m benchmarks.bench_agents --only-seeds``.
"""
from __future__ import annotations

import argparse

from benchmarks import bench_agents

RESULTS = bench_agents.RESULTS


def run(quick: bool, out: str = RESULTS, counts: tuple[int, ...] = ()) -> list[dict]:
    """Suite rows of :func:`benchmarks.bench_agents.run_seeds`; ``seeds.md`` and JSON lines in ``out``."""
    return bench_agents.run_seeds(quick, out, counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 1 and 4, short chunks")
    parser.add_argument("--seed-counts", type=int, nargs="+", default=(), help="the N (default 1 4 16)")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out, tuple(args.seed_counts))


if __name__ == "__main__":
    main()
