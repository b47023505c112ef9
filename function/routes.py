"""The route table: path, method, view, and the error shape of the route's protocol.

`POST /` takes every wire format and picks the protocol by the request's headers; every other
path belongs to one protocol. Unknown paths share the metrics label `unmatched`.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from function.config import Settings
from function.errors import MethodNotAllowed, NotFound, UnsupportedMediaType
from function.http import Request, Response
from function.protocols import cloudevents, kserve_v1, oip_v2, operations, raw, tutorial
from function.protocols.common import IMAGE_TYPES

if TYPE_CHECKING:
    from function.lifecycle import Function

View = Callable[[Request, "Function"], Awaitable[Response]]
UNMATCHED = "unmatched"


@dataclass(frozen=True)
class Route:
    template: str  # the metrics label
    views: dict[str, View]  # by method
    oip: bool = False  # errors as the Open Inference Protocol prescribes


async def predict_root(request: Request, fn: "Function") -> Response:
    """`POST /`: a CloudEvent, a raw image, KServe v1 JSON, or the tutorial's multipart form."""
    if cloudevents.is_cloudevent(request):
        return await cloudevents.handle(request, fn)
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        return await tutorial.predict(request, fn)
    if mimetype == "application/json":
        return await kserve_v1.predict(request, fn)
    if mimetype.startswith(IMAGE_TYPES):
        return await raw.predict(request, fn)
    raise UnsupportedMediaType(
        "POST / takes image/*, application/octet-stream, application/json, "
        f"multipart/form-data or a CloudEvent, not {mimetype[:80] or 'no content type'}"
    )


def table(settings: Settings) -> dict[str, Route]:
    """The routes for these settings: built once per model name, shared by the app and `GET /`."""
    return _table(settings.model_name)


@cache
def _table(model_name: str) -> dict[str, Route]:
    v1, v2 = f"/v1/models/{model_name}", f"/v2/models/{model_name}"
    routes = [
        Route("/", {"GET": operations.service_info, "POST": predict_root}),
        Route("/predict", {"POST": tutorial.predict}),
        Route("/health/liveness", {"GET": operations.liveness}),
        Route("/health/readiness", {"GET": operations.readiness}),
        Route("/metrics", {"GET": operations.metrics}),
        Route(v1, {"GET": operations.model_status}),
        Route(f"{v1}:predict", {"POST": kserve_v1.predict}),
        Route("/v2", {"GET": oip_v2.server_metadata}, oip=True),
        Route("/v2/health/live", {"GET": operations.liveness}, oip=True),
        Route("/v2/health/ready", {"GET": operations.readiness}, oip=True),
        Route(v2, {"GET": oip_v2.model_metadata}, oip=True),
        Route(f"{v2}/ready", {"GET": operations.model_status}, oip=True),
        Route(f"{v2}/infer", {"POST": oip_v2.infer}, oip=True),
    ]
    return {route.template: route for route in routes}


def template_of(path: str) -> str:
    return path.rstrip("/") or "/"


def match(routes: dict[str, Route], path: str, method: str, model_name: str) -> tuple[Route, View]:
    """The route and the view for `method` (HEAD is GET without a body); 404 or 405 otherwise."""
    template = template_of(path)
    route = routes.get(template)
    if route is None:
        if template.startswith(("/v1/models/", "/v2/models/")):
            raise NotFound(f"no model at {template[:200]}; this function serves {model_name!r}")
        raise NotFound(f"no route {template[:200]}; see GET / for the routes")
    view = route.views.get("GET" if method == "HEAD" else method)
    if view is None:
        allowed = {*route.views, *(("HEAD",) if "GET" in route.views else ())}  # HEAD is served wherever GET is
        raise MethodNotAllowed(f"{method} is not allowed on {template}", sorted(allowed))
    return route, view
