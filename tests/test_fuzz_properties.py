"""Property-based fuzzing (hypothesis) of request parsing and image decoding, in-process.

Invariant: a well-formed 2xx or a 4xx with the JSON error; never a 5xx, a hang or a crash. The
coverage-guided twin is tests/fuzz/fuzz_requests.py (atheris, `make fuzz`).
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from function.errors import ClientError
from function.imaging import decode
from tests.asgi import InProcess
from tests.fuzz import corpus

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
IMAGES = corpus.images()
REQUESTS = corpus.requests()


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed truncated, with bytes flipped, inserted or deleted."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        else:
            del data[position:]
    return bytes(data)


@SETTINGS
@given(mutated(IMAGES))
def test_decoding_mutated_images_raises_only_request_errors(data: bytes) -> None:
    try:
        array = decode(data, 4_000_000)
    except ClientError as error:
        assert error.status in (400, 413)
    else:
        assert array.shape == (32, 32, 3)


@pytest.fixture(scope="module")
def fuzz_client():
    app = InProcess(MAX_IMAGE_PIXELS="4000000", WORKERS="1", ACCESS_LOG="false")
    yield app
    app.close()


def post(client: InProcess, path: str, headers: dict[str, str], body: bytes) -> None:
    status, answer_headers, data = client.post(path, headers, body)
    corpus.check_answer(status, answer_headers.get("content-type", ""), data)


@SETTINGS
@given(request=st.sampled_from(REQUESTS), body=st.data())
def test_mutated_requests_never_5xx(fuzz_client, request, body) -> None:
    path, headers, valid = request
    post(fuzz_client, path, headers, body.draw(mutated([valid])))


@SETTINGS
@given(
    path=st.sampled_from(["/", "/predict", "/v1/models/cifar10:predict", "/v2/models/cifar10/infer"]),
    content_type=st.sampled_from(
        [
            "",
            "image/png",
            "application/json",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
            "application/cloudevents+json",
            "text/plain",
        ]
    ),
    body=st.binary(max_size=2048),
)
def test_random_bytes_never_5xx(fuzz_client, path: str, content_type: str, body: bytes) -> None:
    post(fuzz_client, path, {"Content-Type": content_type} if content_type else {}, body)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(
    document=st.dictionaries(
        st.sampled_from(
            ["instances", "inputs", "outputs", "b64", "id", "name", "shape", "datatype", "data", "parameters"]
        ),
        JSON_VALUES,
        max_size=5,
    )
)
def test_odd_json_documents_never_5xx(fuzz_client, document: dict) -> None:
    body = json.dumps(document).encode()
    post(fuzz_client, "/", {"Content-Type": "application/json"}, body)
    post(fuzz_client, "/v2/models/cifar10/infer", {}, body)
    event = {"specversion": "1.0", "id": "x", "source": "/f", "type": "t", "data": document}
    post(fuzz_client, "/", {"Content-Type": "application/cloudevents+json"}, json.dumps(event).encode())


@SETTINGS
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-datacontenttype", "Content-Type"]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    ),
    body=st.binary(max_size=256),
)
def test_odd_cloudevent_headers_never_5xx(fuzz_client, headers: dict, body: bytes) -> None:
    post(fuzz_client, "/", {"ce-specversion": "1.0", **headers}, body)
