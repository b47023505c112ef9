"""The CPU model a training card or a bench result names, read from cpuinfo texts of several kinds."""

import platform
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
ARM = """processor\t: 0
BogoMIPS\t: 108.00
CPU part\t: 0xd0c

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
BARE = "processor\t: 0\nmodel name\t: \nBogoMIPS\t: 50.00\n"


@pytest.mark.parametrize(("text", "model"), [(X86, "AMD EPYC 7B13"), (ARM, "Raspberry Pi 4 Model B Rev 1.4")])
def test_the_cpu_model_is_read_from_cpuinfo(tmp_path: Path, text: str, model: str) -> None:
    (tmp_path / "cpuinfo").write_text(text)
    assert machine.cpu_model(tmp_path / "cpuinfo") == model
    assert machine.describe(tmp_path / "cpuinfo")["cpu_model"] == model


def test_without_a_model_line_or_a_cpuinfo_the_platform_names_the_processor(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(BARE)
    fallback = platform.processor() or platform.machine()
    assert machine.cpu_model(tmp_path / "cpuinfo") == fallback
    assert machine.cpu_model(tmp_path / "absent") == fallback


def test_the_description_names_what_a_reader_compares_figures_by() -> None:
    described = machine.describe()
    assert set(described) == {"platform", "processor", "cpu_model", "cpus"}
    assert described["cpu_model"] and described["cpus"] >= 1
