"""The one inference path: every protocol hands decoded images to `Classifier.classify`."""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from function.batcher import Batcher, BatchObserver
from function.cifar10 import CLASSES, NETWORK
from function.config import Settings
from function.errors import Unavailable
from function.model import ModelHolder


@dataclass(frozen=True)
class Prediction:
    """Class probabilities of one image, rendered the same way by every protocol."""

    probabilities: np.ndarray

    @property
    def index(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def label(self) -> str:
        return CLASSES[self.index]

    @property
    def probability(self) -> float:
        return float(self.probabilities[self.index])

    def top(self, k: int) -> list[dict]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [{"label": CLASSES[i], "probability": round(float(self.probabilities[i]), 6)} for i in order]

    def as_json(self, k: int, device: str) -> dict:
        return {
            "label": self.label,
            "probability": round(self.probability, 6),
            "top": self.top(k),
            "model": NETWORK,
            "device": device,
        }


class Classifier:
    """Model holder plus batcher: waits for the model, queues images, returns predictions."""

    def __init__(
        self,
        settings: Settings,
        observe_batch: BatchObserver | None = None,
        observe_model: Callable[[ModelHolder], None] | None = None,
    ) -> None:
        self.settings = settings
        self.model = ModelHolder(
            settings.model_params,
            settings.device,
            settings.load_retry_seconds,
            observe_model,
            settings.flip_average,
        )
        self._preparing = 0  # requests inside `request()` that have not submitted their images yet
        self._count_lock = threading.Lock()
        self._local = threading.local()
        self.batcher = Batcher(
            self.model.forward,
            settings.batch_max_size,
            settings.batch_max_delay_ms / 1000,
            settings.queue_max_images,
            observe_batch,
            expected=lambda: self._preparing,
        )

    @contextmanager
    def request(self) -> Iterator[None]:
        """Marks a request that may soon classify, so the batcher waits for it (briefly)."""
        with self._count_lock:
            self._preparing += 1
        self._local.preparing = True
        try:
            yield
        finally:
            self._submitted()

    def _submitted(self) -> None:
        if getattr(self._local, "preparing", False):
            self._local.preparing = False
            with self._count_lock:
                self._preparing -= 1

    def on_worker_start(self) -> None:
        """In `background` mode a worker starts loading as soon as it exists."""
        if self.settings.load_mode == "background":
            self.model.start()

    @property
    def device(self) -> str:
        return self.model.device

    def classify(self, images: list[np.ndarray]) -> list[Prediction]:
        self.model.wait(self.settings.load_timeout_seconds)
        self._submitted()
        futures = self.batcher.submit(images)
        try:
            return [Prediction(future.result(timeout=self.settings.load_timeout_seconds)) for future in futures]
        except FutureTimeout as exc:
            raise Unavailable("inference did not finish in time") from exc
