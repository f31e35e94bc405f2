"""A peer keeps chunk-sized buffers it freed (glibc's thresholds raised, and a few MiB
touched at start): its first transfer does not page-fault fresh memory in, which cost
~2 ms of a freshly started peer's first on-demand read on the benchmark VM."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

MEASURE = """
import resource, sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "keep":
    from syncfs.peer import _keep_freed_buffers
    _keep_freed_buffers()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
buffers = [bytearray(1 << 20) for _ in range(4)]  # a transfer's chunk-sized buffers
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT), mode],
                          capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


def test_chunk_sized_buffers_are_already_touched():
    assert faults("default") >= 512  # 4 MiB of fresh pages: about 1,024 faults
    assert faults("keep") < 64
