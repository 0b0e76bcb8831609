"""The CPU training steps' memory: glibc keeps freed blocks for the next step instead of unmapping them.

The setting changes malloc for the whole process, so the test runs it in a process of its own: the rest of
the test run keeps glibc's defaults."""

import ctypes
import ctypes.util
import json
import platform
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO

# mallinfo2, which the test reads, is glibc 2.33's (the setting itself works on older ones too).
glibc_233 = platform.libc_ver()[0] == "glibc" and hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")

# Allocates a 64 MiB tensor (glibc's default would mmap it: its threshold is at most 32 MiB) and frees it,
# reading glibc's account before and after: hblkhd, the bytes in mmapped blocks; fordblks, the free bytes it keeps.
PROBE = textwrap.dedent("""
    import ctypes, ctypes.util, json, sys
    import torch
    from omnimatte.train.host_memory import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                          "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = MallInfo2
    kept = [keep_freed_memory(), keep_freed_memory()] if sys.argv[1] == "keep" else []
    mapped = libc.mallinfo2().hblkhd
    block = torch.ones(64 * 2**20 // 4)
    mapped_while_held = libc.mallinfo2().hblkhd
    del block
    print(json.dumps({"kept": kept, "mapped_before": mapped, "mapped_while_held": mapped_while_held,
                      "free_kept_after": libc.mallinfo2().fordblks}))
""")


def probe(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not glibc_233, reason="the setting is glibc's; the test reads glibc 2.33's mallinfo2")
def test_a_large_tensor_comes_from_the_heap_and_stays_there_once_freed():
    kept = probe("keep")
    assert kept["kept"] == [True, True]  # once is enough; a second call says so too
    assert kept["mapped_while_held"] == kept["mapped_before"]  # not mmapped ...
    assert kept["free_kept_after"] >= 64 * 2**20  # ... and, freed, kept in the heap for the next step
    # glibc's defaults, as the rest of the test run has them: the same block is mmapped and given back.
    default = probe("default")
    assert default["mapped_while_held"] >= default["mapped_before"] + 64 * 2**20
    assert default["free_kept_after"] < 64 * 2**20
