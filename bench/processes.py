"""Starting a server, waiting for its first answer, and reading the memory of its process tree."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def function_command() -> list[str]:
    """The function's server as `make serve` runs it: `python -m function` (HOST and PORT from the environment)."""
    return [sys.executable, "-m", "function"]


def free_port() -> int:
    """A TCP port free on loopback now (the machine is shared: fixed ports may be taken)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tree(pid: int) -> list[int]:
    """The process and all its descendants (the front process and its inference workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) so far of the process `pid` and of its descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    own = descendants = 0.0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / ticks
        if member == pid:
            own = seconds
        else:
            descendants += seconds
    return own, descendants


def memory_kib(pid: int, field: str) -> int:
    """Sum of a /proc status field (VmRSS now, VmHWM peak) over the process tree, in KiB."""
    total = 0
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Server:
    """A server process in a session of its own (stopped with all its children), its output in `log`."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        url: str,
        cwd: Path,
        log: Path | None = None,
        unset: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.started = time.perf_counter()
        self.cold_start: float | None = None
        environment = {k: v for k, v in {**os.environ, **env}.items() if k not in unset}
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        output = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        try:
            self.process = subprocess.Popen(
                command,
                env=environment,
                cwd=cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log is not None:
                output.close()

    def first_answer(self, path: str, body: bytes, content_type: str, timeout: float = 180) -> float:
        """Seconds from process start to the first 200 on `path`: the cold start."""
        while time.perf_counter() - self.started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            request = urllib.request.Request(self.url + path, data=body, headers={"Content-Type": content_type})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    if response.status == 200:
                        self.cold_start = time.perf_counter() - self.started
                        return self.cold_start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.01)
        raise TimeoutError(f"no answer from {self.url}{path} within {timeout} s")

    def stop(self, grace_seconds: float = 30) -> None:
        """SIGTERM to the session, SIGKILL after `grace_seconds` (at once when 0)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM if grace_seconds else signal.SIGKILL)
            try:
                self.process.wait(grace_seconds or None)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
