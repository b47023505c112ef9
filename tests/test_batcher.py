"""Continuous batching over real inference worker processes (the shipped weights)."""

import asyncio
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from function.batcher import Batcher
from function.config import Settings
from function.errors import InvalidImage, Overloaded, Unavailable
from function.inference import probabilities
from tests.conftest import DATA, SHIPPED, encode


def settings(**overrides) -> Settings:
    return Settings(model_params=SHIPPED, **overrides)


def pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


async def started(batcher: Batcher) -> Batcher:
    batcher.start()
    await batcher._wait_for_model()
    while not batcher.ready:
        await asyncio.sleep(0.05)
    return batcher


def test_each_request_gets_its_own_rows_and_concurrent_ones_share_passes() -> None:
    sizes: list[int] = []

    async def scenario() -> tuple[dict[int, list], dict[int, list]]:
        batcher = await started(Batcher(settings(), 2, observe_batch=lambda n, wait, queued: sizes.append(n)))
        requests = {n: [pixels(n * 10 + i) for i in range(3)] for n in range(12)}
        answers = await asyncio.gather(*(batcher.classify(images) for images in requests.values()))
        await batcher.stop(30)
        return dict(zip(requests, answers, strict=True)), requests

    answers, requests = asyncio.run(scenario())
    import mxnet as mx
    from gluoncv.model_zoo import get_model

    net = get_model("cifar_resnet20_v1", classes=10)
    net.load_parameters(str(SHIPPED), ctx=mx.cpu())
    for n, images in requests.items():
        expected = probabilities(net, np.stack(images), mx.cpu(), True)
        assert np.allclose(np.stack(answers[n]), expected, atol=1e-5)
    assert sum(sizes) == 36 and len(sizes) < 36  # batched, and nothing computed twice


def test_batches_respect_the_size_bound_and_a_full_queue_refuses_all_or_nothing() -> None:
    sizes: list[int] = []

    async def scenario() -> None:
        batcher = await started(
            Batcher(settings(batch_max_size=4, queue_max_images=10), 1, observe_batch=lambda n, w, q: sizes.append(n))
        )
        first = batcher.submit([pixels(i) for i in range(10)])  # fills the queue (one batch may leave at once)
        with pytest.raises(Overloaded):
            batcher.submit([pixels(99)] * 10)
        await asyncio.gather(*first)
        await batcher.stop(30)

    asyncio.run(scenario())
    assert max(sizes) <= 4 and sum(sizes) == 10


def test_a_bad_image_fails_alone_and_names_its_position() -> None:
    async def scenario() -> None:
        batcher = await started(Batcher(settings(), 1))
        good = (DATA / "cat.jpg").read_bytes()
        with pytest.raises(InvalidImage, match="image 1: "):
            await batcher.classify([good, b"not an image", good])
        assert len(await batcher.classify([good])) == 1
        await batcher.stop(30)

    asyncio.run(scenario())


def test_a_killed_worker_is_replaced_and_its_images_are_answered() -> None:
    async def scenario() -> None:
        batcher = await started(Batcher(settings(), 1))
        worker = batcher._workers[0]
        futures = batcher.submit([pixels(i) for i in range(32)])
        os.kill(worker.process.pid, signal.SIGKILL)  # mid-batch or just before: either way nothing is lost
        results = await asyncio.wait_for(asyncio.gather(*futures), 120)
        assert all(isinstance(r, np.ndarray) and r.shape == (10,) for r in results)
        assert batcher._workers[0] is not worker and batcher._workers[0].process.is_alive()
        await batcher.stop(30)

    asyncio.run(scenario())


def test_stop_answers_everything_accepted_then_refuses() -> None:
    async def scenario() -> None:
        batcher = await started(Batcher(settings(), 2))
        futures = batcher.submit([pixels(i) for i in range(64)])
        await batcher.stop(60)
        assert all(f.done() and isinstance(f.result(), np.ndarray) for f in futures)
        with pytest.raises(Overloaded):
            batcher.submit([pixels(0)])
        assert not any(w.process.is_alive() for w in batcher._workers)

    asyncio.run(scenario())


def test_megabytes_of_images_reach_the_workers_intact() -> None:
    """Payloads far over a socket buffer (a 12-megapixel photo, a batch of several MiB) go through."""
    rng = np.random.default_rng(3)
    photo = encode(Image.fromarray(rng.integers(0, 256, (3024, 4032, 3), dtype=np.uint8)), "JPEG", quality=90)
    assert len(photo) > 3 * 1024 * 1024

    async def scenario() -> None:
        batcher = await started(Batcher(settings(), 1))
        worker = batcher._workers[0]
        results = await batcher.classify([photo, photo])
        assert all(r.shape == (10,) for r in results)
        assert batcher._workers[0] is worker  # no worker died on the way
        await batcher.stop(30)

    asyncio.run(scenario())


def test_idle_workers_split_what_waits_equally_within_the_byte_budget() -> None:
    """Two idle workers and 9 images: batches of 5 and 4 at once, none left waiting. One worker and 8
    photos with room for 3 in BATCH_MAX_BYTES: batches of 3, 3 and 2."""
    photo = (DATA / "horse.jpg").read_bytes()

    async def batches(workers: int, images: list, **overrides) -> tuple[list[int], list[int]]:
        sizes: list[int] = []
        batcher = await started(Batcher(settings(**overrides), workers, observe_batch=lambda n, w, q: sizes.append(n)))
        futures = batcher.submit(images)
        at_once = list(sizes)  # what was handed out within submit
        await asyncio.gather(*futures)
        await batcher.stop(30)
        return at_once, sizes

    assert asyncio.run(batches(2, [pixels(i) for i in range(9)], batch_max_size=32)) == ([5, 4], [5, 4])
    budget = {"batch_max_size": 32, "batch_max_bytes": 4 * len(photo) - 1}
    assert asyncio.run(batches(1, [photo] * 8, **budget)) == ([3], [3, 3, 2])


def test_a_worker_that_stops_answering_is_killed_and_its_images_answered_by_another() -> None:
    restarts: list[int] = []

    async def scenario() -> None:
        batcher = await started(
            Batcher(settings(worker_timeout_seconds=2.0), 1, observe_restart=lambda: restarts.append(1))
        )
        hung = batcher._workers[0]
        os.kill(hung.process.pid, signal.SIGSTOP)  # as a worker stuck in native code: alive, silent
        began = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*batcher.submit([pixels(i) for i in range(4)])), 120)
        assert time.monotonic() - began >= 2.0
        assert all(isinstance(r, np.ndarray) and r.shape == (10,) for r in results)
        assert not hung.process.is_alive() and batcher._workers[0] is not hung
        await batcher.stop(30)

    asyncio.run(scenario())
    assert restarts == [1]


def test_an_image_whose_request_was_cancelled_is_not_retried_when_its_worker_is_lost() -> None:
    batches: list[int] = []
    errors: list[dict] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        batcher = await started(
            Batcher(settings(worker_timeout_seconds=2.0), 1, observe_batch=lambda n, wait, queued: batches.append(n))
        )
        held = batcher._workers[0]
        os.kill(held.process.pid, signal.SIGSTOP)
        [future] = batcher.submit([pixels(0)])
        assert held.batch is not None
        future.cancel()  # the client went away (or the shutdown's grace period ran out)
        while batcher._workers[0] is held or not batcher.ready:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert batches == [1] and not batcher._queue and batcher._workers[0].batch is None
        assert isinstance((await batcher.classify([pixels(1)]))[0], np.ndarray)
        await batcher.stop(30)

    asyncio.run(scenario())
    assert errors == []


def test_a_worker_stopped_while_the_server_drains_is_replaced_and_its_images_answered() -> None:
    async def scenario() -> None:
        batcher = await started(Batcher(settings(worker_timeout_seconds=2.0), 1))
        os.kill(batcher._workers[0].process.pid, signal.SIGSTOP)
        futures = batcher.submit([pixels(1)])
        await batcher.stop(30)  # SIGTERM while the batch is out: the drain waits for the retry
        assert isinstance(futures[0].result(), np.ndarray)

    asyncio.run(scenario())


def test_in_first_request_mode_the_replacement_of_a_lost_worker_loads() -> None:
    async def scenario() -> None:
        batcher = Batcher(settings(worker_timeout_seconds=2.0, load_mode="first-request"), 1)
        batcher.start()
        await batcher.classify([pixels(0)])  # loads the only worker
        os.kill(batcher._workers[0].process.pid, signal.SIGSTOP)
        results = await asyncio.wait_for(asyncio.gather(*batcher.submit([pixels(1)])), 120)
        assert isinstance(results[0], np.ndarray)
        await batcher.stop(30)

    asyncio.run(scenario())


def test_in_first_request_mode_a_worker_lost_while_loading_is_replaced_and_the_request_answered() -> None:
    async def scenario() -> object:
        batcher = Batcher(settings(load_mode="first-request", load_timeout_seconds=50.0), 1)
        batcher.start()
        request = asyncio.ensure_future(batcher.classify([pixels(0)]))
        while batcher._workers[0].state.state != "loading":
            await asyncio.sleep(0.01)
        os.kill(batcher._workers[0].process.pid, signal.SIGKILL)
        (result,) = await asyncio.wait_for(request, 60)  # was a 503 "still loading" after the load timeout
        await batcher.stop(30)
        return result

    assert isinstance(asyncio.run(scenario()), np.ndarray)


def test_images_waiting_for_a_replacement_that_cannot_load_are_answered_503(tmp_path) -> None:
    params = tmp_path / "weights.params"
    params.write_bytes(SHIPPED.read_bytes())

    async def scenario() -> object:
        batcher = await started(Batcher(Settings(model_params=params, worker_timeout_seconds=2.0), 1))
        os.kill(batcher._workers[0].process.pid, signal.SIGSTOP)
        [future] = batcher.submit([pixels(0)])  # handed to the stopped worker, killed after 2 s
        params.unlink()  # so its replacement fails to load
        result = await asyncio.wait_for(future, 60)  # it waited for a worker that would never come
        await batcher.stop(5)
        return result

    result = asyncio.run(scenario())
    assert isinstance(result, Unavailable) and "could not be loaded" in result.message, result


def test_the_front_is_told_when_it_waits_for_a_forward_pass() -> None:
    """`while_waiting` runs soon after a batch goes to a worker (the front's bookkeeping then costs no
    answer any time), and not when a submit finds every worker busy."""
    events: list[str] = []

    async def scenario() -> None:
        batcher = await started(
            Batcher(
                settings(),
                1,
                observe_batch=lambda n, wait, queued: events.append(f"batch of {n}"),
                while_waiting=lambda: events.append("waiting"),
            )
        )
        first = batcher.submit([pixels(1)])
        second = batcher.submit([pixels(2)])  # the one worker is busy: queued, nothing handed out
        assert events == ["batch of 1"]  # `while_waiting` runs soon after, not inside the request's step
        await asyncio.sleep(0)
        assert events == ["batch of 1", "waiting"]
        await asyncio.gather(*first, *second)
        await batcher.stop(30)

    asyncio.run(scenario())
    assert events == ["batch of 1", "waiting", "batch of 1", "waiting"]
