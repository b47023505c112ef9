"""Eventing end to end: the real server with 2 workers, driven as a Knative Broker drives a Trigger's subscriber.

Eventing delivers at least once, so one event reaches the function several times: copies at the
same moment, redeliveries after the first dispatch finished, retries after a lost reply or a
timeout, each on a new connection (tests/broker.py says what it models). Whatever the path, the
function must answer with one reply event per request event, identical every time, and compute it
once: the server's own counters (GET /metrics, read before and after) must show one image through
the network per event and count every duplicate delivery. Every broken property is reported
together; `pytest -s` prints the figure the README shows.
"""

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.broker import Broker, Delivered, DeliverySpec, Event, Fault, Reply, iso8601_seconds
from tests.conftest import DATA

REQUEST_TYPE = "dev.cifar10.classify.request"
REPLY_TYPE = "dev.cifar10.classify.response"
SOURCE = "/apis/v1/namespaces/default/sources/camera"
EVENTS = 2000
DUPLICATED = EVENTS // 10  # events delivered twice or more
REFUSED = EVENTS // 50  # events refused (503 or 429) before reaching the pod, then delivered once
POOL = 24  # dispatching threads; an event sent as copies at once adds its own for a moment
SEED = 12
FAULT_RETRY_AFTER = 1  # seconds, in the Retry-After of an injected 503 or 429
# Two Triggers on the same subscriber, one per back-off policy; events alternate between them.
TRIGGERS = (
    DeliverySpec(retry=5, backoff_policy="linear", backoff_delay="PT0.05S", timeout="PT2S", retry_after_max="PT2S"),
    DeliverySpec(
        retry=5, backoff_policy="exponential", backoff_delay="PT0.02S", timeout="PT2S", retry_after_max="PT2S"
    ),
)
FORWARD_PASSES = "cifar10_batch_size_count"
IMAGES = "cifar10_batch_size_sum"
DUPLICATES = "cifar10_cloudevent_duplicates_total"


@dataclass(frozen=True)
class Plan:
    """What befalls one event: copies of its first dispatch at once, faults, redeliveries after."""

    kind: str
    together: int = 1
    faults: tuple[Fault, ...] = ()
    redeliveries: int = 0

    @property
    def duplicated(self) -> bool:
        reaches_pod_again = any(fault in (Fault.REPLY_LOST, Fault.SLOW) for fault in self.faults)
        return self.together > 1 or self.redeliveries > 0 or reaches_pod_again


def plans(rng: random.Random) -> list[Plan]:
    """DUPLICATED events delivered twice or more in five ways, REFUSED ones retried, the rest once."""
    quarter = DUPLICATED // 4
    special = (
        [Plan("together", together=rng.choice((2, 3))) for _ in range(quarter)]
        + [Plan("redelivered", redeliveries=rng.choice((1, 2))) for _ in range(quarter)]
        + [Plan("together, then redelivered", together=2, redeliveries=1) for _ in range(DUPLICATED // 10)]
        + [Plan("reply lost", faults=(Fault.REPLY_LOST,) * rng.choice((1, 2))) for _ in range(quarter)]
        + [Plan("slow", faults=(Fault.SLOW,)) for _ in range(DUPLICATED - 3 * quarter - DUPLICATED // 10)]
        + [Plan("refused", faults=(rng.choice((Fault.UNAVAILABLE, Fault.THROTTLED)),)) for _ in range(REFUSED // 2)]
        + [Plan("refused twice", faults=(Fault.THROTTLED, Fault.UNAVAILABLE)) for _ in range(REFUSED - REFUSED // 2)]
    )
    every = special + [Plan("once")] * (EVENTS - len(special))
    rng.shuffle(every)
    return every


def dispatch(broker: Broker, event: Event, plan: Plan) -> list[Delivered]:
    together = plan.together > 1
    first = broker.deliver_together(event, plan.together) if together else [broker.deliver(event, plan.faults)]
    return first + [broker.deliver(event, fresh=True) for _ in range(plan.redeliveries)]


def scrape(url: str) -> Counter[str]:
    """The server's counters that the README's figure shows, summed over whatever series they have."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (FORWARD_PASSES, IMAGES, DUPLICATES):
                totals[sample.name] += sample.value
    return totals


def server_replies(delivered: Iterable[Delivered]) -> list[Reply]:
    """Every 2xx the server gave for an event, including those the path lost before the dispatcher."""
    return [
        attempt.reply
        for delivery in delivered
        for attempt in delivery.attempts
        if attempt.reply is not None and 200 <= attempt.reply.status < 300
    ]


def test_delivery_spec_reads_as_eventing() -> None:
    """The harness's retry policy against retries.go: indices from 0, caps, statuses, ISO-8601."""
    linear = DeliverySpec(retry=4, backoff_policy="linear", backoff_delay="PT0.5S")
    exponential = DeliverySpec(retry=4, backoff_policy="exponential", backoff_delay="PT0.5S", retry_after_max="PT2S")
    assert [linear.backoff(n) for n in range(4)] == [0, 0.5, 1.0, 1.5]
    assert [exponential.backoff(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert exponential.backoff(0, 429, "1") == 1.0
    assert exponential.backoff(0, 503, "30") == 2.0  # capped by retryAfterMax
    assert exponential.backoff(0, 500, "30") == 0.5  # only 429 and 503 carry a Retry-After that counts
    assert linear.backoff(0, 429, "30") == 0  # no retryAfterMax: Retry-After ignored (opt-in feature)
    assert exponential.backoff(0, 429, "Thu, 01 Jan 1970 00:00:00 GMT") == 0.5  # a date in the past
    assert all(linear.retries(status) for status in (None, 404, 408, 409, 429, 500, 502, 503, 504))
    assert not any(linear.retries(status) for status in (200, 202, 204, 400, 413, 415, 422))
    assert iso8601_seconds("PT1M30S") == 90 and iso8601_seconds("P1DT0.25S") == 86400.25
    for wrong in ("PT", "P", "5s", "PT1.5"):
        with pytest.raises(ValueError):
            iso8601_seconds(wrong)


def test_exactly_one_reply_per_event_as_a_broker_delivers(start_server) -> None:
    """EVENTS request events through two Triggers (linear and exponential back-off), POOL at a time."""
    server = start_server(WORKERS="2")
    server.wait()
    images = [path.read_bytes() for path in sorted(DATA.glob("*.jpg"))]
    plan = plans(random.Random(SEED))
    events = [
        Event(str(uuid.uuid4()), SOURCE, REQUEST_TYPE, images[index % len(images)], "image/jpeg")
        for index in range(EVENTS)
    ]
    brokers = [Broker(server.url, spec, fault_retry_after=FAULT_RETRY_AFTER) for spec in TRIGGERS]
    before = scrape(server.url)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(POOL) as pool:
            results = list(
                pool.map(
                    lambda index: dispatch(brokers[index % len(brokers)], events[index], plan[index]), range(EVENTS)
                )
            )
    finally:
        for broker in brokers:
            broker.close()
    seconds = time.monotonic() - started
    after = scrape(server.url)

    attempts = [attempt for delivered in results for delivery in delivered for attempt in delivery.attempts]
    sent = [sum(attempt.sent for delivery in delivered for attempt in delivery.attempts) for delivered in results]
    replies = [server_replies(delivered) for delivered in results]
    reply_ids = [{reply.attribute("id") for reply in event_replies} for event_replies in replies]
    outcomes = Counter("timeout" if a.status is None else str(a.status) for a in attempts)
    figure = {
        "events": EVENTS,
        "deliveries": sum(sent),
        "duplicate deliveries": sum(sent) - EVENTS,
        "events delivered twice or more": sum(count >= 2 for count in sent),
        "events sent as copies at once": sum(p.together > 1 for p in plan),
        "distinct replies": len(set().union(*reply_ids)),
        "forward passes": after[FORWARD_PASSES] - before[FORWARD_PASSES],
        "images through the network": after[IMAGES] - before[IMAGES],
        "duplicates counted by the server": after[DUPLICATES] - before[DUPLICATES],
        "attempts": len(attempts),
        "seconds": round(seconds, 1),
    }
    print("\neventing figure:", json.dumps(figure), "attempt outcomes:", dict(sorted(outcomes.items())))

    # the harness did what it claims: 10% duplicated, every fault met, Retry-After waited for
    assert sum(p.duplicated for p in plan) == DUPLICATED
    assert figure["events delivered twice or more"] >= DUPLICATED
    assert {"429", "502", "503", "timeout"} <= outcomes.keys()
    after_refusal = [
        retry
        for delivered in results
        for delivery in delivered
        for refused, retry in zip(delivery.attempts, delivery.attempts[1:], strict=False)
        if refused.fault in (Fault.UNAVAILABLE, Fault.THROTTLED)
    ]
    assert after_refusal and all(attempt.waited >= FAULT_RETRY_AFTER for attempt in after_refusal)

    problems = []
    unanswered = Counter(p.kind for p, delivered in zip(plan, results, strict=True) if not all(d.ok for d in delivered))
    if unanswered:
        problems.append(f"{unanswered.total()} events not answered with a 2xx after retries: {dict(unanswered)}")
    several = Counter(p.kind for p, ids in zip(plan, reply_ids, strict=True) if len(ids) != 1)
    if several:
        problems.append(f"{several.total()} events got other than one reply id: {dict(several)}")
    differing = Counter(p.kind for p, rs in zip(plan, replies, strict=True) if len({r.identity[1:] for r in rs}) > 1)
    if differing:
        problems.append(f"{differing.total()} events got replies whose type, source or data differ: {dict(differing)}")
    every_reply = [attempt.reply for attempt in attempts if attempt.reply is not None]
    if any(reply.attribute("type") == REQUEST_TYPE for reply in every_reply):
        problems.append("a reply is of the request type: a Trigger on that type would loop")
    wrong = [r for rs in replies for r in rs if r.attribute("type") != REPLY_TYPE or "label" not in json.loads(r.body)]
    if wrong:
        problems.append(f"{len(wrong)} 2xx replies are not {REPLY_TYPE} events with a label")
    if figure["distinct replies"] != EVENTS:
        problems.append(f"{figure['distinct replies']} distinct reply ids for {EVENTS} events")
    if figure["images through the network"] != EVENTS:
        problems.append(f"{figure['images through the network']:.0f} images through the network for {EVENTS} events")
    if figure["duplicates counted by the server"] != figure["duplicate deliveries"]:
        problems.append(
            f"the server counted {figure['duplicates counted by the server']:.0f} duplicates "
            f"of {figure['duplicate deliveries']} duplicate deliveries"
        )
    assert not problems, "\n".join(problems)
