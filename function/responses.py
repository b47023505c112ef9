"""JSON responses and the one place where errors become `{"error": {"code", "message"}}`."""

import json
import logging

from flask import Response

from function.errors import RequestError

log = logging.getLogger(__name__)


def json_response(document: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(document), status=status, mimetype="application/json", headers=headers)


def error_response(error: RequestError) -> Response:
    return json_response(error.body(), error.status, error.headers)


def internal_error(exc: Exception) -> Response:
    """A fault of ours, not the client's: logged with its traceback, answered without it."""
    log.exception("unhandled error: %s", exc)
    return json_response({"error": {"code": "internal", "message": "internal error; see the function's log"}}, 500)
