"""The lazy model holder with the real MXNet network and real parameter files."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from function.errors import Unavailable
from function.model import ModelHolder


def test_nothing_loads_until_started(params: Path) -> None:
    holder = ModelHolder(params, "auto", 30)
    assert holder.state == "not_loaded"
    assert not holder.ready


def test_concurrent_first_callers_cause_exactly_one_load(params: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="function.model")
    holder = ModelHolder(params, "auto", 30)
    barrier = threading.Barrier(32)
    outcomes: list[str] = []

    def first_request() -> None:
        barrier.wait()
        holder.wait(60)
        outcomes.append(holder.state)

    threads = [threading.Thread(target=first_request) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["ready"] * 32
    assert sum("loaded from" in r.getMessage() for r in caplog.records) == 1
    assert holder.device == "cpu"  # auto falls back to the CPU: no GPU here
    assert holder.times is not None and holder.times.warmup > 0


def test_forward_gives_probabilities(params: Path) -> None:
    holder = ModelHolder(params, "cpu", 30)
    holder.wait(60)
    probabilities = holder.forward(np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("flip_average", [True, False])
def test_forward_follows_the_flip_average_setting(params: Path, flip_average: bool) -> None:
    from function.inference import probabilities
    from training.evaluate import load_network

    holder = ModelHolder(params, "cpu", 30, flip_average=flip_average)
    holder.wait(60)
    images = np.random.default_rng(1).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    expected = probabilities(load_network(params), images, flip_average=flip_average)
    np.testing.assert_allclose(holder.forward(images), expected, atol=1e-5)


def test_missing_file_is_unavailable_and_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.params"
    holder = ModelHolder(missing, "auto", 30)
    with pytest.raises(Unavailable, match=r"nope\.params") as info:
        holder.wait(60)
    assert info.value.status == 503
    assert "Retry-After" in info.value.headers
    assert holder.state == "failed"


def test_corrupt_file_is_unavailable_with_its_cause(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.params"
    corrupt.write_bytes(b"\x12\x01\x00\x00garbage" * 100)
    holder = ModelHolder(corrupt, "auto", 30)
    with pytest.raises(Unavailable, match=r"corrupt\.params"):
        holder.wait(60)
    assert holder.error and "Error" in holder.error


def test_failed_load_is_retried_after_the_retry_interval(tmp_path: Path, params: Path) -> None:
    late = tmp_path / "late.params"
    holder = ModelHolder(late, "auto", retry_seconds=0)
    with pytest.raises(Unavailable):
        holder.wait(60)
    late.write_bytes(params.read_bytes())  # e.g. a volume mounted after start
    holder.wait(60)
    assert holder.ready


def test_gpu_requested_without_a_gpu_fails_clearly(params: Path) -> None:
    holder = ModelHolder(params, "gpu", 30)
    with pytest.raises(Unavailable, match="no GPU"):
        holder.wait(60)
    assert holder.error.startswith("DEVICE=gpu") and str(params) not in holder.error  # the device, not the file


@pytest.mark.parametrize(("preset", "engine"), [(None, "NaiveEngine"), ("ThreadedEngine", "ThreadedEngine")])
def test_on_the_cpu_operators_run_on_the_calling_thread_unless_the_user_chose(
    params: Path, preset: str | None, engine: str
) -> None:
    """A CPU worker imports MXNet with its synchronous engine (cheaper per image); MXNET_ENGINE_TYPE wins."""
    env = {k: v for k, v in os.environ.items() if k != "MXNET_ENGINE_TYPE"}
    if preset:
        env["MXNET_ENGINE_TYPE"] = preset
    script = (
        "import sys; from pathlib import Path; from function.model import ModelHolder; "
        "h = ModelHolder(Path(sys.argv[1]), 'cpu', 30); h.wait(120); print(h.device)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(params)], env=env, capture_output=True, text=True, timeout=180, check=True
    )
    assert run.stdout.strip() == "cpu"
    assert f"MXNet start using engine: {engine}" in run.stderr
