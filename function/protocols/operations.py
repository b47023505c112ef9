"""The routes a platform calls rather than a client: health, model status, metrics, service info."""

from dataclasses import asdict
from typing import TYPE_CHECKING

from function.config import SERVICE_NAME
from function.http import Request, Response, json_response
from function.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from function.lifecycle import Function


async def liveness(request: Request, fn: "Function") -> Response:
    return json_response({"status": "alive" if fn.alive() else "dead"}, 200 if fn.alive() else 503)


async def readiness(request: Request, fn: "Function") -> Response:
    """200 or 503 by `Function.ready`, with every worker's model state, device and error."""
    states = fn.batcher.states
    ready = fn.ready()
    body = {
        "status": "ready" if ready else "not_ready",
        "model": _overall(s.state for s in states),
        "device": fn.device,
        "load_mode": fn.settings.load_mode,
        "workers": [{k: v for k, v in asdict(s).items() if v and k != "load_times"} for s in states],
    }
    errors = [s.error for s in states if s.error]
    if errors:
        body["error"] = errors[0]
    warnings = [s.warning for s in states if s.warning]
    if warnings:
        body["warning"] = warnings[0]
    return json_response(body, 200 if ready else 503)


def _overall(states) -> str:
    """One word for all workers: the least advanced state wins, except that a failure is reported."""
    states = set(states)
    for state in ("failed", "not_loaded", "loading", "ready"):
        if state in states:
            return state
    return "not_loaded"


async def model_status(request: Request, fn: "Function") -> Response:
    """KServe v1 `GET /v1/models/<name>` and OIP v2 `GET /v2/models/<name>/ready`: 200 when the model
    can answer now, else 503 (as KServe answers both)."""
    ready = fn.model_ready()
    return json_response({"name": fn.settings.model_name, "ready": ready}, 200 if ready else 503)


async def metrics(request: Request, fn: "Function") -> Response:
    fn.bookkeeping.flush()  # the requests answered so far, counted
    return Response(200, fn.metrics.exposition(), {"Content-Type": CONTENT_TYPE})


async def service_info(request: Request, fn: "Function") -> Response:
    from function.routes import table  # the table names this view

    return json_response(
        {
            "name": SERVICE_NAME,
            "version": fn.version,
            "model": fn.settings.model_name,
            "routes": sorted(table(fn.settings)),
        }
    )
