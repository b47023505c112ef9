"""The server's own HTTP/1.1 protocol, over raw sockets to the real server: pipelining, Expect:
100-continue, half-closed clients, HTTP/1.0, keep-alive and its timeout, back-pressure, and header
lines it never sends."""

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from function.connection import _header_line, joined_headers


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


def rest_until_closed(sock: socket.socket) -> bytes:
    """What the server still sends before it closes the connection (recv times out otherwise)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_pipelined_requests_are_answered_in_order_on_one_connection(server, jpeg: bytes) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(
        b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\n"
        + post("/", jpeg, "image/jpeg")
        + b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n"
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
    sock.sendall(post("/", jpeg, "image/jpeg") + b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\n")
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
        sock.sendall(b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\n")
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
    flood = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 1_000_000
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
    other, buffer = connect(server), bytearray()
    other.sendall(b"GET /health/readiness HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(other, buffer)[0] == 200
    assert vm_kib(server.process.pid) - before < 30_000
    hog.close()
    sender.join(5)


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "line\nbreak", "nul\0", "snowman \u2603"])
def test_a_header_value_that_would_split_or_garble_the_response_is_never_sent(value: str) -> None:
    with pytest.raises(ValueError):
        _header_line("ce-id", value)
    assert _header_line("Content-Type", "application/json") == b"content-type: application/json\r\n"
