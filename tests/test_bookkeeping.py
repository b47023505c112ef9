"""Bookkeeping held back until the front would wait: nothing lost, nothing reordered, never stuck."""

import asyncio
import time

from function.bookkeeping import Bookkeeping


def test_held_actions_run_at_flush_in_the_order_they_came() -> None:
    done: list[tuple] = []

    async def scenario() -> list[list[tuple]]:
        books = Bookkeeping(delay=60)
        books.defer(lambda *args: done.append(args), "first", 1)
        books.defer(lambda *args: done.append(args), "second", 2)
        before = list(done)
        books.flush()
        after = list(done)
        books.flush()  # nothing twice
        return [before, after, list(done)]

    before, after, again = asyncio.run(scenario())
    assert before == []
    assert after == again == [("first", 1), ("second", 2)]


def test_what_no_flush_follows_runs_after_the_delay() -> None:
    ran: list[float] = []

    async def scenario() -> list[float]:
        books = Bookkeeping(delay=0.05)
        deferred = []
        for _ in range(2):  # the second time, the timer is armed again after it fired
            deferred.append(time.perf_counter())
            books.defer(lambda: ran.append(time.perf_counter()))
            assert len(ran) == len(deferred) - 1  # held, not run at once
            await asyncio.sleep(0.5)  # long past the delay: only a wait's bound, not a speed
            assert len(ran) == len(deferred)
        return deferred

    deferred = asyncio.run(scenario())
    assert all(done - began >= 0.04 for done, began in zip(ran, deferred, strict=True))  # held for the delay


def test_a_failing_action_is_logged_and_spares_the_rest_and_the_caller(caplog) -> None:
    done: list[str] = []

    def broken() -> None:
        raise ValueError("a metric that cannot be observed")

    async def scenario() -> None:
        books = Bookkeeping(delay=60)
        books.defer(broken)
        books.defer(done.append, "after")
        books.flush()  # the caller (a request handing out its batch) goes on

    asyncio.run(scenario())
    assert done == ["after"]
    assert "bookkeeping failed" in caplog.text and "a metric that cannot be observed" in caplog.text


def test_without_an_event_loop_an_action_runs_at_once_and_each_new_loop_gets_its_own_timer() -> None:
    done: list[str] = []
    books = Bookkeeping(delay=0.05)
    books.defer(done.append, "no loop")
    assert done == ["no loop"]

    async def one_loop(name: str) -> None:
        books.defer(done.append, name)
        await asyncio.sleep(0.3)

    asyncio.run(one_loop("first"))
    asyncio.run(one_loop("second"))  # the first loop's timer died with it: a new one is armed
    assert done == ["no loop", "first", "second"]
