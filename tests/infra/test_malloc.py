"""``retain_freed_memory``: glibc accepts the settings, and a process keeps its freed pages."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

_PROBE = """
import resource, sys
import numpy as np
from infra.malloc import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    # A block's arrays, touched and all freed together: 8 x 3 MiB left free at the heap's top.
    arrays = [np.ones(3 << 17) for _ in range(8)]
    del arrays
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
"""


def _page_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_blocks_are_reused_without_new_page_faults() -> None:
    # By default glibc gives the 24 MiB back each round and faults them in again: 6,144 pages.
    assert _page_faults("default") > 50 * 3000
    assert _page_faults("retain") < 4 * 6144
