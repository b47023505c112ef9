"""The Trigger's loop guard: the chart refuses every filter that the function's own reply events
could pass, since a reply that passes the Trigger comes back as a request, forever.

A reply carries type REPLY_TYPE (dev.cifar10.classify.response), source REPLY_SOURCE
(/knative/cifar-cifar10-function here), specversion 1.0, datacontenttype application/json, and, varying
with the request, id, time, subject (copied from the request) and the extensions requestid and
requestsource; the Broker adds knativearrivaltime and trace context. Filters follow eventing's
pkg/eventfilter/attributes/filter.go (filter.attributes, LookupAttribute) and
pkg/eventfilter/subscriptionsapi (filters: exact, prefix, suffix, all, any, not), and
pkg/broker/filter/filter_handler.go filterEvent (filters win over filter.attributes).
"""

import json

import pytest
import yaml

from tests.chart_render import CHART, by_kind, helm, render, template, values_file

REQUEST = "dev.cifar10.classify.request"
REPLY = "dev.cifar10.classify.response"
SOURCE = "/knative/cifar-cifar10-function"


def attributes(**attrs: str) -> dict:
    """Exactly these attributes: a user's map merges with the default {type: request} unless that is nulled."""
    return {"trigger": {"enabled": True, "filter": {"attributes": {"type": None, **attrs}}}}


def filters(*items: dict) -> dict:
    return {"trigger": {"enabled": True, "filter": {"attributes": None}, "filters": list(items)}}


LOOPS = {
    "attributes: the reply type": attributes(type=REPLY),
    "attributes: subject alone (replies copy it)": attributes(subject="front-door"),
    "attributes: the reply source": attributes(source=SOURCE),
    "attributes: requestsource alone (replies carry the request's source)": attributes(requestsource="/cameras/x"),
    "attributes: specversion alone": attributes(specversion="1.0"),
    "attributes: datacontenttype alone": attributes(datacontenttype="application/json"),
    "attributes: the reply's type and source": attributes(type=REPLY, source=SOURCE),
    "filters: prefix dev.cifar10.": filters({"prefix": {"type": "dev.cifar10."}}),
    "filters: suffix of the reply source": filters({"suffix": {"source": "-function"}}),
    "filters: exact subject": filters({"exact": {"subject": "front-door"}}),
    "filters: not the request type": filters({"not": {"exact": {"type": REQUEST}}}),
    "filters: not a prefix replies lack": filters({"not": {"prefix": {"type": "dev.cifar10.classify.req"}}}),
    "filters: any of request type or a subject": filters(
        {"any": [{"exact": {"type": REQUEST}}, {"exact": {"subject": "x"}}]}
    ),
    "filters: all of a prefix and an id": filters({"all": [{"prefix": {"type": "dev."}}, {"exact": {"id": "1"}}]}),
    "filters: time suffix": filters({"suffix": {"time": "Z"}}),
}

SAFE = {
    "attributes: the request type": attributes(type=REQUEST),
    "attributes: request type and subject": attributes(type=REQUEST, subject="front-door"),
    "attributes: another source": attributes(source="/cameras/front-door"),
    "attributes: an extension replies never carry": attributes(camera="front-door"),
    "filters: exact request type": filters({"exact": {"type": REQUEST}}),
    "filters: prefix of the request type": filters({"prefix": {"type": "dev.cifar10.classify.req"}}),
    "filters: request type and not a subject": filters(
        {"exact": {"type": REQUEST}}, {"not": {"exact": {"subject": "test"}}}
    ),
    "filters: all of request type and a subject": filters(
        {"all": [{"exact": {"type": REQUEST}}, {"exact": {"subject": "x"}}]}
    ),
    "filters: any of two request types": filters(
        {"any": [{"exact": {"type": REQUEST}}, {"exact": {"type": "dev.cifar10.classify.batch"}}]}
    ),
    "filters: not not the request type": filters({"not": {"not": {"exact": {"type": REQUEST}}}}),
    "filters: suffix of the request type": filters({"suffix": {"type": ".request"}}),
}


def write(tmp_path, values: dict) -> str:
    return values_file(tmp_path, yaml.safe_dump(values))


@pytest.mark.parametrize("values", LOOPS.values(), ids=LOOPS.keys())
def test_filters_the_replies_pass_are_refused(tmp_path, values: dict) -> None:
    result = template("-f", write(tmp_path, values))
    assert result.returncode != 0, result.stdout
    assert "endless event loop" in result.stderr and REPLY in result.stderr, result.stderr


@pytest.mark.parametrize("values", SAFE.values(), ids=SAFE.keys())
def test_filters_the_replies_never_pass_render(tmp_path, values: dict) -> None:
    (trigger,) = by_kind(render("-f", write(tmp_path, values)), "Trigger")
    rendered = trigger["spec"].get("filters") or trigger["spec"]["filter"]["attributes"]
    expected = values["trigger"].get("filters") or {
        k: v for k, v in values["trigger"]["filter"]["attributes"].items() if v is not None
    }
    assert rendered == expected


def test_the_guard_follows_the_reply_type_and_source(tmp_path) -> None:
    """A reply type outside dev.cifar10. makes that prefix safe; a custom REPLY_SOURCE is checked."""
    prefix = {**filters({"prefix": {"type": "dev.cifar10."}}), "function": {"replyType": "com.example.label"}}
    assert template("-f", write(tmp_path / "a", prefix)).returncode == 0
    custom = {**attributes(source="/labels"), "function": {"replySource": "/labels"}}
    refused = template("-f", write(tmp_path / "b", custom))
    assert refused.returncode != 0 and "source /labels" in refused.stderr


def test_without_replies_only_the_empty_filter_is_refused(tmp_path) -> None:
    """CLOUDEVENT_REPLY false answers 202 with no event, so no filter can loop; an empty one still takes
    every event on the Broker."""
    quiet = {**attributes(subject="front-door"), "function": {"cloudeventReply": False}}
    assert template("-f", write(tmp_path / "a", quiet)).returncode == 0
    empty = {"trigger": {"enabled": True, "filter": {"attributes": None}}, "function": {"cloudeventReply": False}}
    refused = template("-f", write(tmp_path / "b", empty))
    assert refused.returncode != 0 and "would take every event" in refused.stderr


def test_attributes_and_filters_together_are_refused(tmp_path) -> None:
    """Knative applies filters and silently ignores filter.attributes when both are set."""
    both = {"trigger": {"enabled": True, "filters": [{"exact": {"type": REQUEST}}]}}
    refused = template("-f", write(tmp_path, both))
    assert refused.returncode != 0 and "set trigger.filter.attributes to null" in refused.stderr


@pytest.mark.parametrize(
    "item, reason",
    [
        ({"cesql": f"type = '{REQUEST}'"}, "CESQL cannot be checked at render time"),
        ({}, "no dialect: eventing skips the filter (MaterializeSubscriptionsAPIFilter returns nil)"),
        ({"exact": {}}, "an empty map is no dialect either"),
        ({"exact": {"type": ""}}, "an empty value makes NewExactFilter fail and the filter is skipped"),
        ({"all": []}, "an empty all"),
        ({"exact": {"type": REQUEST}, "not": {"exact": {"subject": "x"}}}, "two dialects (ValidateOneOf)"),
    ],
)
def test_filters_knative_would_skip_or_refuse_fail_the_schema(tmp_path, item: dict, reason: str) -> None:
    result = template("-f", write(tmp_path, filters(item)))
    assert result.returncode != 0, reason
    assert "/trigger/filters/0" in result.stderr, result.stderr


def test_notes_show_the_filters(tmp_path) -> None:
    values = write(tmp_path, filters({"exact": {"type": REQUEST}}))
    result = helm("install", "cifar", str(CHART), "--dry-run=client", "-f", values)
    assert result.returncode == 0, result.stderr
    assert json.dumps([{"exact": {"type": REQUEST}}], separators=(",", ":")) in result.stdout
