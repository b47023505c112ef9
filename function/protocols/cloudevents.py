"""CloudEvents 1.0 over HTTP, binary and structured mode, with exactly one reply per event.

The request's data is an image (bytes with an `image/*` or octet-stream content type, or
`data_base64`) or JSON with `b64` or `instances`. Attributes are checked one by one, so an error
names the attribute that is missing or wrong. The reply is a CloudEvent in the request's mode,
rendered by the CloudEvents SDK, of the configured reply type (never the request's type: a Trigger
filtering on the request type must not receive its own reply). Its id is a name-based UUID of the
reply source and the request's (source, id): whichever worker or pod answers a redelivery, the
reply is the same event, and a consumer deduplicating by id sees it once.
"""

import datetime
import json
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from function.cifar10 import CLASSES
from function.config import Settings
from function.dedup import CachedReply
from function.errors import InvalidCloudEvent, InvalidRequest, UnsupportedMediaType
from function.http import Request, Response
from function.inference_worker import Payload
from function.protocols import kserve_v1
from function.protocols.common import IMAGE_TYPES, b64decode, parse_json, parsed, top_k

if TYPE_CHECKING:
    from function.lifecycle import Function

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("id", "source", "type")
# The HTTP binding percent-encodes header values outside printable ASCII, and '"' and '%'.
HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"%')
REPLY_NAMESPACE = uuid.UUID("5b7f3c5e-6a0e-4d7c-9b8a-c1f4a0e2d917")  # this function's reply ids
# What the spec forbids in a String attribute: C0 and C1 controls, surrogates, noncharacters.
NOT_TEXT = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "]"
)
RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:[Zz]|[+-](\d\d):(\d\d))", re.ASCII)


@dataclass(frozen=True)
class RequestEvent:
    id: str
    source: str
    type: str
    structured: bool
    subject: str | None
    time: str | None
    content_type: str  # of the data
    data: object  # bytes (an image) or parsed JSON


def is_cloudevent(request: Request) -> bool:
    """Binary mode has a `ce-specversion` header, structured mode its media type."""
    return request.header("ce-specversion") is not None or request.mimetype in (STRUCTURED, BATCH)


def parse(request: Request, reply_type: str) -> RequestEvent:
    """The event, its attributes checked; an event of our own reply type is refused (a loop)."""
    if request.mimetype == BATCH:
        raise UnsupportedMediaType("batched CloudEvents are not supported; send one event per request")
    event = _structured(request) if request.mimetype == STRUCTURED else _binary(request)
    if event.type == reply_type:
        raise InvalidCloudEvent(
            f"the event's type {reply_type!r} is this function's reply type: "
            "replying would loop; filter the Trigger on the request type"
        )
    return event


def _binary(request: Request) -> RequestEvent:
    def attribute(name: str, required: bool = True) -> str | None:
        value = request.header(f"ce-{name}")
        if required and not value:
            raise InvalidCloudEvent(f"the CloudEvent has no {name!r} attribute (binary mode: the ce-{name} header)")
        return None if value is None else _checked(name, _header_value(name, value))

    _check_specversion(attribute("specversion"))
    body = request.require_body()
    data = parse_json(body) if _is_json(request.content_type) else body
    arrival = request.header("ce-knativearrivaltime")  # the Broker's; a reply carries no malformed time
    return RequestEvent(
        *(attribute(name) for name in REQUIRED),
        structured=False,
        subject=attribute("subject", required=False),
        time=attribute("time", required=False) or (arrival if arrival and _is_timestamp(arrival) else None),
        content_type=request.content_type or "application/octet-stream",
        data=data,
    )


def _structured(request: Request) -> RequestEvent:
    document = parse_json(request.require_body())
    if not isinstance(document, dict):
        raise InvalidCloudEvent("a structured CloudEvent must be a JSON object")

    def attribute(name: str, required: bool = True) -> str | None:
        value = document.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value):
            got = "missing" if value is None else "empty" if isinstance(value, str) else f"a {type(value).__name__}"
            raise InvalidCloudEvent(f"the CloudEvent attribute {name!r} must be a non-empty string; it is {got}")
        return _checked(name, value)

    _check_specversion(attribute("specversion"))
    content_type = attribute("datacontenttype", required=False) or (
        "application/octet-stream" if "data_base64" in document else "application/json"
    )
    if "data_base64" in document:
        data: object = b64decode(document["data_base64"], "data_base64")
        if _is_json(content_type):
            data = parse_json(data)
    elif "data" in document:
        data = document["data"]
        if isinstance(data, str) and _is_json(content_type):
            data = parse_json(data.encode("utf-8", "surrogatepass"))  # a lone surrogate: invalid JSON (400)
    else:
        raise InvalidRequest("the CloudEvent has no data")
    arrival = document.get("knativearrivaltime")  # as in binary mode: the Broker's, if well formed
    return RequestEvent(
        *(attribute(name) for name in REQUIRED),
        structured=True,
        subject=attribute("subject", required=False),
        time=attribute("time", required=False)
        or (arrival if isinstance(arrival, str) and _is_timestamp(arrival) else None),
        content_type=content_type,
        data=data,
    )


def _header_value(name: str, value: str) -> str:
    """A binary-mode attribute as the HTTP binding says: UTF-8, percent-decoded (so `ce-id: a%20b` is
    the id of the structured event `"id": "a b"`). The header arrives as Latin-1 characters. Knative's
    Go SDK neither encodes nor decodes: a `%E9` that decodes to no UTF-8 is taken as it is."""
    try:
        value = value.encode("latin-1").decode("utf-8")
    except UnicodeError as exc:
        raise InvalidCloudEvent(f"the ce-{name} header is not UTF-8 text") from exc
    try:
        return unquote(value, errors="strict") if "%" in value else value
    except UnicodeError:
        return value


def _checked(name: str, value: str) -> str:
    """An attribute as the spec allows it: text without control characters (a NUL or a line break in
    an id or source would also reach the reply's attributes and logs), and `time` in RFC 3339."""
    bad = NOT_TEXT.search(value)
    if bad:
        point = ord(bad.group())
        kind = (
            "a surrogate" if 0xD800 <= point <= 0xDFFF else "a control character" if point < 0xA0 else "a noncharacter"
        )
        raise InvalidCloudEvent(
            f"the CloudEvent attribute {name!r} holds U+{point:04X}, {kind}, which CloudEvents forbids in text"
        )
    if name == "time" and not _is_timestamp(value):
        raise InvalidCloudEvent(
            f"the CloudEvent attribute 'time' must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z, "
            f"not {value[:40]!r}"
        )
    return value


def _is_timestamp(value: str) -> bool:
    match = RFC3339.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset = match.group(7)
    try:  # a leap second, :59:60 (the hour depends on the offset), is valid RFC 3339
        datetime.datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    leap_ok = second < 60 or (second == 60 and minute == 59)
    return leap_ok and (offset is None or (int(offset) < 24 and int(match.group(8)) < 60))


def _check_specversion(value: str | None) -> None:
    if value != "1.0":
        raise InvalidCloudEvent(f"CloudEvents specversion {str(value)[:20]!r} is not supported; send 1.0")


def _is_json(content_type: str) -> bool:
    base = content_type.split(";")[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def payloads(event: RequestEvent, settings: Settings) -> tuple[list[Payload], bool]:
    """The images, and whether the answer is a v1 document (`instances`) rather than one prediction."""
    data = event.data
    if isinstance(data, bytes):
        if not data:
            raise InvalidRequest("the CloudEvent has no data")
        if not event.content_type.lower().startswith(IMAGE_TYPES):
            raise UnsupportedMediaType(
                f"CloudEvent data of type {event.content_type[:80]} is not an image; send image/* "
                'or JSON with "b64" or "instances"'
            )
        return [data], False
    if isinstance(data, dict) and "b64" in data:
        return [b64decode(data["b64"], "data.b64")], False
    if kserve_v1.is_request(data):
        return kserve_v1.parse(data, settings), True
    raise InvalidRequest('CloudEvent JSON data must hold "b64" or "instances"')


def reply_id(settings: Settings, event: RequestEvent, k: int | None = None) -> str:
    """NUL separates the parts: attributes cannot hold it (see `_checked`), nor can REPLY_SOURCE. A
    `?top_k` other than TOP_K (a second Trigger's, say) is another reply, so it has another id."""
    parts = (settings.reply_source, event.source, event.id)
    if k is not None and k != min(settings.top_k, len(CLASSES)):
        parts += (f"top_k={k}",)
    return str(uuid.uuid5(REPLY_NAMESPACE, "\0".join(parts)))


def reply_time(event: RequestEvent) -> str:
    """The request's time (or the Broker's arrival time), else now: chosen once per reply and cached
    with it, so a redelivery answered from the cache carries the same time under the same id."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return event.time or now


def reply(
    event: RequestEvent, data: dict, settings: Settings, time: str, k: int | None = None
) -> tuple[dict[str, str], bytes]:
    """The reply event's headers and body in the request's mode; its id derives from (source, id)."""
    attributes = {
        "type": settings.reply_type,
        "source": settings.reply_source,
        "id": reply_id(settings, event, k),
        "time": time,
        "datacontenttype": "application/json",
        "requestid": event.id,
        "requestsource": event.source,
    }
    if event.subject:
        attributes["subject"] = event.subject
    rendered = CloudEvent(attributes, data)
    # An attribute that binary mode would have to percent-encode goes in a structured reply instead:
    # Knative's Go SDK reads header values as they are, so it would keep the escapes.
    plain = all(quote(value, safe=HEADER_SAFE) == value for value in attributes.values())
    if event.structured or not plain:
        headers, body = to_structured(rendered)
    else:
        headers, body = to_binary(rendered)
    return dict(headers), body if isinstance(body, bytes) else body.encode()


def _parse_all(request: Request, settings: Settings) -> tuple[RequestEvent, tuple[list[Payload], bool]]:
    event = parse(request, settings.reply_type)
    return event, payloads(event, settings)


async def handle(request: Request, fn: "Function") -> Response:
    """A CloudEvent in either mode: the reply event (or 202), once per (source, id)."""
    k = top_k(request, fn.settings)
    event, (images, many) = await parsed(request.body, lambda: _parse_all(request, fn.settings))

    async def compute() -> CachedReply:
        predictions = await fn.classify(images)
        if not fn.settings.cloudevent_reply:
            return CachedReply(202, b"")
        data = kserve_v1.render(predictions, k, fn.device) if many else predictions[0].as_json(k, fn.device)
        return CachedReply(200, json.dumps(data).encode(), reply_time(event))

    outcome, duplicate = await fn.replies.reply((event.source, event.id, str(k)), compute)
    if duplicate:
        fn.metrics.duplicates.inc()
    if outcome.status != 200:
        return Response(outcome.status)
    headers, body = reply(event, json.loads(outcome.data), fn.settings, outcome.time, k)
    return Response(200, body, headers)
