"""Rendering the Helm chart with the real `helm` binary, shared by the chart test modules.

The Knative rules the chart enforces were read from knative/serving just after knative-v1.23.0
(commit 98e5ef9, August 2026), knative/eventing of June 2026 (commit 8cf4c4b, after
knative-v1.22.0) and knative/pkg of July 2026 (commit 521cb33); each test names the file and
function a rule comes from.
"""

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import ROOT

CHART = ROOT / "chart"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


def helm(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("helm")
    assert binary, "helm is not on PATH: run the tests through `make test`, which installs it"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def template(*args: str, release: str = "cifar") -> subprocess.CompletedProcess:
    return helm("template", release, str(CHART), "--namespace", "ml", *args)


def render(*args: str, release: str = "cifar") -> list[dict]:
    result = template(*args, release=release)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def service(*args: str, release: str = "cifar") -> dict:
    (found,) = by_kind(render(*args, release=release), "Service")
    return found


def container(*args: str) -> dict:
    (found,) = service(*args)["spec"]["template"]["spec"]["containers"]
    return found


def env(*args: str) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(*args)["env"]}


def values_file(tmp_path: Path, text: str) -> str:
    """A values file: numbers in it reach the templates as floats, unlike --set's integers."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "values.yaml"
    path.write_text(text)
    return str(path)
