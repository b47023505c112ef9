"""The request and response values the views see, and reading a body within its limits.

Views never touch ASGI: the app reads the whole body first (bounded in size and in time) and hands
them a `Request`; they return a `Response`. Errors become JSON in the shape of the route's protocol:
`{"error": "<message>"}` on the Open Inference Protocol routes, as that protocol prescribes, and
`{"error": {"code", "message"}}` everywhere else.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from function.errors import BodyTooLarge, EmptyBody, HTTPError, InvalidRequest, RequestTimeout

JSON = "application/json"


class ClientGone(Exception):
    """Nobody to answer: the client closed the connection before its request was read (499), or the
    connection refused the request's own broken body and answered it itself (that status)."""

    def __init__(self, status: int = 499, reason: str = "") -> None:
        super().__init__(status)
        self.status, self.reason = status, reason  # the refusal's message, for the access log


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query_string: bytes
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def mimetype(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    def query(self, name: str) -> str | None:
        values = parse_qs(self.query_string.decode("latin-1")).get(name)
        return values[0] if values else None

    def require_body(self) -> bytes:
        if not self.body:
            raise EmptyBody("the request has no body")
        return self.body


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(document: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(document).encode(), {"Content-Type": JSON, **(headers or {})})


def error_response(error: HTTPError, oip: bool = False) -> Response:
    """The error in the route's protocol's shape; the status and headers come with the error."""
    body = {"error": error.message} if oip else {"error": {"code": error.code, "message": error.message}}
    return json_response(body, error.status, error.headers)


def joined_headers(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ", " once (not string by string: 4,000
    one-byte repeats would cost quadratic time)."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:  # a value's surrounding spaces are not part of it (RFC 9110, 5.5)
        grouped.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1").strip(" \t"))
    return {name: values[0] if len(values) == 1 else ", ".join(values) for name, values in grouped.items()}


BodyReader = Callable[[int, float], Awaitable[bytes]]  # (limit, timeout) -> the whole body


def check_declared_length(headers: dict[str, str], limit: int) -> None:
    """413 from Content-Length before a byte of the body is read; 400 when it is not a number."""
    declared = headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidRequest(f"Content-Length {declared[:40]!r} is not a number")
        if len(declared.lstrip("0")) > 18 or int(declared) > limit:
            raise BodyTooLarge(f"the body has {declared[:40]} bytes, over the limit of {limit} (MAX_BODY_BYTES)")


def body_too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"the body is over the limit of {limit} bytes (MAX_BODY_BYTES)")


def body_late(timeout: float) -> RequestTimeout:
    return RequestTimeout(f"the body did not arrive within {timeout:g} s (BODY_TIMEOUT_SECONDS)")


def asgi_body_reader(receive: Callable[[], Awaitable[dict]]) -> BodyReader:
    """An ASGI `receive` as a body reader: 413 once past `limit`, 408 when the body has not all
    arrived within `timeout` (a stalled or trickling client)."""

    async def read(limit: int, timeout: float) -> bytes:
        chunks, size = [], 0
        try:
            async with asyncio.timeout(timeout):  # one deadline for the whole body, not per chunk
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise body_too_large(limit)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except TimeoutError as exc:
            raise body_late(timeout) from exc

    return read
