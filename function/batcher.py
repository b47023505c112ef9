"""Micro-batching: one inference thread serves a bounded queue of images.

MXNet is not thread-safe, so this thread is the only caller of the network. Request threads
decode their images and `submit` them; the thread gathers up to `max_size` images, waiting at
most `max_delay` after the first one, runs one forward pass and hands every caller its rows.
If a batch fails, its images are retried one by one so a bad item spares its batch-mates. The
wait is adaptive: it ends as soon as no other request is on its way (still decoding), so a lone
request pays no delay and concurrent ones still share a forward pass.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from function.errors import Overloaded

log = logging.getLogger(__name__)

POLL = 0.0002  # seconds between looks at `expected` while a batch waits for more requests
Forward = Callable[[np.ndarray], np.ndarray]
BatchObserver = Callable[[int, float, int], None]  # size, oldest wait, images still queued


@dataclass
class _Item:
    image: np.ndarray
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    """Gathers images from many threads into forward passes of at most `max_size`."""

    def __init__(
        self,
        forward: Forward,
        max_size: int,
        max_delay: float,
        max_queued: int,
        observe: BatchObserver | None = None,
        expected: Callable[[], int] | None = None,
    ) -> None:
        """`expected` counts requests about to submit; when it says none, a batch waits for nothing."""
        self.forward = forward
        self.max_size = max_size
        self.max_delay = max_delay
        self.observe = observe
        self.expected = expected
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queued)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, images: list[np.ndarray]) -> list[Future]:
        """Queue all images of one request, or none of them (429 when the queue is full)."""
        self._ensure_thread()
        with self._lock:  # all or nothing: another request must not take the free slots midway
            if self._stopping:
                raise Overloaded("the function is shutting down")
            free = self._queue.maxsize - self._queue.qsize()
            if len(images) > free:
                raise Overloaded(f"the inference queue is full ({self._queue.maxsize} images waiting)")
            items = [_Item(image) for image in images]
            for item in items:
                self._queue.put_nowait(item)
        return [item.future for item in items]

    def queued(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new work, answer everything already queued, then end the thread."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        # Started on first use, not at import: a thread made in the gunicorn master would not
        # exist in the forked workers.
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.perf_counter() + self.max_delay
            stop = False
            while len(batch) < self.max_size:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or (self.expected is not None and self.expected() <= 0):
                    try:  # nobody else is on the way: take what is queued, wait for nothing
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                else:
                    try:
                        item = self._queue.get(timeout=remaining if self.expected is None else min(remaining, POLL))
                    except queue.Empty:
                        if self.expected is None:
                            break
                        continue
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._execute(batch)
            if stop:
                self._drain()
                return

    def _drain(self) -> None:
        leftover = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                leftover.append(item)
        for start in range(0, len(leftover), self.max_size):
            self._execute(leftover[start : start + self.max_size])

    def _execute(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        if self.observe:
            self.observe(len(batch), started - min(item.queued_at for item in batch), self._queue.qsize())
        try:
            rows = self.forward(np.stack([item.image for item in batch]))
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            log.warning("batch of %d failed (%s); retrying its items one by one", len(batch), exc)
            for item in batch:
                self._execute([item])
            return
        for item, row in zip(batch, rows, strict=True):
            item.future.set_result(row)
