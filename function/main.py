"""functions-framework target `handle`: routes every request by path, method and content type.

    functions-framework --source function/main.py --target handle

All protocols end in `Classifier.classify`; nothing here touches MXNet. State is made when the
framework loads this file; the model starts loading when a worker starts (after gunicorn's fork)
or, in-process, on the first request.
"""

import logging
import os
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import flask
import functions_framework

from function.body_limit import BodyLimit, read_body
from function.classify import Classifier, Prediction
from function.config import Settings
from function.dedup import CachedReply, ReplyCache
from function.errors import MethodNotAllowed, NotFound, RequestError, UnsupportedMediaType
from function.metrics import CONTENT_TYPE, Metrics, clear_multiprocess_dir, multiprocess_dir
from function.protocols import cloudevents, kserve_v1, oip_v2, tutorial
from function.protocols.payload import IMAGE_TYPES, decode_all, parse_json, top_k
from function.responses import error_response, internal_error, json_response

logging.basicConfig(
    stream=sys.stdout,
    level=os.environ.get("LOG_LEVEL", "INFO"),
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)
log = logging.getLogger("function")

SETTINGS = Settings.from_env()
if (METRICS_DIR := multiprocess_dir()) is not None:
    clear_multiprocess_dir(METRICS_DIR)  # in gunicorn's master, before any worker writes there
METRICS = Metrics()
REPLIES = ReplyCache(SETTINGS.dedup_cache_size, SETTINGS.dedup_ttl_seconds)
CLASSIFIER = Classifier(SETTINGS, observe_batch=METRICS.observe_batch, observe_model=METRICS.observe_model)
os.register_at_fork(after_in_child=METRICS.worker_started, after_in_parent=METRICS.forget_process)
os.register_at_fork(after_in_child=CLASSIFIER.on_worker_start)
if flask.has_app_context():  # functions-framework loads this file inside its app's context
    flask.current_app.wsgi_app = BodyLimit(flask.current_app.wsgi_app, SETTINGS.max_body_bytes)
try:
    VERSION = version("cifar10-function")
except PackageNotFoundError:
    VERSION = "0+unknown"

Handler = Callable[[flask.Request], flask.Response]


def classify_one(image: bytes) -> Prediction:
    return CLASSIFIER.classify(decode_all([image], SETTINGS))[0]


def predict_tutorial(request: flask.Request) -> flask.Response:
    """`POST /predict`: multipart field `img`; text/plain answers the tutorial's sentence."""
    k = top_k(request, SETTINGS)
    prediction = classify_one(tutorial.image_bytes(request, SETTINGS))
    if tutorial.wants_text(request):
        return flask.Response(tutorial.sentence(prediction), mimetype="text/plain")
    return json_response(prediction.as_json(k, CLASSIFIER.device))


def predict_root(request: flask.Request) -> flask.Response:
    """`POST /`: a CloudEvent, a raw image, KServe v1 JSON, or the tutorial's multipart form."""
    mimetype = request.mimetype
    if cloudevents.is_cloudevent(request.headers, mimetype):
        return predict_cloudevent(request)
    if mimetype == "multipart/form-data":
        return predict_tutorial(request)
    if mimetype == "application/json":
        return predict_v1(request)
    if mimetype.startswith(IMAGE_TYPES):
        k = top_k(request, SETTINGS)
        return json_response(classify_one(read_body(request, SETTINGS.max_body_bytes)).as_json(k, CLASSIFIER.device))
    raise UnsupportedMediaType(
        f"POST / takes image/*, application/octet-stream, application/json, "
        f"multipart/form-data or a CloudEvent, not {mimetype or 'no content type'}"
    )


def predict_v1(request: flask.Request) -> flask.Response:
    """KServe v1 `{"instances": [...]}` at `/` and `/v1/models/<name>:predict`."""
    k = top_k(request, SETTINGS)
    document = parse_json(read_body(request, SETTINGS.max_body_bytes))
    predictions = CLASSIFIER.classify(kserve_v1.images_from(document, SETTINGS))
    return json_response(kserve_v1.render(predictions, k, CLASSIFIER.device))


def predict_cloudevent(request: flask.Request) -> flask.Response:
    """A CloudEvent in either mode; the reply event comes back in the same mode (or 202)."""
    k = top_k(request, SETTINGS)
    body = read_body(request, SETTINGS.max_body_bytes)
    event, structured = cloudevents.parse(dict(request.headers), body, request.mimetype, SETTINGS.reply_type)
    key = (event["source"], event["id"])
    cached = REPLIES.get(key)
    if cached is not None:  # a redelivery: the same reply, no second forward pass
        METRICS.duplicates.inc()
        return flask.Response(cached.body, status=cached.status, headers=cached.headers)
    image, document = cloudevents.image_payload(event)
    if document is not None:
        data = kserve_v1.render(CLASSIFIER.classify(kserve_v1.images_from(document, SETTINGS)), k, CLASSIFIER.device)
    else:
        data = classify_one(image).as_json(k, CLASSIFIER.device)
    if SETTINGS.cloudevent_reply:
        headers, payload = cloudevents.reply(event, data, structured, SETTINGS)
        reply = CachedReply(200, headers, payload)
    else:
        reply = CachedReply(202, {}, b"")
    REPLIES.put(key, reply)
    return flask.Response(reply.body, status=reply.status, headers=reply.headers)


def infer_v2(request: flask.Request) -> flask.Response:
    """Open Inference Protocol v2 infer; JSON whatever the Content-Type (tritonclient sends none)."""
    body = read_body(request, SETTINGS.max_body_bytes)
    document, images = oip_v2.parse(body, request.headers.get(oip_v2.BINARY_HEADER), SETTINGS)
    return json_response(oip_v2.render(document, CLASSIFIER.classify(images), SETTINGS.model_name))


def liveness(request: flask.Request) -> flask.Response:
    return json_response({"status": "alive"})


def readiness(request: flask.Request) -> flask.Response:
    """`background`: 503 until loaded and warmed up. `first-request`: 200 unless a load failed."""
    model = CLASSIFIER.model
    body = {"status": "ready", "model": model.state, "device": model.device, "load_mode": SETTINGS.load_mode}
    if model.error:
        body["error"] = model.error
    ready = model.ready or (SETTINGS.load_mode == "first-request" and not model.error)
    if not ready:
        body["status"] = "not_ready"
    return json_response(body, 200 if ready else 503)


def model_ready_v2(request: flask.Request) -> flask.Response:
    ready = CLASSIFIER.model.ready
    return json_response({"name": SETTINGS.model_name, "ready": ready}, 200 if ready else 503)


def model_status_v1(request: flask.Request) -> flask.Response:
    return json_response({"name": SETTINGS.model_name, "ready": CLASSIFIER.model.ready})


def server_v2(request: flask.Request) -> flask.Response:
    return json_response(oip_v2.server_metadata(VERSION))


def model_v2(request: flask.Request) -> flask.Response:
    return json_response(oip_v2.model_metadata(SETTINGS.model_name, CLASSIFIER.model.ready))


def metrics(request: flask.Request) -> flask.Response:
    return flask.Response(METRICS.exposition(), mimetype=CONTENT_TYPE)


def service_info(request: flask.Request) -> flask.Response:
    return json_response(
        {"name": "cifar10-function", "version": VERSION, "model": SETTINGS.model_name, "routes": sorted(ROUTES)}
    )


_V1 = f"/v1/models/{SETTINGS.model_name}"
_V2 = f"/v2/models/{SETTINGS.model_name}"
ROUTES: dict[str, dict[str, Handler]] = {
    "/": {"GET": service_info, "POST": predict_root},
    "/predict": {"POST": predict_tutorial},
    "/health/liveness": {"GET": liveness},
    "/health/readiness": {"GET": readiness},
    "/metrics": {"GET": metrics},
    _V1: {"GET": model_status_v1},
    f"{_V1}:predict": {"POST": predict_v1},
    "/v2": {"GET": server_v2},
    "/v2/health/live": {"GET": liveness},
    "/v2/health/ready": {"GET": readiness},
    _V2: {"GET": model_v2},
    f"{_V2}/ready": {"GET": model_ready_v2},
    f"{_V2}/infer": {"POST": infer_v2},
}


def route(request: flask.Request) -> tuple[str, Handler]:
    """The route's template (the metrics label) and its handler."""
    path = request.path.rstrip("/") or "/"
    methods = ROUTES.get(path)
    if methods is None:
        if path.startswith(("/v1/models/", "/v2/models/")):
            raise NotFound(f"no model at {path}; this function serves {SETTINGS.model_name!r}")
        raise NotFound(f"no route {path}; see GET / for the routes")
    method = "GET" if request.method == "HEAD" else request.method
    if method not in methods:
        raise MethodNotAllowed(f"{request.method} is not allowed on {path}", sorted(methods))
    return path, methods[method]


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    """The single entry point for HTTP requests and CloudEvents."""
    CLASSIFIER.on_worker_start()
    started, path = time.perf_counter(), "unmatched"
    try:
        path, handler = route(request)
        if request.method == "POST":
            with CLASSIFIER.request():
                response = handler(request)
        else:
            response = handler(request)
    except RequestError as error:
        response = error_response(error)
    except Exception as exc:  # the last line of defence answers JSON, never a stack trace
        response = internal_error(exc)
    METRICS.observe_request(path, request.method, response.status_code, time.perf_counter() - started)
    return response
