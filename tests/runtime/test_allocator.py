"""runtime/allocator.py: after tuning, reallocating 1 MiB buffers stops faulting in fresh pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

PROBE = """
import resource, sys
from snow_rt_py.runtime.allocator import tune_for_large_messages
if sys.argv[1] == "tuned":
    assert tune_for_large_messages() is True
    assert tune_for_large_messages() is True  # idempotent
def one_message():  # like an echo: payload, a copy with a header, a joined write buffer, then all freed
    payload = b"x" * (1 << 20)
    frame = b"h" + payload
    out = b"".join([frame, b"t"])
    del payload, frame, out

for _ in range(5):  # warm up
    one_message()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    one_message()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=30, check=True)
    return int(out.stdout.strip())


def test_tuning_removes_the_page_faults_of_large_buffers() -> None:
    untuned, tuned = faults("default"), faults("tuned")
    assert untuned > 100 * 200  # a fresh mmap per MiB: ~256 faults each
    assert tuned < 1000, (untuned, tuned)


def test_cli_and_options_expose_the_switch() -> None:
    from snow_rt_py.cli import build_parser, options_from
    from snow_rt_py.runtime.options import ServerOptions

    assert ServerOptions().tune_malloc is True
    assert options_from(build_parser().parse_args(["serve"])).tune_malloc is True
    assert options_from(build_parser().parse_args(["serve", "--no-tune-malloc"])).tune_malloc is False


TRIM_PROBE = """
from snow_rt_py.runtime.allocator import release_free_memory, tune_for_large_messages

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

tune_for_large_messages()
base = rss_kib()
held = [bytearray(60 * 1024) for _ in range(1500)]  # ~90 MiB in 60 KiB blocks: what a flood of partial frames held
for block in held:
    block[::4096] = b"x" * len(block[::4096])  # touch every page
full = rss_kib()
del held, block
freed = rss_kib()
release_free_memory()
print(base, full, freed, rss_kib())
"""


def test_release_free_memory_gives_a_floods_leftovers_back_to_the_kernel() -> None:
    # With the trim threshold raised for large messages, freed heap stays with the process; the server calls
    # release_free_memory once many connections ended, so what a flood held does not stay.
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, timeout=30, check=True)
    base, full, freed, trimmed = map(int, out.stdout.split())
    assert full - base > 80 * 1024
    assert freed - base > 60 * 1024  # kept after the frees: the tuned threshold at work
    assert trimmed - base < 20 * 1024, (base, full, freed, trimmed)
