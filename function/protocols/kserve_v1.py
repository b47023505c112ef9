"""KServe v1: `{"instances": [{"b64": "..."}, ...]}` answered `{"predictions": [...]}`.

An instance may also be a 32x32x3 array of 0-255 integers, as KServe tensor clients send it.
"""

import numpy as np

from function.cifar10 import INPUT_SIZE
from function.classify import Prediction
from function.config import Settings
from function.errors import InvalidRequest
from function.protocols.payload import b64decode, check_count, decode_all

TENSOR_SHAPE = (INPUT_SIZE, INPUT_SIZE, 3)


def is_request(document: object) -> bool:
    return isinstance(document, dict) and "instances" in document


def images_from(document: object, settings: Settings) -> list[np.ndarray]:
    """Decode the `instances` list of a v1 request."""
    if not is_request(document):
        raise InvalidRequest('expected a JSON object with "instances": [{"b64": "..."}, ...]')
    instances = document["instances"]
    if not isinstance(instances, list):
        raise InvalidRequest('"instances" must be a list')
    check_count(len(instances), settings)
    if all(isinstance(item, dict) for item in instances):
        blobs = [b64decode(item.get("b64"), f"instances[{i}].b64") for i, item in enumerate(instances)]
        return decode_all(blobs, settings)
    return [_tensor(item, i) for i, item in enumerate(instances)]


def _tensor(item: object, position: int) -> np.ndarray:
    try:
        array = np.asarray(item, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f'instances[{position}]: expected {{"b64": ...}} or a 32x32x3 array') from exc
    if array.shape != TENSOR_SHAPE:
        raise InvalidRequest(f"instances[{position}]: shape {list(array.shape)}, expected {list(TENSOR_SHAPE)}")
    if not np.all((array >= 0) & (array <= 255) & (array == np.round(array))):
        raise InvalidRequest(f"instances[{position}]: pixel values must be integers from 0 to 255")
    return array.astype(np.uint8)


def render(predictions: list[Prediction], k: int, device: str) -> dict:
    return {"predictions": [p.as_json(k, device) for p in predictions]}
