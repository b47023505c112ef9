"""The Prometheus registry of one app, rendered in the text format."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from function.metrics import Metrics, clear_multiprocess_dir
from function.model import ModelHolder


def samples(text: bytes) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_requests_batches_and_model_state(params: Path) -> None:
    metrics = Metrics()
    metrics.observe_request("/predict", "POST", 200, 0.012)
    metrics.observe_request("/predict", "POST", 200, 0.020)
    metrics.observe_request("/", "POST", 415, 0.001)
    metrics.observe_batch(8, 0.002, 3)
    model = ModelHolder(params, "cpu", 30, on_ready=metrics.observe_model)
    before = samples(metrics.exposition())
    assert before[("cifar10_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))] == 2
    assert before[("cifar10_requests_total", (("method", "POST"), ("route", "/"), ("status", "415")))] == 1
    assert before[("cifar10_request_seconds_count", (("route", "/predict"),))] == 2
    assert before[("cifar10_batch_size_sum", ())] == 8
    assert before[("cifar10_queue_images", ())] == 3
    assert before[("cifar10_model_loaded", ())] == 0
    model.wait(60)  # the holder reports to the metrics before it wakes its waiters
    after = samples(metrics.exposition())
    assert after[("cifar10_model_loaded", ())] == 1
    assert after[("cifar10_device_info", (("device", "cpu"),))] == 1
    phases = [after[("cifar10_cold_start_seconds", (("phase", p),))] for p in ("imports", "parameters", "warmup")]
    assert all(p >= 0 for p in phases)
    assert after[("cifar10_model_load_seconds", ())] == sum(phases)


def test_clearing_the_multiprocess_dir_drops_only_value_files(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    clear_multiprocess_dir(directory)  # created when missing
    (directory / "counter_42.db").write_bytes(b"old")
    (directory / "README").write_text("kept")
    clear_multiprocess_dir(directory)
    assert [p.name for p in directory.iterdir()] == ["README"]


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()  # a second registry would raise on duplicates if they were shared
    first.observe_request("/", "GET", 200, 0.001)
    assert not any(name == "cifar10_requests_total" for name, _ in samples(generate_latest(second.registry)))
    assert any(name == "cifar10_requests_total" for name, _ in samples(generate_latest(first.registry)))


KILLED_WORKER = """
import os, signal
from function.metrics import Metrics
metrics = Metrics()
metrics.worker_started()
metrics.loaded.set(1)
metrics.queued.set(5)
metrics.requests.labels("/", "POST", "200").inc()
os.kill(os.getpid(), signal.SIGKILL)  # no atexit: its live gauges stay behind
"""


def test_a_killed_workers_live_gauges_leave_at_the_next_scrape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "metrics"
    clear_multiprocess_dir(directory)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    worker = subprocess.run([sys.executable, "-c", KILLED_WORKER], env=env, cwd=Path(__file__).parent.parent)
    assert worker.returncode == -9
    assert list(directory.glob("gauge_livesum_*.db")), "the worker wrote no live gauge"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    scraped = samples(Metrics().exposition())
    assert ("cifar10_queue_images", ()) not in scraped  # not 5 from a worker that is gone
    assert ("cifar10_model_loaded", ()) not in scraped
    assert scraped[("cifar10_requests_total", (("method", "POST"), ("route", "/"), ("status", "200")))] == 1
    assert not list(directory.glob("gauge_live*.db"))
