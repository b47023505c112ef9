"""The shipped weights and their model card: loadable by any gluoncv user, and right on samples."""

import json

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import get_model

from function.cifar10 import CLASSES, MEAN, STD
from function.imaging import decode, normalize
from tests.conftest import DATA, ROOT, SHARED, SHIPPED, needs_shared

CARD = SHIPPED.with_suffix(".json")


def test_card_describes_the_weights() -> None:
    card = json.loads(CARD.read_text())
    assert card["classes"] == list(CLASSES)
    assert card["mean"] == list(MEAN) and card["std"] == list(STD)
    assert card["network"] == "cifar_resnet20_v1" and card["input_size"] == [32, 32, 3]
    assert card["validation_accuracy"] >= 0.85  # a floor against shipping broken weights
    assert set(card["per_class_accuracy"]) == set(CLASSES)
    for key in ("epochs", "recipe", "training_seconds", "machine", "data", "mxnet_version", "gluoncv_version"):
        assert card[key]
    assert len(card["data"]["sha256"]) == 64


def test_weights_load_into_a_bare_gluoncv_network_and_classify_the_samples() -> None:
    net = get_model("cifar_resnet20_v1", classes=10)
    net.load_parameters(str(SHIPPED))
    names = sorted(p.stem for p in DATA.glob("*.jpg"))
    batch = np.stack([decode((DATA / f"{name}.jpg").read_bytes(), 1_000_000) for name in names])
    predicted = [CLASSES[i] for i in net(mx.nd.array(normalize(batch))).argmax(axis=1).asnumpy().astype(int)]
    assert sum(p == n for p, n in zip(predicted, names, strict=True)) >= 8, list(zip(names, predicted, strict=True))


@needs_shared
def test_card_accuracy_is_what_the_weights_score_on_the_validation_split() -> None:
    """Re-evaluates the shipped weights on the split the card names, from the shared data set."""
    from training import evaluate

    card = json.loads(CARD.read_text())
    data = SHARED / "data" / "cifar10-train-jpeg.tar.xz"
    result = evaluate.main(["--data", str(data), "--params", str(SHIPPED), "--cache", str(ROOT / ".cache" / "data")])
    assert result["accuracy"] == pytest.approx(card["validation_accuracy"], abs=1e-4)
    assert result["per_class_accuracy"] == pytest.approx(card["per_class_accuracy"], abs=1e-4)
