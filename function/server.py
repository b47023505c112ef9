"""The HTTP server: uvicorn on one event loop, with the limits its httptools protocol lacks.

An event loop holds a slow or stalled connection for the price of a coroutine, so slow clients
cannot take the server's capacity away (a thread per connection would be held). What uvicorn does
not bound, this protocol does, before any application code runs:

- the request target (path and query) at MAX_URL_BYTES: 414;
- the header names and values at MAX_HEADER_BYTES: 431;
- the time to deliver a request's headers at HEADER_TIMEOUT_SECONDS from its first byte (or from
  the connection's opening): 408, and the connection is closed;
- malformed HTTP framing (a bad request line, a chunk size `zz`): 400.

Every refusal is a JSON error body with `Connection: close`, logged and counted like a request.
"""

import json
import logging
import signal
import sys
from collections.abc import Callable

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from function.app import App
from function.config import Settings
from function.errors import ClientError, HeadersTooLarge, MalformedHTTP, RequestTimeout, URITooLong
from function.lifecycle import Function

log = logging.getLogger("function.access")
REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long", 431: "Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the error it carries is the answer."""

    def __init__(self, error: ClientError) -> None:
        super().__init__(error.message)
        self.error = error


class GuardedProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` plus request-target, header-size and header-time limits."""

    settings: Settings
    on_refused: Callable[[int], None]

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = None
        self._received_any = False
        self._refusal: ClientError | None = None
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            refusal = self._refusal or MalformedHTTP(f"malformed HTTP request: {str(exc)[:120]}")
            self._refuse(refusal)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._target_bytes = self._header_bytes = 0
        if self._header_timer is None:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._target_bytes += len(url)
        if self._target_bytes > self.settings.max_url_bytes:
            self._stop(URITooLong(f"the request target is over {self.settings.max_url_bytes} bytes (MAX_URL_BYTES)"))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.settings.max_header_bytes:
            self._stop(
                HeadersTooLarge(f"the headers are over {self.settings.max_header_bytes} bytes (MAX_HEADER_BYTES)")
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def _stop(self, error: ClientError) -> None:
        self._refusal = error
        raise _Refused(error)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.settings.header_timeout_seconds, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if not self._received_any and self.cycle is None:
            self.transport.close()  # opened and never used: nobody to answer
            return
        seconds = self.settings.header_timeout_seconds
        self._refuse(RequestTimeout(f"the headers did not arrive within {seconds:g} s (HEADER_TIMEOUT_SECONDS)"))

    def _refuse(self, error: ClientError) -> None:
        """Answer `error` unless a response is already under way, then close the connection."""
        self._cancel_header_timer()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
            head = (
                f"HTTP/1.1 {error.status} {REASONS.get(error.status, 'Error')}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
        self.transport.close()
        self.on_refused(error.status)
        log.info("- refused %d %s", error.status, error.message)


def protocol_class(settings: Settings, on_refused: Callable[[int], None]) -> type[GuardedProtocol]:
    return type("Protocol", (GuardedProtocol,), {"settings": settings, "on_refused": staticmethod(on_refused)})


def run(settings: Settings) -> None:
    """Bind first (a busy port fails before any worker starts), then serve until SIGTERM."""
    fn = Function(settings)
    config = uvicorn.Config(
        App(fn),
        host=settings.host,
        port=settings.port,
        http=protocol_class(settings, lambda status: fn.metrics.observe_request("unmatched", "other", status, 0.0)),
        loop="uvloop",
        ws="none",
        lifespan="on",
        timeout_keep_alive=int(max(1, settings.keepalive_timeout_seconds)),
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
    )
    try:
        sock = config.bind_socket()
    except (OSError, SystemExit) as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        sys.exit(2)
    log.info("listening on http://%s:%d", settings.host, settings.port)
    # uvicorn drains on SIGTERM and SIGINT, then raises the signal again under the handlers it found:
    # make those no-ops, so a drained shutdown exits 0 (as Knative expects), not killed by the signal.
    for drained in (signal.SIGTERM, signal.SIGINT):
        signal.signal(drained, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    from function.config import ConfigError

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    logging.basicConfig(
        stream=sys.stdout, level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run(settings)
