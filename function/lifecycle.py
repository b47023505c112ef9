"""The function's lifecycle, in one object: `start`, `stop`, `alive`, `ready` (as Knative's func-python).

The server's lifespan calls `start` once its event loop runs (the inference workers are spawned
and, in `background` mode, begin loading) and `stop` after SIGTERM, once the requests in flight
are answered (the queue drains, then the workers end). Views reach the settings, the batcher, the
reply cache and the metrics through it; `classify` is the one inference path of every protocol.
"""

import logging
from importlib.metadata import PackageNotFoundError, version

from function.batcher import Batcher
from function.bookkeeping import Bookkeeping
from function.config import SERVICE_NAME, Settings
from function.dedup import ReplyCache
from function.device import DeviceError, default_workers, ensure_libcuda, pod_cpus, query_gpus
from function.inference_worker import Payload, WorkerState
from function.metrics import Metrics
from function.prediction import Prediction

log = logging.getLogger(__name__)


def worker_count(settings: Settings) -> int:
    """WORKERS, else one per CPU the pod may use, at most 4 per supported GPU unless GPU_MPS."""
    if settings.workers:
        return settings.workers
    gpus = 0
    if settings.device != "cpu" and ensure_libcuda() == "system":
        try:
            gpus = sum(gpu.supported for gpu in query_gpus())
        except DeviceError:
            gpus = 0  # the workers report the driver's error; the CPU count decides
    return default_workers(pod_cpus(), gpus, settings.gpu_mps)


def package_version() -> str:
    try:
        return version(SERVICE_NAME)
    except PackageNotFoundError:
        return "0+unknown"


class Function:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = package_version()
        self.metrics = Metrics()
        self.bookkeeping = Bookkeeping()
        self.replies = ReplyCache(settings.dedup_cache_bytes, settings.dedup_ttl_seconds)
        self.batcher = Batcher(
            settings,
            worker_count(settings),
            observe_batch=self._batch_observed,
            observe_states=self._workers_changed,
            observe_restart=self.metrics.restarts.inc,
            while_waiting=self.bookkeeping.flush,
        )

    def start(self) -> None:
        self.batcher.start()
        self.metrics.observe_workers(self.batcher.states)
        log.info(
            "serving %s (%s) with %d inference worker(s), DEVICE=%s, LOAD_MODE=%s, FLIP_AVERAGE=%s, parameters %s",
            SERVICE_NAME,
            self.version,
            self.batcher.size,
            self.settings.device,
            self.settings.load_mode,
            str(self.settings.flip_average).lower(),
            self.settings.model_params,
        )

    async def stop(self) -> None:
        try:
            await self.batcher.stop(self.settings.shutdown_timeout_seconds)
        finally:
            self.bookkeeping.flush()  # the last requests' lines and counts
        log.info("stopped")

    def alive(self) -> bool:
        """The event loop answers: nothing here can be wedged that a restart would mend."""
        return True

    def ready(self) -> bool:
        """`background`: every worker loaded and warmed up. `first-request`: no worker failed to load."""
        states = self.batcher.states
        if self.settings.load_mode == "first-request":
            return not any(s.state == "failed" for s in states)
        return self.batcher.ready

    def model_ready(self) -> bool:
        """The model can answer now (some worker has it loaded)."""
        return any(s.state == "ready" for s in self.batcher.states)

    @property
    def device(self) -> str:
        return next((s.device for s in self.batcher.states if s.state == "ready"), "none")

    async def classify(self, payloads: list[Payload]) -> list[Prediction]:
        return [Prediction(row) for row in await self.batcher.classify(payloads)]

    def _batch_observed(self, images: int, wait: float, queued: int) -> None:
        self.bookkeeping.defer(self.metrics.observe_batch, images, wait, queued)

    def _workers_changed(self, states: list[WorkerState]) -> None:
        self.metrics.observe_workers(states)
        for index, state in enumerate(states):
            if state.state == "failed":
                log.error("worker %d could not load the model: %s", index, state.error)
