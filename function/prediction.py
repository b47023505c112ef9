"""`Prediction`: one image's class probabilities, the value every protocol renders."""

from dataclasses import dataclass

import numpy as np

from function.cifar10 import CLASSES, NETWORK


@dataclass(frozen=True)
class Prediction:
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
