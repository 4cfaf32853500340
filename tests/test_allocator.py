"""A run takes Arrow's buffers from jemalloc, unless the environment chose Arrow's pool itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

PROGRAM = """
import pyarrow as pa
from smartingest.engine.allocator import use_returning_allocator
use_returning_allocator()
print(pa.default_memory_pool().backend_name)
"""


def _backend_after_choosing(env_pool: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow was built without jemalloc")
def test_a_run_uses_jemalloc_by_default():
    assert _backend_after_choosing(None) == "jemalloc"


def test_the_environment_s_choice_of_pool_is_kept():
    assert _backend_after_choosing("system") == "system"
