"""Structure-aware fuzzing: every field of every protocol's JSON given every JSON type.

Each valid document below is walked; every field in turn (and the whole document) is replaced by
null, booleans, numbers (negative, fractional, 10**400), strings, lists, objects and a list nested
deeper than Python's recursion limit. The invariant: a 2xx or a 4xx with the JSON error body of
the route's protocol, never a 5xx. The server's app runs in-process with its real worker.
"""

import base64
import json

import pytest

from tests.asgi import InProcess
from tests.conftest import DATA
from tests.fuzz import corpus

B64 = base64.b64encode((DATA / "cat.jpg").read_bytes()).decode()
PIXELS = [[[7, 8, 9]] * 32] * 32
HUGE = "HUGE"  # stands for the JSON number 10**400, which json.dumps cannot write from a float
DEEP = "DEEP"  # stands for a list nested 100,000 levels deep
REPLACEMENTS = [None, True, False, 0, -1, 1.5, 2**63, HUGE, "", "x", [], [1], {}, {"a": 1}, DEEP]
CE = {"specversion": "1.0", "id": "f", "source": "/fuzz", "type": "dev.cifar10.classify.request"}
DOCUMENTS = [
    ("/v1/models/cifar10:predict", {"Content-Type": "application/json"}, {"instances": [{"b64": B64}]}),
    ("/", {"Content-Type": "application/json"}, {"instances": [PIXELS]}),
    (
        "/v2/models/cifar10/infer",
        {},
        {
            "id": "r",
            "parameters": {"a": 1},
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [B64], "parameters": {}}],
            "outputs": [{"name": "label", "parameters": {}}],
        },
    ),
    (
        "/v2/models/cifar10/infer",
        {},
        {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [PIXELS]}]},
    ),
    ("/", {"Content-Type": "application/cloudevents+json"}, {**CE, "subject": "s", "data_base64": B64}),
    (
        "/",
        {"Content-Type": "application/cloudevents+json"},
        {**CE, "datacontenttype": "application/json", "data": {"b64": B64}},
    ),
]


def paths(document: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in the document, the root included; pixel rows are sampled, not all walked."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document[:2]):
            found += paths(value, (*prefix, index))
    return found


def replaced(document: object, path: tuple, value: object) -> object:
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def encode(document: object) -> bytes:
    text = json.dumps(document)
    text = text.replace(f'"{HUGE}"', "1" + "0" * 400)
    return text.replace(f'"{DEEP}"', "[" * 100_000 + "]" * 100_000).encode()


@pytest.fixture(scope="module")
def app():
    app = InProcess(WORKERS="1", ACCESS_LOG="false")
    yield app
    app.close()


@pytest.mark.parametrize(
    "route, headers, document", DOCUMENTS, ids=[f"{r} {i}" for i, (r, _, _) in enumerate(DOCUMENTS)]
)
def test_every_field_of_every_type_is_a_4xx_or_a_2xx(app: InProcess, route: str, headers: dict, document: dict) -> None:
    status, _, _ = app.post(route, headers, encode(document))
    assert status == 200  # the unchanged document is valid
    answered = 0
    for path in paths(document):
        for value in REPLACEMENTS:
            if isinstance(document, dict) and "id" in document and path != ("id",):
                value_doc = replaced(document, ("id",), f"{path}-{value!r}")  # a fresh event each time
                value_doc = replaced(value_doc, path, value)
            else:
                value_doc = replaced(document, path, value)
            status, answer_headers, body = app.post(route, headers, encode(value_doc))
            corpus.check_answer(status, answer_headers.get("content-type", ""), body)
            answered += 1
    assert answered >= len(REPLACEMENTS) * 3
