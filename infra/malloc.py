"""Keep freed heap memory in processes that allocate and free large arrays over and over.

glibc serves big allocations (128 KiB and up, at first) with ``mmap`` and hands them back
with ``munmap`` on free, and trims the top of the heap when a few hundred KiB there are free.
An ingest worker builds and drops tens of megabytes of numpy arrays per block, so it paid a
page fault for every fresh page of every block: about a fifth of its CPU time. Serving those
arrays from the heap and keeping its top mapped makes every page after the first block a
reused one. The cost is that the process holds on to its peak heap until it exits, which is
what a short-lived worker wants.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# glibc refuses an mmap threshold above half its largest heap (32 MiB on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20


def retain_freed_memory() -> bool:
    """Tell glibc to keep freed memory mapped in this process; False where the C library has
    no ``mallopt`` (musl, macOS) or refused a setting, which leaves the defaults in place."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD),
    )
    return all([mallopt(option, value) == 1 for option, value in settings])
