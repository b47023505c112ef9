"""The MLServer peer: a custom runtime whose custom handler takes the KServe v1 request.

MLServer speaks only the Open Inference Protocol (v2), so the v1 body comes in through a custom
handler (`mlserver.handlers.custom_handler`) on the v1 path: the same request bytes as the other
servers, parsed by MLServer's FastAPI app and dispatched, as MLServer does for every call, to its
inference worker process (`parallel_workers`, 1 by default), which decodes and runs the network.
"""

from mlserver import MLModel
from mlserver.handlers import custom_handler

from bench.peers import V1_PATH
from bench.peers.network import Network


class Cifar10Runtime(MLModel):
    async def load(self) -> bool:
        self.network = Network()
        return True

    @custom_handler(rest_path=V1_PATH)
    async def predict_v1(self, payload: dict) -> dict:
        return self.network.predict_v1(payload)
