"""Virtual environments the benchmark makes for itself under `.cache/bench/` (peers, py-spy).

Each is made on first use with pip and stamped with what it was asked to hold; a different list
makes it again, so a change of pins cannot leave a stale environment behind.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"


def ensure(name: str, packages: tuple[str, ...]) -> Path:
    """The interpreter of `.cache/bench/venv-<name>` holding `packages`, installed if need be."""
    venv = CACHE / f"venv-{name}"
    wanted = "\n".join(packages) + "\n"
    stamp = venv / "bench-installed.txt"
    python = venv / "bin" / "python"
    if stamp.is_file() and stamp.read_text() == wanted and python.exists():
        return python
    print(f"installing {' '.join(packages)} into {venv} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *packages], check=True)
    stamp.write_text(wanted)
    return python


def installed_version(python: Path, package: str) -> str:
    """`package`'s version in the environment of `python`, as pip reports it."""
    out = subprocess.run([str(python), "-m", "pip", "show", package], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:")), "?")
