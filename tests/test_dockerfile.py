"""The Dockerfile, checked without a Docker engine: hadolint and the runtime contract it must keep."""

import json
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


def test_runs_as_non_root_with_an_exec_form_entry_point_on_port() -> None:
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1].isdigit() and users[-1] != "0"  # runAsNonRoot can only verify a numeric uid
    entrypoints = re.findall(r"^ENTRYPOINT (.+)$", DOCKERFILE, re.MULTILINE)
    assert len(entrypoints) == 1 and json.loads(entrypoints[0])  # exec form: the server is PID 1 and gets SIGTERM
    assert "PORT=8080" in DOCKERFILE


def test_variant_selects_the_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "ARG VARIANT=gpu" in DOCKERFILE
    assert '*p["optional-dependencies"][sys.argv[1]]' in DOCKERFILE and '"${VARIANT}" >requirements.txt' in DOCKERFILE
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


def apt_packages(text: str) -> list[str]:
    """Every package named by an `apt-get install` in the Dockerfile, options dropped."""
    commands = re.findall(r"apt-get install ([^&\n]+)", text)
    return [word for command in commands for word in command.split() if not word.startswith(("-", "\\"))]


def test_apt_packages_are_unpinned_and_in_the_offline_source() -> None:
    packages = apt_packages(DOCKERFILE)
    assert packages and not [p for p in packages if "=" in p]  # a point release must not break the build
    makefile = (ROOT / "Makefile").read_text()
    offline = re.search(r"^IMAGE_DEBS\s*:=\s*(.+)$", makefile, re.MULTILINE).group(1).split()
    assert sorted(offline) == sorted(packages)


def test_gpu_fallback_driver_is_off_the_loader_path() -> None:
    gpu_stage = DOCKERFILE[DOCKERFILE.index("AS runtime-gpu") :]
    fallback = re.search(r"LIBCUDA_FALLBACK=(\S+)", gpu_stage).group(1)
    folder = fallback.rsplit("/", 1)[0]
    assert fallback.endswith("/libcuda.so.1") and f"-o {fallback}" in DOCKERFILE
    assert folder not in re.search(r"LD_LIBRARY_PATH=(\S+)", gpu_stage).group(1).split(":")
    assert "ldconfig" not in DOCKERFILE and "ld.so.conf" not in DOCKERFILE
    cpu_stage = DOCKERFILE[DOCKERFILE.index("AS runtime-cpu") : DOCKERFILE.index("AS runtime-gpu")]
    assert "LIBCUDA_FALLBACK" not in cpu_stage


def test_the_stub_source_reaches_the_build_context() -> None:
    assert "COPY tools/libcuda_stub.c" in DOCKERFILE
    assert "!tools/libcuda_stub.c" in (ROOT / ".dockerignore").read_text().split()


def test_dependencies_install_before_the_code_arrives_and_gpu_smoke_drops_what_the_image_drops() -> None:
    """A code or README change must not reinstall 2.5 GB of wheels; gpu-smoke must see the image's packages."""
    build = DOCKERFILE[DOCKERFILE.index("AS build") : DOCKERFILE.index("AS libcuda-fallback")]
    assert build.index("pip install --no-cache-dir -r requirements.txt") < build.index("COPY function")
    assert build.index("COPY README.md") > build.index("-r requirements.txt") and "COPY training" not in build
    assert "pip install --no-cache-dir --no-deps ." in build[build.index("COPY function") :]
    dropped = re.search(r"pip uninstall --yes ((?:[\w.-]+\s*\\?\s*)+)", build).group(1).replace("\\", " ").split()
    makefile = (ROOT / "Makefile").read_text()
    smoke = re.search(r"^SERVING_DROPS\s*:=\s*((?:.*\\\n)*.*)$", makefile, re.MULTILINE).group(1)
    assert sorted(dropped) == sorted(smoke.replace("\\", " ").split())
    assert "pip uninstall --yes --quiet $(SERVING_DROPS)" in makefile
