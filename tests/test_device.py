"""The device decision, the libcuda fallback and the worker sizing, with real shared libraries built here.

No GPU is needed: the decision is a pure function of the GPUs the driver reports, and the driver side is
exercised with libraries compiled by gcc in a temporary folder (the shipped stub, and a fake driver that
reports the GPUs named in FAKE_GPUS), loaded in child processes exactly as a worker loads them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from function.config import Settings
from function.device import (
    ARCHITECTURES,
    PER_GPU_WORKER_CAP,
    SUPPORTED_RANGE,
    Choice,
    DeviceError,
    Gpu,
    cgroup_cpu_limit,
    choose,
    default_workers,
    mps_enabled,
    pod_cpus,
    report_in_subprocess,
    supported,
)
from function.errors import Unavailable
from function.model import ModelHolder

ROOT = Path(__file__).resolve().parent.parent
STUB_SOURCE = ROOT / "tools" / "libcuda_stub.c"

# A fake NVIDIA driver: FAKE_GPUS="name:major.minor;..." are its GPUs, FAKE_CUINIT cuInit's answer,
# FAKE_DRIVER_VERSION cuDriverGetVersion's.
FAKE_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef int CUresult;
static int gpu(int ordinal, char *name, int length, int *major, int *minor) {
    const char *spec = getenv("FAKE_GPUS");
    for (int index = 0; spec && *spec; index++) {
        const char *end = strchr(spec, ';');
        size_t size = end ? (size_t)(end - spec) : strlen(spec);
        if (index == ordinal) {
            const char *colon = memchr(spec, ':', size);
            if (!colon) return 0;
            if (name) snprintf(name, length, "%.*s", (int)(colon - spec), spec);
            if (major && minor) sscanf(colon + 1, "%d.%d", major, minor);
            return 1;
        }
        spec = end ? end + 1 : spec + size;
    }
    return 0;
}
CUresult cuInit(unsigned flags) { const char *e = getenv("FAKE_CUINIT"); return e ? atoi(e) : 0; }
CUresult cuDriverGetVersion(int *version) {
    const char *e = getenv("FAKE_DRIVER_VERSION");
    *version = e ? atoi(e) : 12080;
    return 0;
}
CUresult cuDeviceGetCount(int *count) { *count = 0; while (gpu(*count, 0, 0, 0, 0)) ++*count; return 0; }
CUresult cuDeviceGet(int *device, int ordinal) { *device = ordinal; return gpu(ordinal, 0, 0, 0, 0) ? 0 : 101; }
CUresult cuDeviceGetName(char *name, int length, int device) { return gpu(device, name, length, 0, 0) ? 0 : 101; }
CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
    int major = 0, minor = 0;
    if (!gpu(device, 0, 0, &major, &minor)) return 101;
    if (attribute == 75) { *value = major; return 0; }
    if (attribute == 76) { *value = minor; return 0; }
    return 1;
}
CUresult cuGetErrorName(CUresult error, const char **name) {
    *name = error == 999 ? "CUDA_ERROR_UNKNOWN" : "CUDA_ERROR_OTHER";
    return 0;
}
"""

# Stands for libmxnet.so: a library with DT_NEEDED libcuda.so.1 that calls into it.
CONSUMER = "int cuInit(unsigned flags);\nint consumer_init(void) { return cuInit(0); }\n"

# Run in a child: what ensure_libcuda did, which libcuda.so.1 the consumer bound to, the GPUs, the decision.
PROBE = """
import ctypes, json, sys
from dataclasses import asdict
from function.device import DeviceError, decide, ensure_libcuda, query_gpus
out = {}
try:
    out["libcuda"] = ensure_libcuda()
except DeviceError as error:
    out["libcuda"] = f"DeviceError: {error}"
try:
    out["consumer"] = ctypes.CDLL(sys.argv[1]).consumer_init()
except OSError as error:
    out["consumer"] = str(error)
try:
    out["gpus"] = [asdict(gpu) for gpu in query_gpus()]
except DeviceError as error:
    out["gpus"] = f"DeviceError: {error}"
for requested in ("auto", "gpu"):
    for worker in range(4):
        try:
            out[f"{requested}/{worker}"] = asdict(decide(requested, worker, cuda_build=True))
        except DeviceError as error:
            out[f"{requested}/{worker}"] = f"DeviceError: {error}"
print(json.dumps(out))
"""


def gcc(output: Path, source: Path, *flags: str) -> Path:
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(output), str(source), *flags], check=True)
    return output


@pytest.fixture(scope="module")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shipped stub (as the image builds it), one without a soname, the fake driver, the consumer."""
    folder = tmp_path_factory.mktemp("libcuda")
    for name in ("stub", "nosoname", "driver"):
        (folder / name).mkdir()
    stub = gcc(folder / "stub" / "libcuda.so.1", STUB_SOURCE, "-Wl,-soname,libcuda.so.1")
    fake = folder / "fake.c"
    fake.write_text(FAKE_DRIVER)
    consumer = folder / "consumer.c"
    consumer.write_text(CONSUMER)
    return {
        "stub": stub,
        "nosoname": gcc(folder / "nosoname" / "libcuda.so.1", STUB_SOURCE),
        "driver": gcc(folder / "driver" / "libcuda.so.1", fake, "-Wl,-soname,libcuda.so.1"),
        "consumer": gcc(folder / "libconsumer.so", consumer, f"-L{folder / 'stub'}", "-l:libcuda.so.1"),
    }


def probe(libraries: dict[str, Path], **env: str) -> dict:
    """PROBE in a fresh interpreter with no inherited library path or fallback, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LIBCUDA_FALLBACK")}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(libraries["consumer"])],
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def no_system_driver(libraries: dict[str, Path]) -> None:
    if probe(libraries)["libcuda"] != "missing":
        pytest.skip("this machine has a libcuda.so.1 of its own")


def gpus(*specs: tuple[str, int, int]) -> list[Gpu]:
    return [Gpu(ordinal, name, (major, minor)) for ordinal, (name, major, minor) in enumerate(specs)]


H200 = ("NVIDIA H200", 9, 0)
B200 = ("NVIDIA B200", 10, 0)
RTX_5090 = ("NVIDIA GeForce RTX 5090", 12, 0)
A10G = ("NVIDIA A10G", 8, 6)
L4 = ("NVIDIA L4", 8, 9)
T4 = ("Tesla T4", 7, 5)
K80 = ("Tesla K80", 3, 7)


@pytest.mark.parametrize(
    ("requested", "worker", "visible", "device", "ordinal"),
    [
        ("cpu", 0, gpus(A10G), "cpu", None),
        ("auto", 0, [], "cpu", None),
        ("auto", 0, gpus(A10G), "gpu", 0),
        ("auto", 0, gpus(L4), "gpu", 0),  # Ada 8.9 runs the sm_86 cubins
        ("auto", 0, gpus(T4), "gpu", 0),  # Turing 7.5 runs the sm_70 cubins
        ("gpu", 0, gpus(("Tesla M60", 5, 2)), "gpu", 0),
        ("auto", 1, gpus(A10G, A10G), "gpu", 1),
        ("auto", 2, gpus(A10G, A10G), "gpu", 0),  # worker i uses GPU i mod n
        ("auto", 5, gpus(A10G, A10G, L4), "gpu", 2),
        ("gpu", 1, gpus(H200, A10G, L4), "gpu", 2),  # the mod runs over the supported GPUs only
        ("auto", 2, gpus(H200, A10G, L4), "gpu", 1),
    ],
)
def test_the_device_chosen(requested: str, worker: int, visible: list[Gpu], device: str, ordinal: int | None) -> None:
    choice = choose(requested, worker, visible)
    assert choice.device == device
    assert (choice.gpu.ordinal if choice.gpu else None) == ordinal
    skipped = [gpu for gpu in visible if not gpu.supported and requested != "cpu"]
    assert (choice.warning is not None) == bool(skipped)


@pytest.mark.parametrize("unsupported", [H200, B200, RTX_5090, K80])
def test_auto_on_an_unsupported_gpu_serves_on_the_cpu_and_says_why(unsupported: tuple[str, int, int]) -> None:
    choice = choose("auto", 0, gpus(unsupported))
    name, major, minor = unsupported
    assert choice == Choice("cpu", None, choice.warning)
    for fragment in (name, f"compute capability {major}.{minor}", "5.0 to 8.9", "sm_86", "no PTX", "CPU"):
        assert fragment in choice.warning


def test_a_skipped_gpu_is_named_even_when_another_one_is_used() -> None:
    choice = choose("auto", 0, gpus(H200, A10G))
    assert choice.gpu == Gpu(1, "NVIDIA A10G", (8, 6))
    assert "GPU 0 (NVIDIA H200, compute capability 9.0)" in choice.warning


@pytest.mark.parametrize(
    ("visible", "message"),
    [
        ([], "DEVICE=gpu, but the CUDA driver sees no GPU"),
        (gpus(H200), "DEVICE=gpu, but no GPU can run this build: GPU 0 (NVIDIA H200, compute capability 9.0)"),
        (gpus(B200, RTX_5090), "compute capability 12.0): outside the supported range"),
    ],
)
def test_gpu_without_a_usable_gpu_is_a_device_error(visible: list[Gpu], message: str) -> None:
    with pytest.raises(DeviceError, match="5.0 to 8.9" if visible else "no GPU") as info:
        choose("gpu", 0, visible)
    assert message in str(info.value)


@pytest.mark.parametrize(("requested", "worker"), [("tpu", 0), ("auto", -1)])
def test_bad_arguments_are_refused(requested: str, worker: int) -> None:
    with pytest.raises(ValueError):
        choose(requested, worker, [])


def test_the_declared_range_is_what_the_architectures_run_on() -> None:
    """A cubin for X.y runs on X.z, z >= y: the declared range must equal that rule over ARCHITECTURES."""
    for major in range(1, 13):
        for minor in range(10):
            by_cubin = any(arch // 10 == major and arch % 10 <= minor for arch in ARCHITECTURES)
            assert supported((major, minor)) == by_cubin, (major, minor)
    assert SUPPORTED_RANGE == ((5, 0), (8, 9))


def test_no_driver_and_no_fallback_leaves_libcuda_missing(libraries: dict[str, Path], no_system_driver: None) -> None:
    seen = probe(libraries)
    assert seen["libcuda"] == "missing"
    assert "libcuda.so.1" in seen["consumer"]  # what `import mxnet` meets on a node without the driver
    assert seen["gpus"] == []
    assert seen["auto/0"]["device"] == "cpu"
    assert (
        seen["gpu/0"] == "DeviceError: DEVICE=gpu, but there is no NVIDIA driver here (libcuda.so.1 is missing): no GPU"
    )


def test_the_fallback_satisfies_libcuda_for_a_library_that_needs_it(
    libraries: dict[str, Path], no_system_driver: None
) -> None:
    seen = probe(libraries, LIBCUDA_FALLBACK=str(libraries["stub"]))
    assert seen["libcuda"] == "fallback"
    assert seen["consumer"] == 100  # bound to the stub: CUDA_ERROR_NO_DEVICE
    assert seen["gpus"] == []
    assert seen["auto/0"] == {"device": "cpu", "gpu": None, "warning": None}
    assert seen["gpu/0"].startswith("DeviceError: DEVICE=gpu, but there is no NVIDIA driver here")


def test_a_loadable_driver_wins_over_the_fallback(libraries: dict[str, Path]) -> None:
    seen = probe(
        libraries,
        LD_LIBRARY_PATH=str(libraries["driver"].parent),
        LIBCUDA_FALLBACK=str(libraries["stub"]),
        FAKE_GPUS="NVIDIA H200:9.0;NVIDIA A10G:8.6;NVIDIA L4:8.9",
    )
    assert seen["libcuda"] == "system"
    assert seen["consumer"] == 0  # bound to the driver's cuInit, not the stub's
    assert seen["gpus"] == [
        {"ordinal": 0, "name": "NVIDIA H200", "capability": [9, 0]},
        {"ordinal": 1, "name": "NVIDIA A10G", "capability": [8, 6]},
        {"ordinal": 2, "name": "NVIDIA L4", "capability": [8, 9]},
    ]
    assert [seen[f"auto/{worker}"]["gpu"]["ordinal"] for worker in range(4)] == [1, 2, 1, 2]
    assert "NVIDIA H200, compute capability 9.0" in seen["auto/0"]["warning"]


def test_an_unsupported_gpu_read_from_the_driver(libraries: dict[str, Path]) -> None:
    seen = probe(libraries, LD_LIBRARY_PATH=str(libraries["driver"].parent), FAKE_GPUS="NVIDIA H200:9.0")
    assert seen["auto/0"]["device"] == "cpu"
    assert "GPU 0 (NVIDIA H200, compute capability 9.0)" in seen["auto/0"]["warning"]
    assert seen["gpu/0"].startswith("DeviceError: DEVICE=gpu, but no GPU can run this build: GPU 0 (NVIDIA H200")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FAKE_CUINIT": "999"}, "cuInit returned 999 (CUDA_ERROR_UNKNOWN)"),
        ({"FAKE_DRIVER_VERSION": "10020"}, "the NVIDIA driver supports CUDA 10.2"),
    ],
)
def test_a_failing_or_old_driver_means_cpu_under_auto_and_an_error_under_gpu(
    libraries: dict[str, Path], env: dict[str, str], message: str
) -> None:
    seen = probe(libraries, LD_LIBRARY_PATH=str(libraries["driver"].parent), FAKE_GPUS="NVIDIA A10G:8.6", **env)
    assert seen["gpus"].startswith("DeviceError: ") and message in seen["gpus"]
    assert seen["auto/0"]["device"] == "cpu" and message in seen["auto/0"]["warning"]
    assert message in seen["gpu/0"]


@pytest.mark.parametrize(
    ("fallback", "message"),
    [("nosoname", "-Wl,-soname,libcuda.so.1"), ("missing", "cannot be loaded")],
)
def test_a_broken_fallback_is_a_device_error(
    libraries: dict[str, Path], no_system_driver: None, fallback: str, message: str
) -> None:
    path = libraries.get(fallback, libraries["stub"].parent / "absent.so")
    seen = probe(libraries, LIBCUDA_FALLBACK=str(path))
    assert seen["libcuda"].startswith(f"DeviceError: LIBCUDA_FALLBACK={path}")
    assert message in seen["libcuda"]


def test_gpu_on_the_cpu_build_is_a_device_error_not_a_parameter_file_error(params: Path) -> None:
    holder = ModelHolder(params, "gpu", 30, worker_index=1)
    with pytest.raises(Unavailable) as info:
        holder.wait(60)
    assert info.value.status == 503
    assert holder.error == "DEVICE=gpu, but the installed MXNet is the CPU build: no GPU can be used"
    assert str(params) not in info.value.message
    assert holder.state == "failed"  # kept and retried later: the process stays up


def test_auto_on_the_cpu_build_serves_on_the_cpu_without_a_warning(params: Path) -> None:
    holder = ModelHolder(params, "auto", 30, worker_index=3)
    holder.wait(60)
    assert (holder.device, holder.gpu, holder.device_warning) == ("cpu", None, None)


@pytest.mark.parametrize(
    ("cpus", "gpu_count", "mps", "workers"),
    [
        (0.5, 0, False, 1),  # at least one
        (2, 0, False, 2),  # CPU only: one per CPU
        (3.9, 0, False, 3),
        (16, 1, False, PER_GPU_WORKER_CAP),  # time-slicing caps a GPU near four contexts
        (16, 2, False, 2 * PER_GPU_WORKER_CAP),
        (2, 1, False, 2),  # the CPUs bound it first
        (16, 1, True, 16),  # MPS: the CPUs alone
    ],
)
def test_default_workers(cpus: float, gpu_count: int, mps: bool, workers: int) -> None:
    assert default_workers(cpus, gpu_count, mps) == workers


@pytest.mark.parametrize(
    ("value", "enabled"), [("", False), ("0", False), ("false", False), ("1", True), ("True", True), ("yes", True)]
)
def test_mps_setting(value: str, enabled: bool) -> None:
    assert mps_enabled({"GPU_MPS": value}) is enabled


@pytest.mark.parametrize("value", ["maybe", "on", "off", " true"])
def test_an_mps_setting_the_server_refuses_is_refused_here_too(value: str) -> None:
    with pytest.raises(ValueError, match="GPU_MPS"):
        mps_enabled({"GPU_MPS": value})
    with pytest.raises(ValueError, match="GPU_MPS"):
        Settings.from_env({"GPU_MPS": value})


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("files", "membership", "limit"),
    [
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 1.5),  # v2 in a container's cgroup namespace
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),
        (  # v2 on a host: the smallest quota on the way up
            {"kubepods/cpu.max": "400000 100000\n", "kubepods/pod1/c1/cpu.max": "max 100000\n"},
            "0::/kubepods/pod1/c1\n",
            4.0,
        ),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "4:cpu:/x\n", 2.0),  # v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, "", None),
    ],
)
def test_cgroup_cpu_limit(tmp_path: Path, files: dict[str, str], membership: str, limit: float | None) -> None:
    for name, text in files.items():
        write(tmp_path / "cgroup" / name, text)
    write(tmp_path / "self-cgroup", membership)
    assert cgroup_cpu_limit(tmp_path / "cgroup", tmp_path / "self-cgroup") == limit


def test_this_machine_and_the_report_agree() -> None:
    cpus = pod_cpus()
    assert 0 < cpus <= len(os.sched_getaffinity(0))
    report = report_in_subprocess()
    assert report["cpus"] == cpus
    assert report["default_workers"] == default_workers(cpus, 0, False)
    assert "5.0 to 8.9" in report["supported_range"]
