"""Prometheus metrics: requests, latency, batches, queue, cold start, device; one view per pod.

With one server process each app has its own registry (tests build many apps in one process).
With several gunicorn workers, set `PROMETHEUS_MULTIPROC_DIR`: prometheus-client then keeps every
worker's values in files there and a scrape of any worker sums them, so `GET /metrics` shows the
whole pod, not whichever worker answered. Gauges are therefore set when things happen (model
ready, batch taken), never at scrape time, and each names how workers combine. A worker's live
gauges leave with it: at its exit, or at the next scrape when it was killed.
"""

import atexit
import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from function.model import ModelHolder

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db")


def multiprocess_dir() -> Path | None:
    """The shared directory when several workers must be summed, else None."""
    value = os.environ.get(MULTIPROCESS_ENV)
    return Path(value) if value else None


def clear_multiprocess_dir(directory: Path) -> None:
    """Create the directory and drop files of an earlier server, before any value is written."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def forget_dead_processes(directory: Path) -> None:
    """Drop the live gauges of workers that died without running atexit (SIGKILL, OOM kill)."""
    pids = {int(m.group(1)) for f in directory.glob("gauge_live*.db") if (m := LIVE_GAUGE_FILE.fullmatch(f.name))}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(directory))
        except PermissionError:
            pass  # alive, owned by another user


class Metrics:
    def __init__(self) -> None:
        self.directory = multiprocess_dir()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cifar10_requests",
            "Requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cifar10_request_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "cifar10_batch_size",
            "Images per forward pass.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "cifar10_queue_wait_seconds",
            "Time the oldest image of a batch waited.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cold_start = Gauge(
            "cifar10_cold_start_seconds",
            "Model load breakdown: imports, parameters, first forward pass (slowest worker).",
            ["phase"],
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.load_seconds = Gauge(
            "cifar10_model_load_seconds",
            "Total model load time (slowest worker).",
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.loaded = Gauge(
            "cifar10_model_loaded",
            "1 when the model is loaded and warmed up (in every worker).",
            multiprocess_mode="livemin",
            registry=self.registry,
        )
        self.device = Gauge(
            "cifar10_device_info",
            "Device the model runs on.",
            ["device"],
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "cifar10_cloudevent_duplicates", "Redelivered CloudEvents answered from the cache.", registry=self.registry
        )
        self.queued = Gauge(
            "cifar10_queue_images",
            "Images waiting for inference when the last batch started (all workers).",
            multiprocess_mode="livesum",
            registry=self.registry,
        )

    def worker_started(self) -> None:
        """In a fresh worker: count it as not loaded yet, and drop its live values when it exits."""
        self.loaded.set(0)
        self.queued.set(0)
        if self.directory:
            atexit.register(mark_process_dead, os.getpid(), str(self.directory))

    def forget_process(self) -> None:
        """gunicorn's master serves nothing: its initial zeros must not count as a worker's."""
        if self.directory:
            mark_process_dead(os.getpid(), str(self.directory))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, wait: float, queued: int) -> None:
        self.batch_size.observe(size)
        self.queue_wait.observe(wait)
        self.queued.set(queued)

    def observe_model(self, model: ModelHolder) -> None:
        """Called once the model is loaded and warmed up."""
        if model.times is not None:
            for phase, seconds in vars(model.times).items():
                self.cold_start.labels(phase).set(seconds)
            self.load_seconds.set(sum(vars(model.times).values()))
        self.device.labels(model.device).set(1)
        self.loaded.set(1)

    def exposition(self) -> bytes:
        """The text format: this registry, or every worker's files summed."""
        if self.directory is None:
            return generate_latest(self.registry)
        forget_dead_processes(self.directory)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))
        return generate_latest(registry)
