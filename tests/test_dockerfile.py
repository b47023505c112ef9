"""The Dockerfile, checked without a Docker engine: hadolint and the runtime contract it must keep."""

import re
import shutil
import subprocess
import tomllib

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_as_non_root_with_functions_framework_on_port() -> None:
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["functions-framework"]' in DOCKERFILE
    assert "PORT=8080" in DOCKERFILE and "FUNCTION_TARGET=handle" in DOCKERFILE


def test_variant_selects_the_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "ARG VARIANT=gpu" in DOCKERFILE and '".[${VARIANT}]"' in DOCKERFILE
    assert any(d.startswith("mxnet-cu112") for d in extras["gpu"])
    assert any(d.startswith("mxnet==") for d in extras["cpu"])


def test_every_cuda_wheel_of_the_gpu_extra_is_on_the_library_path() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    folders = {
        "nvidia-cuda-runtime-cu11": "cuda_runtime",
        "nvidia-cublas-cu11": "cublas",
        "nvidia-cudnn-cu11": "cudnn",
        "nvidia-cufft-cu11": "cufft",
        "nvidia-curand-cu11": "curand",
        "nvidia-cusolver-cu11": "cusolver",
        "nvidia-cusparse-cu11": "cusparse",
        "nvidia-cuda-nvrtc-cu11": "cuda_nvrtc",
        "nvidia-nvtx-cu11": "nvtx",
        "nvidia-nccl-cu11": "nccl",
    }
    wheels = {re.split(r"[<>=]", d)[0] for d in extras["gpu"] if d.startswith("nvidia-")}
    assert wheels == set(folders)
    library_path = re.search(r"LD_LIBRARY_PATH=(\S+)", DOCKERFILE).group(1)
    assert {f"$SITE/nvidia/{folder}/lib" for folder in folders.values()} == set(library_path.split(":"))


def test_dockerignore_keeps_the_context_small() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*")] == "*"
    assert "!function/" in ignore and ".venv" not in " ".join(i for i in ignore if i.startswith("!"))
