"""Single flight and the byte-bounded reply cache for redelivered CloudEvents."""

import asyncio
import time

import pytest

from function.dedup import ENTRY_OVERHEAD, CachedReply, ReplyCache
from function.errors import Overloaded


def reply(n: int, size: int = 1) -> CachedReply:
    return CachedReply(200, b"%d" % n + b"x" * size)


def test_concurrent_deliveries_share_one_computation() -> None:
    calls: list[int] = []

    async def compute() -> CachedReply:
        calls.append(1)
        await asyncio.sleep(0.05)
        return reply(1)

    async def scenario() -> list:
        cache = ReplyCache(1 << 20, 60)
        return await asyncio.gather(*(cache.reply(("/s", "1"), compute) for _ in range(5)))

    answers = asyncio.run(scenario())
    assert calls == [1]
    assert [a for a, _ in answers] == [reply(1)] * 5
    assert sorted(duplicate for _, duplicate in answers) == [False, True, True, True, True]


def test_a_redelivery_is_answered_from_the_cache_and_ids_are_per_source() -> None:
    async def scenario() -> None:
        cache = ReplyCache(1 << 20, 60)
        assert await cache.reply(("/s", "1"), _const(reply(1))) == (reply(1), False)
        assert await cache.reply(("/s", "1"), _const(reply(2))) == (reply(1), True)
        assert await cache.reply(("/other", "1"), _const(reply(3))) == (reply(3), False)

    asyncio.run(scenario())


def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    async def failing() -> CachedReply:
        await asyncio.sleep(0.02)
        raise Overloaded("full")

    async def scenario() -> None:
        cache = ReplyCache(1 << 20, 60)
        results = await asyncio.gather(*(cache.reply(("/s", "1"), failing) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, Overloaded) for r in results)
        assert await cache.reply(("/s", "1"), _const(reply(1))) == (reply(1), False)

    asyncio.run(scenario())


def test_bytes_bound_evicts_the_least_recently_used_and_skips_huge_entries() -> None:
    entry = ENTRY_OVERHEAD + 2 + 1 + 1 + 1000  # key "/s" + "n", data "n" + 1000 bytes

    async def scenario() -> ReplyCache:
        cache = ReplyCache(entry * 8, 60)
        for n in range(10):
            await cache.reply(("/s", str(n)), _const(reply(n, 1000)))
        await cache.reply(("/s", "huge"), _const(reply(99, entry * 2)))
        return cache

    cache = asyncio.run(scenario())
    assert cache.bytes <= entry * 8 and len(cache) == 8
    assert ("/s", "huge") not in cache._entries and ("/s", "0") not in cache._entries


def test_entries_expire_and_zero_bytes_keeps_nothing() -> None:
    async def scenario() -> None:
        short = ReplyCache(1 << 20, 0.05)
        await short.reply(("/s", "1"), _const(reply(1)))
        time.sleep(0.1)
        assert (await short.reply(("/s", "1"), _const(reply(2))))[0] == reply(2)
        none = ReplyCache(0, 60)
        await none.reply(("/s", "1"), _const(reply(1)))
        assert len(none) == 0

    asyncio.run(scenario())


def _const(value: CachedReply):
    async def compute() -> CachedReply:
        return value

    return compute


@pytest.mark.parametrize("size", [4 * 1024 * 1024])
def test_a_4_mib_id_is_not_kept(size: int) -> None:
    async def scenario() -> ReplyCache:
        cache = ReplyCache(16 * 1024 * 1024, 60)
        for n in range(60):
            await cache.reply(("/s", str(n) * size), _const(reply(n)))
        return cache

    assert asyncio.run(scenario()).bytes == 0
