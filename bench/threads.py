"""Thread-pool benchmark: atasker vs concurrent.futures.ThreadPoolExecutor.

Run from a clone: ``python bench/threads.py [--rounds 5] [--tasks 50000]``
(the same as ``python -m atasker bench``). Prints medians and ratios; the
targets are in CHANGELOG.md and the issues.
"""

from __future__ import annotations

import argparse

from atasker import benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=50_000)
    args = parser.parse_args()
    benchmark.run(rounds=args.rounds, tasks=args.tasks)
