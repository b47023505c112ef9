"""Scoring weights on the validation split: counts by hand, and an ensemble by its mean probabilities."""

from pathlib import Path

import numpy as np
import pytest

from function.inference import probabilities
from tests.conftest import SHIPPED
from tests.tiny_cifar import another_network, make_tree
from training import evaluate
from training.data import load
from training.evaluate import scores


def test_evaluate_scores_an_ensemble_by_its_mean_probabilities(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data", per_class=4)
    other = another_network(tmp_path / "other.params")
    argv = ["--data", str(tree), "--split", "all", "--cache", str(tmp_path / "cache")]
    both = evaluate.main([*argv, "--params", str(SHIPPED), "--params", str(other)])
    dataset = load(str(tree))
    mean = sum(probabilities(evaluate.load_network(path), dataset.images) for path in (SHIPPED, other)) / 2
    assert both["confusion"] == scores(dataset.labels, mean.argmax(axis=1))["confusion"]
    alone = [evaluate.main([*argv, "--params", str(path)])["confusion"] for path in (SHIPPED, other)]
    assert both["confusion"] not in alone


def test_scores_match_a_hand_count() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 0])
    result = scores(labels, predictions)
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["per_class_accuracy"]["airplane"] == 0.5
    assert result["per_class_accuracy"]["automobile"] == 1.0
    assert result["per_class_accuracy"]["bird"] == 0.0
    assert result["confusion"][0][:3] == [1, 1, 0]
