"""The KServe peer: a custom `kserve.Model` predictor, served by `kserve.ModelServer` with its defaults.

    .cache/bench/venv-kserve/bin/python -m bench.peers.kserve_predictor --http_port=8080 --grpc_port=8081

KServe parses the v1 JSON body and calls `predict` on its event loop (one uvicorn worker).
"""

import kserve

from bench.peers.network import Network


class Cifar10(kserve.Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.network: Network | None = None

    def load(self) -> bool:
        self.network = Network()
        self.ready = True
        return self.ready

    def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        return self.network.predict_v1(payload)


if __name__ == "__main__":
    model = Cifar10("cifar10")
    model.load()
    kserve.ModelServer().start([model])
