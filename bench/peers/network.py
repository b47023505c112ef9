"""What both peers run per request: the function's decoding and forward pass, KServe v1 in and out.

Imported inside the peers' venvs (numpy, Pillow and mxnet only): `function.imaging.decode`,
`function.inference.probabilities` and `function.prediction.Prediction` are the function's own, so
a peer does the same work per image as the function does, single view.
"""

import base64

import numpy as np

from function.cifar10 import CLASSES, INPUT_SIZE, NETWORK
from function.config import DEFAULT_PARAMS, Settings
from function.imaging import decode
from function.inference import probabilities
from function.prediction import Prediction

DEFAULTS = Settings()


class Network:
    """The shipped weights, hybridized as the function's model holder does, on the CPU."""

    def __init__(self, flip_average: bool = False) -> None:
        import mxnet as mx
        from gluoncv.model_zoo import get_model

        self.ctx = mx.cpu()
        self.flip_average = flip_average
        self.net = get_model(NETWORK, classes=len(CLASSES))
        self.net.load_parameters(str(DEFAULT_PARAMS), ctx=self.ctx)
        self.net.hybridize(static_alloc=True)
        probabilities(self.net, np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8), self.ctx, flip_average)

    def predict_v1(self, document: dict) -> dict:
        """`{"instances": [{"b64": ...}]}` to `{"predictions": [...]}`, as the function answers it."""
        images = np.stack(
            [decode(base64.b64decode(item["b64"]), DEFAULTS.max_image_pixels) for item in document["instances"]]
        )
        rows = probabilities(self.net, images, self.ctx, self.flip_average)
        return {"predictions": [Prediction(row).as_json(DEFAULTS.top_k, "cpu") for row in rows]}
