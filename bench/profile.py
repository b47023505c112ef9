"""Where a request's time goes at concurrency 1: py-spy on the function's front process and worker 0.

While wrk sends one request at a time, `py-spy record` samples both processes: the front with
native frames (its event loop is uvloop's C code; a sample in `epoll_wait` is the loop waiting and
is left out), the worker at Python level (a sample in the pipe's `_recv` is the worker waiting for
work and is left out; native unwinding through MXNet would slow it several times over). py-spy's
own pauses inflate what it counts, so its samples give shares only: each share is turned into
milliseconds with the process's CPU time per request, read from /proc over the same run.

Beside the p50 latency and the in-process cost of decode plus forward for the same image, this
shows what the two processes spend above decode plus forward, and (the remainder of the latency)
how long a request waits on wake-ups and pipe hand-offs. At concurrency 1 the batcher always hands
the request to the first idle worker, worker 0.
"""

import subprocess
import time
from collections import Counter
from pathlib import Path

from bench.load import Body, wrk
from bench.processes import Server, cpu_seconds, tree
from bench.venvs import ensure

PY_SPY = ("py-spy==0.4.3",)
RATE = 250  # samples per second
TOP = 8
# Frames whose inclusive time is the work itself, not overhead (function and file, as py-spy names them).
WORK = {"decode": ("decode", "function/imaging.py"), "forward": ("probabilities", "function/inference.py")}
IDLE_NATIVE = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "select"}
IDLE_PYTHON = {("Connection._recv", "multiprocessing/connection.py")}
OPTIONS = {"front": ("--native",), "worker": ()}
Frame = tuple[str, str]  # function, file


def workers(front: int) -> list[int]:
    """The front's inference worker processes, oldest first (multiprocessing's spawned children)."""
    found = []
    for pid in tree(front)[1:]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in command:
            found.append(pid)
    return sorted(found)


def parse(path: Path) -> list[tuple[list[Frame], int]]:
    """py-spy's raw (collapsed) output: per line, frames `function (file:line)` root first, and a count."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not frames or not count.isdigit():
            continue
        parsed = []
        for frame in frames.split(";"):
            name, _, where = frame.rpartition(" (")
            parsed.append((name, where.rstrip(")").rsplit(":", 1)[0]))
        stacks.append((parsed, int(count)))
    return stacks


def is_python(frame: Frame) -> bool:
    return frame[1].endswith(".py") or frame[1].startswith("<")


def module(file: str) -> str:
    """`uvicorn/protocols/http/h11_impl.py` -> `uvicorn`, `function/batcher.py` -> `function.batcher`."""
    parts = file.removesuffix(".py").split("/")
    return ".".join(parts[:2]) if parts[0] == "function" else parts[0]


def idle(frames: list[Frame]) -> bool:
    return frames[-1][0] in IDLE_NATIVE or frames[-1] in IDLE_PYTHON


def summarize(stacks: list[tuple[list[Frame], int]], cpu_ms_per_request: float) -> dict:
    """Milliseconds per request of the busy samples' shares of `cpu_ms_per_request`: in the work frames
    (inclusive), and by module and by function (self; a native leaf is named after its Python caller)."""
    busy = [(frames, count) for frames, count in stacks if not idle(frames)]
    total = sum(count for _, count in busy)
    scale = cpu_ms_per_request / max(total, 1)
    functions: Counter = Counter()
    modules: Counter = Counter()
    work: Counter = Counter()
    for frames, count in busy:
        caller = next((frame for frame in reversed(frames) if is_python(frame)), frames[-1])
        native = "" if is_python(frames[-1]) else f" [{frames[-1][0]}]"
        functions[f"{caller[0]} ({caller[1]}){native}"] += count
        modules[module(caller[1])] += count
        for label, frame in WORK.items():
            if frame in frames:
                work[label] += count
    return {
        "busy_samples": total,
        "idle_samples": sum(count for _, count in stacks) - total,
        "cpu_ms_per_request": round(cpu_ms_per_request, 3),
        "work_ms_per_request": {label: round(work[label] * scale, 3) for label in WORK},
        "modules": [[name, round(count * scale, 3)] for name, count in modules.most_common(TOP)],
        "functions": [[name, round(count * scale, 3)] for name, count in functions.most_common(TOP)],
    }


def profile(server: Server, body: Body, seconds: int, folder: Path) -> dict:
    """wrk at concurrency 1 for `seconds` while py-spy samples the front process and worker 0."""
    py_spy = ensure("tools", PY_SPY).parent / "py-spy"
    front = server.process.pid
    targets = {"front": front, "worker": workers(front)[0]}
    folder.mkdir(parents=True, exist_ok=True)
    recorders = [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                *OPTIONS[role],
                "--pid",
                str(pid),
                "--duration",
                str(seconds + 1),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--output",
                str(folder / f"{role}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for role, pid in targets.items()
    ]
    time.sleep(0.5)  # attached before the first request
    before = {role: cpu_seconds(pid)[0] for role, pid in targets.items()}
    run = wrk(server.url, body, 1, seconds)
    used = {role: cpu_seconds(pid)[0] - before[role] for role, pid in targets.items()}
    for recorder in recorders:
        recorder.wait(seconds + 30)
    per_request = 1000 / max(run["requests"], 1)
    return {
        "run": run,
        "rate_hz": RATE,
        **{role: summarize(parse(folder / f"{role}.txt"), used[role] * per_request) for role in targets},
    }
