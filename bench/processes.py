"""Process-pool benchmark: atasker vs concurrent.futures.ProcessPoolExecutor.

Produces the process rows of docs/performance.md's table of figures
(process throughput, process idle latency, map with chunksize=100). Run from
a clone::

    python bench/processes.py [--rounds 7] [--json] [--mp-tasks 5000]

which is ``python -m atasker bench --only process-throughput,process-latency,
map`` with any other option of ``python -m atasker bench --help``. The CPU
column is this (the parent) process's only: the supervisor's side, not the
workers'. Speed is reported, never asserted.
"""

from __future__ import annotations

import sys

from atasker.__main__ import main

MEASURES = "process-throughput,process-latency,map"

if __name__ == "__main__":
    sys.exit(main(["bench", "--only", MEASURES, *sys.argv[1:]]))
