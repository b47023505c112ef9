"""Raw HTTP framing fuzzed against the real server: request lines, headers and chunked bodies.

Hypothesis builds requests from a small grammar (methods, targets, versions, header lines with
odd separators, Content-Length and Transfer-Encoding in every combination, chunk sizes in hex,
negative, huge or junk, extensions, truncation) and sends each over its own socket. The invariant:
any answer is a complete status line below 500, the server never stops answering, and what it
said to a malformed request is JSON. `HTTP_FUZZ_EXAMPLES` sets the count (`make fuzz` raises it).
"""

import json
import os
import re
import socket

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DATA

EXAMPLES = int(os.environ.get("HTTP_FUZZ_EXAMPLES", "120"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
JPEG = (DATA / "cat.jpg").read_bytes()

methods = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"PATCH", b"FOO", b"", b"get", b"POST "])
targets = st.sampled_from(
    [b"/", b"/predict", b"/v2/models/cifar10/infer", b"/health/readiness", b"*", b"http://x/", b"/%zz", b"//", b"/\x00"]
)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b"", b"http/1.1"])
header_names = st.sampled_from([b"Host", b"Content-Type", b"Content-Length", b"Transfer-Encoding", b"X", b"", b" X"])
header_values = st.sampled_from(
    [b"x", b"chunked", b"image/jpeg", b"0", b"5", b"-1", b"99999999999", b"gzip, chunked", b""]
)
separators = st.sampled_from([b": ", b":", b" : ", b"\t:", b""])
line_ends = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def chunked(draw) -> bytes:
    body = b""
    for _ in range(draw(st.integers(0, 4))):
        data = draw(st.binary(max_size=32))
        size = draw(
            st.sampled_from([b"%x" % len(data), b"zz", b"-5", b"ffffffffffffffffffff", b"%x;ext=1" % len(data), b""])
        )
        body += size + b"\r\n" + data + draw(line_ends)
    if draw(st.booleans()):
        body += b"0\r\n\r\n"
    return body


@st.composite
def raw_request(draw) -> bytes:
    end = draw(line_ends)
    request = draw(methods) + b" " + draw(targets) + b" " + draw(versions) + end
    if draw(st.booleans()):  # without a Host, HTTP/1.1 stops at a 400 before the rest is looked at
        request += b"Host: x" + end
    for _ in range(draw(st.integers(0, 5))):
        request += draw(header_names) + draw(separators) + draw(header_values) + end
    request += end
    request += draw(st.one_of(chunked(), st.binary(max_size=64), st.just(JPEG[: draw(st.integers(0, 400))])))
    return request


def not_implemented(status: int, request: bytes) -> bool:
    """A 501 for a transfer coding, a 505 for an HTTP version other than 1.0 and 1.1 (RFC 9112)."""
    line = re.split(rb"\r|\n", request, maxsplit=1)[0]
    if status == 505:
        return not line.endswith((b" HTTP/1.1", b" HTTP/1.0"))
    return status == 501 and b"transfer-encoding" in request.lower()


@pytest.fixture(scope="module")
def target(server):
    yield server
    assert requests.get(f"{server.url}/health/readiness", timeout=5).status_code == 200


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # the client has said everything: the server answers or closes
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # a refusal may close before reading everything sent; a timeout (a hang) fails the test
    return answer


def answers(stream: bytes, head_first: bool) -> list[tuple[int, bytes]]:
    """Each answer in a connection's byte stream, whole: its status and body (by Content-Length;
    none for an interim 1xx or the answer to a HEAD, which only the first request can be here)."""
    found = []
    while stream:
        head, separator, stream = stream.partition(b"\r\n\r\n")
        assert separator, head[:300]  # a head is never cut short
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        if status >= 200 and not (head_first and not found):
            fields = dict(line.split(b": ", 1) for line in lines[1:])
            length = int(next(v for k, v in fields.items() if k.lower() == b"content-length"))
        assert len(stream) >= length, (head[:300], stream[:300])  # nor is a body
        found.append((status, stream[:length]))
        stream = stream[length:]
    return found


@SETTINGS
@given(request=raw_request())
def test_malformed_framing_is_never_a_server_failure(target, request: bytes) -> None:
    stream = exchange(target.port, request)
    for status, body in answers(stream, head_first=request.startswith(b"HEAD ")):
        assert status < 500 or not_implemented(status, request), (request[:200], stream[:300])
        if status >= 400 and body:  # every error answer with a body (all but a HEAD's) says it in JSON
            assert "error" in json.loads(body), stream[:300]
        elif status >= 400:
            assert request.startswith(b"HEAD "), stream[:300]
    assert requests.get(f"{target.url}/health/liveness", timeout=5).status_code == 200
