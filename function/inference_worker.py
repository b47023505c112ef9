"""One inference worker process: its own copy of the network, decoding and forward passes.

The front process (HTTP, on an event loop) never decodes or runs the network: it sends batches of
encoded images (bytes) or pixel arrays here over a pipe, and gets back, per image, class
probabilities or the error that image caused. MXNet is not thread-safe, so each worker runs one
forward pass at a time on one thread; several workers use several cores (or GPUs). A worker
ignores SIGINT and SIGTERM: the front drains the queue and then tells it to stop, and a worker
whose front has gone away sees the pipe close and exits.

Messages are pickled tuples: to the worker `("load",)`, `("batch", id, payloads)`, `("stop",)`, each
as one frame holding the count of out-of-band buffers and the pickle, then a frame per buffer (the
images' bytes, see `batcher._Worker.send`); from the worker `("state", WorkerState)` and
`("result", id, results)`, one frame each (`reply`).
"""

import contextlib
import logging
import pickle
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from function.config import Settings
from function.errors import ClientError, HTTPError, InvalidImage, Unavailable
from function.imaging import decode
from function.model import ModelHolder

log = logging.getLogger(__name__)

Payload = bytes | np.ndarray  # an encoded image, or uint8 pixels of the input size
Result = np.ndarray | HTTPError  # probabilities, or what went wrong with that image


@dataclass(frozen=True)
class WorkerState:
    """What the front needs to know of a worker's model: readiness, device, cold start."""

    state: str  # not_loaded, loading, ready, failed
    device: str
    error: str | None = None
    warning: str | None = None
    load_times: dict[str, float] | None = None


def run(conn: Connection, settings: Settings, index: int) -> None:
    """The worker's main loop (the target of its process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=settings.log_level, format=f"%(asctime)s %(levelname)s worker-{index} %(name)s: %(message)s"
    )
    holder = ModelHolder(
        settings.model_params,
        settings.device,
        settings.load_retry_seconds,
        flip_average=settings.flip_average,
        worker_index=index,
    )
    if settings.load_mode == "background":
        _load(conn, holder)
    while True:
        try:
            if settings.load_mode == "background" and holder.error and not conn.poll(settings.load_retry_seconds):
                _load(conn, holder)  # a broken file may be mended (a volume mounted late): try again
                continue
            message = receive(conn)
        except (EOFError, OSError):
            return  # the front process is gone
        kind = message[0]
        if kind == "stop":
            return
        if kind == "load":
            _load(conn, holder)
        elif kind == "batch":
            _, batch_id, payloads = message
            reply(conn, ("result", batch_id, infer(holder, payloads, settings)))


def receive(conn: Connection) -> tuple:
    """One message from the front: its pickle, then the out-of-band buffers it refers to."""
    head = conn.recv_bytes()
    count = int.from_bytes(head[:4], "big", signed=True)
    buffers = [conn.recv_bytes() for _ in range(count)]
    return pickle.loads(memoryview(head)[4:], buffers=buffers)


def reply(conn: Connection, message: tuple) -> None:
    """One message to the front: plain pickle, a few microseconds cheaper per result than
    `Connection.send`'s ForkingPickler (which only adds reducers for handles never sent here)."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def state_of(holder: ModelHolder) -> WorkerState:
    times = vars(holder.times) if holder.times is not None else None
    return WorkerState(holder.state, holder.device, holder.error, holder.device_warning, times)


def _load(conn: Connection, holder: ModelHolder) -> None:
    """Load (or retry a failed load, at most every `load_retry_seconds`) and report the outcome."""
    if holder.ready:
        reply(conn, ("state", state_of(holder)))
        return
    reply(conn, ("state", WorkerState("loading", holder.device)))
    with contextlib.suppress(Unavailable):  # the holder keeps the error; the front reports it
        holder.wait(timeout=None)
    reply(conn, ("state", state_of(holder)))


def infer(holder: ModelHolder, payloads: list[Payload], settings: Settings) -> list[Result]:
    """Decode what needs decoding, then one forward pass over every image that decoded."""
    results: list[Result | None] = [None] * len(payloads)
    images, positions = [], []
    for position, payload in enumerate(payloads):
        try:
            images.append(payload if isinstance(payload, np.ndarray) else _decode(payload, settings))
            positions.append(position)
        except ClientError as exc:
            results[position] = exc
        except Exception as exc:  # a decoder fault must cost one image, never the worker
            log.exception("decoding failed unexpectedly")
            results[position] = InvalidImage(f"the image cannot be decoded: {type(exc).__name__}")
    if images:
        for position, row in zip(positions, _forward(holder, images), strict=True):
            results[position] = row
    return results


def _decode(data: bytes, settings: Settings) -> np.ndarray:
    return decode(
        data,
        settings.max_image_pixels,
        max_decode_bytes=settings.max_decode_bytes,
        max_image_segments=settings.max_image_segments,
        max_jpeg_scans=settings.max_jpeg_scans,
    )


def _forward(holder: ModelHolder, images: list[np.ndarray]) -> list[Result]:
    """One pass for the batch; if it fails, each image alone, so a bad one spares its batch-mates."""
    try:
        return list(holder.forward(np.stack(images)))
    except Exception as exc:
        if len(images) == 1:
            log.exception("forward pass failed")
            return [HTTPError(f"inference failed: {type(exc).__name__}: {exc}")]
        log.warning("batch of %d failed (%s); retrying its images one by one", len(images), exc)
        return [_forward(holder, [image])[0] for image in images]
