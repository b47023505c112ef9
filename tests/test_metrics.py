"""The Prometheus registry: requests, batches, worker states, label sets closed to clients."""

from prometheus_client.parser import text_string_to_metric_families

from function.inference_worker import WorkerState
from function.metrics import Metrics


def samples(text: bytes) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_requests_batches_and_worker_states() -> None:
    metrics = Metrics()
    metrics.observe_request("/predict", "POST", 200, 0.012)
    metrics.observe_request("/predict", "POST", 200, 0.020)
    metrics.observe_request("/", "POST", 415, 0.001)
    metrics.observe_batch(8, 0.002, 3)
    times = {"imports": 1.0, "parameters": 0.1, "warmup": 0.2}
    metrics.observe_workers([WorkerState("ready", "cpu", load_times=times), WorkerState("loading", "none")])
    seen = samples(metrics.exposition())
    assert seen[("cifar10_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))] == 2
    assert seen[("cifar10_requests_total", (("method", "POST"), ("route", "/"), ("status", "415")))] == 1
    assert seen[("cifar10_request_seconds_count", (("route", "/predict"),))] == 2
    assert seen[("cifar10_batch_size_sum", ())] == 8
    assert seen[("cifar10_queue_images", ())] == 3
    assert seen[("cifar10_model_loaded", ())] == 0  # not every worker is ready
    assert seen[("cifar10_workers", (("state", "loading"),))] == 1
    assert seen[("cifar10_device_info", (("device", "cpu"), ("warning", "")))] == 1
    metrics.observe_workers(
        [WorkerState("ready", "cpu", load_times=times), WorkerState("ready", "cpu", load_times=times)]
    )
    seen = samples(metrics.exposition())
    assert seen[("cifar10_model_loaded", ())] == 1
    assert seen[("cifar10_device_info", (("device", "cpu"), ("warning", "")))] == 2
    assert seen[("cifar10_cold_start_seconds", (("phase", "imports"),))] == 1.0
    assert abs(seen[("cifar10_model_load_seconds", ())] - 1.3) < 1e-9


def test_method_labels_come_from_a_closed_set() -> None:
    metrics = Metrics()
    for method in ("GET", "HEAD", "POST", "PUT", "PROPFIND", "X" * 50, "DELETE"):
        metrics.observe_request("unmatched", method, 405, 0.001)
    methods = {
        dict(labels)["method"] for name, labels in samples(metrics.exposition()) if name == "cifar10_requests_total"
    }
    assert methods == {"GET", "HEAD", "POST", "other"}
