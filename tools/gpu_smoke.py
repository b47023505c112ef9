"""Smoke test of the GPU build without a GPU: its architectures, a start with no driver, its answers.

Run by `make gpu-smoke` with the interpreter of a venv holding the `gpu` extra (as the image does) and
the `nvidia-cuda-cuobjdump` wheel. It checks, in order:
1. cuobjdump on the installed libmxnet.so lists cubins for exactly `function.device.ARCHITECTURES` and no
   PTX, so a change of wheel cannot change the support matrix silently; and NVRTC, which compiles MXNet's
   fused kernels for the device at run time, knows both ends of `SUPPORTED_RANGE`.
2. With the Dockerfile's environment and no driver, `import mxnet` fails for want of libcuda.so.1; with
   `LIBCUDA_FALLBACK` naming a stub built here (on no library path) the CUDA build imports and sees no GPU.
3. The server started that way becomes ready on the CPU and classifies the sample images.
"""

import ctypes
import json
import os
import re
import site
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from function.device import ARCHITECTURES, SUPPORTED_RANGE

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data"
STUB_SOURCE = ROOT / "tools" / "libcuda_stub.c"
PORT = 18080
READY_SECONDS = 120
MIN_CORRECT = 8  # of the 10 sample images; the shipped weights get 9


def server(site_packages: Path) -> tuple[list[str], dict[str, str]]:
    """The image's entry point and the environment it needs: the one place the server's start is spelled."""
    return [sys.executable, "-m", "function"], {}


def dockerfile_library_path(site_packages: Path) -> str:
    """The LD_LIBRARY_PATH the Dockerfile sets, with its $SITE resolved for this venv."""
    value = re.search(r"LD_LIBRARY_PATH=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)
    return value.replace("$SITE", str(site_packages))


def build_stub(folder: Path) -> Path:
    """The stub as the image builds it: its soname lets it stand in for libcuda.so.1 once loaded."""
    stub = folder / "libcuda.so.1"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-Wl,-soname,libcuda.so.1", "-o", str(stub), str(STUB_SOURCE)], check=True
    )
    return stub


def check_architectures(site_packages: Path) -> None:
    library = site_packages / "mxnet" / "libmxnet.so"
    (cuobjdump,) = site_packages.glob("nvidia/*/bin/cuobjdump")

    def listing(option: str) -> str:
        return subprocess.run([str(cuobjdump), option, str(library)], capture_output=True, text=True, check=True).stdout

    cubins = Counter(int(arch) for arch in re.findall(r"\.sm_(\d+)\.cubin$", listing("--list-elf"), re.MULTILINE))
    ptx = re.findall(r"^PTX file.*$", listing("--list-ptx"), re.MULTILINE)
    print(f"libmxnet.so cubins per architecture: {dict(sorted(cubins.items()))}; PTX files: {len(ptx)}")
    if sorted(cubins) != sorted(ARCHITECTURES) or ptx:
        raise SystemExit(
            f"libmxnet.so has cubins for {sorted(cubins)} and {len(ptx)} PTX files; function/device.py declares "
            f"{list(ARCHITECTURES)} and no PTX: update ARCHITECTURES, SUPPORTED_RANGE and the README's GPU table"
        )
    (nvrtc,) = site_packages.glob("nvidia/cuda_nvrtc/lib/libnvrtc.so.*[0-9]")
    compiler = ctypes.CDLL(str(nvrtc))
    count = ctypes.c_int()
    compiler.nvrtcGetNumSupportedArchs(ctypes.byref(count))
    archs = (ctypes.c_int * count.value)()
    compiler.nvrtcGetSupportedArchs(archs)
    ends = [major * 10 + minor for major, minor in SUPPORTED_RANGE]
    print(f"NVRTC ({nvrtc.name}) compiles for {list(archs)}")
    if not set(ends) <= set(archs):
        raise SystemExit(f"NVRTC cannot compile MXNet's fused kernels for compute_{ends[0]} and compute_{ends[1]}")


def run_python(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], env=env, cwd="/", capture_output=True, text=True, timeout=120)


def check_no_driver(env: dict[str, str], stub: Path) -> None:
    """Without a driver mxnet-cu112 cannot even be imported; LIBCUDA_FALLBACK alone makes it import."""
    bare = run_python(env, "-c", "import mxnet")
    if bare.returncode == 0 or "libcuda.so.1" not in bare.stderr:
        raise SystemExit(f"expected `import mxnet` to fail without libcuda.so.1 here: {bare.stderr[-500:]}")
    print(f"without a driver: {bare.stderr.strip().splitlines()[-1]}")
    fallback = {**env, "LIBCUDA_FALLBACK": str(stub)}
    report = json.loads(run_python(fallback, "-m", "function.device").stdout)
    print(f"with LIBCUDA_FALLBACK: {report}")
    if report["libcuda"] != "fallback" or report["gpus"]:
        raise SystemExit("expected the fallback stub in use and no GPU")
    features = run_python(
        fallback,
        "-c",
        "from function.device import ensure_libcuda; ensure_libcuda(); import mxnet as mx; "
        "print(mx.runtime.Features().is_enabled('CUDA'), mx.context.num_gpus())",
    ).stdout.split()
    print(f"mxnet built with CUDA: {features[0]}, GPUs visible: {features[1]}")
    if features != ["True", "0"]:
        raise SystemExit("expected the CUDA build of mxnet seeing no GPU")


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def classify(url: str, image: bytes) -> dict:
    request = urllib.request.Request(url, data=image, headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main() -> int:
    site_packages = Path(site.getsitepackages()[0])
    if not (site_packages / "function" / "__main__.py").exists():
        sys.exit(f"{site_packages}/function is missing: install the project (not editable) with the gpu extra first")
    check_architectures(site_packages)
    command, server_env = server(site_packages)
    inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "LIBCUDA_FALLBACK")}
    env = {
        **inherited,
        "PORT": str(PORT),
        "WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
        "LD_LIBRARY_PATH": dockerfile_library_path(site_packages),
        **server_env,
    }
    with tempfile.TemporaryDirectory() as folder:
        stub = build_stub(Path(folder))
        check_no_driver(env, stub)
        process = subprocess.Popen(command, env={**env, "LIBCUDA_FALLBACK": str(stub)}, cwd="/")
        try:
            return check(f"http://127.0.0.1:{PORT}")
        finally:
            process.terminate()
            process.wait(30)


def check(url: str) -> int:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            status, body = get(f"{url}/health/readiness")
            if status == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            status, body = None, {}
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready after {READY_SECONDS} s: {status} {body}")
        time.sleep(0.5)
    print(f"ready: {body}")
    if body["device"] != "cpu":
        raise SystemExit(f"expected the CPU fallback, got device {body['device']}")
    samples = sorted(SAMPLES.glob("*.jpg"))
    correct = 0
    for sample in samples:
        answer = classify(url, sample.read_bytes())
        correct += answer["label"] == sample.stem
        print(f"{sample.name:16} -> {answer['label']:10} {answer['probability']:.3f} on {answer['device']}")
    print(f"{correct}/{len(samples)} sample images right with the GPU build on the CPU (floor {MIN_CORRECT})")
    return 0 if correct >= MIN_CORRECT else 1


if __name__ == "__main__":
    sys.exit(main())
