"""One HTTP/1.1 client connection: httptools parses it, each request goes to the app whole, one
write answers it.

uvicorn runs the server around this protocol (the listening socket, signals, the lifespan, the
graceful drain on SIGTERM: `function.server`), but not its HTTP protocol: that one turns every
request into an ASGI cycle (a scope, an event, message dicts, a task wrapper, head and body
written apart), which cost about a third of the front's CPU per request at concurrency 1 (`make
bench`'s profile). Here the app's `respond` gets the request directly. What the function relies on
is kept: keep-alive and its timeout, pipelined requests answered one at a time in order, Expect:
100-continue, HTTP/1.0, back-pressure (no reading while the answers are not read), and limits
enforced before any application code runs:

- the request target (path and query) at MAX_URL_BYTES: 414;
- the header names and values, and a chunked body's trailer, at MAX_HEADER_BYTES: 431;
- the time to deliver a request's headers at HEADER_TIMEOUT_SECONDS from its first byte (or from
  the connection's opening): 408, and the connection is closed;
- the body at MAX_BODY_BYTES: what is over it is never kept (the app answers 413);
- malformed HTTP framing (a bad request line, a chunk size `zz`), and an HTTP/1.1 request without
  exactly one Host header (RFC 9112 section 3.2): 400;
- a transfer coding before `chunked` (RFC 9112 section 6.1), and CONNECT: 501 (`chunked` not last: 400);
- HTTP/0.9 or HTTP/2.0 on the request line (httptools takes no other version): 505.

Every refusal is a JSON error body (none for HEAD) with `Connection: close`, counted and logged
like a request (see `App.unanswered` and `App.unrouted`).
"""

import asyncio
import collections
import logging
import time
import urllib.parse
from http import HTTPStatus

import httptools

from function.app import App
from function.config import Settings
from function.errors import (
    ClientError,
    HeadersTooLarge,
    HTTPError,
    MalformedHTTP,
    NotImplementedHere,
    RequestTimeout,
    URITooLong,
    VersionNotSupported,
)
from function.http import ClientGone, Response, body_late, body_too_large, error_response, joined_headers

log = logging.getLogger("function.access")
STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HEAD_SLACK_BYTES = 1024  # the method, the version and the line ends, beside MAX_URL_BYTES and MAX_HEADER_BYTES
# After the last answer of a connection, what the client still sends (a refused body, say) is read
# and dropped for this long or this much before the socket closes (see `_close`).
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; `Connection.refusal` holds the answer."""


class _Request:
    """One request as parsed: its head, then its body as it arrives."""

    __slots__ = (
        "arrived",
        "body",
        "complete",
        "expect_continue",
        "gone",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "reason",
        "refused",
        "size",
        "too_large",
        "waiter",
    )

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = bytearray()  # not a list of chunks: a million 1-byte chunks must cost a megabyte
        self.size = 0
        self.complete = self.too_large = self.gone = self.expect_continue = self.keep_alive = False
        self.refused = 0  # the status of the refusal that answered its broken body, if one did
        self.reason = ""  # and why
        self.waiter: asyncio.Future | None = None
        self.method = self.path = ""
        self.query = b""
        self.arrived = 0.0  # when its head was whole

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Connection(asyncio.Protocol):
    """The protocol uvicorn's server instantiates per connection (see `protocol_class`)."""

    app: App
    settings: Settings

    def __init__(self, config, server_state, app_state=None, _loop=None) -> None:
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.keep_alive_seconds = self.settings.keepalive_timeout_seconds  # uvicorn's own is whole seconds
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # answer what came before a close
        self.transport: asyncio.Transport | None = None
        self.parsing: _Request | None = None  # the request whose head or body is being parsed
        self.current: _Request | None = None  # the request being answered
        self.waiting: collections.deque[_Request] = collections.deque()  # pipelined behind it
        self.url = bytearray()
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.in_head = False  # a request's head has begun and not ended
        self.unparsed_bytes = 0  # received since the parser last finished a head, a body chunk or a message
        self.refusal: ClientError | None = None  # raised from a parser callback
        self.deferred: ClientError | None = None  # a refusal waiting for the answers before it
        self.refused_request: _Request | None = None  # the request it answers, if its parsing had begun
        self.received_any = False
        self.closing = False  # no request after the current one (shutdown, Connection: close)
        self.eof = False  # the client sent all it will: close once its complete requests are answered
        self.upgrade = False  # the client asked to switch protocols: nothing after its request is read
        self.write_paused = self.read_paused = False
        self.header_timer: asyncio.TimerHandle | None = None
        self.keep_alive_timer: asyncio.TimerHandle | None = None
        self.send_timer: asyncio.TimerHandle | None = None
        self.linger_timer: asyncio.TimerHandle | None = None
        self.lingering = False  # our side is closed: what arrives is dropped until the socket closes
        self.lingered = 0

    # Transport events ---------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server_state.connections.add(self)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._cancel_timers()
        for request in (self.current, *self.waiting):
            if request is not None:
                request.gone, request.body = True, bytearray()
                request.wake()
        if not self.closing:  # the client left: what waited for its turn counts as 499, as the current one does
            for request in self.waiting:
                self.app.unanswered(request.method, request.path, request.headers, request.arrived, 499)
            if self.deferred is not None:  # a refusal it never got
                self._count_refused(self.refused_request, 499, self.deferred.message)
        self.waiting.clear()
        self.refused_request = None
        # The parser and this protocol refer to each other: break the cycle, or a dead connection's
        # partial head or body (megabytes) waits for the garbage collector.
        self.parser = self.parsing = None
        self.raw_headers, self.url = [], bytearray()

    def eof_received(self) -> bool:
        """The client closed its side (it has sent everything): answer the requests it completed,
        then close. With none, or with a body cut short, the transport closes now."""
        self.eof = True
        if self.lingering:
            return False
        return (self.current is not None and self.current.complete) or bool(self.waiting)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self.lingered += len(data)
            if self.lingered > LINGER_BYTES:
                self.transport.close()
            return
        if self.parser is None or self.deferred is not None or self.upgrade:
            return  # nothing more is parsed on this connection
        self.received_any = True
        self.unparsed_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return  # its request is complete and answered as HTTP/1.1; what follows is not HTTP/1.1
        except httptools.HttpParserError as exc:
            if self.parsing is not None and not isinstance(exc, httptools.HttpParserInvalidMethodError):
                self.parsing.method = self.parsing.method or self.parser.get_method().decode("latin-1")
            self._refuse(self.refusal or MalformedHTTP(f"malformed HTTP request: {str(exc)[:120]}"))
            return
        # httptools keeps an unfinished header (or trailer) name or value to itself: bound what it
        # holds as it arrives (what a chunk held before the parser's last progress goes uncounted)
        head_limit = self.settings.max_url_bytes + self.settings.max_header_bytes + HEAD_SLACK_BYTES
        if self.unparsed_bytes > head_limit:
            self._refuse(HeadersTooLarge(f"the request head or trailer is over {head_limit} bytes (MAX_HEADER_BYTES)"))

    def pause_writing(self) -> None:
        """The client does not read its answers: read nothing more of it (requests or a body under
        way) until it does, and cut it off if it reads nothing for SEND_TIMEOUT_SECONDS."""
        self.write_paused = True
        self._pause_reading()
        self._arm_send_timer()

    def _arm_send_timer(self) -> None:
        if self.send_timer is None:
            self.send_timer = self.loop.call_later(self.settings.send_timeout_seconds, self._unread_too_long)

    def _ended(self) -> bool:
        """Nothing more is written: the transport is closing, or our side is shut while it lingers."""
        return self.lingering or self.transport.is_closing()

    def _close(self) -> None:
        """Close once the answers are written; a client that does not read them is cut at the send timeout.

        Our side closes at once (a FIN after the answers), but the socket stays open for what the
        client is still sending (a refused body, say), read and dropped for LINGER_SECONDS or
        LINGER_BYTES: closed with those bytes unread, it would reset the connection, and Go's client
        (queue-proxy's) then often loses the answer and reports a 502 (RFC 9112 section 9.6).
        """
        if self._ended():
            return
        if self.eof or not self.transport.can_write_eof():
            self.transport.close()
        else:
            self.lingering = True
            self._cancel_timers()  # no head is timed any more; the send timer is armed again below
            self.transport.write_eof()
            self.linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
            if self.read_paused and not self.write_paused:
                self.read_paused = False
                self.transport.resume_reading()
        if self.transport.get_write_buffer_size():
            self._arm_send_timer()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None
        if self.current is None:
            self._next()

    def _unread_too_long(self) -> None:
        self.send_timer = None
        seconds = self.settings.send_timeout_seconds
        log.info("- cut a client that read none of its answers for %g s (SEND_TIMEOUT_SECONDS)", seconds)
        self.closing = True  # the server ends it: what still waits is dropped, not counted as a client gone
        self.transport.abort()  # close() would wait for the unread answers to drain

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close when idle, else after the answer in progress."""
        self.closing = True
        if self.current is None and self.transport is not None:
            self._close()

    # Parser callbacks ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.parsing = _Request()
        self.url.clear()
        self.raw_headers = []
        self.header_bytes = 0
        self.in_head = True
        if self.keep_alive_timer is not None:  # a request begins: not idle (a stray CRLF is not one)
            self.keep_alive_timer.cancel()
            self.keep_alive_timer = None
        if self.header_timer is None and not self.read_paused:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.settings.max_url_bytes:
            self._stop(URITooLong(f"the request target is over {self.settings.max_url_bytes} bytes (MAX_URL_BYTES)"))

    def on_header(self, name: bytes, value: bytes) -> None:
        """A header, or a field of a chunked body's trailer: counted alike, only headers kept."""
        self.header_bytes += len(name) + len(value) + 4  # as on the wire: ": " and CRLF count too
        if self.header_bytes > self.settings.max_header_bytes:
            limit = self.settings.max_header_bytes
            self._stop(HeadersTooLarge(f"the headers and trailers are over {limit} bytes (MAX_HEADER_BYTES)"))
        if self.in_head:
            self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self.in_head, self.unparsed_bytes = False, 0
        request, parser = self.parsing, self.parser
        request.headers = joined_headers(self.raw_headers)
        request.method = parser.get_method().decode("ascii")
        version = parser.get_http_version()
        if version not in ("1.0", "1.1"):
            self._stop(VersionNotSupported(f"HTTP/{version} is not spoken here; send HTTP/1.1"))
        host = request.headers.get("host")
        if host is None and version == "1.1":
            self._stop(MalformedHTTP("an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)"))
        if host is not None and "," in host and sum(name.lower() == b"host" for name, _ in self.raw_headers) > 1:
            self._stop(MalformedHTTP("a request may carry only one Host header (RFC 9112 section 3.2)"))
        coding = request.headers.get("transfer-encoding")
        if coding is not None:
            self._check_transfer_coding(coding)
        if request.method == "CONNECT":
            self._stop(NotImplementedHere("CONNECT is not served: this is the function itself, not a proxy"))
        request.keep_alive = version != "1.0" and parser.should_keep_alive()
        request.expect_continue = version == "1.1" and request.headers.get("expect", "").lower() == "100-continue"
        if parser.should_upgrade():  # Upgrade (h2c, websocket): answered in HTTP/1.1, then closed
            if request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers:
                # the parser would leave such a body unread, to be taken for the next request
                self._stop(MalformedHTTP("an Upgrade request with a body is not supported; send it without Upgrade"))
            self.upgrade, request.keep_alive = True, False
        target = httptools.parse_url(bytes(self.url))
        path = (target.path or b"/").decode("ascii")  # an absolute target may have no path
        request.path = urllib.parse.unquote(path) if "%" in path else path
        request.query = target.query or b""
        request.arrived = time.perf_counter()  # a whole head, with a route to count it under
        if self.current is None and not self.waiting:
            self._start(request)
        else:  # pipelined: answered in turn; read nothing more meanwhile
            self.waiting.append(request)
            self._pause_reading()

    def _check_transfer_coding(self, value: str) -> None:
        """RFC 9112 section 6: `chunked` must come last (else 400); any coding before it is one this
        server does not decode (501), where httptools would take the still-encoded bytes as the body."""
        codings = [c.strip(" \t").lower() for c in value.split(",") if c.strip(" \t")]  # empty elements ignored
        if not codings or codings[-1] != "chunked":
            self._stop(MalformedHTTP(f"Transfer-Encoding {value[:80]!r} does not end with chunked"))
        if len(codings) > 1:
            self._stop(NotImplementedHere(f"Transfer-Encoding {value[:80]!r} is not supported; send chunked"))

    def on_body(self, chunk: bytes) -> None:
        self.unparsed_bytes = 0
        request = self.parsing
        if request.too_large:
            return
        request.size += len(chunk)
        if request.size > self.settings.max_body_bytes:
            request.too_large, request.body = True, bytearray()  # never kept; the app answers 413
            request.wake()
        else:
            request.body += chunk  # the reader waits for the whole body: no wake-up per chunk

    def on_message_complete(self) -> None:
        self.unparsed_bytes = 0
        self.parsing.complete = True
        self.parsing.wake()
        self.parsing = None

    # Requests -----------------------------------------------------------------------------------

    def _start(self, request: _Request) -> None:
        self.current = request
        if self.keep_alive_timer is not None:  # not idle while answering
            self.keep_alive_timer.cancel()
            self.keep_alive_timer = None
        task = self.loop.create_task(self._answer(request))
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)

    async def _answer(self, request: _Request) -> None:
        async def read(limit: int, timeout: float) -> bytes:
            return await self._read(request, limit, timeout)

        async def write(response: Response) -> int | None:
            return self._write(request, response)

        try:
            await self.app.respond(request.method, request.path, request.query, request.headers, read, write)
        finally:
            self._finished(request)

    async def _read(self, request: _Request, limit: int, timeout: float) -> bytes:
        """The whole body: ClientGone when the client left, 413 past `limit`, 408 after `timeout`."""
        if request.expect_continue and not self._ended():
            request.expect_continue = False
            self.transport.write(CONTINUE)
        if not (request.complete or request.too_large or request.gone):
            try:
                async with asyncio.timeout(timeout):  # one deadline for the whole body, not per chunk
                    while not (request.complete or request.too_large or request.gone):
                        request.waiter = self.loop.create_future()
                        await request.waiter
            except TimeoutError as exc:
                raise body_late(timeout) from exc
        if request.gone:
            raise ClientGone(request.refused or 499, request.reason)
        if request.too_large or request.size > limit:
            raise body_too_large(limit)
        body, request.body = bytes(request.body), bytearray()  # not held twice while the view runs
        return body

    def _write(self, request: _Request, response: Response) -> int:
        """Head and body in one write; the connection closes after it unless both sides keep it.
        Returns the status the client was sent: a refusal's that answered instead, 499 when it left."""
        if self._ended():
            return request.refused or 499
        close = self.closing or not request.keep_alive or response.headers.get("Connection", "").lower() == "close"
        head = [STATUS_LINES.get(response.status) or f"HTTP/1.1 {response.status} Status\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        try:
            head += [_header_line(k, v) for k, v in response.headers.items() if k.lower() != "connection"]
        except ValueError as exc:  # never sent: it would split or garble the response
            log.error("%s %s: a response header cannot be sent (%s); answering 500", request.method, request.path, exc)
            close, response = True, error_response(HTTPError("internal error (a response header); see the log"))
            head = [STATUS_LINES[500]] + [_header_line(name, value) for name, value in response.headers.items()]
        head.append(b"content-length: %d\r\n" % len(response.body))
        if close:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if request.method != "HEAD":
            head.append(response.body)
        self.transport.write(b"".join(head))
        if self._ended():  # the write failed at once: the client reset the connection
            return 499
        if close:
            self.closing = True
            self._close()
        return response.status

    def _finished(self, request: _Request) -> None:
        self.current = None
        if not self._ended() and not request.complete:
            self.closing = True  # its body is still arriving (unread): the connection cannot be reused
            self._close()
        if self.closing:
            if not self._ended():
                self._close()
            return
        self._next()

    def _next(self) -> None:
        """The next pipelined request, or the refusal that waited for the answers before it, or wait
        for a request (reading again, under the keep-alive timeout)."""
        if self.write_paused or self._ended():
            return
        if self.waiting:
            self._start(self.waiting.popleft())
        elif self.deferred is not None:
            self._refuse(self.deferred)
            return
        elif self.eof:
            self._close()
            return
        if self.waiting or self.deferred is not None or self.upgrade:
            return
        self._resume_reading()
        if self.current is None and not self.in_head and self.keep_alive_timer is None:
            self.keep_alive_timer = self.loop.call_later(self.keep_alive_seconds, self._idle_too_long)

    def _idle_too_long(self) -> None:
        self.keep_alive_timer = None
        if self.current is None and not self._ended():
            self._close()

    def _pause_reading(self) -> None:
        """Read no more; a head under way is not timed meanwhile (it cannot arrive unread)."""
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
            self._cancel_header_timer()

    def _resume_reading(self) -> None:
        if self.read_paused and not self.write_paused:
            self.read_paused = False
            self.transport.resume_reading()
            if self.in_head and self.header_timer is None:
                self._arm_header_timer()

    # Refusals -----------------------------------------------------------------------------------

    def _stop(self, error: ClientError) -> None:
        self.refusal = error
        raise _Refused(error)

    def _arm_header_timer(self) -> None:
        self.header_timer = self.loop.call_later(self.settings.header_timeout_seconds, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_header_timer()
        for timer in (self.keep_alive_timer, self.send_timer, self.linger_timer):
            if timer is not None:
                timer.cancel()
        self.keep_alive_timer = self.send_timer = self.linger_timer = None

    def _headers_late(self) -> None:
        self.header_timer = None
        if self._ended():
            return
        if not self.received_any and self.current is None:
            self.transport.close()  # opened and never used: nobody to answer
            return
        seconds = self.settings.header_timeout_seconds
        self._refuse(RequestTimeout(f"the headers did not arrive within {seconds:g} s (HEADER_TIMEOUT_SECONDS)"))

    def _refuse(self, error: ClientError) -> None:
        """Answer `error` once the requests before it are answered, then close the connection."""
        self._cancel_header_timer()
        if self._ended():
            return
        failing = self.parsing
        if failing is not None and failing is self.current:  # its own body is broken: this refusal is its answer
            failing.gone, failing.refused, failing.reason = True, error.status, error.message
            failing.wake()
        elif self.current is not None or self.waiting:
            if failing is not None and self.waiting and self.waiting[-1] is failing:
                self.waiting.pop()  # its body is broken: it gets the refusal, not an answer
            self.deferred, self.refused_request = error, failing  # written by `_next` after the answers
            self._pause_reading()  # before it; nothing more is read
            return
        if self.keep_alive_timer is not None:  # the send timer stays: close() waits for the client to read
            self.keep_alive_timer.cancel()
            self.keep_alive_timer = None
        body = error_response(error, oip=self._target_path(failing).startswith("/v2")).body  # the route's shape
        head = (
            f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n".encode()
            + b"".join(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
            + f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        )  # default_headers: uvicorn's Date (RFC 9110 section 6.6.1: on every 4xx) and Server, if any
        head_only = self._method_of(failing) == "HEAD"  # RFC 9110 section 9.3.2
        self.transport.write(head + (b"" if head_only else body))
        status = 499 if self._ended() else error.status  # the write failed at once: the client left
        self.closing = True
        self._close()
        if failing is not None and failing is self.current:  # the app counts it, under its route
            failing.refused = status
        else:
            self._count_refused(failing, status, error.message)

    def _count_refused(self, request: _Request | None, status: int, reason: str) -> None:
        """Count and log a request the app never saw: under its route once its head was whole (its
        body's framing was refused, or it never got its refusal), else under `unmatched`."""
        if request is not None and request.arrived:
            self.app.unanswered(request.method, request.path, request.headers, request.arrived, status, reason)
        else:
            self.app.unrouted(self._method_of(request), status, reason)

    def _method_of(self, request: _Request | None) -> str:
        """The request's method as far as it was parsed, else "". The parser holds it once the target
        began (until its method token ends, it holds the previous request's: the rule errs on the
        side of "unknown")."""
        if request is not None and not request.method and self.url and self.parser is not None:
            request.method = self.parser.get_method().decode("latin-1")
        return request.method if request is not None else ""

    def _target_path(self, request: _Request | None) -> str:
        """The refused request's path as far as it was read, else "" (`url` holds the previous
        request's target until the next one begins)."""
        if request is None:
            return ""
        if request.path or not self.url:
            return request.path
        try:
            return (httptools.parse_url(bytes(self.url)).path or b"").decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            return ""


def _header_line(name: str, value: str) -> bytes:
    """One header line; ValueError for a value that is not Latin-1 or holds a line break."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"{name} holds a line break")
    return f"{name.lower()}: {value}\r\n".encode("latin-1")  # UnicodeEncodeError is a ValueError


def protocol_class(app: App, settings: Settings) -> type[Connection]:
    return type("Protocol", (Connection,), {"app": app, "settings": settings})
