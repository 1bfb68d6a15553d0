"""The job's processes keep freed memory: a re-allocated feature map does not page-fault its memory in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocate, touch and free a 64 MB and a 12 MB block, as a frame does its feature maps, ten times; print the minor
# page faults of the last two rounds (the first rounds fault either way while the heap grows to its peak).
FAULTS = """
import resource, sys, torch
from blockcopy_core.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def frame():
    big, small = torch.ones(16 * 2**20), torch.ones(3 * 2**20)
for _ in range(8):
    frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    frame()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_memory_stops_refaulting_large_blocks():
    _, default_faults = run("default")
    applied, kept_faults = run("keep")
    assert applied == "True"
    # glibc maps a fresh block each time, so every page faults in again (fewer faults with huge pages); kept
    # memory is already mapped
    assert default_faults >= 2 * 64 * 2**20 // (2 * 2**20)
    assert kept_faults * 10 < default_faults
