"""Soak test: a bounded run of requests at fixed concurrency, mixing valid and invalid input.

    python -m bench.soak [--requests 20000] [--concurrency 16]

Passes when no answer is a 5xx, every valid request is answered 200 with a prediction, every
invalid one a 4xx, and the server's resident memory grows less than 5% between request 2,000 and
the end. Prints the figures and writes bench/results/soak.json.
"""

import argparse
import base64
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from bench.processes import Server, function_command, memory_kib
from bench.run import SERVER_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "function" / "weights" / "cifar_resnet20_v1.params"
IMAGES = sorted((ROOT / "tests" / "data").glob("*.jpg"))


def request_mix() -> list[tuple[bool, str, dict, bytes]]:
    """(valid, path, headers, body): every protocol's valid form and typical bad input."""
    jpeg = IMAGES[0].read_bytes()
    b64 = base64.b64encode(jpeg).decode()
    event = {"specversion": "1.0", "source": "/soak", "type": "dev.cifar10.classify.request", "data_base64": b64}
    return [
        (True, "/", {"Content-Type": "image/jpeg"}, jpeg),
        (
            True,
            "/v1/models/cifar10:predict",
            {"Content-Type": "application/json"},
            json.dumps({"instances": [{"b64": b64}] * 4}).encode(),
        ),
        (
            True,
            "/v2/models/cifar10/infer",
            {},
            json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}]}).encode(),
        ),
        (True, "/", {"Content-Type": "application/cloudevents+json"}, json.dumps(event).encode()),
        (False, "/", {"Content-Type": "image/png"}, b"not a png at all"),
        (False, "/", {"Content-Type": "image/jpeg"}, jpeg[: len(jpeg) // 3]),
        (False, "/", {"Content-Type": "application/json"}, b'{"instances": [{"b64": "%%%"}]}'),
        (False, "/", {"Content-Type": "text/csv"}, b"a,b"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    mix = request_mix()
    server = Server(
        function_command(),
        {"PORT": "18090", **{k: os.environ.get(k, d) for k, d in SERVER_DEFAULTS.items()}, "MODEL_PARAMS": str(PARAMS)},
        "http://127.0.0.1:18090",
        ROOT,
    )
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    counter = iter(range(args.requests))
    rss: dict[str, int] = {}
    baseline = min(2000, args.requests // 10)  # memory is compared from here to the end
    started = time.perf_counter()
    try:
        server.first_answer("/", IMAGES[0].read_bytes(), "image/jpeg")

        def worker() -> None:
            session = requests.Session()
            for n in counter:
                valid, path, headers, body = mix[n % len(mix)]
                if "cloudevents" in headers.get("Content-Type", ""):
                    body = body.replace(b'"specversion"', f'"id": "soak-{n}", "specversion"'.encode(), 1)
                try:
                    response = session.post(server.url + path, data=body, headers=headers, timeout=30)
                    status = response.status_code
                    ok = (status == 200 and bool(response.content)) if valid else 400 <= status < 500
                    outcome = "ok" if ok else f"{'valid' if valid else 'invalid'} answered {status}"
                except requests.RequestException as exc:
                    outcome = f"{'valid' if valid else 'invalid'} lost: {type(exc).__name__}"
                with lock:
                    outcomes[outcome] += 1
                    if n == baseline:
                        rss["at_baseline_kib"] = memory_kib(server.process.pid, "VmRSS")

        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss["at_end_kib"] = memory_kib(server.process.pid, "VmRSS")
    finally:
        server.stop()
    seconds = time.perf_counter() - started
    growth = (rss["at_end_kib"] - rss["at_baseline_kib"]) / rss["at_baseline_kib"] * 100
    server_errors = sum(count for outcome, count in outcomes.items() if " answered 5" in outcome)
    lost = sum(count for outcome, count in outcomes.items() if "lost" in outcome or outcome.startswith("valid"))
    result = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "seconds": round(seconds, 1),
        "requests_per_s": round(args.requests / seconds, 1),
        "outcomes": dict(outcomes),
        "server_errors_5xx": server_errors,
        "valid_requests_lost": lost,
        "rss_mib_at_baseline": round(rss["at_baseline_kib"] / 1024, 1),
        "rss_mib_at_end": round(rss["at_end_kib"] / 1024, 1),
        "rss_growth_percent": round(growth, 2),
    }
    result["passed"] = server_errors == 0 and lost == 0 and outcomes["ok"] == args.requests and growth < 5
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
