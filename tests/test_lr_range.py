"""The learning-rate range test on a tiny data set made here."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_cifar import make_tree
from training import lr_range


def test_range_test_writes_the_curve_and_stops_when_the_loss_blows_up(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data", per_class=4)
    args = ["--data", str(tree), "--out", str(tmp_path / "lr"), "--batch-size", "8", "--val-per-class", "1"]
    gentle = lr_range.main([*args, "--steps", "6", "--min-lr", "1e-3", "--max-lr", "1e-2"])
    steps = gentle["steps"]
    assert len(steps) == 6
    assert [row["learning_rate"] for row in steps] == pytest.approx(np.geomspace(1e-3, 1e-2, 6), rel=1e-3)
    assert all(np.isfinite(row["loss"]) for row in steps)
    assert gentle["lowest_loss_learning_rate"] == min(steps, key=lambda row: row["smoothed_loss"])["learning_rate"]
    assert json.loads((tmp_path / "lr" / "lr_range.json").read_text()) == gentle
    assert (tmp_path / "lr" / "lr_range.png").stat().st_size > 0
    wild = lr_range.main([*args, "--steps", "40", "--min-lr", "1", "--max-lr", "1e6"])
    assert len(wild["steps"]) < 40  # a learning rate of thousands diverges, and the test stops there
