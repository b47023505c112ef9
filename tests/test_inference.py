"""Flip averaging with the real network: the mean of the two views, blind to mirroring."""

from pathlib import Path

import numpy as np
import pytest

from function.inference import probabilities
from training.evaluate import load_network


@pytest.fixture(scope="module")
def net(params: Path):
    return load_network(params)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)


def test_flip_average_is_the_mean_of_the_image_and_its_mirror(net, images: np.ndarray) -> None:
    single = probabilities(net, images, flip_average=False)
    mirrored = probabilities(net, images[:, :, ::-1], flip_average=False)
    averaged = probabilities(net, images)
    np.testing.assert_allclose(averaged, (single + mirrored) / 2, atol=1e-5)
    assert not np.allclose(single, mirrored, atol=1e-3)  # the two views really differ
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, rtol=1e-5)


def test_flip_averaged_answer_does_not_depend_on_mirroring(net, images: np.ndarray) -> None:
    np.testing.assert_allclose(probabilities(net, images), probabilities(net, images[:, :, ::-1]), atol=1e-5)
