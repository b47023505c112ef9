"""The ASGI application: lifespan, then per request route, read the body, run the view, answer.

Everything a request costs before its view runs is bounded here: the route is matched before any
of the body is read, the body is read within MAX_BODY_BYTES and BODY_TIMEOUT_SECONDS, and any error
becomes the JSON body of the route's protocol. The request line and headers are bounded before
this (see `function.server`). One access-log line per request, one metrics observation.
"""

import asyncio
import logging
import time

from function.errors import HTTPError, Unavailable
from function.http import ClientGone, Request, Response, error_response, headers_of, read_body
from function.lifecycle import Function
from function.routes import UNMATCHED, match, table, template_of

log = logging.getLogger("function.access")
errors = logging.getLogger(__name__)
REQUEST_ID_HEADERS = ("ce-id", "x-request-id")


class App:
    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.routes = table(fn.settings)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

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

    async def _http(self, scope: dict, receive, send) -> None:
        started = time.perf_counter()
        method, oip = scope["method"], scope["path"].startswith("/v2")
        template = template_of(scope["path"])
        if template not in self.routes:
            template = UNMATCHED
        headers = headers_of(scope)
        body_read = False
        try:
            route, view = match(self.routes, scope["path"], method, self.fn.settings.model_name)
            template, oip = route.template, route.oip
            body = b""
            if method == "POST":
                body = await read_body(
                    receive, headers, self.fn.settings.max_body_bytes, self.fn.settings.body_timeout_seconds
                )
                body_read = True
            request = Request(method, scope["path"], scope.get("query_string", b""), headers, body)
            response = await view(request, self.fn)
        except ClientGone:
            self._observe(method, template, 499, time.perf_counter() - started, headers)
            return
        except HTTPError as error:
            response = error_response(error, oip)
        except asyncio.CancelledError:  # the shutdown's grace period ran out: a JSON 503, not uvicorn's text 500
            response = error_response(Unavailable("the function is shutting down; retry", retry_after=1), oip)
        except Exception as exc:  # the last line of defence answers JSON, never a stack trace
            errors.exception("unhandled error on %s %s", method, template)
            response = error_response(HTTPError(f"internal error ({type(exc).__name__}); see the function's log"), oip)
        if not body_read and _has_body(headers):
            response.headers["Connection"] = "close"  # a body nobody reads must not keep the connection busy
        await _send(send, response, head=method == "HEAD")
        # The event loop writes the response once this step yields: log and count after that.
        asyncio.get_running_loop().call_soon(
            self._observe, method, template, response.status, time.perf_counter() - started, headers
        )

    def _observe(self, method: str, template: str, status: int, seconds: float, headers: dict[str, str]) -> None:
        self.fn.metrics.observe_request(template, method, status, seconds)
        if self.fn.settings.access_log:
            request_id = next((headers[h] for h in REQUEST_ID_HEADERS if h in headers), "-")
            log.info("%s %s %d %.1f ms %s", method, template, status, seconds * 1000, request_id[:120])


def _has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def _send(send, response: Response, head: bool) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})
