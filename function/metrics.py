"""Prometheus metrics of the whole pod: requests, latency, batches, queue, workers, cold start, device.

The front process answers every request and hands out every batch, so one registry here sees the
whole pod; the inference workers report their model state to it. Label values come from closed
sets (the route templates, the methods served plus `other`), so no client can grow the series.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from function.inference_worker import WorkerState

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CONTENT_TYPE = CONTENT_TYPE_LATEST
METHODS = ("GET", "HEAD", "POST")
WORKER_STATES = ("not_loaded", "loading", "ready", "failed")


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


class Metrics:
    def __init__(self) -> None:
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
            "Time the oldest image of a batch waited for a worker.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queued = Gauge(
            "cifar10_queue_images",
            "Images waiting for a worker when the last batch was handed out.",
            registry=self.registry,
        )
        self.workers = Gauge(
            "cifar10_workers", "Inference worker processes, by model state.", ["state"], registry=self.registry
        )
        self.loaded = Gauge(
            "cifar10_model_loaded", "1 when every worker has its model loaded and warmed up.", registry=self.registry
        )
        self.cold_start = Gauge(
            "cifar10_cold_start_seconds",
            "Model load breakdown: imports, parameters, first forward pass (slowest worker).",
            ["phase"],
            registry=self.registry,
        )
        self.load_seconds = Gauge(
            "cifar10_model_load_seconds", "Total model load time (slowest worker).", registry=self.registry
        )
        self.device = Gauge(
            "cifar10_device_info",
            "Workers per device; `warning` says why a GPU was not used.",
            ["device", "warning"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "cifar10_cloudevent_duplicates",
            "CloudEvent deliveries answered with another delivery's reply (concurrent or redelivered).",
            registry=self.registry,
        )
        self.restarts = Counter(
            "cifar10_worker_restarts", "Inference workers started again after dying.", registry=self.registry
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method_label(method), str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, wait: float, queued: int) -> None:
        self.batch_size.observe(size)
        self.queue_wait.observe(wait)
        self.queued.set(queued)

    def observe_workers(self, states: list[WorkerState]) -> None:
        """Set every worker gauge from the workers' current states (called on each change)."""
        for name in WORKER_STATES:
            self.workers.labels(name).set(sum(s.state == name for s in states))
        self.loaded.set(int(bool(states) and all(s.state == "ready" for s in states)))
        timed = [s.load_times for s in states if s.load_times]
        for phase in ("imports", "parameters", "warmup"):
            if timed:
                self.cold_start.labels(phase).set(max(t[phase] for t in timed))
        if timed:
            self.load_seconds.set(max(sum(t.values()) for t in timed))
        self.device.clear()
        for state in states:
            if state.state == "ready":
                self.device.labels(state.device, state.warning or "").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
