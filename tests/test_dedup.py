"""The reply cache for redelivered CloudEvents."""

import time

from function.dedup import CachedReply, ReplyCache


def reply(n: int) -> CachedReply:
    return CachedReply(200, {"ce-id": str(n)}, b"%d" % n)


def test_hit_returns_the_stored_reply() -> None:
    cache = ReplyCache(4, 60)
    cache.put(("/s", "1"), reply(1))
    assert cache.get(("/s", "1")) == reply(1)
    assert cache.get(("/s", "2")) is None
    assert cache.get(("/other", "1")) is None  # ids are unique per source only


def test_size_bound_evicts_the_least_recently_used() -> None:
    cache = ReplyCache(2, 60)
    cache.put(("/s", "1"), reply(1))
    cache.put(("/s", "2"), reply(2))
    cache.get(("/s", "1"))
    cache.put(("/s", "3"), reply(3))
    assert len(cache) == 2
    assert cache.get(("/s", "2")) is None and cache.get(("/s", "1")) == reply(1)


def test_entries_expire() -> None:
    cache = ReplyCache(4, 0.05)
    cache.put(("/s", "1"), reply(1))
    time.sleep(0.1)
    assert cache.get(("/s", "1")) is None


def test_size_zero_disables_the_cache() -> None:
    cache = ReplyCache(0, 60)
    cache.put(("/s", "1"), reply(1))
    assert cache.get(("/s", "1")) is None
