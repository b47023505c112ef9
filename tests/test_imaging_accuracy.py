"""The shipped weights see the same pixels as in training, and keep their accuracy on photo-sized inputs.

Both tests read the training tarball (../shared/data) and its decoded cache, as test_weights does.
"""

import io

import numpy as np
import pytest
from PIL import Image

from bench.decode import DATA, PARAMS, served_accuracy, upscaled, validation
from function.imaging import decode
from tests.conftest import ROOT, needs_shared
from training.data import _read_tarball, load

LIMIT = 50_000_000
pytestmark = needs_shared


def test_training_images_decode_to_their_plain_pixels_as_in_training() -> None:
    """32x32 JPEGs take no resampling: `decode` gives Pillow's plain RGB pixels, and so does the
    training loader, for every 10th image of the training tarball."""
    dataset = load(str(DATA), ROOT / ".cache" / "data")
    blobs = [data for _, _, data in _read_tarball(DATA)[::10]]
    served = np.stack([decode(blob, LIMIT) for blob in blobs])
    plain = np.stack([np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")) for blob in blobs])
    assert served.shape == (len(blobs), 32, 32, 3)
    assert np.array_equal(served, plain)
    assert np.array_equal(served, dataset.images[::10])


@pytest.fixture(scope="module")
def network():
    from training.evaluate import load_network

    return load_network(PARAMS)


@pytest.mark.parametrize("side, step", [(480, 2), (1024, 5)])
def test_accuracy_on_upscaled_validation_images_stays_within_a_point(network, side: int, step: int) -> None:
    """Every `step`-th validation image upscaled to side x side (bicubic, JPEG quality 90) scores,
    served (flip-averaged), within 1 point of the same images at 32 px."""
    images, labels = validation()
    images, labels = images[::step], labels[::step]
    at_32 = served_accuracy(network, images, labels)
    decoded = np.stack([decode(blob, LIMIT) for blob in upscaled(images, side)])
    accuracy = served_accuracy(network, decoded, labels)
    assert accuracy >= at_32 - 0.01, f"{accuracy:.2%} at {side} px against {at_32:.2%} at 32 px"
