"""Benchmark: this function against its peers and the tutorial's server, on loopback, bounded in time.

    python -m bench.run [--seconds 10] [--out bench/results] [--queue-proxy PATH]

One server at a time, each driven by wrk (Debian's package), the function also by hey:

- Peers: the same KServe v1 request (`{"instances": [{"b64": ...}]}`, one 32 x 32 JPEG) at
  concurrency 1, 8 and 32 to this function (flip-averaged as shipped, single view, and single view
  with one worker) and to KServe and MLServer serving the same weights with the same preprocessing
  (`bench/peers/`, single view, one worker, their defaults), each installed into a venv of its own.
  Ours at concurrency 1: three runs, each against the in-process decode + forward measured just
  before and after it; the run of median ratio counts.
- The tutorial: its multipart `/predict` at concurrency 1, 8 and 32 to this function and to a
  faithful reproduction of the tutorial's Flask server.
- Photos, last (no c=1 run follows them): deterministic photo-like JPEGs
  (`bench/photos.py`) of 640 x 480, 1920 x 1080 and 4032 x 3024, raw and as the tutorial's
  multipart, at concurrency 1 and 8, beside the rate at which plain Pillow decodes and resizes the
  same image on all cores (its naive limit).
- Balance: three consecutive runs at concurrency 32 and their spread; three runs of hey, a pooled
  client (a Go keep-alive pool that reuses the most recently idle connection), each paired with a
  wrk run; with `--queue-proxy`, three more through Knative's queue-proxy in front of the function,
  each paired likewise. Beside each: the CPU the client (or queue-proxy) took, the function's CPU
  per request and each inference worker's share of the workers' CPU.
- Profile: one request at a time under py-spy (`bench/profile.py`).

Also measured in the same run: cold start (process start to first answer), peak memory, CPU
milliseconds per request of each server's processes, the time to import mxnet and gluoncv alone,
the forward-pass limit (in-process, batch 32, all cores) and the in-process time of decode plus
forward for the request's one image.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import peers, photos
from bench.load import Body, hey, kserve_v1, multipart, write, wrk
from bench.processes import Server, cpu_seconds, free_port, function_command, memory_kib
from bench.profile import profile
from function.config import Settings
from training import machine

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "tests" / "data" / "horse.jpg"
PARAMS = ROOT / "function" / "weights" / "cifar_resnet20_v1.params"
WORK = ROOT / ".cache" / "bench"
CONCURRENCY = (1, 8, 32)
PHOTO_CONCURRENCY = (1, 8)
BALANCE_RUNS = 3
# The function as `make serve` runs it: one inference worker per CPU (WORKERS=0), one MXNet
# thread each, flip averaging on.
AT_ONE_REPEATS = 3  # runs at concurrency 1 per server; the median ratio counts
SERVER_DEFAULTS = {"WORKERS": "0", "OMP_NUM_THREADS": "1", "FLIP_AVERAGE": "true"}
# Variables of the function's own that must not reach a peer, which runs with its own defaults.
FUNCTION_ONLY = ("WORKERS", "OMP_NUM_THREADS", "FLIP_AVERAGE", "MODEL_PARAMS", "PORT", "HOST")

IMPORT_SNIPPET = "import time; t = time.perf_counter(); import mxnet, gluoncv; print(time.perf_counter() - t)"
FORWARD_SNIPPET = """
import sys, time, numpy as np
from function.config import Settings
from function.model import ModelHolder
settings = Settings.from_env()
holder = ModelHolder(settings.model_params, "cpu", 30, flip_average=settings.flip_average)
holder.wait(60)
images = np.random.default_rng(0).integers(0, 255, (32, 32, 32, 3), dtype=np.uint8)
for _ in range(5):
    holder.forward(images)
count, start = 0, time.perf_counter()
while time.perf_counter() - start < float(sys.argv[1]):
    holder.forward(images)
    count += 32
print(count / (time.perf_counter() - start))
"""
# One request's work, as a worker does it (one MXNet thread): decode the image, one forward pass.
REQUEST_SNIPPET = """
import statistics, sys, time
from pathlib import Path
from function.config import Settings
from function.imaging import decode
from function.model import ModelHolder
settings = Settings.from_env()
holder = ModelHolder(settings.model_params, "cpu", 30, flip_average=settings.flip_average)
holder.wait(60)
data = Path(sys.argv[2]).read_bytes()
times, start = [], time.perf_counter()
while time.perf_counter() - start < float(sys.argv[1]) or len(times) < 50:
    time.sleep(float(sys.argv[3]))
    t = time.perf_counter()
    holder.forward(decode(data, settings.max_image_pixels)[None])
    times.append(time.perf_counter() - t)
print(statistics.median(times[10:]) * 1000)
"""


def import_seconds() -> float:
    runs = [
        float(subprocess.run([sys.executable, "-c", IMPORT_SNIPPET], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    ]
    return statistics.median(runs)


def snippet(code: str, env: dict[str, str], *args: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout)


def forward_limit(seconds: float, server_env: dict[str, str]) -> float:
    """The machine's limit for the served forward pass (the model holder's, with the server's
    FLIP_AVERAGE), batch 32, on all cores whatever OMP_NUM_THREADS the servers are given (unset,
    MXNet would start threads for half the CPUs: one on 2 cores)."""
    env = {**os.environ, **server_env, "OMP_NUM_THREADS": str(len(os.sched_getaffinity(0)))}
    return snippet(FORWARD_SNIPPET, env, str(seconds))


def request_ms(seconds: float, server_env: dict[str, str], flip_average: bool, pause: float = 0.0) -> float:
    """Median in-process milliseconds of decode plus forward for the request's image, one thread,
    back to back or each after `pause` seconds of sleep (as a server's worker sleeps between requests)."""
    env = {**os.environ, **server_env, "OMP_NUM_THREADS": "1", "FLIP_AVERAGE": str(flip_average).lower()}
    return snippet(REQUEST_SNIPPET, env, str(seconds), str(IMAGE), str(pause))


def measured(server: Server, body: Body, connections: int, seconds: int, label: str) -> dict:
    """One wrk run, with the CPU milliseconds per request of the server's top process and of its children."""
    before = cpu_seconds(server.process.pid)
    run = wrk(server.url, body, connections, seconds)
    after = cpu_seconds(server.process.pid)
    per_request = 1000 / max(run["requests"], 1)
    run["cpu_ms_per_request"] = {
        "process": round((after[0] - before[0]) * per_request, 3),
        "children": round((after[1] - before[1]) * per_request, 3),
    }
    announce(label, run)
    return run


def announce(label: str, run: dict) -> None:
    """One run's line as it ends: what it measured, for whoever watches the bench."""
    print(
        f"{label:34} c={run['concurrency']:<3} {run['rps']:8.1f} req/s  p50 {run['p50_ms']} ms  "
        f"p99 {run['p99_ms']} ms  errors {run['errors']}",
        flush=True,
    )


def measured_at_one(server: Server, body: Body, seconds: int, label: str, env: dict[str, str]) -> dict:
    """Concurrency 1, AT_ONE_REPEATS runs, each with the in-process decode + forward (the server's
    FLIP_AVERAGE) measured just before and just after it: this VM's speed drifts from minute to
    minute, and one 10-second run at c=1 moves by 10-20% from the next, so each p50 is compared with
    the reference taken around it and the run of median ratio stands for the server (all are kept)."""
    flip_average = Settings.from_env(env).flip_average
    reference = [request_ms(2.0, env, flip_average)]
    runs = []
    for _ in range(AT_ONE_REPEATS):
        run = measured(server, body, 1, seconds, label)
        reference.append(request_ms(2.0, env, flip_average))
        before, after = reference[-2:]
        run["request_ms_around"] = [round(before, 3), round(after, 3)]
        run["x_request_ms"] = ratio(run["p50_ms"], (before + after) / 2)  # None when nothing was answered
        print(f"{'':34} in-process decode + forward around it: {before:.3f} and {after:.3f} ms", flush=True)
        runs.append(run)
    chosen = sorted(runs, key=lambda run: run["x_request_ms"] or 1e9)[len(runs) // 2]
    repeats = ("p50_ms", "rps", "errors", "request_ms_around", "x_request_ms")
    return {**chosen, "repeats": [{key: run[key] for key in repeats} for run in runs]}


def runs_at(server: Server, body: Body, seconds: int, label: str, env: dict[str, str]) -> list[dict]:
    """One run per CONCURRENCY, the first (1) with its in-process reference."""
    return [measured_at_one(server, body, seconds, label, env)] + [
        measured(server, body, c, seconds, label) for c in CONCURRENCY[1:]
    ]


def started(name: str, command: list[str], env: dict[str, str], port: int, probe: Body, **kwargs) -> Server:
    server = Server(command, env, f"http://127.0.0.1:{port}", ROOT, log=WORK / "logs" / f"{name}.log", **kwargs)
    try:
        server.first_answer(probe.path, probe.read(), probe.content_type)
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        raise RuntimeError(f"{name}: {exc} (its output: {WORK / 'logs' / f'{name}.log'})") from exc
    return server


def summary(name: str, server: Server, runs: list[dict], **extra) -> dict:
    return {
        "name": name,
        **extra,
        "cold_start_s": round(server.cold_start, 3),
        "peak_memory_mib": round(memory_kib(server.process.pid, "VmHWM") / 1024, 1),
        "runs": runs,
    }


def function_env(server_env: dict[str, str], port: int, **overrides: str) -> dict[str, str]:
    return {**server_env, **overrides, "PORT": str(port), "HOST": "127.0.0.1"}


def shipped_function(args, server_env: dict[str, str], bodies: dict[str, Body]) -> dict:
    """The function as shipped: the peers' request (and the balance runs), the tutorial's, the profile."""
    port = free_port()
    server = started("function", function_command(), function_env(server_env, port), port, bodies["v1"])
    label = "function (flip-averaged)"
    try:
        peer_runs = runs_at(server, bodies["v1"], args.seconds, label, server_env)
        balance = [peer_runs[-1]] + [
            measured(server, bodies["v1"], 32, args.seconds, label + " again") for _ in range(BALANCE_RUNS - 1)
        ]
        tutorial_runs = [
            measured(server, bodies["multipart"], c, args.seconds, "function multipart") for c in CONCURRENCY
        ]
        pooled_client = pooled_client_runs(args, server, bodies["v1"])
        pooled = queue_proxy_runs(args, server, port, bodies["v1"]) if args.queue_proxy else None
        spied = profile(server, bodies["v1"], args.seconds, WORK / "profile")
        print(
            f"profile at c=1: front {spied['front']['cpu_ms_per_request']} ms CPU, "
            f"worker {spied['worker']['cpu_ms_per_request']} ms CPU per request",
            flush=True,
        )
        shipped = summary(label, server, peer_runs, config=function_env(server_env, port))
        tutorial = summary("function", server, tutorial_runs)
    finally:
        server.stop()
    return {
        "peers": shipped,
        "tutorial": tutorial,
        "balance": balance,
        "pooled_client": pooled_client,
        "pooled": pooled,
        "profile": spied,
    }


def photo_runs(args, server_env: dict[str, str], probe: Body, photo_bodies: dict[str, Body]) -> dict[str, list[dict]]:
    """The function as shipped, a fresh process, sent each photo raw and as multipart."""
    port = free_port()
    server = started("function-photos", function_command(), function_env(server_env, port), port, probe)
    try:
        return {
            key: [measured(server, body, c, args.seconds, f"function {key}") for c in PHOTO_CONCURRENCY]
            for key, body in photo_bodies.items()
        }
    finally:
        server.stop()


def queue_proxy_runs(args, function: Server, user_port: int, body: Body) -> dict:
    """BALANCE_RUNS runs at concurrency 32 through queue-proxy (wrk in front of it), each paired with
    a direct run (see `paired`), and the cores queue-proxy itself took."""
    from bench.queue_proxy import FIXED_PORTS, busy, environment, start

    taken = busy(FIXED_PORTS)
    if taken:
        print(f"queue-proxy not run: ports {taken} are taken (queue-proxy binds them itself)", flush=True)
        return {"binary": str(args.queue_proxy), "skipped": f"ports {taken} taken", "runs": []}
    port = free_port()
    proxy = start(args.queue_proxy, port, free_port(), user_port, WORK / "logs" / "queue-proxy.log")
    try:
        proxy.first_answer(body.path, body.read(), body.content_type, timeout=30)

        def through_proxy() -> dict:
            before, started_at = cpu_seconds(proxy.process.pid)[0], time.perf_counter()
            run = measured(proxy, body, 32, args.seconds, "queue-proxy -> function")
            used = cpu_seconds(proxy.process.pid)[0] - before
            return {**run, "queue_proxy_cores": round(used / (time.perf_counter() - started_at), 3)}

        runs = paired(function, body, args.seconds, through_proxy)
    finally:
        proxy.stop(grace_seconds=0)  # on SIGTERM queue-proxy waits 30 s for Kubernetes to notice
    return {
        "binary": str(args.queue_proxy),
        "fixed_ports": list(FIXED_PORTS),
        "gomaxprocs": environment(0, 0, 0).get("GOMAXPROCS"),
        "runs": runs,
        "x_direct": median_ratio(runs),
    }


def pooled_client_runs(args, function: Server, body: Body) -> dict:
    """BALANCE_RUNS runs at concurrency 32 of hey, a pooled client (Go's transport hands each request
    the most recently idle of its keep-alive connections, as queue-proxy's does), each paired with
    a wrk run (see `paired`)."""
    if shutil.which("hey") is None:
        print("pooled client not run: hey is not installed (make bench installs it)", flush=True)
        return {"client": "hey", "skipped": "hey not installed", "runs": []}

    def pooled() -> dict:
        run = hey(function.url, body, 32, args.seconds)
        announce("hey (pooled client)", run)
        return run

    runs = paired(function, body, args.seconds, pooled)
    return {"client": "hey", "runs": runs, "x_direct": median_ratio(runs)}


def median_ratio(runs: list[dict]) -> float:
    """The median of the runs' ratios to their direct pairs (a run with no answer counts as 0)."""
    return round(statistics.median(r["x_direct"] or 0 for r in runs), 2)


def paired(function: Server, body: Body, seconds: int, other: Callable[[], dict]) -> list[dict]:
    """BALANCE_RUNS runs of `other` at concurrency 32, each paired with a direct wrk run (the direct
    one first, then last, in turn) and compared with it: this VM's speed drifts by 10% and more from
    one minute to the next. Beside each run: the function's CPU per request (front and workers) in
    it and in its pair, and each inference worker's share of the workers' CPU (how evenly the work
    spread over the cores whatever the client's connections did)."""
    from bench.profile import workers

    pids = workers(function.process.pid)
    runs = []
    for index in range(BALANCE_RUNS):
        direct_first = index % 2 == 0
        direct = measured(function, body, 32, seconds, "function (direct, paired)") if direct_first else None
        function_before, workers_before = cpu_seconds(function.process.pid), [cpu_seconds(p)[0] for p in pids]
        run = other()
        used = [cpu_seconds(p)[0] - b for p, b in zip(pids, workers_before, strict=True)]
        spent = [
            (a - b) * 1000 / max(run["requests"], 1)
            for a, b in zip(cpu_seconds(function.process.pid), function_before, strict=True)
        ]
        if not direct_first:
            direct = measured(function, body, 32, seconds, "function (direct, paired)")
        run["function_cpu_ms_per_request"] = round(sum(spent), 3)
        run["function_front_workers_ms"] = [round(x, 3) for x in spent]
        run["worker_cpu_shares"] = [round(u / max(sum(used), 1e-9), 3) for u in used]
        run["direct_rps"] = direct["rps"]
        run["direct_errors"] = direct["errors"]
        run["direct_client_cores"] = direct["client_cores"]
        run["direct_front_workers_ms"] = [direct["cpu_ms_per_request"][k] for k in ("process", "children")]
        run["x_direct"] = ratio(run["rps"], direct["rps"])
        runs.append(run)
    return runs


def function_variant(args, server_env: dict[str, str], body: Body, label: str, **overrides: str) -> dict:
    port = free_port()
    env = function_env(server_env, port, **overrides)
    server = started(re.sub(r"\W+", "-", label).strip("-"), function_command(), env, port, body)
    try:
        runs = runs_at(server, body, args.seconds, label, env)
        return summary(label, server, runs, config=env)
    finally:
        server.stop()


def peer(args, which: peers.Peer, body: Body) -> dict:
    python = which.python()
    port = free_port()
    if which is peers.KSERVE:
        command = peers.kserve_command(python, port, free_port())
    else:
        command = peers.mlserver_command(python, port, free_port(), free_port())
    label = f"{which.name} {which.version()}"
    # MXNet's synchronous engine, as the function's workers run it on a CPU (the threaded one costs ~15%)
    env = {"PYTHONPATH": str(ROOT), "MXNET_ENGINE_TYPE": "NaiveEngine"}
    server = started(which.name, command, env, port, body, unset=FUNCTION_ONLY)
    try:
        runs = [measured(server, body, c, args.seconds, label) for c in CONCURRENCY]
        return summary(label, server, runs, config={"package": which.package, "python": str(python)})
    finally:
        server.stop()


def tutorial_server(args, body: Body) -> dict:
    port = free_port()
    server = started(
        "tutorial",
        [sys.executable, "bench/tutorial_server.py"],
        {"MODEL_PARAMS": str(PARAMS), "PORT": str(port)},
        port,
        body,
    )
    try:
        runs = [measured(server, body, c, args.seconds, "tutorial") for c in CONCURRENCY]
        return summary("tutorial", server, runs)
    finally:
        server.stop()


def photo_section(seconds: float, photo_runs: dict[str, list[dict]], files: dict[tuple[int, int], Path]) -> list[dict]:
    """Per photo size: bytes, the naive limit, and per encoding and concurrency the served figures and their ratio."""
    rows = []
    for (width, height), path in files.items():
        data = path.read_bytes()
        limit = photos.naive_rate(data, seconds)
        print(f"naive limit {width}x{height}: {limit:.1f} images/s on {os.cpu_count()} processes", flush=True)
        runs = []
        for encoding in ("raw", "multipart"):
            for run in photo_runs[f"{encoding} {width}x{height}"]:
                runs.append({"encoding": encoding, **run, "x_naive": round(run["rps"] / limit, 2)})
        rows.append({"size": f"{width}x{height}", "bytes": len(data), "naive_limit_rps": round(limit, 1), "runs": runs})
    return rows


def budget(run: dict) -> dict:
    """The p50 at concurrency 1 (without the profiler) against what the processes spent per request
    (means, from /proc): decode plus forward in-process, the workers' CPU above it, the front's CPU,
    and the rest, which is waiting (wake-ups, hand-offs, loopback, wrk itself)."""
    cpu = run["cpu_ms_per_request"]
    request_ms = round(statistics.mean(run["request_ms_around"]), 3)
    return {
        "p50_ms": run["p50_ms"],
        "decode_forward_ms": request_ms,
        "workers_above_decode_forward_ms": round(cpu["children"] - request_ms, 3),
        "front_cpu_ms": cpu["process"],
        "waiting_ms": round(run["p50_ms"] - cpu["process"] - cpu["children"], 3),
    }


def ratio(value: float | None, best: float | None) -> float | None:
    return round(value / best, 2) if value is not None and best else None


def compare(rows: list[dict], peer_rows: list[dict]) -> None:
    """Add, to each run of `rows`, its ratios to the best peer at that concurrency, metric by metric:
    the most requests/s, the lowest p50 and the lowest p99 (a peer may lead in one and not another)."""
    for row in rows:
        for run in row["runs"]:
            theirs = [r for p in peer_rows for r in p["runs"] if r["concurrency"] == run["concurrency"]]
            run["x_best_peer"] = {
                "rps": ratio(run["rps"], max(r["rps"] for r in theirs)),
                "p50": ratio(run["p50_ms"], _lowest(r["p50_ms"] for r in theirs)),
                "p99": ratio(run["p99_ms"], _lowest(r["p99_ms"] for r in theirs)),
            }


def _lowest(values) -> float | None:
    """The lowest latency measured (a run that answered nothing has none)."""
    return min((v for v in values if v is not None), default=None)


def targets(result: dict) -> dict[str, tuple[object, bool]]:
    at = {s["name"]: {r["concurrency"]: r for r in s["runs"]} for s in result["servers"]}
    shipped, single = at[result["servers"][0]["name"]], at[result["servers"][1]["name"]]
    photo = {row["size"]: {(r["encoding"], r["concurrency"]): r for r in row["runs"]} for row in result["photos"]}
    found = {
        "single view, c=8 and 32: >= 1.5x the best peer": (
            [single[c]["x_best_peer"]["rps"] for c in (8, 32)],
            all(single[c]["x_best_peer"]["rps"] >= 1.5 for c in (8, 32)),
        ),
        "flip-averaged, c=8 and 32: >= 1.0x the best peer": (
            [shipped[c]["x_best_peer"]["rps"] for c in (8, 32)],
            all(shipped[c]["x_best_peer"]["rps"] >= 1.0 for c in (8, 32)),
        ),
        "p50 at c=1 <= 1.3x in-process decode + forward (flip-averaged, single view)": (
            [shipped[1]["x_request_ms"], single[1]["x_request_ms"]],
            all((run["x_request_ms"] or 1e9) <= 1.3 for run in (shipped[1], single[1])),
        ),
        "p99 at c=8 < 30 ms": (shipped[8]["p99_ms"], (shipped[8]["p99_ms"] or 1e9) < 30),
        "4032x3024 raw at c=8 >= 3x the naive limit": (
            photo["4032x3024"][("raw", 8)]["x_naive"],
            photo["4032x3024"][("raw", 8)]["x_naive"] >= 3,
        ),
        "1920x1080 raw at c=8 >= 2x the naive limit": (
            photo["1920x1080"][("raw", 8)]["x_naive"],
            photo["1920x1080"][("raw", 8)]["x_naive"] >= 2,
        ),
        f"{BALANCE_RUNS} runs at c=32 within 15%": (result["balance"]["spread"], result["balance"]["spread"] <= 0.15),
        "cold start <= 2x import time": (
            result["servers"][0]["cold_start_s"],
            result["servers"][0]["cold_start_s"] <= 2 * result["import_seconds"],
        ),
    }
    pooled = result["balance"]["pooled_client"]
    x_wrk = pooled["x_direct"] if pooled["runs"] else None
    found["a pooled client (hey) within 15% of wrk at c=32"] = (x_wrk, x_wrk is not None and abs(1 - x_wrk) <= 0.15)
    ours = [r for s in result["servers"][:3] for r in s["runs"]]
    ours += [r for s in result["tutorial"][:1] for r in s["runs"]] + [
        r for row in result["photos"] for r in row["runs"]
    ]
    ours += [repeat for s in result["servers"][:3] for repeat in s["runs"][0].get("repeats", [])]
    ours += result["balance"]["runs"]
    for key in ("pooled_client", "queue_proxy"):
        for run in (result["balance"][key] or {}).get("runs", []):
            ours += [run, {"errors": run.get("direct_errors", 0)}]
    found["no errors (function)"] = (sum(r["errors"] for r in ours), all(r["errors"] == 0 for r in ours))
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per point")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--queue-proxy", type=Path, help="a queue-proxy binary built from knative/serving")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (make bench installs it from Debian's packages)")
    if not PARAMS.exists():
        sys.exit(f"{PARAMS} is missing")
    if args.queue_proxy and not os.access(args.queue_proxy, os.X_OK):
        sys.exit(f"--queue-proxy {args.queue_proxy}: not an executable")
    began = time.perf_counter()
    for which in (peers.KSERVE, peers.MLSERVER):
        which.python()  # installed before anything is timed

    server_env = {**{k: os.environ.get(k, d) for k, d in SERVER_DEFAULTS.items()}, "MODEL_PARAMS": str(PARAMS)}
    image = IMAGE.read_bytes()
    bodies = {
        "v1": write(WORK / "bodies", "v1", peers.V1_PATH, kserve_v1(image), "application/json"),
        "multipart": write(WORK / "bodies", "multipart", "/predict", *multipart(image)),
    }
    files = {size: photos.cached(*size, WORK / "photos") for size in photos.SIZES}
    photo_bodies = {}
    for (width, height), path in files.items():
        data = path.read_bytes()
        photo_bodies[f"raw {width}x{height}"] = write(WORK / "bodies", f"raw-{width}x{height}", "/", data, "image/jpeg")
        photo_bodies[f"multipart {width}x{height}"] = write(
            WORK / "bodies", f"multipart-{width}x{height}", "/predict", *multipart(data)
        )

    imports = import_seconds()
    limit = forward_limit(5.0, server_env)
    request = {
        "flip_averaged": round(request_ms(2.0, server_env, True), 3),
        "single_view": round(request_ms(2.0, server_env, False), 3),
        "single_view_after_1ms_sleep": round(request_ms(2.0, server_env, False, pause=0.001), 3),
    }
    print(
        f"import mxnet+gluoncv: {imports:.2f} s; forward limit (batch 32): {limit:.0f} images/s; "
        f"decode + forward of one image in-process: {request['flip_averaged']} ms flip-averaged, "
        f"{request['single_view']} ms single view, {request['single_view_after_1ms_sleep']} ms each after 1 ms asleep",
        flush=True,
    )
    shipped = shipped_function(args, server_env, bodies)
    single = function_variant(args, server_env, bodies["v1"], "function (single view)", FLIP_AVERAGE="false")
    single_one = function_variant(
        args, server_env, bodies["v1"], "function (single view, 1 worker)", FLIP_AVERAGE="false", WORKERS="1"
    )
    peer_rows = [peer(args, peers.KSERVE, bodies["v1"]), peer(args, peers.MLSERVER, bodies["v1"])]
    tutorial = tutorial_server(args, bodies["multipart"])
    # The photos last: for a minute after their runs (gigabytes decoded and freed) this VM measured
    # c=1 about 0.1x slower than before them, and the single-view server used to come next.
    photo_results = photo_runs(args, server_env, bodies["v1"], photo_bodies)
    photo_rows = photo_section(max(2.0, args.seconds / 2), photo_results, files)

    ours = [shipped["peers"], single, single_one]
    compare(ours, peer_rows)
    balance = [r["rps"] for r in shipped["balance"]]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {**machine.describe(), "load_average_at_start": os.getloadavg()},
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "seconds_per_point": args.seconds,
        "request": {"image": str(IMAGE.relative_to(ROOT)), "image_bytes": len(image), "path": peers.V1_PATH},
        "peer_versions": {"kserve": peers.KSERVE.version(), "mlserver": peers.MLSERVER.version()},
        "import_seconds": round(imports, 3),
        "forward_limit_images_per_s": round(limit, 1),
        "request_ms": request,
        "servers": [*ours, *peer_rows],
        "tutorial": [shipped["tutorial"], tutorial],
        "photos": photo_rows,
        "balance": {
            "runs": shipped["balance"],
            "spread": round(max(balance) / min(balance) - 1, 3),
            "pooled_client": shipped["pooled_client"],
            "queue_proxy": shipped["pooled"],
        },
        "profile": {**shipped["profile"], "budget": budget(ours[0]["runs"][0])},
        "duration_s": round(time.perf_counter() - began),
    }
    result["targets"] = {k: {"value": v, "met": met} for k, (v, met) in targets(result).items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=1) + "\n")
    from bench.report import chart, tables

    chart(result, args.out / "latest.png")
    print(tables(result))
    return result


if __name__ == "__main__":
    main()
