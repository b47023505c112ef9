"""Exactly one reply per CloudEvent: single flight for concurrent deliveries, a cache for redeliveries.

Knative Eventing delivers at least once: a Broker retries on 5xx, 429 and timeouts, and may send the
same (source, id) twice at the same moment. Deliveries that overlap share one computation (single
flight); later ones are answered from a cache bounded in bytes and age. Either way the answer is
the very reply the first delivery got. Across workers and pods the reply is still the same event,
because its id is derived from the request's (source, id) (see `protocols.cloudevents`).
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Key = tuple[str, ...]  # the request event's (source, id), and what else changes its reply (top_k)
ENTRY_OVERHEAD = 256  # bytes of bookkeeping counted per cached reply besides its contents


@dataclass(frozen=True)
class CachedReply:
    """Only what a redelivery needs: the status, the reply's data (JSON) and time, not its rendering, so
    a redelivery in the other mode (binary or structured) is answered in its own mode."""

    status: int
    data: bytes
    time: str | None = None  # the reply event's, chosen once (a 202 has none)

    def cost(self, key: Key) -> int:
        return ENTRY_OVERHEAD + sum(map(len, key)) + len(self.data) + len(self.time or "")


class ReplyCache:
    """Single flight plus an LRU of replies holding at most `max_bytes`, each valid `ttl` seconds."""

    def __init__(self, max_bytes: int, ttl: float) -> None:
        self.max_bytes, self.ttl = max_bytes, ttl
        self.bytes = 0
        self._entries: OrderedDict[Key, tuple[float, CachedReply, int]] = OrderedDict()
        self._inflight: dict[Key, asyncio.Future] = {}

    async def reply(self, key: Key, compute: Callable[[], Awaitable[CachedReply]]) -> tuple[CachedReply, bool]:
        """The reply for `key` and whether it was a duplicate (shared or cached, not computed)."""
        cached = self._get(key)
        if cached is not None:
            return cached, True
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running), True
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even without waiters
        self._inflight[key] = future
        try:
            reply = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._inflight[key]
        self._put(key, reply)
        future.set_result(reply)
        return reply, False

    def _get(self, key: Key) -> CachedReply | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored, reply, _ = entry
        if time.monotonic() - stored > self.ttl:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return reply

    def _put(self, key: Key, reply: CachedReply) -> None:
        cost = reply.cost(key)
        if cost > self.max_bytes // 8:  # one huge entry must not flush everything else
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic(), reply, cost)
        self.bytes += cost
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Key) -> None:
        _, _, cost = self._entries.pop(key)
        self.bytes -= cost

    def __len__(self) -> int:
        return len(self._entries)
