"""The server's own HTTP/1.1 protocol, over raw sockets to the real server: pipelining, Expect:
100-continue, half-closed clients, HTTP/1.0, keep-alive and its timeout, back-pressure, Upgrade, and
what a red-team pass found (refusals overtaking answers, heads that never end, dead connections'
memory, clients that never read)."""

import asyncio
import collections
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from uvicorn.server import ServerState

from function.app import App
from function.config import Settings
from function.connection import _header_line, _Request, protocol_class
from function.errors import MalformedHTTP
from function.http import Response, joined_headers
from function.lifecycle import Function


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from `sock` (what follows it stays in `buffer`): status, headers, body."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {bytes(buffer)[:200]!r}"
        buffer += chunk
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    del buffer[: len(head) + 4]
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    length = int(headers.get("content-length", 0))
    while len(buffer) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed inside a body"
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, content_type: str, *extra: str, length: int | None = None) -> bytes:
    """A POST's bytes; `length` declares another Content-Length than the body's (and sends no body)."""
    declared = len(body) if length is None else length
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Type: {content_type}", f"Content-Length: {declared}"]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode() + (body if length is None else b"")


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def rest_until_closed(sock: socket.socket) -> bytes:
    """What the server still sends before it closes the connection (recv times out otherwise)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_pipelined_requests_are_answered_in_order_on_one_connection(server, jpeg: bytes) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(
        get("/health/liveness")
        + post("/", jpeg, "image/jpeg")
        + get("/v2")
        + post("/v2/models/cifar10/infer", b"{", "application/json")
        + b"HEAD /v2 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    answers = [read_response(sock, buffer) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 400]
    assert json.loads(answers[1][2])["label"] == "horse"
    assert json.loads(answers[2][2])["name"]  # the OIP server metadata, not the image's answer
    assert json.loads(answers[3][2])["error"].startswith("the body is not valid JSON")
    sock.settimeout(5)
    head, _, rest = bytes(buffer + sock.recv(65536)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b""  # HEAD: the GET's headers, no body
    assert f"content-length: {len(answers[2][2])}".encode() in head
    sock.close()


def test_expect_100_continue_is_answered_only_when_the_body_is_wanted(server, jpeg: bytes) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(post("/", jpeg, "image/jpeg", "Expect: 100-continue", length=len(jpeg)))
    sock.settimeout(10)
    interim = sock.recv(65536)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(jpeg)
    status, _, body = read_response(sock, buffer)
    assert status == 200 and json.loads(body)["label"] == "horse"
    sock.close()

    refused = connect(server)  # no route: the answer comes at once, no 100, and the unread body closes it
    refused.sendall(post("/nowhere", jpeg, "image/jpeg", "Expect: 100-continue", length=len(jpeg)))
    buffer = bytearray()
    status, headers, _ = read_response(refused, buffer)
    assert status == 404 and headers["connection"] == "close"
    assert buffer + rest_until_closed(refused) == b""


def test_a_client_that_closes_its_side_after_sending_still_gets_every_answer(server, jpeg: bytes) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(post("/", jpeg, "image/jpeg") + get("/health/liveness"))
    sock.shutdown(socket.SHUT_WR)  # as `curl -T` or a shell's `nc -N` do
    status, _, body = read_response(sock, buffer)
    assert status == 200 and json.loads(body)["label"] == "horse"
    assert read_response(sock, buffer)[0] == 200
    assert buffer + rest_until_closed(sock) == b""


def test_http_1_0_gets_one_answer_and_a_close(server) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(b"GET /health/liveness HTTP/1.0\r\n\r\n")
    status, headers, _ = read_response(sock, buffer)
    assert status == 200 and headers["connection"] == "close"
    assert buffer + rest_until_closed(sock) == b""


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(start_server) -> None:
    server = start_server(KEEPALIVE_TIMEOUT_SECONDS="1")
    server.wait("/health/liveness")
    sock, buffer = connect(server), bytearray()
    for _ in range(2):  # kept alive between answers
        sock.sendall(get("/health/liveness"))
        status, headers, _ = read_response(sock, buffer)
        assert status == 200 and "connection" not in headers
    started = time.monotonic()
    assert rest_until_closed(sock) == b"" and 0.5 < time.monotonic() - started < 5


def vm_kib(pid: int, field: str = "VmRSS") -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:")))


def test_a_body_of_two_million_two_byte_chunks_costs_its_size_not_an_object_per_chunk(server) -> None:
    peak = vm_kib(server.process.pid, "VmHWM")
    sock, buffer = connect(server), bytearray()
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
    sock.sendall(head + b"2\r\nxy\r\n" * 2_000_000 + b"0\r\n\r\n")  # (1-byte bytes are shared objects)
    status, _, body = read_response(sock, buffer)
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_image"  # read whole, then judged
    assert vm_kib(server.process.pid, "VmHWM") - peak < 40_000  # a list of 2,000,000 bytes objects: ~85 MB
    sock.close()


def test_repeated_headers_are_joined_in_order_once() -> None:
    pairs = [(b"X-A", b"1"), (b"content-type", b"image/png"), (b"x-a", b"2"), (b"X-a", b"")]
    assert joined_headers(pairs) == {"x-a": "1, 2, ", "content-type": "image/png"}
    many = joined_headers([(b"a", b"v")] * 4000)
    assert many == {"a": ", ".join(["v"] * 4000)}


def test_a_client_that_reads_no_answers_is_read_no_further(server) -> None:
    """A million pipelined scrapes of /metrics (34 MB of requests, GBs of answers) from a client that
    reads none: the server stops reading it once its answers back up, keeps its memory, and answers
    everyone else."""
    before = vm_kib(server.process.pid)
    hog = connect(server)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flood = get("/metrics") * 1_000_000
    sent = [0]

    def send() -> None:
        try:
            while sent[0] < len(flood):
                sent[0] += hog.send(flood[sent[0] : sent[0] + 65536])
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(3)
    assert sent[0] < len(flood)  # the server stopped reading: the flood cannot all be sent
    assert sender.is_alive()  # still blocked in send: the connection is open, not reset
    other, buffer = connect(server), bytearray()
    other.sendall(get("/health/readiness"))
    assert read_response(other, buffer)[0] == 200
    assert vm_kib(server.process.pid) - before < 30_000
    hog.close()
    sender.join(5)


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "line\nbreak", "nul\0", "snowman \u2603"])
def test_a_header_value_that_would_split_or_garble_the_response_is_never_sent(value: str) -> None:
    with pytest.raises(ValueError):
        _header_line("ce-id", value)
    assert _header_line("Content-Type", "application/json") == b"content-type: application/json\r\n"


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_refusal_waits_for_the_answers_to_the_requests_before_it(server, jpeg: bytes) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(
        get("/health/liveness")
        + post("/", jpeg, "image/jpeg")
        + b"GARBAGE\r\n\r\nGET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert read_response(sock, buffer)[0] == 200
    status, _, body = read_response(sock, buffer)
    assert status == 200 and json.loads(body)["label"] == "horse"
    status, headers, body = read_response(sock, buffer)
    assert status == 400 and headers["connection"] == "close" and b"malformed_http" in body
    assert buffer + rest_until_closed(sock) == b""  # nothing after the refusal


def test_a_head_that_never_ends_is_cut_at_its_limit_not_buffered(server) -> None:
    """httptools keeps an unfinished header value to itself, past MAX_HEADER_BYTES."""
    peak = vm_kib(server.process.pid, "VmHWM")
    trailer = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: "
    for head in (
        b"GET /health/liveness HTTP/1.1\r\nHost: x\r\nX-Long: ",
        b"GET /health/liveness HTTP/1.1\r\nX",
        trailer,
    ):
        sock = connect(server)
        sock.sendall(head)
        answer = b""
        try:
            for _ in range(2000):  # up to 128 MB if nothing stops it
                sock.sendall(b"a" * 65536)
        except OSError:  # refused and closed: the rest is not taken
            pass
        answer = rest_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 431") and b"headers_too_large" in answer, answer[:200]
        sock.close()
    assert vm_kib(server.process.pid, "VmHWM") - peak < 20_000


def test_a_dead_connections_unfinished_body_is_freed_at_once(server) -> None:
    before = vm_kib(server.process.pid)
    for _ in range(6):  # 9 MB each, then a reset
        sock = connect(server)
        sock.sendall(post("/", b"", "image/jpeg", length=9_500_000) + b"\0" * 9_000_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        sock.close()
    time.sleep(1)
    assert vm_kib(server.process.pid) - before < 25_000  # 54 MB if each waited for the garbage collector


def test_a_stray_line_end_after_an_answer_does_not_hold_the_connection(start_server) -> None:
    server = start_server(KEEPALIVE_TIMEOUT_SECONDS="1", HEADER_TIMEOUT_SECONDS="1")
    server.wait("/health/liveness")
    sock, buffer = connect(server), bytearray()
    sock.sendall(get("/health/liveness"))
    assert read_response(sock, buffer)[0] == 200
    sock.sendall(b"\r\n")
    started = time.monotonic()
    assert rest_until_closed(sock) == b"" and time.monotonic() - started < 5


def test_a_pipelined_head_still_arriving_is_not_cut_by_the_keep_alive_timeout(start_server) -> None:
    server = start_server(KEEPALIVE_TIMEOUT_SECONDS="1", HEADER_TIMEOUT_SECONDS="5")
    server.wait()  # ready, so that the late request's answer is 200 however long the model took to load
    sock, buffer = connect(server), bytearray()
    sock.sendall(b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\nGET /health/readiness HTTP/1.1\r\n")
    assert read_response(sock, buffer)[0] == 200
    time.sleep(2)  # past the keep-alive timeout, within the header timeout
    sock.sendall(b"Host: x\r\n\r\n")
    status, _, body = read_response(sock, buffer)
    assert status == 200 and json.loads(body)["status"] == "ready"


def test_a_client_that_never_reads_is_cut_off_after_the_send_timeout(start_server) -> None:
    server = start_server(SEND_TIMEOUT_SECONDS="2")
    server.wait()  # ready: the worker's stream is open, so the count of descriptors holds still
    pid = server.process.pid
    time.sleep(0.5)  # the readiness probe's own connection closes first
    idle = fds(pid)
    hog = connect(server)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.setblocking(False)
    flood = memoryview(get("/metrics") * 200_000)
    sent, deadline = 0, time.monotonic() + 1  # under the timeout: the answers back up meanwhile
    while time.monotonic() < deadline and sent < len(flood):
        try:
            sent += hog.send(flood[sent : sent + 65536])
        except BlockingIOError:
            time.sleep(0.05)
    assert fds(pid) == idle + 1  # held while its answers back up
    deadline = time.monotonic() + 10
    while fds(pid) > idle and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fds(pid) == idle  # cut
    hog.close()


def test_an_upgrade_is_answered_in_http_1_1_and_one_with_a_body_is_refused(server) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(
        b"GET /health/liveness HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status, headers, _ = read_response(sock, buffer)
    assert status == 200 and headers["connection"] == "close"
    assert buffer + rest_until_closed(sock) == b""  # what follows an Upgrade is not read as HTTP/1.1
    smuggler, buffer = connect(server), bytearray()  # the body would have been run as a request
    smuggled = get("/metrics")
    smuggler.sendall(
        post(
            "/predict",
            b"",
            "multipart/form-data; boundary=z",
            "Connection: Upgrade",
            "Upgrade: foo",
            length=len(smuggled),
        )
    )
    time.sleep(0.3)
    smuggler.sendall(smuggled)
    status, headers, body = read_response(smuggler, buffer)
    assert status == 400 and b"Upgrade" in body and headers["connection"] == "close"
    assert buffer + rest_until_closed(smuggler) == b""


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", 200),  # absolute form, no path: /
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000000000000000\r\n\r\n", 413),
    ],
)
def test_odd_but_valid_heads(server, request_bytes: bytes, status: int) -> None:
    sock = connect(server)
    sock.sendall(request_bytes)
    assert read_response(sock, bytearray())[0] == status
    sock.close()


@pytest.mark.parametrize(
    ("head", "status", "says"),
    [
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: gzip, chunked", 501, "gzip"),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: Chunked ", None, None),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: ,chunked", None, None),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: gzip", 400, "chunked"),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked, chunked",
            400,
            "Transfer-Encoding",
        ),
        ("GET /health/liveness HTTP/2.0\r\nHost: x", 505, "HTTP/2.0"),
        ("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443", 501, "CONNECT"),
    ],
)
def test_a_coding_version_or_method_the_server_does_not_implement_is_refused_not_ignored(
    server, jpeg: bytes, head: str, status: int | None, says: str | None
) -> None:
    # a gzipped, chunked image was taken as the still-gzipped bytes; HTTP/2.0 was answered as 1.1
    sock, buffer = connect(server), bytearray()
    chunked = f"{len(jpeg):x}\r\n".encode() + jpeg + b"\r\n0\r\n\r\n" if "Transfer" in head else b""
    sock.sendall(head.encode() + b"\r\n\r\n" + chunked)
    answer, headers, body = read_response(sock, buffer)
    if status is None:  # the one coding understood, in any case and spacing
        assert answer == 200 and json.loads(body)["label"] == "horse"
        return
    assert answer == status and says.encode() in body and headers["connection"] == "close"
    assert buffer + rest_until_closed(sock) == b""


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /health/liveness HTTP/1.1\r\n\r\n", 400),  # RFC 9112 section 3.2: a MUST
        (b"GET /health/liveness HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),  # which host is meant?
        (b"GET /health/liveness HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /health/liveness HTTP/1.0\r\n\r\n", 200),  # HTTP/1.0 predates Host
        (b"GET /health/liveness HTTP/1.1\r\nHost:\r\n\r\n", 200),  # empty: allowed for a target without authority
        (b"GET /health/liveness HTTP/1.1\r\nHost: a,b\r\n\r\n", 200),  # one header (a reg-name may hold a comma)
    ],
)
def test_an_http_1_1_request_needs_exactly_one_host(server, head: bytes, status: int) -> None:
    sock = connect(server)
    sock.sendall(head)
    answer, headers, body = read_response(sock, bytearray())
    assert answer == status, body
    if status == 400:
        assert b"Host" in body and headers["connection"] == "close"
    sock.close()


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"%s /health/liveness HTTP/1.1\r\n\r\n", 400),  # refused once its head is whole (no Host)
        (b"%s /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # refused by the parser inside the target
        (b"%s / HTTP/1.1\r\nHost: x\r\nBad\x01Name: y\r\n\r\n", 400),  # by the parser inside a header
        (b"%s / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ],
)
def test_a_refused_head_gets_no_body_and_any_other_method_its_json(server, head: bytes, status: int) -> None:
    """RFC 9110 section 9.3.2: an answer to HEAD has no body, a refusal's included; a client reading one
    would take the body for its next answer."""
    for method in (b"HEAD", b"GET"):
        sock = connect(server)
        sock.sendall(head % method)
        answer = rest_until_closed(sock)
        sock.close()
        first, _, body = answer.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 %d " % status), answer
        if method == b"HEAD":
            assert body == b"", answer
        else:
            assert "error" in json.loads(body)


def test_a_broken_method_after_a_head_is_refused_with_its_json_body(server) -> None:
    """The parser keeps the previous request's method when the next one's is broken: that stale HEAD
    must not take the refusal's body away."""
    sock = connect(server)
    sock.sendall(b"HEAD /health/liveness HTTP/1.1\r\nHost: x\r\n\r\nGE\x01T / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = rest_until_closed(sock)
    sock.close()
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")  # the HEAD's answer: a head alone
    second, _, body = rest.partition(b"\r\n\r\n")
    assert second.startswith(b"HTTP/1.1 400 ") and "error" in json.loads(body), answer


def requests_counted(server) -> collections.Counter:
    """The server's request counter by (route, method, status), as /metrics gives it."""
    sock, buffer = connect(server), bytearray()
    sock.sendall(get("/metrics"))
    text = read_response(sock, buffer)[2].decode()
    sock.close()
    counts: collections.Counter = collections.Counter()
    pattern = r'^cifar10_requests_total\{method="(\w+)",route="([^"]+)",status="(\d+)"\} (\S+)$'
    for method, route, status, value in re.findall(pattern, text, re.M):
        counts[route, method, int(status)] += float(value)
    return counts


def test_a_refusal_of_a_requests_own_body_is_counted_once_under_its_route(server, jpeg: bytes) -> None:
    before = requests_counted(server)
    sock = connect(server)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
    sock.sendall(head + f"{len(jpeg):x}\r\n".encode() + jpeg + b"\r\nzz\r\n")  # a chunk size that is no number
    assert read_response(sock, bytearray())[0] == 400
    sock.close()
    counted = requests_counted(server) - before
    counted["/metrics", "GET", 200] -= 1  # the scrape of /metrics itself
    assert +counted == {("/", "POST", 400): 1}  # was 400 under "unmatched" and 499 under "/"


def test_pipelined_requests_whose_client_left_before_their_turn_count_as_499_under_their_routes(
    start_server, jpeg: bytes
) -> None:
    server = start_server(LOAD_MODE="first-request")  # the first POST waits for the model: the rest wait behind it
    server.wait("/health/liveness")
    sock = connect(server)
    broken = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    sock.sendall(post("/", jpeg, "image/jpeg") + get("/health/liveness") + get("/v1/models/cifar10") + broken)
    time.sleep(0.3)  # all read, the POST still loading its model
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    sock.close()  # a reset: the client is gone (seen when the POST's answer meets it: reading is paused)
    deadline = time.monotonic() + 60
    while not (counted := requests_counted(server))["/", "POST", 499] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counted["/", "POST", 499] == 2  # the first, and the broken one whose refusal was never sent
    assert counted["/health/liveness", "GET", 499] == 1  # they were not counted at all
    assert counted["/v1/models/cifar10", "GET", 499] == 1


BROKEN_CHUNK = b"Host: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"


def test_every_request_the_connection_answers_or_drops_is_counted_once_and_logged_once(start_server) -> None:
    """What a red-team pass found: a pipelined request refused for its own body counted under
    `unmatched` (and logged twice when it came first), a request the server dropped after closing
    the connection counted as 499 (its client never left), a refusal's method labelled `other`."""
    server = start_server()
    server.wait("/health/liveness")
    before = requests_counted(server)
    exchanges = [
        get("/health/liveness") + b"POST / HTTP/1.1\r\n" + BROKEN_CHUNK,  # 200, then 400 for the POST under "/"
        b"HEAD / HTTP/1.1\r\n" + BROKEN_CHUNK,  # answered by the refusal while its view ran: one line, under "/"
        b"GET /health/liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab" + get("/health/readiness"),
        b"HEAD /health/liveness HTTP/1.1\r\n\r\n",  # a bad head (no Host): `unmatched`, method HEAD
        b"HEAD /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",  # refused inside its target: the same
    ]
    for data in exchanges:
        sock = connect(server)
        sock.sendall(data)
        rest_until_closed(sock)
        sock.close()
    counted = requests_counted(server)
    counted.subtract(before)
    counted["/metrics", "GET", 200] -= 1  # this scrape
    assert +counted == {
        ("/health/liveness", "GET", 200): 2,
        ("/", "POST", 400): 1,
        ("/", "HEAD", 400): 1,
        ("unmatched", "HEAD", 400): 2,
    }  # /health/readiness, dropped behind an answer that closed the connection, is not counted
    log = server.stop()
    assert len(re.findall(r"function.access: POST / 400 ", log)) == 1
    assert re.search(r"function.access: POST / 400 [\d.]+ ms - refused: malformed HTTP request", log)
    assert len(re.findall(r"function.access: HEAD / 400 ", log)) == 1
    assert re.search(r"function.access: HEAD - 400 refused: malformed HTTP request", log)
    assert "/health/readiness" not in log.split("Application startup complete")[1]
    assert not re.search(r"function\.access: \S+ \S+ 499 ", log)


def test_a_refusal_on_an_oip_route_has_the_oip_error_shape(server) -> None:
    sock = connect(server)
    sock.sendall(b"POST /v2/models/cifar10/infer HTTP/1.1\r\n" + BROKEN_CHUNK)
    status, _, body = read_response(sock, bytearray())
    sock.close()
    assert status == 400 and isinstance(json.loads(body)["error"], str)  # OIP v2: {"error": "<message>"}


def test_a_refusal_of_what_is_not_implemented_waits_for_the_answers_before_it(server) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(get("/health/liveness") + b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert [read_response(sock, buffer)[0] for _ in range(2)] == [200, 501]
    assert buffer + rest_until_closed(sock) == b""


def test_a_chunked_bodys_trailer_counts_against_the_header_limit(start_server, jpeg: bytes) -> None:
    server = start_server(MAX_HEADER_BYTES="4096")
    server.wait("/health/liveness")
    sock, buffer = connect(server), bytearray()
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
    trailer = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 100) for i in range(40))  # 4.3 KB, in one write
    sock.sendall(head + f"{len(jpeg):x}\r\n".encode() + jpeg + b"\r\n0\r\n" + trailer + b"\r\n")
    status, headers, body = read_response(sock, buffer)
    assert status == 431 and b"trailers" in body and headers["connection"] == "close"


def test_content_length_with_spaces_around_it_is_a_length(server, jpeg: bytes) -> None:
    sock, buffer = connect(server), bytearray()
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)} \t\r\n\r\n"
    sock.sendall(head.encode() + jpeg)
    status, _, body = read_response(sock, buffer)
    assert status == 200 and json.loads(body)["label"] == "horse"


def test_an_http_1_0_client_gets_no_interim_100(server, jpeg: bytes) -> None:
    sock = connect(server)
    head = f"POST / HTTP/1.0\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\nExpect: 100-continue\r\n\r\n"
    sock.sendall(head.encode() + jpeg)
    answer = rest_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200") and b"100 Continue" not in answer


def test_an_answer_whose_header_would_split_the_response_goes_out_as_a_json_500() -> None:
    """Through a real asyncio transport on a socket pair: the protocol's writer alone."""

    async def exchange() -> bytes:
        ours, theirs = socket.socketpair()
        config = uvicorn.Config(None, timeout_keep_alive=5)
        protocol = protocol_class(None, Settings())(config, ServerState())
        await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, ours)
        request = _Request()
        request.method, request.path, request.keep_alive = "POST", "/", True
        sent = protocol._write(request, Response(200, b'{"ok": true}', {"ce-id": "a\r\nSet-Cookie: x=1"}))
        assert sent == 500  # what the app logs and counts (was the 200 it meant to send)
        theirs.settimeout(5)
        return await asyncio.to_thread(rest_until_closed, theirs)

    answer = asyncio.run(exchange())
    assert answer.startswith(b"HTTP/1.1 500 ") and b"Set-Cookie" not in answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head and json.loads(body)["error"]["code"] == "internal"


def test_an_answer_to_a_client_that_left_counts_as_499_and_one_a_refusal_answered_as_the_refusal() -> None:
    async def sent_after_close(refused: int) -> int:
        ours, theirs = socket.socketpair()
        config = uvicorn.Config(None, timeout_keep_alive=5)
        protocol = protocol_class(None, Settings())(config, ServerState())
        await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, ours)
        request = _Request()
        request.method, request.path, request.keep_alive, request.refused = "POST", "/", True, refused
        theirs.close()
        protocol.transport.close()  # as when the client resets the connection while the view runs
        return protocol._write(request, Response(200, b'{"ok": true}', {}))

    assert asyncio.run(sent_after_close(0)) == 499  # was counted as the 200 nobody received
    assert asyncio.run(sent_after_close(400)) == 400  # the refusal written in its place


def test_a_refusal_whose_write_fails_at_once_counts_as_499() -> None:
    """The client reset the connection before its refusal went out: it was sent nothing."""

    async def exchange() -> str:
        ours, theirs = socket.socketpair()
        fn = Function(Settings(device="cpu", workers=1))  # its workers are never started here
        config = uvicorn.Config(None, timeout_keep_alive=5)
        protocol = protocol_class(App(fn), fn.settings)(config, ServerState())
        await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, ours)
        theirs.close()  # gone, and the server has not read that yet
        protocol._refuse(MalformedHTTP("a head this server refuses"))
        fn.bookkeeping.flush()
        return fn.metrics.exposition().decode()

    text = asyncio.run(exchange())
    assert re.search(r'cifar10_requests_total\{method="other",route="unmatched",status="499"\} 1.0', text), text


def test_a_refused_upload_still_being_sent_gets_its_answer_not_a_reset(server) -> None:
    """A 413 from Content-Length, while the client goes on sending its body as Go's client (queue-proxy's)
    does: the server shuts its side and drops what still arrives, so the client reads the whole 413.
    Closed with those bytes unread, the socket answered them with a reset, and the 413 could be lost."""
    sock = connect(server)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 20000000\r\n\r\n")
    sock.sendall(b"\xff" * 65536)
    time.sleep(0.3)  # the 413 is written by now
    sock.sendall(b"\xff" * 65536)  # more of the body, arriving after the answer
    time.sleep(0.3)
    answer = rest_until_closed(sock)  # a reset here raised ConnectionResetError
    assert answer.startswith(b"HTTP/1.1 413") and b"MAX_BODY_BYTES" in answer
    sock.close()
