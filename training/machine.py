"""The machine a figure came from, as training cards and bench results record it.

`platform.processor()` says only "x86_64" on Linux, and a training epoch or a benchmark figure can
differ 1.8x between two 2-core x86_64 machines, so the CPU model is read from /proc/cpuinfo.
"""

import os
import platform
from collections import Counter
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
UNRECORDED = "not recorded"  # epochs trained before their rows named the CPU (2026-11-28)


def cpu_model(cpuinfo: Path | None = None) -> str:
    """The first `model name` in cpuinfo (x86, 32-bit ARM); else what platform knows (arm64 names none)."""
    try:
        lines = (cpuinfo or CPUINFO).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def describe(cpuinfo: Path | None = None) -> dict:
    """Platform, CPU model and the CPUs this process may use: what a reader compares two figures by."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(cpuinfo),
        "cpus": len(os.sched_getaffinity(0)),
    }


def epochs_by_cpu(history: list[dict]) -> dict[str, int]:
    """How many of a run's epochs each CPU model trained: a run resumed elsewhere spans machines, and
    so do its seconds."""
    return dict(Counter(row.get("cpu", UNRECORDED) for row in history))
