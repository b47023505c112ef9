"""A stand-in for Knative's Broker/Trigger dispatcher, to drive the real server as Eventing drives it.

Knative Eventing delivers at least once. What reaches a Trigger's subscriber, and how often, is
modelled on knative/eventing at commit 8cf4c4b6 (2026-06-17):

- The Trigger's `spec.delivery` becomes the delivery of a channel Subscription whose subscriber is
  the broker-filter (pkg/reconciler/broker/trigger/trigger.go); the channel's fanout dispatches with
  that retry config (pkg/channel/fanout/fanout_event_handler.go, `makeFanoutRequest`), and the filter
  forwards each attempt to the subscriber: every retry is a new pass through the Service, to any pod.
- pkg/kncloudevents/retries.go, `RetryConfigFromDeliverySpec`: `retry` retries after the first
  attempt; linear waits backoffDelay*n, exponential backoffDelay*2^n, where n counts failed attempts
  from 0 (go-retryablehttp's `Client.Do` passes its loop index), so a linear first retry is
  immediate; `timeout` bounds each attempt, not the whole delivery. `SelectiveRetry` retries no
  response (error, timeout), 5xx, 404, 408, 409 and 429. `generateBackoffFn` waits the larger of the
  backoff and `Retry-After` (seconds or HTTP date) on 429 and 503, capped by `retryAfterMax`, and
  only when `retryAfterMax` is set: the alpha feature `delivery-retryafter`, "disabled" by default in
  config/core/configmaps/features.yaml.
- pkg/kncloudevents/event_dispatcher.go, `Dispatcher.send`: every attempt carries `Prefer: reply`;
  pkg/broker/filter/filter_handler.go, `send` and `writeResponse`: `Kn-Namespace` is added, and a
  2xx whose non-empty body is not a CloudEvent becomes a 502 (which the channel retries).
- pkg/broker/ingress/ingress_handler.go sets the `knativearrivaltime` extension once, at ingress;
  `traceparent` comes from the otelhttp transport (pkg/kncloudevents/http_client.go): one trace
  per event, a new span per HTTP request.

The cluster between dispatcher and pod (activator, queue-proxy, other replicas) is not here: its
misbehaviour is injected per attempt as a `Fault`. In a cluster a retry may reuse a pooled
connection (same pod) or not (any pod); here redeliveries and retries always open a new one, the
harder case: with several worker processes behind one socket they may land on another worker.
"""

import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from urllib.parse import urlsplit

STRUCTURED = "application/cloudevents+json"
POLICIES = ("linear", "exponential")
RETRIED_STATUSES = frozenset({404, 408, 409, 429})  # besides every 5xx (SelectiveRetry)
RETRY_AFTER_STATUSES = frozenset({429, 503})
NOT_AN_EVENT = 502  # the filter's answer to a 2xx body that is not a CloudEvent
USER_AGENT = "Go-http-client/1.1"
TOGETHER_SECONDS_MAX = 30.0  # how long copies sent at the same moment wait for one another
MIN_SOCKET_TIMEOUT = 0.001  # a deadline already past still gets one look at the socket

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_DURATION = re.compile(rf"P(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?")
# A pooled connection the server closed while idle fails before any answer; Go's Transport then
# resends on a new connection without counting an attempt, and so does `Broker`.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def iso8601_seconds(text: str) -> float:
    """An ISO-8601 duration (`PT0.5S`, `PT1M`, `P1D`) in seconds, as Eventing reads its delivery fields."""
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()) or text.endswith("T"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    days, hours, minutes, seconds = (float((part or "0").replace(",", ".")) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def retry_after_seconds(value: str) -> float:
    """`Retry-After` as delay-seconds or an HTTP date, 0 when unreadable (parseRetryAfterDuration)."""
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


@dataclass(frozen=True)
class DeliverySpec:
    """A Trigger's `spec.delivery`: the retry policy, durations in ISO-8601 as in the CRD."""

    retry: int = 0
    backoff_policy: str | None = None
    backoff_delay: str | None = None
    timeout: str | None = None
    retry_after_max: str | None = None

    def __post_init__(self) -> None:
        if self.retry < 0:
            raise ValueError("retry must not be negative")
        if self.backoff_policy not in (None, *POLICIES):
            raise ValueError(f"backoffPolicy must be one of {POLICIES}, not {self.backoff_policy!r}")
        for value in (self.backoff_delay, self.timeout, self.retry_after_max):
            if value is not None:
                iso8601_seconds(value)

    @property
    def timeout_seconds(self) -> float | None:
        return None if self.timeout is None else iso8601_seconds(self.timeout)

    def retries(self, status: int | None) -> bool:
        """Whether an attempt that ended so is retried; None is no response (timeout, connection error)."""
        return status is None or status >= 500 or status in RETRIED_STATUSES

    def backoff(self, failed: int, status: int | None = None, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number `failed` (0 for the first attempt)."""
        wait = 0.0
        if self.backoff_policy is not None and self.backoff_delay is not None:
            delay = iso8601_seconds(self.backoff_delay)
            wait = delay * failed if self.backoff_policy == "linear" else delay * 2**failed
        if self.retry_after_max is not None and status in RETRY_AFTER_STATUSES and retry_after:
            wait = max(wait, min(retry_after_seconds(retry_after), iso8601_seconds(self.retry_after_max)))
        return wait


def arrival_now() -> str:
    """`knativearrivaltime` as the Broker ingress writes it: RFC 3339 UTC with nanoseconds."""
    now = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"


@dataclass(frozen=True)
class Event:
    """A request event as it leaves the Broker ingress: identity, data and the ingress's extensions."""

    id: str
    source: str
    type: str
    data: bytes
    datacontenttype: str
    subject: str | None = None
    arrival: str = field(default_factory=arrival_now)
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def headers(self) -> dict[str, str]:
        """Binary mode: attributes as `ce-` headers, the data's type as Content-Type."""
        headers = {
            "ce-specversion": "1.0",
            "ce-id": self.id,
            "ce-source": self.source,
            "ce-type": self.type,
            "ce-knativearrivaltime": self.arrival,
            "Content-Type": self.datacontenttype,
        }
        if self.subject is not None:
            headers["ce-subject"] = self.subject
        return headers


@dataclass(frozen=True)
class Reply:
    """What the server answered to one attempt; header names lower-cased."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def read(cls, response: http.client.HTTPResponse) -> "Reply":
        return cls(response.status, {name.lower(): value for name, value in response.getheaders()}, response.read())

    @property
    def structured(self) -> bool:
        return self.headers.get("content-type", "").lower().startswith(STRUCTURED)

    @property
    def is_event(self) -> bool:
        return "ce-specversion" in self.headers or self.structured

    def attribute(self, name: str) -> str | None:
        """A CloudEvent attribute of the reply, in binary or structured mode."""
        if self.structured:
            value = json.loads(self.body).get(name)
            return None if value is None else str(value)
        return self.headers.get(f"ce-{name}")

    @property
    def identity(self) -> tuple[str | None, str | None, str | None, bytes]:
        """What must not change between deliveries of one event: id, type, source and data."""
        return self.attribute("id"), self.attribute("type"), self.attribute("source"), self.body


class Fault(Enum):
    """What the path between dispatcher and pod can do to one attempt."""

    UNAVAILABLE = "503 before the pod"  # no ready replica: 503 with Retry-After, the pod sees nothing
    THROTTLED = "429 from a busy replica"  # its queue is full: 429 with Retry-After, nothing computed
    REPLY_LOST = "reply lost"  # the pod computes and answers, the path breaks: 502
    SLOW = "slow"  # the pod's answer is held up past the Trigger's timeout


@dataclass(frozen=True)
class Attempt:
    """One HTTP request of a dispatch and what the dispatcher made of it."""

    number: int
    waited: float  # back-off slept before it
    started: float  # time.monotonic()
    ended: float
    fresh: bool  # on a new connection
    sent: bool  # the request reached the server
    status: int | None  # as the dispatcher saw it; None for a timeout or a connection error
    retry_after: str | None
    fault: Fault | None = None
    error: str | None = None
    reply: Reply | None = None  # the server's own answer, even when the path lost it or it came late


@dataclass(frozen=True)
class Delivered:
    """One dispatch of an event: its attempts, the last of which decides."""

    event: Event
    attempts: tuple[Attempt, ...]

    @property
    def status(self) -> int | None:
        return self.attempts[-1].status

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def reply(self) -> Reply | None:
        return self.attempts[-1].reply if self.ok else None


class Broker:
    """Dispatches events to one subscriber URL with a Trigger's delivery spec, from many threads.

    First attempts reuse a keep-alive connection per thread, as Go's pooled transport does;
    retries and `fresh` deliveries open a new one.
    """

    def __init__(
        self, url: str, delivery: DeliverySpec, namespace: str = "default", fault_retry_after: int = 1
    ) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.delivery = delivery
        self.namespace = namespace
        self.fault_retry_after = fault_retry_after
        self._local = threading.local()
        self._pooled: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def deliver(
        self,
        event: Event,
        faults: Sequence[Fault | None] = (),
        fresh: bool = False,
        together: threading.Barrier | None = None,
    ) -> Delivered:
        """One dispatch: attempts until one is not retried or the retries run out.

        `faults[n]` befalls attempt n; `together` holds the first request until its parties are ready.
        """
        attempts: list[Attempt] = []
        waited = 0.0
        for number in range(self.delivery.retry + 1):
            fault = faults[number] if number < len(faults) else None
            attempt = self._attempt(
                event, number, waited, fault, fresh or number > 0, together if number == 0 else None
            )
            attempts.append(attempt)
            if not self.delivery.retries(attempt.status) or number == self.delivery.retry:
                break
            waited = self.delivery.backoff(number, attempt.status, attempt.retry_after)
            time.sleep(waited)
        return Delivered(event, tuple(attempts))

    def deliver_together(self, event: Event, copies: int) -> list[Delivered]:
        """`copies` dispatches of one event whose first requests leave at the same moment."""
        barrier = threading.Barrier(copies, timeout=TOGETHER_SECONDS_MAX)
        results: list[Delivered | None] = [None] * copies

        def run(index: int) -> None:
            results[index] = self.deliver(event, fresh=True, together=barrier)

        threads = [threading.Thread(target=run, args=(index,)) for index in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(result is None for result in results):
            raise RuntimeError(f"a concurrent delivery of event {event.id} did not finish")
        return [result for result in results if result is not None]

    def close(self) -> None:
        """Close every thread's pooled connection."""
        with self._lock:
            for connection in self._pooled:
                connection.close()
            self._pooled.clear()

    def _connection(self, fresh: bool) -> http.client.HTTPConnection:
        if fresh:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.delivery.timeout_seconds)
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.delivery.timeout_seconds)
            self._local.connection = connection
            with self._lock:
                self._pooled.append(connection)
        return connection

    def _headers(self, event: Event) -> dict[str, str]:
        return {
            **event.headers(),
            "Prefer": "reply",
            "Kn-Namespace": self.namespace,
            "traceparent": f"00-{event.trace_id}-{secrets.token_hex(8)}-01",
            "User-Agent": USER_AGENT,
        }

    def _attempt(
        self,
        event: Event,
        number: int,
        waited: float,
        fault: Fault | None,
        fresh: bool,
        together: threading.Barrier | None,
    ) -> Attempt:
        started = time.monotonic()

        def done(**outcome) -> Attempt:
            return Attempt(number, waited, started, time.monotonic(), fresh, fault=fault, **outcome)

        if fault in (Fault.UNAVAILABLE, Fault.THROTTLED):
            status = 503 if fault is Fault.UNAVAILABLE else 429
            return done(sent=False, status=status, retry_after=str(self.fault_retry_after))
        timeout = self.delivery.timeout_seconds
        if fault is Fault.SLOW and timeout is None:
            raise ValueError("Fault.SLOW needs a delivery timeout to pass")
        connection = self._connection(fresh)
        reused = connection.sock is not None
        sent = False
        try:
            if connection.sock is None:
                connection.connect()
            if together is not None:
                together.wait()
            deadline = None if timeout is None else time.monotonic() + timeout
            if connection.sock is not None:  # a pooled socket may keep the last attempt's short remainder
                connection.sock.settimeout(timeout)
            for may_resend in (reused, False):
                try:
                    connection.request("POST", self.path, body=event.data, headers=self._headers(event))
                    sent = True
                    if fault is Fault.SLOW and deadline is not None:  # the deadline passes before the answer
                        time.sleep(max(0.0, deadline - time.monotonic()))
                        timed_out = done(sent=True, status=None, retry_after=None, error="timeout")
                        return replace(timed_out, reply=_late_reply(connection))
                    if deadline is not None and connection.sock is not None:
                        connection.sock.settimeout(max(deadline - time.monotonic(), MIN_SOCKET_TIMEOUT))
                    reply = Reply.read(connection.getresponse())
                    break
                except _STALE:
                    if not may_resend:
                        raise
                    sent = False
                    connection.close()
                    connection.connect()
            status = reply.status
            if fault is Fault.REPLY_LOST and 200 <= status < 300:
                status = 502
            elif 200 <= status < 300 and reply.body and not reply.is_event:
                status = NOT_AN_EVENT
            return done(sent=True, status=status, retry_after=reply.headers.get("retry-after"), reply=reply)
        except TimeoutError:
            connection.close()
            return done(sent=sent, status=None, retry_after=None, error="timeout")
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            return done(sent=sent, status=None, retry_after=None, error=repr(exc))
        finally:
            if fresh:
                connection.close()


def _late_reply(connection: http.client.HTTPConnection) -> Reply | None:
    """The answer that came after the deadline: not used by the dispatcher, recorded for the checks."""
    try:
        return Reply.read(connection.getresponse())
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
