"""Prometheus metrics of one worker: requests, latency, batches, queue wait, cold start, device.

Each app gets its own registry (tests build many apps in one process). Scraped at `GET /metrics`;
run one worker per pod (per GPU) so that one scrape sees the whole pod.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from function.model import ModelHolder

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CONTENT_TYPE = CONTENT_TYPE_LATEST


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
            "Time the oldest image of a batch waited.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cold_start = Gauge(
            "cifar10_cold_start_seconds",
            "Model load breakdown: imports, parameters, first forward pass.",
            ["phase"],
            registry=self.registry,
        )
        self.load_seconds = Gauge("cifar10_model_load_seconds", "Total model load time.", registry=self.registry)
        self.loaded = Gauge("cifar10_model_loaded", "1 when the model is loaded and warmed up.", registry=self.registry)
        self.device = Gauge("cifar10_device_info", "Device the model runs on.", ["device"], registry=self.registry)
        self.duplicates = Counter(
            "cifar10_cloudevent_duplicates", "Redelivered CloudEvents answered from the cache.", registry=self.registry
        )
        self.queued = Gauge("cifar10_queue_images", "Images waiting for inference.", registry=self.registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, wait: float) -> None:
        self.batch_size.observe(size)
        self.queue_wait.observe(wait)

    def exposition(self, model: ModelHolder, queued: int) -> bytes:
        """Refresh the model gauges, then render the text format."""
        self.loaded.set(1 if model.ready else 0)
        self.queued.set(queued)
        if model.times is not None:
            for phase, seconds in vars(model.times).items():
                self.cold_start.labels(phase).set(seconds)
            self.load_seconds.set(sum(vars(model.times).values()))
            self.device.labels(model.device).set(1)
        return generate_latest(self.registry)
