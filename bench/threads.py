"""Thread-pool benchmark: atasker vs concurrent.futures.ThreadPoolExecutor.

Produces the thread rows of docs/performance.md's table of figures (thread
throughput, back-to-back and spaced latency, memory per queued task, the
priority drain). Run from a clone::

    python bench/threads.py [--rounds 7] [--json] [--tasks 50000]

which is ``python -m atasker bench --only thread-throughput,back-to-back,
spaced,memory,priority`` with any other option of ``python -m atasker bench
--help``. Speed is reported, never asserted.
"""

from __future__ import annotations

import sys

from atasker.__main__ import main

MEASURES = "thread-throughput,back-to-back,spaced,memory,priority"

if __name__ == "__main__":
    sys.exit(main(["bench", "--only", MEASURES, *sys.argv[1:]]))
