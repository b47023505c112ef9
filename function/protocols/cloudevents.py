"""CloudEvents 1.0 over HTTP, binary and structured mode, parsed with the CloudEvents SDK.

The request's data is an image (bytes with an `image/*` or octet-stream content type, or
`data_base64`) or JSON with `b64` or `instances`. The reply is a CloudEvent in the request's
mode, of the configured reply type (never the request's type: a Trigger filtering on the request
type must not receive its own reply), carrying the request's id and source as extensions.
"""

import json
import uuid
from collections.abc import Mapping

from cloudevents.conversion import to_binary, to_structured
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http

from function.config import Settings
from function.errors import InvalidCloudEvent, InvalidRequest, UnsupportedMediaType
from function.protocols import kserve_v1
from function.protocols.payload import IMAGE_TYPES, b64decode

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def is_cloudevent(headers: Mapping[str, str], mimetype: str) -> bool:
    """Binary mode has a `ce-specversion` header (case-insensitive `headers`), structured its media type."""
    return headers.get("ce-specversion") is not None or mimetype in (STRUCTURED, BATCH)


def _is_json(content_type: str | None) -> bool:
    base = (content_type or "").split(";")[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def parse(headers: dict[str, str], body: bytes, mimetype: str, reply_type: str) -> tuple[CloudEvent, bool]:
    """The event and whether it came in structured mode; an event of our reply type is refused."""
    if mimetype == BATCH:
        raise UnsupportedMediaType("batched CloudEvents are not supported; send one event per request")
    structured = mimetype == STRUCTURED
    if structured:
        unmarshal = _structured_data
    elif _is_json(headers.get("Content-Type")):
        unmarshal = json.loads
    else:
        unmarshal = bytes
    try:
        event = from_http(headers, body, data_unmarshaller=unmarshal)
    except GenericException as exc:
        raise InvalidCloudEvent(f"not a valid CloudEvent: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise InvalidCloudEvent(f"not a valid CloudEvent: {exc}") from exc
    for name in ("id", "source", "type"):
        if not event.get(name):
            raise InvalidCloudEvent(f"the CloudEvent attribute {name!r} is empty")
    if event["type"] == reply_type:
        raise InvalidCloudEvent(
            f"the event's type {reply_type!r} is this function's reply type: "
            "replying would loop; filter the Trigger on the request type"
        )
    return event, structured


def _structured_data(value: str | bytes) -> object:
    return json.loads(value) if isinstance(value, str) else value


def image_payload(event: CloudEvent) -> tuple[bytes | None, dict | None]:
    """Either one encoded image (bytes data or `b64`) or a KServe v1 document (`instances`)."""
    data = event.get_data()
    if data is None or data == b"":
        raise InvalidRequest("the CloudEvent has no data")
    if isinstance(data, bytes | bytearray):
        content_type = event.get("datacontenttype") or "application/octet-stream"
        if not content_type.lower().startswith(IMAGE_TYPES):
            raise UnsupportedMediaType(
                f"CloudEvent data of type {content_type} is not an image; send image/* "
                'or JSON with "b64" or "instances"'
            )
        return bytes(data), None
    if isinstance(data, dict) and "b64" in data:
        return b64decode(data["b64"], "data.b64"), None
    if kserve_v1.is_request(data):
        return None, data
    raise InvalidRequest('CloudEvent JSON data must hold "b64" or "instances"')


def reply(request: CloudEvent, data: dict, structured: bool, settings: Settings) -> tuple[dict[str, str], bytes]:
    """Headers and body of the reply event, in the request's mode."""
    attributes = {
        "type": settings.reply_type,
        "source": settings.reply_source,
        "id": str(uuid.uuid4()),
        "datacontenttype": "application/json",
        "requestid": request["id"],
        "requestsource": request["source"],
    }
    if request.get("subject"):
        attributes["subject"] = request["subject"]
    event = CloudEvent(attributes, data)
    headers, body = to_structured(event) if structured else to_binary(event)
    return headers, body if isinstance(body, bytes) else body.encode()
