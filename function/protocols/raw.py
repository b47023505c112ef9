"""A bare encoded image as the body (`image/*` or `application/octet-stream`), answered with one prediction."""

from typing import TYPE_CHECKING

from function.http import Request, Response, json_response
from function.protocols.common import top_k

if TYPE_CHECKING:
    from function.lifecycle import Function


async def predict(request: Request, fn: "Function") -> Response:
    k = top_k(request, fn.settings)
    (prediction,) = await fn.classify([request.require_body()])
    return json_response(prediction.as_json(k, fn.device))
