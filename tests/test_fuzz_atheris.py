"""A short run of the coverage-guided fuzz target inside the suite (`make fuzz` runs a long one)."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_atheris_finds_no_crash(random_params, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.fuzz_requests",
            str(corpus),
            "-runs=2000",
            "-max_total_time=120",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        env={**os.environ, "MODEL_PARAMS": str(random_params), "MAX_IMAGE_PIXELS": "4000000"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 2000 runs" in result.stderr
