"""A run folder's recipe and the copy of its checkpoint that is committed."""

from pathlib import Path

import pytest

from training import checkpoint


def test_keep_needs_a_finished_epoch(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="no finished epoch"):
        checkpoint.keep(tmp_path / "run", tmp_path / "kept")


def test_a_recipe_is_settled_without_being_written_and_written_once(tmp_path: Path) -> None:
    options, defaults = {"lr": 0.2, "epochs": 3}, {"lr": 0.2, "epochs": 40}
    recipe = checkpoint.settle_recipe(tmp_path, options, {"lr"}, "a" * 64, defaults)
    assert recipe == {"options": options, "data_sha256": "a" * 64}
    assert not (tmp_path / checkpoint.RECIPE).exists()  # a start refused after this leaves the folder free
    checkpoint.write_recipe(tmp_path, recipe)
    checkpoint.write_recipe(tmp_path, {"options": {"lr": 9.0}, "data_sha256": "b" * 64})  # the first one stays
    assert checkpoint.settle_recipe(tmp_path, {"lr": 0.2}, set(), "a" * 64, defaults) == recipe
    with pytest.raises(checkpoint.RecipeError, match=r"--lr 0.3 \(the run's recipe says 0.2\)"):
        checkpoint.settle_recipe(tmp_path, {"lr": 0.3}, {"lr"}, "a" * 64, defaults)
