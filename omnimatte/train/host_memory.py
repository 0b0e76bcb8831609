"""Keeping freed tensor memory in the process on the CPU, so that a training step does not page-fault its tensors.

glibc's malloc serves every block above its mmap threshold (128 KiB at first, at most
32 MiB) with a fresh mmap and returns it to the system when it is freed. A training
step on the CPU allocates and frees the same large activations every step, so each
step faults every page of them in again, which can take a quarter to a third of a step on a
small CPU. With mmap off and the heap never trimmed, freed blocks are reused by the next step. Elsewhere than glibc (macOS, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from omnimatte.logs import get_logger

log = get_logger("train")

# mallopt's parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # bytes free at the heap's top before glibc gives them back: never, in practice

_kept = False


def keep_freed_memory() -> bool:
    """Tell glibc to serve large blocks from the heap and keep them once freed; True when it is (or was) done."""
    global _kept
    if _kept:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # only glibc has it (and this mallopt)
    except (OSError, AttributeError, TypeError):
        return False
    gnu_get_libc_version.restype = ctypes.c_char_p
    if not (mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        log.warning("glibc %s refused mallopt; CPU training steps keep page-faulting their tensors",
                    gnu_get_libc_version().decode())
        return False
    _kept = True
    return True
