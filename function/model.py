"""The lazy model holder: loads the parameters once per process, reports readiness honestly.

Nothing is imported or loaded at import time. `start()` begins the load in a background thread
(called when a server worker starts in `background` mode, or on first need in `first-request`
mode); every caller waits on the same event, so any number of concurrent first requests cause
exactly one load. A failed load is kept as an error (503 with the cause: the path for a parameter
file, the device for a device that cannot be used) and is retried at most every `load_retry_seconds`,
so a broken file or an unusable GPU never crash-loops the pod.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from function.cifar10 import CLASSES, INPUT_SIZE, NETWORK
from function.device import DeviceError, Gpu, decide, ensure_libcuda
from function.errors import Unavailable
from function.inference import probabilities

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadTimes:
    """Cold-start breakdown in seconds."""

    imports: float
    parameters: float
    warmup: float


class ModelHolder:
    """Owns the network; `forward` must only be called from the one inference thread."""

    def __init__(
        self,
        params: Path,
        device: str,
        retry_seconds: float,
        flip_average: bool = True,
        worker_index: int = 0,
    ) -> None:
        """`worker_index` picks this worker's GPU among the supported ones (index mod their number)."""
        self.params = params
        self.flip_average = flip_average
        self.worker_index = worker_index
        self.requested_device = device
        self.retry_seconds = retry_seconds
        self.device = "none"
        self.gpu: Gpu | None = None
        self.device_warning: str | None = None  # why a GPU is not used (DEVICE=auto), for readiness and metrics
        self.error: str | None = None
        self.times: LoadTimes | None = None
        self._net = None
        self._ctx = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_at = 0.0

    @property
    def ready(self) -> bool:
        return self._net is not None

    @property
    def state(self) -> str:
        if self.ready:
            return "ready"
        if self._thread is not None and self._thread.is_alive():
            return "loading"
        return "failed" if self.error else "not_loaded"

    def start(self) -> None:
        """Begin loading in a background thread unless loaded, loading, or failed too recently."""
        if self.ready:
            return
        with self._lock:
            if self.ready or (self._thread is not None and self._thread.is_alive()):
                return
            if self.error and time.monotonic() - self._failed_at < self.retry_seconds:
                return
            self._done.clear()
            self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None) -> None:
        """Start the load if needed and wait for it; raise `Unavailable` on timeout or failure."""
        if self.ready:
            return
        self.start()
        if not self._done.wait(timeout):
            raise Unavailable(f"the model is still loading after {timeout:g} s; retry shortly")
        if not self.ready:
            raise Unavailable(
                f"the model could not be loaded: {self.error}", retry_after=max(1, int(self.retry_seconds))
            )

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            libcuda = ensure_libcuda()  # the GPU build's libmxnet.so cannot even be imported without a libcuda.so.1
            if self.requested_device == "cpu" or libcuda != "system":
                # Surely on the CPU: run each operator on this thread. MXNet's threaded engine hands every
                # operator to a thread of its own, which on a CPU serving one image at a time costs ~15%
                # of the throughput (bench). Read by MXNet at import; a value set by the user wins.
                os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")
            import mxnet as mx
            from gluoncv.model_zoo import get_model

            imported = time.perf_counter()
            ctx = self._context(mx)
            if not self.params.is_file():
                raise FileNotFoundError(f"no parameter file at {self.params}")
            net = get_model(NETWORK, classes=len(CLASSES))
            net.load_parameters(str(self.params), ctx=ctx)
            net.hybridize(static_alloc=True)
            loaded = time.perf_counter()
            self._ctx = ctx
            self._forward(net, np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8))
            self.times = LoadTimes(imported - started, loaded - imported, time.perf_counter() - loaded)
            self.device = "gpu" if ctx.device_type == "gpu" else "cpu"
            self._net = net  # published last: ready means loaded and warmed up
            self.error = None
            log.info(
                "model %s loaded from %s on %s in %.2f s (imports %.2f, parameters %.2f, warm-up %.2f)",
                NETWORK,
                self.params,
                ctx,
                time.perf_counter() - started,
                self.times.imports,
                self.times.parameters,
                self.times.warmup,
            )
        except Exception as exc:
            self._net = None
            self.error = str(exc) if isinstance(exc, DeviceError) else f"{self.params}: {type(exc).__name__}: {exc}"
            self._failed_at = time.monotonic()
            log.error("model load failed: %s", self.error)
        finally:
            self._done.set()

    def _context(self, mx):
        """This worker's device (`device.decide`), checked against the build's GPU range before any kernel runs."""
        choice = decide(self.requested_device, self.worker_index, mx.runtime.Features().is_enabled("CUDA"))
        self.gpu, self.device_warning = choice.gpu, choice.warning
        if choice.warning:
            log.warning("%s", choice.warning)
        return mx.gpu(choice.gpu.ordinal) if choice.gpu else mx.cpu()

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N x classes) for a uint8 NHWC batch, computed on the device (see `inference`)."""
        return self._forward(self._net, images)

    def _forward(self, net, images: np.ndarray) -> np.ndarray:
        return probabilities(net, images, self._ctx, self.flip_average)
