"""Benchmark: this function against the tutorial's server, on loopback, bounded in time.

    python -m bench.run [--seconds 10] [--out bench/results]

Both servers get the same multipart `/predict` request from wrk at concurrency 1, 8 and 32. Also
measured in the same run: cold start (process start to first answer), peak memory, the time to
import mxnet and gluoncv alone, and the raw forward-pass limit (in-process, batch 32, the model
holder's forward pass with the server's FLIP_AVERAGE).
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.processes import Server, function_command, memory_kib

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "tests" / "data" / "horse.jpg"
PARAMS = ROOT / "function" / "weights" / "cifar_resnet20_v1.params"
CONCURRENCY = (1, 8, 32)
# The function's server settings for CPU serving (the Makefile's): one worker per core, each with
# one MXNet thread, since Python's request handling, not the network, limits a single worker; the
# workers' metrics are summed through a shared directory, as in production.
SERVER_DEFAULTS = {
    "WORKERS": str(os.cpu_count() or 1),
    "THREADS": "16",
    "OMP_NUM_THREADS": "1",
    "FLIP_AVERAGE": "true",
    "PROMETHEUS_MULTIPROC_DIR": str(ROOT / ".cache" / "bench-metrics"),
}

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


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="img"; filename="horse.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def import_seconds() -> float:
    runs = [
        float(subprocess.run([sys.executable, "-c", IMPORT_SNIPPET], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    ]
    return statistics.median(runs)


def forward_limit(seconds: float, server_env: dict[str, str]) -> float:
    """The machine's limit for the served forward pass (the model holder's, with the server's
    FLIP_AVERAGE), batch 32, on all cores whatever OMP_NUM_THREADS the servers are given."""
    env = {**os.environ, **server_env}
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(
        [sys.executable, "-c", FORWARD_SNIPPET, str(seconds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return float(out)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * UNITS[unit]


def wrk(url: str, connections: int, seconds: int) -> dict:
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(ROOT / "bench" / "post_image.lua"),
        url,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "BENCH_IMAGE": str(IMAGE)}, timeout=seconds + 60
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return {
        "concurrency": connections,
        "requests": total,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": to_ms(percentiles["50"]) if "50" in percentiles else None,
        "p99_ms": to_ms(percentiles["99"]) if "99" in percentiles else None,
        "errors": errors,
    }


def measure(name: str, command: list[str], env: dict[str, str], port: int, seconds: int) -> dict:
    body, content_type = multipart(IMAGE.read_bytes())
    server = Server(command, {**env, "PORT": str(port)}, f"http://127.0.0.1:{port}", ROOT)
    try:
        cold = server.first_answer("/predict", body, content_type)
        runs = []
        for connections in CONCURRENCY:
            runs.append(wrk(f"{server.url}/predict", connections, seconds))
            print(
                f"{name:10} c={connections:<3} {runs[-1]['rps']:8.1f} req/s  p50 {runs[-1]['p50_ms']} ms  "
                f"p99 {runs[-1]['p99_ms']} ms  errors {runs[-1]['errors']}",
                flush=True,
            )
        peak = memory_kib(server.process.pid, "VmHWM")
    finally:
        server.stop()
    return {"name": name, "cold_start_s": round(cold, 3), "peak_memory_mib": round(peak / 1024, 1), "runs": runs}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per concurrency level")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (make bench installs it from Debian's packages)")
    if not PARAMS.exists():
        sys.exit(f"{PARAMS} is missing")

    server_env = {**{k: os.environ.get(k, d) for k, d in SERVER_DEFAULTS.items()}, "MODEL_PARAMS": str(PARAMS)}
    imports = import_seconds()
    limit = forward_limit(5.0, server_env)
    print(f"import mxnet+gluoncv: {imports:.2f} s; raw forward limit (batch 32): {limit:.0f} images/s", flush=True)
    function = measure(
        "function",
        function_command(),
        server_env,
        18081,
        args.seconds,
    )
    tutorial = measure(
        "tutorial", [sys.executable, "bench/tutorial_server.py"], {"MODEL_PARAMS": str(PARAMS)}, 18082, args.seconds
    )

    at = {s["name"]: {r["concurrency"]: r for r in s["runs"]} for s in (function, tutorial)}
    ratio8 = at["function"][8]["rps"] / max(at["tutorial"][8]["rps"], 1e-9)
    targets = {
        "throughput at c=8 >= 22x the tutorial's": (round(ratio8, 1), ratio8 >= 22),
        "throughput at c=32 >= half the forward limit": (
            round(at["function"][32]["rps"], 1),
            at["function"][32]["rps"] >= limit / 2,
        ),
        "p99 at c=8 < 30 ms": (at["function"][8]["p99_ms"], (at["function"][8]["p99_ms"] or 1e9) < 30),
        "cold start <= 2x import time": (function["cold_start_s"], function["cold_start_s"] <= 2 * imports),
        "no errors": (sum(r["errors"] for r in function["runs"]), all(r["errors"] == 0 for r in function["runs"])),
    }
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "seconds_per_level": args.seconds,
        "function_server": {k: os.environ.get(k, d) for k, d in SERVER_DEFAULTS.items()},
        "import_seconds": round(imports, 3),
        "forward_limit_images_per_s": round(limit, 1),
        "servers": [function, tutorial],
        "targets": {k: {"value": v, "met": met} for k, (v, met) in targets.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=1) + "\n")
    from bench.report import chart, table

    chart(result, args.out / "latest.png")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
