"""The CPU training steps' memory: glibc keeps freed blocks for the next step instead of unmapping them."""

import ctypes
import ctypes.util
import platform

import pytest
import torch

from omnimatte.train.host_memory import keep_freed_memory


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def _malloc_info() -> _MallInfo2:
    """glibc's account of its memory now: hblkhd, the bytes in mmapped blocks; fordblks, the free bytes it keeps."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2()


# mallinfo2, which the test reads, is glibc 2.33's (the setting itself works on older ones too).
glibc_233 = platform.libc_ver()[0] == "glibc" and hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")


@pytest.mark.skipif(not glibc_233, reason="the setting is glibc's; the test reads glibc 2.33's mallinfo2")
def test_a_large_tensor_comes_from_the_heap_and_stays_there_once_freed():
    assert keep_freed_memory() and keep_freed_memory()  # once is enough; a second call says so too
    mapped = _malloc_info().hblkhd
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB: glibc's default would mmap it (its threshold is at most 32 MiB)
    assert _malloc_info().hblkhd == mapped
    del block
    assert _malloc_info().fordblks >= 64 * 2**20  # freed, and kept in the heap for the next step
