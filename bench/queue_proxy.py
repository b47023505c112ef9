"""Knative's queue-proxy in front of the function, as a Knative pod runs it (`--queue-proxy PATH`).

queue-proxy forwards each request through Go's `net/http` transport, which keeps a pool of
keep-alive connections to the user container and reuses the most recently idle one: the client
whose connections a server cannot count on to spread. The binary is built from knative/serving's
source outside this repository (`GOFLAGS=-mod=vendor go build ./cmd/queue`); the environment below
is the one Knative's revision reconciler gives the container (pkg/reconciler/revision/resources/
queue.go), with this chart's containerConcurrency, timeouts, readiness probe and CPU limit.
"""

import json
import math
import socket
from pathlib import Path

import yaml

from bench.processes import Server

ROOT = Path(__file__).resolve().parent.parent
# Fixed by queue-proxy itself (networking.QueueAdminPort, AutoscalingQueueMetricsPort): one at a time.
FIXED_PORTS = (8022, 9090)


def busy(ports: tuple[int, ...]) -> list[int]:
    """Those of `ports` that something already listens on (on any address, as queue-proxy binds them)."""
    taken = []
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
            try:
                probe.bind(("", port))
            except OSError:
                taken.append(port)
    return taken


def go_max_procs(cpu_limit: str | float | None) -> int | None:
    """What automaxprocs (run by queue-proxy at start) makes of the container's CPU limit: its floor,
    at least 1; None without a limit (Go then takes every CPU). The chart sets that limit
    (`queueProxy.cpuLimit`); no cgroup here carries it, so the bench passes GOMAXPROCS itself."""
    if cpu_limit in ("", None):
        return None
    text = str(cpu_limit)
    cpus = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return max(1, math.floor(cpus))


def environment(port: int, tls_port: int, user_port: int) -> dict[str, str]:
    values = yaml.safe_load((ROOT / "chart" / "values.yaml").read_text())
    procs = go_max_procs(values["queueProxy"]["cpuLimit"])
    probe = {
        "httpGet": {"path": "/health/readiness", "port": user_port, "host": "127.0.0.1", "scheme": "HTTP"},
        "periodSeconds": values["probes"]["readiness"]["periodSeconds"],
        "failureThreshold": values["probes"]["readiness"]["failureThreshold"],
        "timeoutSeconds": 1,
        "successThreshold": 1,
    }
    return {
        "SERVING_NAMESPACE": "default",
        "SERVING_SERVICE": "cifar10-function",
        "SERVING_CONFIGURATION": "cifar10-function",
        "SERVING_REVISION": "cifar10-function-00001",
        "SERVING_POD": "cifar10-function-00001-deployment-bench",
        "SERVING_POD_IP": "127.0.0.1",
        "QUEUE_SERVING_PORT": str(port),
        "QUEUE_SERVING_TLS_PORT": str(tls_port),
        "CONTAINER_CONCURRENCY": str(values["containerConcurrency"]),
        "REVISION_TIMEOUT_SECONDS": str(values["timeoutSeconds"]),
        "REVISION_RESPONSE_START_TIMEOUT_SECONDS": str(values["responseStartTimeoutSeconds"]),
        "REVISION_IDLE_TIMEOUT_SECONDS": "0",
        "SERVING_LOGGING_CONFIG": "",
        "SERVING_LOGGING_LEVEL": "info",
        "USER_PORT": str(user_port),
        "SYSTEM_NAMESPACE": "knative-serving",
        "SERVING_READINESS_PROBE": json.dumps(probe),
        "ENABLE_HTTP2_AUTO_DETECTION": "false",
        "ENABLE_HTTP_FULL_DUPLEX": "false",
        "ENABLE_MULTI_CONTAINER_PROBES": "false",
        **({"GOMAXPROCS": str(procs)} if procs else {}),
    }


def start(binary: Path, port: int, tls_port: int, user_port: int, log: Path) -> Server:
    return Server(
        [str(binary)],
        environment(port, tls_port, user_port),
        f"http://127.0.0.1:{port}",
        ROOT,
        log=log,
    )
