"""Which device a worker computes on, decided before MXNet's first kernel, and how many workers a pod runs.

The GPU build, mxnet-cu112 1.9.1, ships its kernels as machine code only: `libmxnet.so` holds cubins for
sm_50, sm_60, sm_70, sm_80 and sm_86 and no PTX (`make gpu-smoke` checks this with cuobjdump). A cubin built
for compute capability X.y runs on a GPU of capability X.z with z >= y: binary compatibility holds within a
major version, so Ada (8.9: L4, L40S) runs the sm_86 cubins and Turing (7.5: T4) the sm_70 ones. It never
crosses a major version, and without PTX the driver has nothing to compile for a newer one: on Hopper (9.0)
or Blackwell (10.x, 12.x) the first kernel fails with "no kernel image is available for execution on the
device" and the model never loads. So the GPUs are read through the CUDA driver API (ctypes, no MXNet) and
compared with the declared range first: `DEVICE=auto` serves such a GPU's worker on the CPU with a warning,
`DEVICE=gpu` fails the load with the reason.

`libmxnet.so` also needs a `libcuda.so.1` merely to be imported, which a node without the NVIDIA driver
lacks: `ensure_libcuda` then loads the stub named by `LIBCUDA_FALLBACK` (see tools/libcuda_stub.c).

`python -m function.device` prints what this module sees (driver library, GPUs, CPUs, default workers).
"""

import ctypes
import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from function.config import parse_setting

log = logging.getLogger(__name__)

# What libmxnet.so carries: cubins for these sm_XY architectures, no PTX (checked by `make gpu-smoke`).
ARCHITECTURES = (50, 60, 70, 80, 86)
# The compute capabilities those cubins run on (inclusive). Declared here once; `supported` applies it and
# tests/test_device.py proves it equals what binary compatibility gives for ARCHITECTURES.
SUPPORTED_RANGE = ((5, 0), (8, 9))
BUILD = "mxnet-cu112 1.9.1"

LIBCUDA = "libcuda.so.1"
# Env: a file standing in for libcuda.so.1 when the system has none (the image's stub).
FALLBACK_ENV = "LIBCUDA_FALLBACK"
# Env: the cluster shares GPUs through NVIDIA MPS, so more than PER_GPU_WORKER_CAP workers per GPU pay off.
MPS_ENV = "GPU_MPS"
# Without MPS, each worker's CUDA context is time-sliced: on an H200, 1/2/4/8 processes gave 652/1077/1880/1921
# forward passes/s, so more than four workers per GPU add memory (0.73 GB each) but no throughput.
PER_GPU_WORKER_CAP = 4

# CUDA driver API constants (cuda.h).
CUDA_SUCCESS = 0
CUDA_ERROR_NO_DEVICE = 100
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
# The CUDA 11.2 runtime needs a driver for CUDA 11.0 or newer (>= 450.80.02, minor version compatibility).
MIN_DRIVER_VERSION = 11000
NAME_BYTES = 256

Capability = tuple[int, int]
Device = Literal["cpu", "gpu"]
Requested = Literal["auto", "cpu", "gpu"]


class DeviceError(Exception):
    """The requested device cannot be used; the message says why in terms of the device, not the model."""


@dataclass(frozen=True)
class Gpu:
    """One GPU as the CUDA driver numbers it (the same ordinals MXNet's `mx.gpu(i)` uses)."""

    ordinal: int
    name: str
    capability: Capability

    @property
    def supported(self) -> bool:
        return supported(self.capability)

    def __str__(self) -> str:
        return f"GPU {self.ordinal} ({self.name}, compute capability {self.capability[0]}.{self.capability[1]})"


@dataclass(frozen=True)
class Choice:
    """Where a worker computes, and what an operator should know about that choice."""

    device: Device
    gpu: Gpu | None = None
    warning: str | None = None


def supported(capability: Capability) -> bool:
    return SUPPORTED_RANGE[0] <= capability <= SUPPORTED_RANGE[1]


def supported_range_text() -> str:
    (low_major, low_minor), (high_major, high_minor) = SUPPORTED_RANGE
    cubins = ", ".join(f"sm_{a}" for a in ARCHITECTURES)
    return (
        f"{BUILD} runs on compute capability {low_major}.{low_minor} to {high_major}.{high_minor} "
        f"(it ships machine code for {cubins} and no PTX)"
    )


def choose(requested: str, worker_index: int, gpus: Sequence[Gpu]) -> Choice:
    """Worker `worker_index`'s device: GPU `worker_index` mod the number of supported GPUs, else the CPU.

    `auto` falls back to the CPU (with a warning when GPUs were skipped); `gpu` raises `DeviceError` instead.
    """
    if requested not in ("auto", "cpu", "gpu"):
        raise ValueError(f"requested device must be auto, cpu or gpu, not {requested!r}")
    if worker_index < 0:
        raise ValueError(f"worker_index must be >= 0, not {worker_index}")
    if requested == "cpu":
        return Choice("cpu")
    usable = [gpu for gpu in gpus if gpu.supported]
    skipped = "; ".join(str(gpu) for gpu in gpus if not gpu.supported)
    outside = f"{skipped}: outside the supported range ({supported_range_text()})"
    if usable:
        return Choice("gpu", usable[worker_index % len(usable)], f"not using {outside}" if skipped else None)
    if requested == "gpu":
        if not gpus:
            raise DeviceError("DEVICE=gpu, but the CUDA driver sees no GPU")
        raise DeviceError(f"DEVICE=gpu, but no GPU can run this build: {outside}")
    return Choice("cpu", None, f"serving on the CPU: {outside}" if skipped else None)


@cache
def ensure_libcuda() -> Literal["system", "fallback", "missing"]:
    """Make `libcuda.so.1` loadable before mxnet is imported; the system's library always wins.

    The system's (the real driver, which the NVIDIA container runtime puts in the loader's path) is tried
    first. Only when it cannot be loaded is `LIBCUDA_FALLBACK` loaded, globally: glibc satisfies a later
    DT_NEEDED `libcuda.so.1` (libmxnet.so's) with an already-loaded object of that soname, so the stub
    stands in without being on any library path where it could shadow a driver.
    """
    try:
        ctypes.CDLL(LIBCUDA)
    except OSError as missing:
        fallback = os.environ.get(FALLBACK_ENV)
        if not fallback:
            return "missing"
        try:
            ctypes.CDLL(fallback, mode=os.RTLD_GLOBAL)
        except OSError as error:
            raise DeviceError(f"{FALLBACK_ENV}={fallback} cannot be loaded: {error}") from error
        try:
            ctypes.CDLL(LIBCUDA)
        except OSError as error:
            raise DeviceError(
                f"{FALLBACK_ENV}={fallback} was loaded but does not stand in for {LIBCUDA}: "
                f"it must be linked with -Wl,-soname,{LIBCUDA}"
            ) from error
        log.warning(
            "no NVIDIA driver (%s): %s=%s stands in for it, so no GPU is visible", missing, FALLBACK_ENV, fallback
        )
        return "fallback"
    return "system"


def _check(lib: ctypes.CDLL, code: int, call: str) -> None:
    if code == CUDA_SUCCESS:
        return
    name = ctypes.c_char_p()
    known = hasattr(lib, "cuGetErrorName") and lib.cuGetErrorName(code, ctypes.byref(name)) == CUDA_SUCCESS
    label = name.value.decode() if known and name.value else "unknown error"
    raise DeviceError(f"the CUDA driver failed: {call} returned {code} ({label})")


def query_gpus() -> list[Gpu]:
    """The GPUs the CUDA driver sees, through its API (ctypes): no CUDA context, no kernel, no MXNet.

    No `libcuda.so.1`, or one answering CUDA_ERROR_NO_DEVICE (the stub), means no GPU. A driver that fails
    otherwise, or is too old for the CUDA 11.2 runtime, raises `DeviceError`.
    """
    try:
        lib = ctypes.CDLL(LIBCUDA)
    except OSError:
        return []
    try:
        code = lib.cuInit(0)
        if code == CUDA_ERROR_NO_DEVICE:
            return []
        _check(lib, code, "cuInit")
        version = ctypes.c_int()
        _check(lib, lib.cuDriverGetVersion(ctypes.byref(version)), "cuDriverGetVersion")
        if version.value < MIN_DRIVER_VERSION:
            raise DeviceError(
                f"the NVIDIA driver supports CUDA {version.value // 1000}.{version.value % 1000 // 10}; "
                f"{BUILD} needs a driver for CUDA 11.0 or newer (450.80.02 or later)"
            )
        count = ctypes.c_int()
        _check(lib, lib.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
        gpus = []
        for ordinal in range(count.value):
            device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
            name = ctypes.create_string_buffer(NAME_BYTES)
            _check(lib, lib.cuDeviceGet(ctypes.byref(device), ordinal), "cuDeviceGet")
            _check(lib, lib.cuDeviceGetName(name, NAME_BYTES, device), "cuDeviceGetName")
            for attribute, value in (
                (CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, major),
                (CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, minor),
            ):
                _check(lib, lib.cuDeviceGetAttribute(ctypes.byref(value), attribute, device), "cuDeviceGetAttribute")
            gpus.append(Gpu(ordinal, name.value.decode(errors="replace"), (major.value, minor.value)))
        return gpus
    except AttributeError as error:  # a libcuda.so.1 without the driver API's entry points
        raise DeviceError(f"{LIBCUDA} is not a usable CUDA driver: {error}") from error


def decide(requested: str, worker_index: int, cuda_build: bool) -> Choice:
    """`choose` on the GPUs the driver sees; `cuda_build` is whether the installed MXNet can use a GPU at all.

    The CPU build never touches the driver. A failing driver is a reason to serve on the CPU under `auto`.
    """
    if requested == "cpu":
        return Choice("cpu")
    if not cuda_build:
        if requested == "gpu":
            raise DeviceError("DEVICE=gpu, but the installed MXNet is the CPU build: no GPU can be used")
        return Choice("cpu")
    if ensure_libcuda() != "system":
        if requested == "gpu":
            raise DeviceError(f"DEVICE=gpu, but there is no NVIDIA driver here ({LIBCUDA} is missing): no GPU")
        return Choice("cpu")
    try:
        gpus = query_gpus()
    except DeviceError as error:
        if requested == "gpu":
            raise
        return Choice("cpu", None, f"serving on the CPU: {error}")
    return choose(requested, worker_index, gpus)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs, or None when unlimited.

    cgroup v2: `cpu.max` ("quota period" or "max period") of the process's cgroup and its ancestors, the
    smallest (inside a container's cgroup namespace the process's own cgroup is the root). cgroup v1:
    `cpu.cfs_quota_us` / `cpu.cfs_period_us` of the cpu controller's mount (the container's cgroup).
    """
    limits = []
    lines = membership.read_text().splitlines() if membership.is_file() else []
    for line in lines:
        if line.startswith("0::"):
            folder = root / line[3:].lstrip("/")
            while True:
                cpu_max = folder / "cpu.max"
                if cpu_max.is_file():
                    quota, period = cpu_max.read_text().split()
                    if quota != "max":
                        limits.append(int(quota) / int(period))
                if folder == root or root not in folder.parents:
                    break
                folder = folder.parent
    for mount in ("cpu", "cpu,cpuacct"):
        quota_file = root / mount / "cpu.cfs_quota_us"
        if quota_file.is_file():
            quota = int(quota_file.read_text())
            if quota > 0:
                limits.append(quota / int((root / mount / "cpu.cfs_period_us").read_text()))
            break
    return min(limits) if limits else None


def pod_cpus() -> float:
    """CPUs this process may use: its affinity mask, lowered by a cgroup CPU quota (a pod's CPU limit)."""
    available = float(len(os.sched_getaffinity(0)))
    limit = cgroup_cpu_limit()
    return min(available, limit) if limit is not None else available


def mps_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """GPU_MPS as the server's settings read it: a value the server refuses is refused here too."""
    raw = environ.get(MPS_ENV, "")
    return bool(parse_setting(MPS_ENV, bool, raw)) if raw else False


def default_workers(cpus: float, gpus: int, mps: bool, per_gpu_cap: int = PER_GPU_WORKER_CAP) -> int:
    """One worker per CPU (the host side, HTTP and decoding, is the bottleneck even on a GPU), at least one.

    `gpus` counts the supported GPUs. Without MPS, time-slicing between CUDA contexts caps a GPU's useful
    workers at `per_gpu_cap` each; with MPS the kernels of all workers run concurrently, so only CPUs count.
    """
    workers = max(1, math.floor(cpus))
    if gpus > 0 and not mps:
        workers = min(workers, per_gpu_cap * gpus)
    return workers


def report() -> dict:
    """What this process sees: driver library, GPUs, supported range, CPUs, MPS and default workers."""
    libcuda = ensure_libcuda()
    try:
        gpus, driver_error = query_gpus(), None
    except DeviceError as error:
        gpus, driver_error = [], str(error)
    cpus = pod_cpus()
    mps = mps_enabled()
    return {
        "libcuda": libcuda,
        "driver_error": driver_error,
        "gpus": [{**asdict(gpu), "supported": gpu.supported} for gpu in gpus],
        "supported_range": supported_range_text(),
        "cpus": cpus,
        "mps": mps,
        "default_workers": default_workers(cpus, sum(gpu.supported for gpu in gpus), mps),
    }


def report_in_subprocess() -> dict:
    """`report()` from a child process, for a parent that forks workers later: cuInit before fork breaks CUDA."""
    completed = subprocess.run(
        [sys.executable, "-m", "function.device"], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(completed.stdout)


if __name__ == "__main__":
    print(json.dumps(report()))
