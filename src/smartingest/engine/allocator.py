"""Where Arrow's buffers come from during a run.

pyarrow's default pool here is mimalloc, which keeps the pages of freed buffers for reuse: over a run
that maps and encodes a million rows it held about 100 MB that no buffer used any more. jemalloc, also
built into pyarrow, hands them back to the system after a short delay, at no measured cost in speed
(docs/performance.md).
"""

from __future__ import annotations

import os

import pyarrow as pa

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"  # Arrow's own setting: when it is set, it decides


def use_returning_allocator() -> None:
    """Make jemalloc Arrow's default pool, unless the environment chose one or pyarrow lacks jemalloc."""
    if os.environ.get(POOL_ENV):
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc keeps its default
        return
    pa.set_memory_pool(pool)
