"""The CPU model a training card or a bench result names, read from cpuinfo texts of several kinds."""

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from training import machine

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme de pse

processor\t: 1
model name\t: AMD EPYC 7B13
"""
ARMV7 = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n"
ARM64 = """processor\t: 0
BogoMIPS\t: 108.00
CPU part\t: 0xd0c

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
BLANK = "processor\t: 0\nmodel name\t: \nBogoMIPS\t: 50.00\n"


@pytest.mark.parametrize(("text", "model"), [(X86, "AMD EPYC 7B13"), (ARMV7, "ARMv7 Processor rev 4 (v7l)")])
def test_the_cpu_model_is_read_from_cpuinfo(tmp_path: Path, text: str, model: str) -> None:
    (tmp_path / "cpuinfo").write_text(text)
    assert machine.cpu_model(tmp_path / "cpuinfo") == model
    assert machine.describe(tmp_path / "cpuinfo")["cpu_model"] == model


@pytest.mark.parametrize("text", [ARM64, BLANK], ids=["arm64, whose Model is the board", "blank"])
def test_without_a_model_name_or_a_cpuinfo_the_platform_names_the_processor(tmp_path: Path, text: str) -> None:
    (tmp_path / "cpuinfo").write_text(text)
    fallback = platform.processor() or platform.machine()
    assert machine.cpu_model(tmp_path / "cpuinfo") == fallback
    assert machine.cpu_model(tmp_path / "absent") == fallback


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not shutil.which("lscpu"), reason="lscpu names the model as cpuinfo on x86"
)
def test_this_machines_model_is_the_one_lscpu_names() -> None:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, env={"LC_ALL": "C"}).stdout
    named = next(line.split(":", 1)[1].strip() for line in lines.splitlines() if line.startswith("Model name:"))
    described = machine.describe()
    assert described["cpu_model"] == named
    assert 1 <= described["cpus"] <= os.cpu_count()  # the CPUs this process may use, not the host's


def test_epochs_are_counted_by_the_cpu_that_trained_them() -> None:
    history = [{"epoch": 1}, {"epoch": 2, "cpu": "A"}, {"epoch": 3, "cpu": "B"}, {"epoch": 4, "cpu": "A"}]
    assert machine.epochs_by_cpu(history) == {machine.UNRECORDED: 1, "A": 2, "B": 1}
