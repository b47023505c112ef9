"""KServe v1: `{"instances": [{"b64": "..."}, ...]}` answered `{"predictions": [...]}`, and model status.

An instance may also be a 32x32x3 array of 0-255 integers, as KServe tensor clients send it.
"""

from typing import TYPE_CHECKING

from function.config import Settings
from function.errors import InvalidRequest
from function.http import Request, Response, json_response
from function.inference_worker import Payload
from function.prediction import Prediction
from function.protocols.common import TENSOR_SHAPE, b64decode, check_count, parse_json, parsed, pixels, top_k

if TYPE_CHECKING:
    from function.lifecycle import Function


def is_request(document: object) -> bool:
    return isinstance(document, dict) and "instances" in document


def parse(document: object, settings: Settings) -> list[Payload]:
    """The images of a v1 request: encoded bytes (`{"b64": ...}`) or pixel arrays."""
    if not is_request(document):
        raise InvalidRequest('expected a JSON object with "instances": [{"b64": "..."}, ...]')
    instances = document["instances"]
    if not isinstance(instances, list):
        raise InvalidRequest('"instances" must be a list')
    check_count(len(instances), settings)
    return [_instance(item, position) for position, item in enumerate(instances)]


def _instance(item: object, position: int) -> Payload:
    if isinstance(item, dict):
        return b64decode(item.get("b64"), f"instances[{position}].b64")
    if isinstance(item, list):
        return pixels(item, TENSOR_SHAPE, f"instances[{position}]")
    raise InvalidRequest(f'instances[{position}]: expected {{"b64": ...}} or a 32x32x3 array')


def render(predictions: list[Prediction], k: int, device: str) -> dict:
    return {"predictions": [p.as_json(k, device) for p in predictions]}


async def predict(request: Request, fn: "Function") -> Response:
    """`POST /v1/models/<name>:predict`, and `POST /` with a JSON body."""
    k = top_k(request, fn.settings)
    body = request.require_body()
    payloads = await parsed(body, lambda: parse(parse_json(body), fn.settings))
    return json_response(render(await fn.classify(payloads), k, fn.device))
