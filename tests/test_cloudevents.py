"""CloudEvents parsing and replies, called directly: no server, no model."""

import base64
import json
from urllib.parse import quote

import pytest

from function.config import Settings
from function.errors import ClientError, InvalidCloudEvent
from function.http import Request
from function.protocols import cloudevents

SETTINGS = Settings.from_env({"K_SERVICE": "cifar"})
BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "42",
    "ce-source": "/cameras/door",
    "ce-type": "dev.cifar10.classify.request",
    "content-type": "image/jpeg",
}


def binary(body: bytes = b"\xff\xd8", **headers: str | None) -> Request:
    merged = {k: v for k, v in {**BINARY, **headers}.items() if v is not None}
    return Request("POST", "/", b"", merged, body)


def structured(**attributes: object) -> Request:
    event = {"specversion": "1.0", "id": "43", "source": "/s", "type": "t", "data_base64": "aGk=", **attributes}
    event = {k: v for k, v in event.items() if v is not None}
    return Request("POST", "/", b"", {"content-type": cloudevents.STRUCTURED}, json.dumps(event).encode())


@pytest.mark.parametrize("missing", ["ce-id", "ce-source", "ce-type", "ce-specversion"])
def test_a_missing_binary_attribute_is_named(missing: str) -> None:
    with pytest.raises(InvalidCloudEvent, match=missing.removeprefix("ce-")):
        cloudevents.parse(binary(**{missing: None}), SETTINGS.reply_type)


def test_a_missing_source_with_a_json_body_is_named_too() -> None:
    request = binary(b'{"b64": "aGk="}', **{"ce-source": None, "content-type": "application/json"})
    with pytest.raises(InvalidCloudEvent, match=r"'source'.*ce-source"):
        cloudevents.parse(request, SETTINGS.reply_type)


@pytest.mark.parametrize(
    "attributes, name",
    [
        ({"id": ["a"]}, "id"),
        ({"source": {"a": 1}}, "source"),
        ({"type": 7}, "type"),
        ({"datacontenttype": 5}, "datacontenttype"),
        ({"specversion": "0.3"}, "specversion"),
        ({"id": ""}, "id"),
        ({"subject": 1}, "subject"),
    ],
)
def test_a_wrong_structured_attribute_is_named(attributes: dict, name: str) -> None:
    with pytest.raises(InvalidCloudEvent, match=name):
        cloudevents.parse(structured(**attributes), SETTINGS.reply_type)


def test_an_event_of_the_reply_type_is_refused_as_a_loop() -> None:
    with pytest.raises(InvalidCloudEvent, match="loop"):
        cloudevents.parse(binary(**{"ce-type": SETTINGS.reply_type}), SETTINGS.reply_type)


def test_payloads_of_each_form() -> None:
    image = cloudevents.parse(binary(b"\xff\xd8jpeg"), SETTINGS.reply_type)
    assert cloudevents.payloads(image, SETTINGS) == ([b"\xff\xd8jpeg"], False)
    event = cloudevents.parse(structured(data_base64=base64.b64encode(b"img").decode()), SETTINGS.reply_type)
    assert cloudevents.payloads(event, SETTINGS) == ([b"img"], False)
    many = structured(data_base64=None, datacontenttype="application/json", data={"instances": [{"b64": "aGk="}] * 2})
    assert cloudevents.payloads(cloudevents.parse(many, SETTINGS.reply_type), SETTINGS) == ([b"hi", b"hi"], True)
    text = binary(b"hello", **{"content-type": "text/plain"})
    with pytest.raises(ClientError):
        cloudevents.payloads(cloudevents.parse(text, SETTINGS.reply_type), SETTINGS)


def test_the_reply_id_depends_on_the_request_not_on_who_answers() -> None:
    first = cloudevents.parse(binary(), SETTINGS.reply_type)
    again = cloudevents.parse(binary(**{"ce-knativearrivaltime": "2026-11-27T00:00:00Z"}), SETTINGS.reply_type)
    other = cloudevents.parse(binary(**{"ce-id": "43"}), SETTINGS.reply_type)
    assert cloudevents.reply_id(SETTINGS, first) == cloudevents.reply_id(SETTINGS, again)
    assert cloudevents.reply_id(SETTINGS, first) != cloudevents.reply_id(SETTINGS, other)
    another_function = Settings.from_env({"K_SERVICE": "other"})
    assert cloudevents.reply_id(another_function, first) != cloudevents.reply_id(SETTINGS, first)
    # a Trigger asking for another top_k gets another reply: another id; the default is no other reply
    assert cloudevents.reply_id(SETTINGS, first, SETTINGS.top_k) == cloudevents.reply_id(SETTINGS, first)
    assert cloudevents.reply_id(SETTINGS, first, 5) != cloudevents.reply_id(SETTINGS, first)


def test_a_reply_to_an_event_without_a_time_is_stamped_once_in_rfc_3339() -> None:
    event = cloudevents.parse(binary(), SETTINGS.reply_type)
    assert event.time is None
    stamped = cloudevents.reply_time(event)
    assert cloudevents._is_timestamp(stamped) and stamped.endswith("Z")
    headers, _ = cloudevents.reply(event, {"label": "cat"}, SETTINGS, stamped)
    assert headers["ce-time"] == quote(stamped, safe=cloudevents.HEADER_SAFE)  # not the SDK's own "now"


def test_a_reply_whose_attributes_binary_mode_would_escape_is_structured() -> None:
    """Knative's Go SDK reads ce- headers as they are: escapes would stay in the attributes."""
    event = cloudevents.parse(binary(**{"ce-subject": "cam%C3%A9ra%20%221%22%25"}), SETTINGS.reply_type)
    assert event.subject == 'caméra "1"%'  # percent-decoded on the way in, as the HTTP binding says
    headers, body = cloudevents.reply(event, {"label": "cat"}, SETTINGS, "2026-11-28T00:00:00Z")
    assert headers["content-type"] == cloudevents.STRUCTURED and not any(k.startswith("ce-") for k in headers)
    document = json.loads(body)
    assert document["subject"] == 'caméra "1"%' and document["data"] == {"label": "cat"}
    assert document["type"] == "dev.cifar10.classify.response" and document["source"] == "/knative/cifar"
    plain = cloudevents.parse(binary(**{"ce-subject": "camera-1"}), SETTINGS.reply_type)
    headers, body = cloudevents.reply(plain, {"label": "cat"}, SETTINGS, "2026-11-28T00:00:00Z")
    assert headers["ce-subject"] == "camera-1" and json.loads(body) == {"label": "cat"}  # binary as it came


def test_binary_attributes_are_percent_decoded_and_utf8_so_both_modes_name_one_event() -> None:
    binary_event = cloudevents.parse(
        binary(**{"ce-id": "X-a%20b", "ce-source": "/caf\u00c3\u00a9"}), SETTINGS.reply_type
    )
    assert (binary_event.id, binary_event.source) == ("X-a b", "/caf\u00e9")  # raw UTF-8 bytes read as Latin-1, mended
    structured_event = cloudevents.parse(structured(id="X-a b", source="/caf\u00e9"), SETTINGS.reply_type)
    assert cloudevents.reply_id(SETTINGS, binary_event) == cloudevents.reply_id(SETTINGS, structured_event)


def test_a_lone_surrogate_is_not_an_attribute() -> None:
    with pytest.raises(InvalidCloudEvent, match=r"'id' holds U\+DFFF"):
        cloudevents.parse(structured(id="\udfff"), SETTINGS.reply_type)


def test_json_data_holding_a_lone_surrogate_is_a_400_not_a_500() -> None:
    """`"data": "\\ud800"` is valid JSON text; the JSON it holds is not UTF-8, so it is invalid JSON."""
    event = structured(data_base64=None, data="\ud800", datacontenttype="application/json")
    with pytest.raises(ClientError, match="not valid JSON") as refused:
        cloudevents.parse(event, SETTINGS.reply_type)
    assert refused.value.status == 400


@pytest.mark.parametrize("character", ["\x00", "\n", "\x1b", "\x7f", "\x85", "\ufffe", "\U0010ffff"])
def test_control_characters_and_noncharacters_are_not_attributes_in_either_mode(character: str) -> None:
    # source "/cam<NUL>x" with id "1" and source "/cam" with id "x<NUL>1" once shared one reply id (NUL-joined)
    with pytest.raises(InvalidCloudEvent, match=r"'source' holds U\+"):
        cloudevents.parse(structured(source=f"/cam{character}x"), SETTINGS.reply_type)
    encoded = "".join(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogatepass"))
    with pytest.raises(InvalidCloudEvent, match=r"'id' holds U\+"):
        cloudevents.parse(binary(**{"ce-id": f"x{encoded}1"}), SETTINGS.reply_type)


def test_a_raw_binary_attribute_that_is_not_utf8_is_refused_and_an_undecodable_escape_kept() -> None:
    with pytest.raises(InvalidCloudEvent, match="ce-id header is not UTF-8"):  # a raw byte 0x85 (Latin-1)
        cloudevents.parse(binary(**{"ce-id": "x\x851"}), SETTINGS.reply_type)
    # Knative's Go SDK sends an id such as an S3 key as it is: %80 decodes to no UTF-8, so it stays
    assert cloudevents.parse(binary(**{"ce-id": "x%801"}), SETTINGS.reply_type).id == "x%801"


@pytest.mark.parametrize(
    "value",
    [
        "not a time",
        "yesterday",
        "2026-02-30T00:00:00Z",
        "2026-11-27 21:00:00Z",
        "2026-11-27",
        "\u0662\u0660\u0662\u0666-11-27T21:00:00Z",  # Arabic-Indic digits
        "2026-11-27T10:15:60Z",  # a leap second is :59:60
    ],
)
def test_a_time_that_is_not_rfc3339_is_refused_in_either_mode(value: str) -> None:
    with pytest.raises(InvalidCloudEvent, match=r"'time' must be an RFC 3339 timestamp"):
        cloudevents.parse(structured(time=value), SETTINGS.reply_type)
    with pytest.raises(InvalidCloudEvent, match=r"'time' must be an RFC 3339 timestamp"):
        cloudevents.parse(binary(**{"ce-time": quote(value)}), SETTINGS.reply_type)


@pytest.mark.parametrize(
    "value", ["2026-11-27T21:00:00Z", "2026-11-27t21:00:00.123456789-05:30", "2016-12-31T23:59:60Z"]
)
def test_an_rfc3339_time_is_copied_to_the_reply(value: str) -> None:
    event = cloudevents.parse(structured(time=value), SETTINGS.reply_type)
    _, body = cloudevents.reply(event, {"label": "cat"}, SETTINGS, cloudevents.reply_time(event))
    assert json.loads(body)["time"] == value


def test_a_malformed_broker_arrival_time_is_not_copied_to_the_reply() -> None:
    good = cloudevents.parse(binary(**{"ce-knativearrivaltime": "2026-11-27T21:00:00.5Z"}), SETTINGS.reply_type)
    bad = cloudevents.parse(binary(**{"ce-knativearrivaltime": "soon"}), SETTINGS.reply_type)
    assert (good.time, bad.time) == ("2026-11-27T21:00:00.5Z", None)


@pytest.mark.parametrize(
    ("arrival", "time"), [("2026-11-27T21:00:00.5Z", "2026-11-27T21:00:00.5Z"), ("soon", None), (5, None), ([], None)]
)
def test_a_structured_events_arrival_time_stands_in_for_its_time_as_in_binary_mode(arrival: object, time) -> None:
    assert cloudevents.parse(structured(knativearrivaltime=arrival), SETTINGS.reply_type).time == time
    given = structured(knativearrivaltime=arrival, time="2026-01-01T00:00:00Z")
    assert cloudevents.parse(given, SETTINGS.reply_type).time == "2026-01-01T00:00:00Z"  # its own time wins
