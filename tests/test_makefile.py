"""The Makefile's first run: the Python 3.11 check, the venv rebuilt for another interpreter, the extras.

Each test runs the real `make` on a copy of the Makefile in a temporary directory, with a PATH that
holds only the interpreters the test puts there, so neither this machine's Pythons nor the
project's own .venv take part. A "Python 3.12" is the real interpreter told by a sitecustomize to
report 3.12 through `sys.version_info`, which is what the Makefile reads. No package is
installed: the install steps are checked with `make -n`.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
# A venv with ensurepip takes a few seconds; make stops long before this when it should.
MAKE_TIMEOUT_SECONDS = 60
SERVING_INSTALL = '-e ".[cpu]"'
FULL_INSTALL = '-e ".[cpu,dev]"'
# The commands the venv recipes run besides Python, linked into the test's PATH.
RECIPE_COMMANDS = ("rm", "touch")
# Variables of the caller's environment that would change what make does here.
UNSET = ("PYTHON", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "WORKERS", "THREADS")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def interpreter(path: Path, version: tuple[int, int, int] | None = None) -> Path:
    """A script at `path` running this test's Python, reporting `version` as sys.version_info if given."""
    env = ""
    if version is not None:
        site = path.parent / f"site-{path.name}"
        site.mkdir()
        (site / "sitecustomize.py").write_text(f"import sys\nsys.version_info = {(*version, 'final', 0)!r}\n")
        env = f'PYTHONPATH="{site}" '
    path.write_text(f'#!/bin/sh\n{env}exec "{sys.executable}" "$@"\n')
    path.chmod(0o755)
    return path


def make(cwd: Path, *args: str, path: Path) -> subprocess.CompletedProcess[str]:
    """`make` in `cwd` with only `path` on PATH (no python3.11 or python3 but the ones put there).

    pip is kept offline, so a Makefile that went on to install would fail fast, not download; make
    runs in its own session, so a timeout ends its children too.
    """
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env |= {"PATH": str(path), "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}
    with subprocess.Popen(
        [MAKE, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=MAKE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def venv_version(project: Path) -> str:
    """The version the project's .venv interpreter reports."""
    code = "import sys; print('.'.join(map(str, sys.version_info[:3])))"
    return subprocess.run(
        [project / ".venv" / "bin" / "python", "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The files the install targets read, copied from the working tree (uncommitted edits included)."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, project / name)
    return project


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """The directory for PATH: the recipes' commands, and the interpreters a test puts there."""
    path = tmp_path / "bin"
    path.mkdir()
    for command in RECIPE_COMMANDS:
        (path / command).symlink_to(shutil.which(command))
    return path


@pytest.fixture
def stale_venv(project: Path) -> Path:
    """A .venv whose interpreter is a Python 3.12, as a first attempt with python3 at 3.12 leaves it."""
    bin_path = project / ".venv" / "bin"
    bin_path.mkdir(parents=True)
    (project / ".venv" / "pyvenv.cfg").write_text("version = 3.12.1\n")
    interpreter(bin_path / "python", (3, 12, 1))
    assert venv_version(project) == "3.12.1"
    return project / ".venv"


def test_stops_at_once_without_python_3_11(project: Path, bin_dir: Path) -> None:
    interpreter(bin_dir / "python3", (3, 12, 1))
    result = make(project, "run", path=bin_dir)
    assert result.returncode != 0
    assert "Python 3.11 is required" in result.stderr
    assert "python3.11: not found; python3: 3.12.1" in result.stderr
    assert "PYTHON=" in result.stderr and "uv python install 3.11" in result.stderr
    assert "pip" not in result.stdout
    assert not (project / ".venv").exists()


def test_a_named_python_that_is_not_3_11_stops_before_the_venv_is_touched(
    project: Path, bin_dir: Path, tmp_path: Path
) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", project / ".venv"], check=True, timeout=60)
    before = (project / ".venv" / "pyvenv.cfg").stat().st_mtime_ns
    python312 = interpreter(tmp_path / "python3.12", (3, 12, 1))
    result = make(project, "install", f"PYTHON={python312}", path=bin_dir)
    assert result.returncode != 0
    assert f"PYTHON={python312} (from the command line): 3.12.1" in result.stderr
    assert (project / ".venv" / "pyvenv.cfg").stat().st_mtime_ns == before


@pytest.mark.parametrize("named", [True, False], ids=["PYTHON=", "python3.11 on PATH"])
def test_a_venv_of_another_interpreter_is_rebuilt_once(
    project: Path, bin_dir: Path, stale_venv: Path, named: bool
) -> None:
    python311 = interpreter(bin_dir / "python3.11")
    args = ["venv", f"PYTHON={python311}"] if named else ["venv"]
    result = make(project, *args, path=bin_dir)
    assert result.returncode == 0, result.stderr
    assert venv_version(project) == ".".join(map(str, sys.version_info[:3]))
    rebuilt = (stale_venv / "pyvenv.cfg").stat().st_mtime_ns
    again = make(project, *args, path=bin_dir)
    assert again.returncode == 0, again.stderr
    assert "-m venv" not in again.stdout
    assert (stale_venv / "pyvenv.cfg").stat().st_mtime_ns == rebuilt


def test_run_installs_serving_only_and_test_upgrades_the_same_venv(project: Path, bin_dir: Path) -> None:
    interpreter(bin_dir / "python3.11")
    run = make(project, "-n", "run", path=bin_dir).stdout
    assert run.count("-m venv") == 1 and SERVING_INSTALL in run and FULL_INSTALL not in run
    test = make(project, "-n", "test", path=bin_dir).stdout  # right away: everything in one pip run
    assert test.count("-m venv") == 1 and test.count(FULL_INSTALL) == 1 and SERVING_INSTALL not in test

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", project / ".venv"], check=True, timeout=60)
    run = make(project, "-n", "run", path=bin_dir).stdout
    assert SERVING_INSTALL in run and "-m venv" not in run

    (project / ".venv" / ".installed-cpu").touch()  # what `make run` leaves
    run = make(project, "-n", "run", path=bin_dir).stdout
    assert "pip install" not in run
    test = make(project, "-n", "test", path=bin_dir).stdout
    assert test.count(FULL_INSTALL) == 1 and "-m venv" not in test

    (project / ".venv" / ".installed-dev").touch()  # what `make test` leaves
    for goal in ("run", "test"):
        assert "pip install" not in make(project, "-n", goal, path=bin_dir).stdout


def test_workers_is_left_to_the_server(project: Path, bin_dir: Path) -> None:
    """No WORKERS from `nproc` (missing on macOS): unset unless the user sets it, the server sizes it."""
    interpreter(bin_dir / "python3.11")
    database = make(project, "-p", "-n", "serve", path=bin_dir).stdout
    defined = [line for line in database.splitlines() if line.split(" ", 1)[0] in ("WORKERS", "THREADS")]
    assert defined == []
    assert "WORKERS=" not in make(project, "-n", "serve", path=bin_dir).stdout


def test_every_make_target_the_readme_names_has_a_recipe() -> None:
    """`make deploy` and `make clean` once lost their rules in a merge while the README still named them."""
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`make ([a-z][a-z-]*)", readme))
    dry = {target: subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True) for target in named}
    silent = sorted(t for t, r in dry.items() if "Nothing to be done" in r.stdout + r.stderr or "No rule" in r.stderr)
    assert named and not silent
