"""The micro-batching queue, with a plain numpy forward function in place of the network's."""

import threading
import time

import numpy as np
import pytest

from function.batcher import Batcher
from function.errors import Overloaded


def tagged(value: int) -> np.ndarray:
    return np.full((2,), value, dtype=np.int64)


def recording_forward(calls: list[int], delay: float = 0.0):
    def forward(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        time.sleep(delay)
        return batch * 10

    return forward


def test_each_caller_gets_its_own_rows_in_order() -> None:
    calls: list[int] = []
    batcher = Batcher(recording_forward(calls), max_size=8, max_delay=0.05, max_queued=256)
    results: dict[int, list[int]] = {}

    def client(n: int) -> None:
        futures = batcher.submit([tagged(n * 100 + i) for i in range(3)])
        results[n] = [int(f.result(5)[0]) for f in futures]

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: [(n * 100 + i) * 10 for i in range(3)] for n in range(10)}
    assert sum(calls) == 30
    assert max(calls) <= 8
    assert len(calls) < 30  # concurrent requests were batched together
    batcher.stop()


def test_size_bound_splits_a_large_request() -> None:
    calls: list[int] = []
    batcher = Batcher(recording_forward(calls), max_size=4, max_delay=0.2, max_queued=256)
    futures = batcher.submit([tagged(i) for i in range(10)])
    assert [int(f.result(5)[0]) for f in futures] == [i * 10 for i in range(10)]
    assert calls == [4, 4, 2]
    batcher.stop()


def test_delay_bound_flushes_a_lone_item() -> None:
    calls: list[int] = []
    batcher = Batcher(recording_forward(calls), max_size=32, max_delay=0.05, max_queued=256)
    started = time.perf_counter()
    (future,) = batcher.submit([tagged(1)])
    future.result(5)
    elapsed = time.perf_counter() - started
    assert calls == [1]
    assert 0.04 <= elapsed < 2.0
    batcher.stop()


def test_failing_item_spares_its_batch_mates() -> None:
    def forward(batch: np.ndarray) -> np.ndarray:
        if (batch[:, 0] == 13).any():
            raise ValueError("unlucky")
        return batch

    batcher = Batcher(forward, max_size=8, max_delay=0.05, max_queued=256)
    futures = batcher.submit([tagged(i) for i in (1, 13, 3)])
    assert int(futures[0].result(5)[0]) == 1
    with pytest.raises(ValueError, match="unlucky"):
        futures[1].result(5)
    assert int(futures[2].result(5)[0]) == 3
    batcher.stop()


def test_full_queue_refuses_the_whole_request() -> None:
    gate = threading.Event()

    def forward(batch: np.ndarray) -> np.ndarray:
        gate.wait(5)
        return batch

    batcher = Batcher(forward, max_size=1, max_delay=0.0, max_queued=4)
    first = batcher.submit([tagged(0)])
    time.sleep(0.05)  # the thread holds item 0 in forward; the queue is empty again
    accepted = batcher.submit([tagged(i) for i in range(1, 5)])
    with pytest.raises(Overloaded):
        batcher.submit([tagged(9)])
    gate.set()
    assert [int(f.result(5)[0]) for f in first + accepted] == [0, 1, 2, 3, 4]
    batcher.stop()


def test_stop_answers_everything_queued_then_refuses() -> None:
    calls: list[int] = []
    batcher = Batcher(recording_forward(calls, delay=0.02), max_size=2, max_delay=0.0, max_queued=256)
    futures = batcher.submit([tagged(i) for i in range(9)])
    batcher.stop()
    assert [int(f.result(0)[0]) for f in futures] == [i * 10 for i in range(9)]
    with pytest.raises(Overloaded):
        batcher.submit([tagged(1)])


def test_observer_sees_batch_sizes_waits_and_what_is_left() -> None:
    seen: list[tuple[int, float, int]] = []
    release = threading.Event()

    def held_forward(batch: np.ndarray) -> np.ndarray:
        release.wait(5)  # the first batch holds the thread while the rest queue up
        return batch

    batcher = Batcher(held_forward, max_size=8, max_delay=0.01, max_queued=64, observe=lambda *args: seen.append(args))
    first = batcher.submit([tagged(0)])
    while not seen:
        time.sleep(0.001)
    rest = batcher.submit([tagged(i) for i in range(1, 20)])
    release.set()
    for f in first + rest:
        f.result(5)
    assert [(size, queued) for size, _, queued in seen] == [(1, 0), (8, 11), (8, 3), (3, 0)]
    assert all(wait >= 0 for _, wait, _ in seen)
    batcher.stop()


def test_no_wait_when_no_other_request_is_on_its_way() -> None:
    calls: list[int] = []
    batcher = Batcher(recording_forward(calls), max_size=32, max_delay=1.0, max_queued=256, expected=lambda: 0)
    started = time.perf_counter()
    (future,) = batcher.submit([tagged(1)])
    future.result(5)
    assert time.perf_counter() - started < 0.5  # far below the 1 s delay
    batcher.stop()


def test_waits_for_a_request_that_is_on_its_way() -> None:
    calls: list[int] = []
    on_the_way = [1]
    batcher = Batcher(
        recording_forward(calls), max_size=32, max_delay=2.0, max_queued=256, expected=lambda: on_the_way[0]
    )
    first = batcher.submit([tagged(1)])
    time.sleep(0.1)
    on_the_way[0] = 0
    second = batcher.submit([tagged(2)])
    assert [int(f.result(5)[0]) for f in first + second] == [10, 20]
    assert calls == [2]  # the first waited for the second: one forward pass
    batcher.stop()
