"""The application: per request route, read the body, run the view, answer; and the lifespan.

Everything a request costs before its view runs is bounded here: the route is matched before any
of the body is read, the body is read within MAX_BODY_BYTES and BODY_TIMEOUT_SECONDS, and any error
becomes the JSON body of the route's protocol. The request line and headers are bounded before
this (see `function.connection`). One access-log line per request, one metrics observation.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from function.errors import HTTPError, Unavailable
from function.http import (
    BodyReader,
    ClientGone,
    Request,
    Response,
    asgi_body_reader,
    check_declared_length,
    error_response,
    joined_headers,
)
from function.lifecycle import Function
from function.routes import UNMATCHED, match, table, template_of

log = logging.getLogger("function.access")
errors = logging.getLogger(__name__)
REQUEST_ID_HEADERS = ("ce-id", "x-request-id")


Writer = Callable[[Response], Awaitable[int]]  # the status the client was sent


class App:
    """The function's requests, whatever carries them: `respond` is called by the server's own
    HTTP protocol (`function.connection`) and, through `__call__`, by any ASGI server."""

    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.routes = table(fn.settings)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            head = scope["method"] == "HEAD"
            await self.respond(
                scope["method"],
                scope["path"],
                scope.get("query_string", b""),
                joined_headers(scope["headers"]),
                asgi_body_reader(receive),
                lambda response: _send(send, response, head),
            )

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.fn.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.fn.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def respond(
        self, method: str, path: str, query_string: bytes, headers: dict[str, str], read: BodyReader, write: Writer
    ) -> None:
        """Route, read the body within its limits, run the view, write the answer (nothing when the
        client left before its body was read), then log and count it."""
        started = time.perf_counter()
        oip = path.startswith("/v2")
        template = self._template(path)
        body_read = False
        settings = self.fn.settings
        try:
            route, view = match(self.routes, path, method, settings.model_name)
            template, oip = route.template, route.oip
            body = b""
            if method == "POST":
                check_declared_length(headers, settings.max_body_bytes)
                body = await read(settings.max_body_bytes, settings.body_timeout_seconds)
                body_read = True
            response = await view(Request(method, path, query_string, headers, body), self.fn)
        except ClientGone as gone:
            self._ended(method, template, gone.status, started, headers, gone.reason)
            return
        except HTTPError as error:
            response = error_response(error, oip)
        except asyncio.CancelledError:  # the shutdown's grace period ran out: a JSON 503, not a bare 500
            response = error_response(Unavailable("the function is shutting down; retry", retry_after=1), oip)
        except Exception as exc:  # the last line of defence answers JSON, never a stack trace
            errors.exception("unhandled error on %s %s", method, template)
            response = error_response(HTTPError(f"internal error ({type(exc).__name__}); see the function's log"), oip)
        if not body_read and _has_body(headers):
            response.headers["Connection"] = "close"  # a body nobody reads must not keep the connection busy
        status = await write(response)
        self._ended(method, template, status, started, headers)

    def unanswered(
        self, method: str, path: str, headers: dict[str, str], arrived: float, status: int, reason: str = ""
    ) -> None:
        """A request whose head arrived and whose view never ran: a refusal of its body's framing
        answered it (`status`, `reason`), or its client left first (499). Counted and logged under
        its route, timed from when its head arrived."""
        self._ended(method, self._template(path), status, arrived, headers, reason)

    def _template(self, path: str) -> str:
        """The route label a path counts under before (or without) matching: its template, or `unmatched`."""
        template = template_of(path)
        return template if template in self.routes else UNMATCHED

    def unrouted(self, method: str, status: int, reason: str) -> None:
        """A request refused before it had a route (a bad or unfinished head), or whose refusal never
        reached its client (499): counted under `unmatched`, logged with why."""
        self.fn.bookkeeping.defer(self._observe_unrouted, method, status, reason)

    def _observe_unrouted(self, method: str, status: int, reason: str) -> None:
        self.fn.metrics.observe_request(UNMATCHED, method, status, 0.0)
        if self.fn.settings.access_log:
            log.info("%s - %d refused: %s", method or "-", status, reason)

    def _ended(
        self, method: str, template: str, status: int, started: float, headers: dict[str, str], reason: str = ""
    ) -> None:
        """Count and log the request once the front has time (see `function.bookkeeping`)."""
        seconds = time.perf_counter() - started
        self.fn.bookkeeping.defer(self._observe, method, template, status, seconds, headers, reason)

    def _observe(
        self, method: str, template: str, status: int, seconds: float, headers: dict[str, str], reason: str = ""
    ) -> None:
        self.fn.metrics.observe_request(template, method, status, seconds)
        if self.fn.settings.access_log:
            request_id = next((headers[h] for h in REQUEST_ID_HEADERS if h in headers), "-")
            why = f" refused: {reason}" if reason else ""
            log.info("%s %s %d %.1f ms %s%s", method, template, status, seconds * 1000, request_id[:120], why)


def _has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def _send(send, response: Response, head: bool) -> int:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})
    return response.status
