"""Replies to recent CloudEvents, so a redelivered event is answered without a second forward pass.

Knative Eventing delivers at least once: a Broker retries on 5xx, 429 and timeouts, so the same
(source, id) can arrive again. The cache is bounded in size and age; a hit returns the very reply
(same reply id) that the first delivery got.
"""

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedReply:
    status: int
    headers: dict[str, str]
    body: bytes


class ReplyCache:
    """A thread-safe LRU of `size` replies, each valid for `ttl` seconds; size 0 disables it."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self._entries: OrderedDict[tuple[str, str], tuple[float, CachedReply]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> CachedReply | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored, reply = entry
            if time.monotonic() - stored > self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return reply

    def put(self, key: tuple[str, str], reply: CachedReply) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), reply)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
