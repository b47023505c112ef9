"""The one inference path: model holder + batcher, with the real network."""

import threading
from pathlib import Path

import numpy as np
import pytest

from function.classify import Classifier, Prediction
from function.config import Settings
from function.errors import Overloaded


@pytest.fixture
def classifier(params: Path) -> Classifier:
    return Classifier(Settings.from_env({"MODEL_PARAMS": str(params), "BATCH_MAX_DELAY_MS": "5"}))


def test_concurrent_answers_equal_sequential_answers(classifier: Classifier) -> None:
    images = list(np.random.default_rng(0).integers(0, 256, (48, 32, 32, 3), dtype=np.uint8))
    sequential = [classifier.classify([image])[0].probabilities for image in images]
    concurrent: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(16)

    def client(worker: int) -> None:
        barrier.wait()
        for index in range(worker, len(images), 16):
            concurrent[index] = classifier.classify([images[index]])[0].probabilities

    threads = [threading.Thread(target=client, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for index, expected in enumerate(sequential):
        np.testing.assert_allclose(concurrent[index], expected, atol=1e-5)


def test_one_request_of_many_images_keeps_their_order(classifier: Classifier) -> None:
    images = list(np.random.default_rng(1).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8))
    together = classifier.classify(images)
    for image, prediction in zip(images, together, strict=True):
        np.testing.assert_allclose(classifier.classify([image])[0].probabilities, prediction.probabilities, atol=1e-5)


def test_prediction_rendering() -> None:
    probabilities = np.array([0.05, 0.6, 0.05, 0.2, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01], dtype=np.float32)
    answer = Prediction(probabilities).as_json(3, "cpu")
    assert answer["label"] == "automobile" and answer["probability"] == pytest.approx(0.6)
    assert [t["label"] for t in answer["top"]] == ["automobile", "cat", "airplane"]
    assert answer["model"] == "cifar_resnet20_v1" and answer["device"] == "cpu"


def test_full_queue_answers_overloaded(params: Path) -> None:
    small = Classifier(Settings.from_env({"MODEL_PARAMS": str(params), "QUEUE_MAX_IMAGES": "4"}))
    small.model.wait(60)
    with pytest.raises(Overloaded) as info:
        small.classify(list(np.zeros((5, 32, 32, 3), dtype=np.uint8)))
    assert info.value.status == 429 and info.value.headers["Retry-After"]
