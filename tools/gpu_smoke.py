"""Smoke test of the GPU build without a GPU: mxnet-cu112, a stub libcuda, the image's entry point.

Run by `make gpu-smoke` with the interpreter of a venv holding the `gpu` extra (as the image does).
It builds the stub driver, starts `functions-framework` with the environment the Dockerfile sets,
and checks that the function falls back to the CPU and classifies the sample images correctly.
"""

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data"
STUB_SOURCE = ROOT / "tools" / "libcuda_stub.c"
PORT = 18080


def dockerfile_library_path(site_packages: str) -> str:
    """The LD_LIBRARY_PATH the Dockerfile sets, with its $SITE resolved for this venv."""
    value = re.search(r"LD_LIBRARY_PATH=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)
    return value.replace("$SITE", site_packages)


def build_stub(folder: Path) -> None:
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(folder / "libcuda.so.1"), str(STUB_SOURCE)], check=True)


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
    site_packages = site.getsitepackages()[0]
    source = Path(site_packages) / "function" / "main.py"
    if not source.exists():
        sys.exit(f"{source} is missing: install the project (not editable) with the gpu extra first")
    with tempfile.TemporaryDirectory() as stub:
        build_stub(Path(stub))
        env = {
            **os.environ,
            "PORT": str(PORT),
            "WORKERS": "1",
            "THREADS": "16",
            "PYTHONUNBUFFERED": "1",
            "FUNCTION_TARGET": "handle",
            "FUNCTION_SOURCE": str(source),
            "LD_LIBRARY_PATH": f"{dockerfile_library_path(site_packages)}:{stub}",
        }
        features = subprocess.run(
            [
                sys.executable,
                "-c",
                "import mxnet as mx; print(mx.runtime.Features().is_enabled('CUDA'), mx.context.num_gpus())",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        print(f"mxnet built with CUDA: {features[0]}, GPUs visible: {features[1]}")
        if features != ["True", "0"]:
            raise SystemExit("expected the CUDA build of mxnet seeing no GPU")
        server = subprocess.Popen([str(Path(sys.executable).parent / "functions-framework")], env=env, cwd="/")
        try:
            return check(f"http://127.0.0.1:{PORT}")
        finally:
            server.terminate()
            server.wait(30)


def check(url: str) -> int:
    deadline = time.monotonic() + 120
    while True:
        try:
            status, body = get(f"{url}/health/readiness")
            if status == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            status, body = None, {}
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready after 120 s: {status} {body}")
        time.sleep(0.5)
    print(f"ready: {body}")
    if body["device"] != "cpu":
        raise SystemExit(f"expected the CPU fallback, got device {body['device']}")
    correct = 0
    for sample in sorted(SAMPLES.glob("*.jpg")):
        answer = classify(url, sample.read_bytes())
        correct += answer["label"] == sample.stem
        print(f"{sample.name:16} -> {answer['label']:10} {answer['probability']:.3f} on {answer['device']}")
    total = len(list(SAMPLES.glob("*.jpg")))
    print(f"{correct}/{total} sample images classified correctly by the GPU build on the CPU")
    return 0 if correct >= total - 2 else 1


if __name__ == "__main__":
    sys.exit(main())
