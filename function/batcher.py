"""Continuous batching over a pool of inference worker processes, driven by the event loop.

Requests put their images on one queue (all of a request's images or none: 429 when full); each
time a worker is idle it gets its share of what is waiting (an equal split over the workers), up to
`batch_max_size` images, at once. A lone
request is sent the moment it arrives (no batching delay), and under load the queue fills while
the workers compute, so batches grow by themselves. Because work is handed out per batch and not
per connection, every worker stays busy whatever the clients' connections do (a keep-alive pool
that sticks to one connection included).

A worker that dies (OOM kill, a crash in native code) is started again; the images it held go
back to the head of the queue, each alone, and an image that kills a worker twice is refused. A
worker that does not answer a batch within WORKER_TIMEOUT_SECONDS (stuck in native code, stopped)
is killed, and the same follows.
"""

import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from function import inference_worker
from function.config import Settings
from function.errors import HTTPError, InvalidImage, Overloaded, Unavailable
from function.inference_worker import Payload, WorkerState

log = logging.getLogger(__name__)

BatchObserver = Callable[[int, float, int], None]  # images, oldest wait in seconds, images still queued
StateObserver = Callable[[list[WorkerState]], None]


@dataclass
class _Item:
    payload: Payload
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)
    crashes: int = 0

    @property
    def size(self) -> int:
        return self.payload.nbytes if hasattr(self.payload, "nbytes") else len(self.payload)


@dataclass
class _Worker:
    """The front's side of one worker: its process, the stream to it, and what it is doing."""

    index: int
    process: multiprocessing.Process
    writer: asyncio.Transport | None = None
    pending: list[bytes | memoryview] = field(default_factory=list)  # frames written before the stream opened
    state: WorkerState = field(default_factory=lambda: WorkerState("not_loaded", "none"))
    batch: tuple[int, list[_Item]] | None = None
    load_requested: bool = False
    opening: asyncio.Task | None = None
    deadline: asyncio.TimerHandle | None = None  # the watchdog of the batch in progress
    stopping: bool = False  # sent ("stop",): its pipe closing is expected
    killed: bool = False  # by the watchdog: given no more batches, though a last result may still arrive

    def send(self, message: tuple) -> None:
        """Write one message (see `inference_worker.receive`) without blocking the event loop.

        Images travel out of band (pickle protocol 5): the pickled message and each image's bytes are
        separate frames handed to the transport as they are, so a 3 MB photo is never copied into a
        pickle on the way (that copy was a fifth of this process's work per photo).
        """
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
        frames = [_frame_header(len(data) + 4), struct.pack("!i", len(buffers)), data]
        for buffer in buffers:
            raw = buffer.raw()
            frames += [_frame_header(raw.nbytes), raw]
        if self.writer is None:
            self.pending.extend(frames)
        else:
            self.writer.writelines(frames)


class _FromWorker(asyncio.Protocol):
    """The worker's messages (Connection's framing, pickled), parsed as the bytes arrive: a protocol
    rather than a stream reader, so that a result costs the event loop one callback."""

    def __init__(self, batcher: "Batcher", worker: _Worker) -> None:
        self.batcher, self.worker = batcher, worker
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 4:
            size, start = int.from_bytes(self.buffer[:4], "big", signed=True), 4
            if size == -1:
                if len(self.buffer) < 12:
                    return
                size, start = int.from_bytes(self.buffer[4:12], "big"), 12
            end = start + size
            if len(self.buffer) < end:
                return
            with memoryview(self.buffer) as view:
                message = pickle.loads(view[start:end])
            del self.buffer[:end]
            self.batcher._receive(self.worker, message)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.worker.stopping:
            self.batcher._lost(self.worker)


def _frame_header(size: int) -> bytes:
    """multiprocessing.Connection's framing: a 4-byte size, or -1 and an 8-byte size."""
    return struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!iQ", -1, size)


def _out_of_band(payload: Payload) -> object:
    """Encoded bytes wrapped so that pickle sends them as a buffer; arrays do so by themselves."""
    return pickle.PickleBuffer(payload) if isinstance(payload, bytes) else payload


class Batcher:
    """The queue, the workers, and the readiness they add up to."""

    def __init__(
        self,
        settings: Settings,
        workers: int,
        observe_batch: BatchObserver | None = None,
        observe_states: StateObserver | None = None,
        observe_restart: Callable[[], None] | None = None,
        while_waiting: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.size = workers
        self.observe_batch = observe_batch
        self.observe_states = observe_states
        self.observe_restart = observe_restart
        self.while_waiting = while_waiting  # run soon after batches are handed out: work no answer waits for
        self._queue: collections.deque[_Item] = collections.deque()
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
        self._stopping = False
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # Lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers; called on the event loop that will serve requests."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        # One MXNet thread per worker unless told otherwise: the workers are the parallelism.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self._workers = [self._spawn(index) for index in range(self.size)]

    async def stop(self, timeout: float) -> None:
        """Refuse new work, finish what was accepted, then end every worker."""
        self._stopping = True
        deadline = time.monotonic() + timeout
        while (self._queue or any(w.batch for w in self._workers)) and time.monotonic() < deadline:
            await self._wait_change(deadline - time.monotonic())
        for worker in self._workers:
            worker.stopping = True
            worker.send(("stop",))
        for worker in self._workers:
            await asyncio.to_thread(worker.process.join, max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
            if worker.opening is not None:
                worker.opening.cancel()
            if worker.writer is not None:
                worker.writer.close()

    @property
    def states(self) -> list[WorkerState]:
        return [w.state for w in self._workers]

    @property
    def ready(self) -> bool:
        """Every worker has its model loaded and warmed up."""
        return bool(self._workers) and all(w.state.state == "ready" for w in self._workers)

    # Requests --------------------------------------------------------------------------------

    async def classify(self, payloads: list[Payload]) -> list[object]:
        """Per payload, probabilities; the first image's error (by position) is raised."""
        await self._wait_for_model()
        futures = self.submit(payloads)
        # One image (the usual request) awaits its future: gather would add a hop through the loop.
        results = [await futures[0]] if len(futures) == 1 else await asyncio.gather(*futures)
        for position, result in enumerate(results):
            if isinstance(result, HTTPError):
                raise result.prefixed(f"image {position}: ") if len(results) > 1 else result
        return results

    def submit(self, payloads: list[Payload]) -> list[asyncio.Future]:
        """Queue all images of one request, or none of them (429 when the queue is full)."""
        if self._stopping:
            raise Overloaded("the function is shutting down")
        if len(self._queue) + len(payloads) > self.settings.queue_max_images:
            raise Overloaded(f"the inference queue is full ({self.settings.queue_max_images} images waiting)")
        items = [_Item(payload, self._loop.create_future()) for payload in payloads]
        self._queue.extend(items)
        self._dispatch()
        return [item.future for item in items]

    async def _wait_for_model(self) -> None:
        """Until some worker is ready: ask idle or failed workers to load (once per request), 503 on
        timeout or when every worker failed (a worker retries at most every `load_retry_seconds`)."""
        deadline = time.monotonic() + self.settings.load_timeout_seconds
        asked: set[int] = set()  # by id: a replacement keeps the index of the worker it replaces
        while not any(w.state.state == "ready" for w in self._workers):
            for worker in self._workers:
                if worker.state.state in ("not_loaded", "failed") and id(worker) not in asked:
                    asked.add(id(worker))
                    if not worker.load_requested:
                        worker.load_requested = True
                        worker.send(("load",))
            if all(w.state.state == "failed" and not w.load_requested for w in self._workers):
                raise Unavailable(
                    f"the model could not be loaded: {self._workers[0].state.error}",
                    retry_after=max(1, int(self.settings.load_retry_seconds)),
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(f"the model is still loading after {self.settings.load_timeout_seconds:g} s")
            await self._wait_change(left)

    async def _wait_change(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout))

    # Workers ---------------------------------------------------------------------------------

    def _spawn(self, index: int) -> _Worker:
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=inference_worker.run,
            args=(Connection(theirs.detach()), self.settings, index),
            name=f"inference-{index}",
            daemon=True,
        )
        process.start()
        worker = _Worker(index, process)
        worker.opening = self._loop.create_task(self._open(worker, ours))
        return worker

    async def _open(self, worker: _Worker, sock: socket.socket) -> None:
        """Connect the worker's end of the pipe to the event loop and send what waited for it."""
        worker.writer, _ = await self._loop.create_unix_connection(lambda: _FromWorker(self, worker), sock=sock)
        worker.writer.writelines(worker.pending)
        worker.pending.clear()

    def _dispatch(self) -> None:
        ready = sum(w.state.state == "ready" for w in self._workers)
        share = -(-len(self._queue) // max(1, ready))  # fixed for this pass: an equal split
        handed_out = False
        for worker in self._workers:
            if not self._queue:
                break
            if worker.batch is None and worker.state.state == "ready" and not worker.killed:
                batch = self._take(share)
                batch_id = next(self._ids)
                worker.batch = (batch_id, batch)
                worker.send(("batch", batch_id, [_out_of_band(item.payload) for item in batch]))
                worker.deadline = self._loop.call_later(
                    self.settings.worker_timeout_seconds, self._overdue, worker, batch_id
                )
                if self.observe_batch:
                    self.observe_batch(len(batch), time.perf_counter() - batch[0].queued_at, len(self._queue))
                handed_out = True
        if handed_out and self.while_waiting:  # after the answers a result just woke, which were queued first
            self._loop.call_soon(self.while_waiting)

    def _take(self, share: int) -> list[_Item]:
        """The next batch: this worker's share of what waits (an equal split over the ready workers, so
        one worker never takes everything while another is about to go idle), within batch_max_size and
        BATCH_MAX_BYTES of encoded images (decoding ~8 ms per MB); an image that crashed a worker goes alone."""
        share = min(self.settings.batch_max_size, share)
        first = self._queue.popleft()
        batch, size, solo = [first], first.size, first.crashes > 0
        while self._queue and not solo and len(batch) < share:
            following = self._queue[0]
            if following.crashes or size + following.size > self.settings.batch_max_bytes:
                break
            batch.append(self._queue.popleft())
            size += following.size
        return batch

    def _receive(self, worker: _Worker, message: tuple) -> None:
        if message[0] == "state":
            worker.state = message[1]
            if worker.state.state != "loading":
                worker.load_requested = False
            if worker.state.warning:
                log.warning("worker %d: %s", worker.index, worker.state.warning)
            if self._queue and all(w.state.state == "failed" and not w.load_requested for w in self._workers):
                self._fail_queued(worker.state.error)
            if self.observe_states:
                self.observe_states(self.states)
        elif message[0] == "result":
            _, batch_id, results = message
            if worker.batch is not None and worker.batch[0] == batch_id:
                worker.deadline.cancel()
                for item, result in zip(worker.batch[1], results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
                worker.batch = None
        self._changed.set()
        self._dispatch()

    def _fail_queued(self, error: str | None) -> None:
        """Every worker failed to load (a replacement after a crash, say): what waits is answered 503,
        as a new request would be, instead of waiting for a worker that will not come."""
        refusal = Unavailable(
            f"the model could not be loaded: {error}", retry_after=max(1, int(self.settings.load_retry_seconds))
        )
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_result(refusal)

    def _overdue(self, worker: _Worker, batch_id: int) -> None:
        """The watchdog: a worker still on `batch_id` after WORKER_TIMEOUT_SECONDS is killed; its pipe
        then closes and `_lost` retries the images."""
        if worker.batch is not None and worker.batch[0] == batch_id and worker.process.is_alive():
            worker.killed = True  # its result may already be in the pipe: no new batch goes to it
            log.error(
                "inference worker %d has not answered a batch of %d image(s) in %g s "
                "(WORKER_TIMEOUT_SECONDS): killing it",
                worker.index,
                len(worker.batch[1]),
                self.settings.worker_timeout_seconds,
            )
            worker.process.kill()

    def _lost(self, worker: _Worker) -> None:
        """A worker died: give its images back to the queue, each alone, and start another."""
        if worker.deadline is not None:
            worker.deadline.cancel()
        if worker.writer is not None:
            worker.writer.close()
        if worker.process.is_alive():  # its pipe is gone, so it can no longer be told anything
            worker.process.kill()
        worker.process.join(1)  # a dead process is reaped at once: the event loop does not wait
        log.error("inference worker %d died (exit code %s)", worker.index, worker.process.exitcode)
        if worker.batch is not None:
            for item in reversed(worker.batch[1]):
                if item.future.done():  # its request is gone (cancelled): nothing to answer or retry
                    continue
                item.crashes += 1
                if item.crashes >= 2:
                    item.future.set_result(
                        InvalidImage(
                            "this image ended an inference worker twice (a crash, or no answer within "
                            "WORKER_TIMEOUT_SECONDS); not retried"
                        )
                    )
                else:
                    self._queue.appendleft(item)
        replacement = self._spawn(worker.index)
        if self.observe_restart:
            self.observe_restart()
        self._workers[self._workers.index(worker)] = replacement
        if self.settings.load_mode == "first-request" and (
            worker.state.state in ("ready", "loading")
            or worker.load_requested
            or self._queue
            or any(w.state.state == "ready" for w in self._workers)
        ):
            replacement.load_requested = True
            replacement.send(("load",))
        if self.observe_states:
            self.observe_states(self.states)
        self._changed.set()
        self._dispatch()
