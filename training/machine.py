"""The machine a figure came from, as training cards and bench results record it.

`platform.processor()` says only "x86_64" on Linux, and a training epoch or a benchmark figure can
differ 1.8x between two 2-core x86_64 machines, so the CPU model is read from /proc/cpuinfo.
"""

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The first `model name` (x86) or `Model` (some ARM kernels) in cpuinfo; else what platform knows."""
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def describe(cpuinfo: Path = CPUINFO) -> dict:
    """Platform, CPU model and CPU count: what a reader needs to compare two figures."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(cpuinfo),
        "cpus": os.cpu_count(),
    }
