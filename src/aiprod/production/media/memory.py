"""Returning freed heap to the operating system.

Decoders, encoders, their worker threads and big NumPy temporaries free memory
that glibc keeps in per-thread arenas.  Without a trim, each stage's peak (and
each montage clip's decoder) stacks on the previous one's leftovers, and a
1080p production's resident set creeps past its budget.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None
    return trim


_malloc_trim = _load_malloc_trim()


def release_memory() -> None:
    """Hand freed heap back to the OS (a no-op where libc has no malloc_trim)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
