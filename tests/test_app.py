"""Every route of the function, over HTTP to the real server (`python -m function`)."""

import base64
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from function.cifar10 import CLASSES
from tests.conftest import DATA, worker_pids


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_prediction(body: dict, k: int = 3) -> None:
    assert body["label"] in CLASSES
    assert 0 < body["probability"] <= 1
    assert len(body["top"]) == k
    assert body["top"][0] == {"label": body["label"], "probability": body["probability"]}
    assert body["model"] == "cifar_resnet20_v1"
    assert body["device"] == "cpu"


def test_tutorial_predict_json_and_text(client, jpeg: bytes) -> None:
    response = client.post("/predict", files={"img": ("horse.jpg", jpeg)})
    assert response.status_code == 200
    assert_prediction(response.json)
    text = client.post("/predict", files={"img": ("horse.jpg", jpeg)}, headers={"Accept": "text/plain"})
    assert text.mimetype == "text/plain"
    label, probability = response.json["label"], response.json["probability"]
    assert text.data.decode() == f"The input picture is classified as [{label}], with probability {probability:.3f}."


def test_raw_image_body_and_top_k(client, jpeg: bytes) -> None:
    for content_type in ("image/jpeg", "application/octet-stream"):
        response = client.post("/?top_k=5", data=jpeg, content_type=content_type)
        assert response.status_code == 200, response.json
        assert_prediction(response.json, k=5)


def test_same_image_same_answer_across_protocols(client, jpeg: bytes) -> None:
    raw = client.post("/", data=jpeg, content_type="image/jpeg").json
    v1 = client.post("/v1/models/cifar10:predict", json={"instances": [{"b64": b64(jpeg)}]}).json
    root_v1 = client.post("/", json={"instances": [{"b64": b64(jpeg)}]}).json
    v2 = client.post(
        "/v2/models/cifar10/infer",
        data=json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(jpeg)]}]}),
    ).json
    assert v1 == root_v1 == {"predictions": [raw]}
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert outputs["label"]["data"] == [raw["label"]]
    assert outputs["probability"]["data"] == [raw["probability"]]


def test_kserve_v1_many_instances_and_tensor_instances(client) -> None:
    images = [(DATA / f"{name}.jpg").read_bytes() for name in CLASSES]
    response = client.post("/v1/models/cifar10:predict", json={"instances": [{"b64": b64(i)} for i in images]})
    assert response.status_code == 200
    assert len(response.json["predictions"]) == 10
    tensor = np.zeros((32, 32, 3), dtype=np.uint8).tolist()
    response = client.post("/v1/models/cifar10:predict", json={"instances": [tensor, tensor]})
    assert response.status_code == 200 and len(response.json["predictions"]) == 2


def test_oip_v2_uint8_tensor_and_output_selection(client) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 32, 32, 3)).tolist()
    request = {
        "id": "r1",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [2, 32, 32, 3], "data": pixels}],
        "outputs": [{"name": "probabilities"}],
    }
    response = client.post("/v2/models/cifar10/infer", data=json.dumps(request), content_type="text/plain")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["id"] == "r1" and body["model_name"] == "cifar10"
    (output,) = body["outputs"]
    assert output["name"] == "probabilities" and output["shape"] == [2, 10] and output["datatype"] == "FP32"
    assert abs(sum(output["data"][:10]) - 1) < 1e-4


def test_oip_v2_metadata_and_health(client) -> None:
    assert client.get("/v2").json["extensions"] == ["binary_tensor_data"]
    meta = client.get("/v2/models/cifar10").json
    assert meta["name"] == "cifar10"
    assert [i["name"] for i in meta["inputs"]] == ["image"]
    assert {o["name"] for o in meta["outputs"]} == {"label", "probability", "probabilities"}
    client.post("/", data=(DATA / "cat.jpg").read_bytes(), content_type="image/jpeg")  # waits for the load
    assert client.get("/v2/models/cifar10/ready").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v1/models/cifar10").json == {"name": "cifar10", "ready": True}


def test_readiness_in_background_mode_turns_green(client) -> None:
    assert client.get("/health/liveness").json == {"status": "alive"}
    client.post("/", data=(DATA / "cat.jpg").read_bytes(), content_type="image/jpeg")
    body = client.get("/health/readiness").json
    assert body["status"] == "ready" and body["model"] == "ready" and body["device"] == "cpu"


def test_first_request_mode_is_ready_before_loading(make_client) -> None:
    client = make_client(LOAD_MODE="first-request")
    response = client.get("/health/readiness")
    assert response.status_code == 200
    assert response.json["model"] == "not_loaded"
    assert client.post("/", data=(DATA / "cat.jpg").read_bytes(), content_type="image/jpeg").status_code == 200
    assert client.get("/health/readiness").json["model"] == "ready"


def test_broken_parameters_answer_503_and_stay_red(make_client, tmp_path) -> None:
    broken = tmp_path / "broken.params"
    broken.write_bytes(b"not parameters")
    client = make_client(MODEL_PARAMS=str(broken))
    response = client.post("/", data=(DATA / "cat.jpg").read_bytes(), content_type="image/jpeg")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json["error"]["code"] == "model_unavailable"
    assert str(broken) in response.json["error"]["message"]
    readiness = client.get("/health/readiness")
    assert readiness.status_code == 503 and str(broken) in readiness.json["error"]
    assert client.get("/health/liveness").status_code == 200


def cloudevent_headers(**extra: str) -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": "evt-1",
        "ce-source": "/test/camera",
        "Prefer": "reply",
        "ce-type": "dev.cifar10.classify.request",
        **extra,
    }


def test_cloudevent_binary_image_replies_in_binary_mode(client, jpeg: bytes) -> None:
    response = client.post("/", data=jpeg, headers=cloudevent_headers(), content_type="image/jpeg")
    assert response.status_code == 200
    assert response.headers["ce-type"] == "dev.cifar10.classify.response"
    assert response.headers["ce-source"] == "/knative/cifar10-function"
    assert response.headers["ce-requestid"] == "evt-1"
    assert response.headers["ce-id"] != "evt-1"
    assert response.mimetype == "application/json"
    assert_prediction(response.json)


def test_cloudevent_binary_json_data(client, jpeg: bytes) -> None:
    one = client.post(
        "/",
        data=json.dumps({"b64": b64(jpeg)}),
        headers=cloudevent_headers(**{"ce-id": "evt-json"}),
        content_type="application/json",
    )
    assert one.status_code == 200 and one.json["label"] in CLASSES
    many = client.post(
        "/",
        data=json.dumps({"instances": [{"b64": b64(jpeg)}] * 3}),
        headers=cloudevent_headers(**{"ce-id": "evt-many"}),
        content_type="application/json",
    )
    assert many.status_code == 200 and len(many.json["predictions"]) == 3


def test_cloudevent_structured_replies_structured(client, jpeg: bytes) -> None:
    event = {
        "specversion": "1.0",
        "id": "evt-2",
        "source": "/test",
        "type": "dev.cifar10.classify.request",
        "subject": "frame-7",
        "data_base64": b64(jpeg),
    }
    response = client.post("/", data=json.dumps(event), content_type="application/cloudevents+json")
    assert response.status_code == 200
    assert response.mimetype == "application/cloudevents+json"
    reply = response.json
    assert reply["type"] == "dev.cifar10.classify.response" and reply["requestid"] == "evt-2"
    assert reply["subject"] == "frame-7"
    assert_prediction(reply["data"])
    event = {**event, "datacontenttype": "application/json", "data": {"b64": b64(jpeg)}}
    del event["data_base64"]
    assert client.post("/", data=json.dumps(event), content_type="application/cloudevents+json").status_code == 200


def test_cloudevent_without_reply_answers_202(make_client, jpeg: bytes) -> None:
    client = make_client(CLOUDEVENT_REPLY="false")
    response = client.post("/", data=jpeg, headers=cloudevent_headers(), content_type="image/jpeg")
    assert response.status_code == 202 and response.data == b""


def test_cloudevent_of_the_reply_type_is_refused_as_a_loop(client, jpeg: bytes) -> None:
    headers = cloudevent_headers(**{"ce-type": "dev.cifar10.classify.response"})
    response = client.post("/", data=jpeg, headers=headers, content_type="image/jpeg")
    assert response.status_code == 400 and "loop" in response.json["error"]["message"]


BAD_REQUESTS = [
    # (method, path, kwargs, status, code)
    ("post", "/", {"data": b"", "content_type": "image/jpeg"}, 400, "empty_body"),
    ("post", "/", {"data": b"hello", "content_type": "image/png"}, 400, "invalid_image"),
    ("post", "/", {"data": (DATA / "cat.jpg").read_bytes()[:300], "content_type": "image/jpeg"}, 400, "invalid_image"),
    ("post", "/", {"data": b"hello", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("post", "/", {"data": b"hello"}, 415, "unsupported_media_type"),
    ("post", "/", {"data": b"{nope", "content_type": "application/json"}, 400, "invalid_json"),
    ("post", "/", {"json": {"instances": [{"b64": "***"}]}}, 400, "invalid_base64"),
    ("post", "/", {"json": {"instances": []}}, 400, "invalid_request"),
    ("post", "/", {"json": {"instances": [{"b64": "aGVsbG8="}] * 65}}, 413, "too_many_images"),
    ("post", "/", {"json": {"images": []}}, 400, "invalid_request"),
    ("post", "/", {"json": {"instances": [[[1, 2]]]}}, 400, "invalid_request"),
    (
        "post",
        "/?top_k=11",
        {"data": (DATA / "cat.jpg").read_bytes(), "content_type": "image/jpeg"},
        400,
        "invalid_request",
    ),
    ("post", "/predict", {"files": {"image": ("x.jpg", b"x")}}, 400, "invalid_request"),
    ("post", "/predict", {"data": b"raw", "content_type": "image/jpeg"}, 415, "unsupported_media_type"),
    (
        "post",
        "/predict",
        {"data": b"--b\r\ngarbage", "content_type": "multipart/form-data; boundary=b"},
        400,
        "invalid_request",
    ),
    (
        "post",
        "/",
        {"data": b"x", "content_type": "image/jpeg", "headers": {"ce-specversion": "1.0"}},
        400,
        "invalid_cloudevent",
    ),
    (
        "post",
        "/",
        {
            "data": b"x",
            "content_type": "image/jpeg",
            "headers": {"ce-specversion": "0.9", "ce-id": "1", "ce-source": "/s", "ce-type": "t"},
        },
        400,
        "invalid_cloudevent",
    ),
    ("post", "/", {"data": b"{}", "content_type": "application/cloudevents+json"}, 400, "invalid_cloudevent"),
    ("post", "/", {"data": b"[]", "content_type": "application/cloudevents-batch+json"}, 415, "unsupported_media_type"),
    (
        "post",
        "/",
        {
            "data": json.dumps({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data_base64": "!!!"}),
            "content_type": "application/cloudevents+json",
        },
        400,
        "invalid_base64",
    ),
    (
        "post",
        "/",
        {
            "data": b"hi",
            "content_type": "text/plain",
            "headers": {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"},
        },
        415,
        "unsupported_media_type",
    ),
    ("post", "/v2/models/cifar10/infer", {"data": b"{}"}, 400, "invalid_request"),
    (
        "post",
        "/v2/models/cifar10/infer",
        {"data": json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}]})},
        400,
        "invalid_request",
    ),
    (
        "post",
        "/v2/models/cifar10/infer",
        {
            "data": json.dumps(
                {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [300] * 3072}]}
            )
        },
        400,
        "invalid_request",
    ),
    (
        "post",
        "/v2/models/cifar10/infer",
        {"data": json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["aGVsbG8="]}]})},
        400,
        "invalid_request",
    ),
    (
        "post",
        "/v2/models/cifar10/infer",
        {
            "data": json.dumps(
                {
                    "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}],
                    "outputs": [{"name": "colour"}],
                }
            )
        },
        400,
        "invalid_request",
    ),
    ("get", "/nowhere", {}, 404, "not_found"),
    ("get", "/v2/models/imagenet", {}, 404, "not_found"),
    ("get", "/predict", {}, 405, "method_not_allowed"),
    ("delete", "/", {}, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(
    "method, path, kwargs, status, code", BAD_REQUESTS, ids=[f"{m} {p} {s} {c}" for m, p, _, s, c in BAD_REQUESTS]
)
def test_bad_input_gets_a_json_error(client, method, path, kwargs, status, code) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    error = response.json["error"]
    if path.startswith("/v2"):  # the Open Inference Protocol's shape: {"error": "<message>"}
        assert isinstance(error, str) and error
    else:
        assert error["code"] == code and error["message"]


def test_wrong_method_names_the_allowed_ones(client) -> None:
    assert client.get("/predict").headers["Allow"] == "POST"


def test_pixel_limit_and_body_limit_are_413(make_client) -> None:
    from PIL import Image

    from tests.conftest import encode

    client = make_client(MAX_IMAGE_PIXELS="10000", MAX_BODY_BYTES="20000")
    big = encode(Image.new("RGB", (200, 200), (1, 2, 3)), "PNG")
    assert client.post("/", data=big, content_type="image/png").json["error"]["code"] == "image_too_large"
    response = client.post("/", data=b"\xff" * 30000, content_type="image/jpeg")
    assert response.status_code == 413 and response.json["error"]["code"] == "body_too_large"


def test_service_info_lists_routes(client) -> None:
    routes = client.get("/").json["routes"]
    assert "/predict" in routes and "/v2/models/cifar10/infer" in routes


def metric(client, name: str) -> float:
    for line in client.get("/metrics").data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}")  # a renamed metric must not read as an unchanged 0


def test_a_redelivery_answered_from_the_cache_keeps_the_time_and_another_top_k_is_another_reply(
    client, jpeg: bytes
) -> None:
    headers = cloudevent_headers(**{"ce-id": "no-time"})  # no ce-time, no knativearrivaltime: stamped once
    first = client.post("/", data=jpeg, headers=headers, content_type="image/jpeg")
    time.sleep(0.01)
    again = client.post("/", data=jpeg, headers=headers, content_type="image/jpeg")
    assert again.headers["ce-id"] == first.headers["ce-id"] and again.headers["ce-time"] == first.headers["ce-time"]
    five = client.post("/?top_k=5", data=jpeg, headers=headers, content_type="image/jpeg")
    assert five.headers["ce-id"] != first.headers["ce-id"]
    assert len(five.json["top"]) == 5 and len(first.json["top"]) == 3


def test_redelivered_cloudevent_is_answered_from_the_cache(client, jpeg: bytes) -> None:
    headers = cloudevent_headers(**{"ce-id": "retry-me"})
    first = client.post("/", data=jpeg, headers=headers, content_type="image/jpeg")
    passes = metric(client, "cifar10_batch_size_count")
    duplicates = metric(client, "cifar10_cloudevent_duplicates_total")
    second = client.post("/", data=jpeg, headers=headers, content_type="image/jpeg")
    assert second.status_code == 200 and second.data == first.data
    assert second.headers["ce-id"] == first.headers["ce-id"]
    assert metric(client, "cifar10_batch_size_count") == passes  # no second forward pass
    assert metric(client, "cifar10_cloudevent_duplicates_total") == duplicates + 1
    other = client.post("/", data=jpeg, headers=cloudevent_headers(**{"ce-id": "new"}), content_type="image/jpeg")
    assert other.headers["ce-id"] != first.headers["ce-id"]


@pytest.mark.parametrize(
    "instance",
    [
        {"b64": "/etc/passwd"},
        {"b64": "http://127.0.0.1:9/cat.jpg"},
        {"url": "http://127.0.0.1:9/cat.jpg"},
        {"b64": "file:///etc/passwd"},
        {"path": "tests/data/cat.jpg"},
    ],
)
def test_no_field_becomes_a_path_or_url(client, instance: dict) -> None:
    """Request fields are only ever data: nothing is opened or fetched (no SSRF, no file reads)."""
    response = client.post("/v1/models/cifar10:predict", json={"instances": [instance]})
    assert response.status_code == 400
    assert response.json["error"]["code"] in ("invalid_base64", "invalid_image")


def test_request_during_a_slow_load_gets_503_with_retry_after(make_client, jpeg: bytes) -> None:
    client = make_client(LOAD_MODE="first-request", LOAD_TIMEOUT_SECONDS="0.001")
    response = client.post("/", data=jpeg, content_type="image/jpeg")
    assert response.status_code == 503
    assert (
        response.json["error"]["code"] == "model_unavailable" and "still loading" in response.json["error"]["message"]
    )
    assert int(response.headers["Retry-After"]) >= 1


def test_full_queue_is_429_with_retry_after(start_server, jpeg: bytes) -> None:
    """The one worker held (SIGSTOP) with a batch and two images waiting: QUEUE_MAX_IMAGES=2 is full."""
    server = start_server(QUEUE_MAX_IMAGES="2", MAX_IMAGES_PER_REQUEST="2", WORKERS="1")
    server.wait()
    (worker,) = worker_pids(server)
    two = {"instances": [{"b64": b64(jpeg)}] * 2}
    os.kill(worker, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(requests.post, server.url, json=two, timeout=60)
            time.sleep(1)  # handed to the stopped worker at once: the queue is empty again
            queued = pool.submit(requests.post, server.url, json=two, timeout=60)
            time.sleep(1)  # waiting for the worker: the queue is full
            response = requests.post(server.url, json={"instances": [{"b64": b64(jpeg)}]}, timeout=10)
            os.kill(worker, signal.SIGCONT)
            assert held.result().status_code == queued.result().status_code == 200  # nothing accepted is lost
    finally:
        os.kill(worker, signal.SIGCONT)
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "overloaded" and int(response.headers["Retry-After"]) >= 1


def test_model_status_is_503_until_the_model_can_answer(make_client, jpeg: bytes) -> None:
    client = make_client(LOAD_MODE="first-request")
    for path in ("/v1/models/cifar10", "/v2/models/cifar10/ready"):
        response = client.get(path)
        assert response.status_code == 503 and response.json == {"name": "cifar10", "ready": False}
    assert client.post("/", data=jpeg, content_type="image/jpeg").status_code == 200
    for path in ("/v1/models/cifar10", "/v2/models/cifar10/ready"):
        assert client.get(path).json == {"name": "cifar10", "ready": True}


def test_metrics_content_type_is_prometheus_text_once(client) -> None:
    assert client.get("/metrics").headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"


def test_head_answers_get_without_a_body(client) -> None:
    response = client.request("HEAD", "/health/liveness")
    assert response.status_code == 200 and response.data == b""


def test_background_mode_retries_a_missing_file_by_itself(make_client, tmp_path, params) -> None:
    late = tmp_path / "late.params"
    client = make_client(MODEL_PARAMS=str(late), LOAD_RETRY_SECONDS="1")
    client.server.wait("/health/readiness", 503)
    late.write_bytes(params.read_bytes())  # e.g. a volume mounted after the pod started
    body = client.server.wait("/health/readiness", 200, timeout=60).json()
    assert body["model"] == "ready" and "error" not in body


def test_a_wrong_method_on_a_known_route_keeps_its_route_label(client) -> None:
    client.get("/predict")
    text = client.get("/metrics").data.decode()
    assert 'cifar10_requests_total{method="GET",route="/predict",status="405"}' in text
