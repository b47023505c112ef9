"""Request-body limits enforced before Flask or functions-framework read anything.

functions-framework's after-request hook reads the whole body, and Flask's MAX_CONTENT_LENGTH
turns an oversized body into a 500 there. This WSGI middleware answers 413 from Content-Length
without reading, and caps a body sent without one, so nothing reads more than the limit.
"""

import json
from collections.abc import Callable, Iterable

from flask import Request

from function.errors import BodyTooLarge, EmptyBody, InvalidRequest

EXCEEDED = "function.body_exceeded"


class _CappedInput:
    """A wsgi.input that stops after `limit` bytes and records that more was on offer."""

    def __init__(self, stream, limit: int, environ: dict) -> None:
        self._stream, self._left, self._environ = stream, limit, environ

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            if self._stream.read(1):
                self._environ[EXCEEDED] = True
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.read(want)
        self._left -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.readline(want) if want > 0 else self.read(0)
        self._left -= len(data)
        return data


class BodyLimit:
    """WSGI middleware: 413 for a declared length over `limit`, a capped stream otherwise."""

    def __init__(self, app: Callable, limit: int) -> None:
        self.app, self.limit = app, limit

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared:
            try:
                length = int(declared)
            except ValueError:
                return _refuse(start_response, InvalidRequest(f"Content-Length {declared!r} is not a number"))
            if length > self.limit:
                return _refuse(
                    start_response,
                    BodyTooLarge(f"the body has {length} bytes, over the limit of {self.limit} (MAX_BODY_BYTES)"),
                )
        else:
            environ["wsgi.input"] = _CappedInput(environ["wsgi.input"], self.limit + 1, environ)
        return self.app(environ, start_response)


def _refuse(start_response: Callable, error: BodyTooLarge | InvalidRequest) -> list[bytes]:
    body = json.dumps(error.body()).encode()
    start_response(
        f"{error.status} {'Payload Too Large' if error.status == 413 else 'Bad Request'}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def read_body(request: Request, limit: int) -> bytes:
    """The whole body, cached for functions-framework's hook; 413 when it was cut at the limit."""
    data = request.get_data(cache=True)
    if not data:
        raise EmptyBody("the request has no body")
    if len(data) > limit or request.environ.get(EXCEEDED):
        raise BodyTooLarge(f"the body is over the limit of {limit} bytes (MAX_BODY_BYTES)")
    return data


def check_not_exceeded(request: Request, limit: int) -> None:
    """For bodies parsed as streams (multipart): 413 if the capped stream had more to give."""
    if request.environ.get(EXCEEDED):
        raise BodyTooLarge(f"the body is over the limit of {limit} bytes (MAX_BODY_BYTES)")
