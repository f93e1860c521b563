"""Scale curves: atasker's cost per task as the queue and the pool grow.

Produces docs/performance.md's scale tables: (a) us per task with 10^3 ...
10^5 no-op tasks queued behind one busy thread, (b) us per task of
submit-all-then-wait on 1 ... 64 threads, (c) the time of get_info() and
get_tasks() with 10^3 ... 10^5 tasks queued. Run from a clone::

    python bench/scale.py [--max-queued 1000000] [--rounds 3] [--json]

which is ``python -m atasker bench scale`` with its options (see
``python -m atasker bench --help``). Speed is reported, never asserted.
"""

from __future__ import annotations

import sys

from atasker.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", "scale", *sys.argv[1:]]))
