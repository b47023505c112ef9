"""How many inference workers the function starts, on this machine (no GPU driver: the CPU decides)."""

import math

import pytest

from function.config import Settings
from function.device import ensure_libcuda, pod_cpus
from function.lifecycle import worker_count


def test_workers_given_are_the_workers_started() -> None:
    assert worker_count(Settings(workers=3, device="gpu")) == 3


@pytest.mark.parametrize("device", ["cpu", "auto", "gpu"])
def test_without_a_driver_every_device_setting_sizes_the_workers_by_the_cpus(device: str) -> None:
    if ensure_libcuda() == "system":
        pytest.skip("this machine has a GPU driver: its GPUs would take part")
    assert worker_count(Settings(device=device)) == max(1, math.floor(pod_cpus()))
