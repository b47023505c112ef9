"""The benchmark's peers: KServe and MLServer serving the shipped weights, each from a venv of its own.

Both run the function's own preprocessing and forward pass (`bench.peers.network`), single view,
one worker, each server's defaults otherwise; only the request path and the ports are set. The
venvs live under `.cache/bench/` and are made on first use: the peer, then the model's packages at
the function's pins (mxnet 1.9.1, numpy 1.23.5); the repository reaches them on `PYTHONPATH`, so
none of the function's server dependencies (uvicorn, ...) are forced onto the peers' pins.
"""

from dataclasses import dataclass
from pathlib import Path

from bench.venvs import CACHE, ensure, installed_version

MODEL_PACKAGES = ("mxnet==1.9.1", "numpy==1.23.5", "gluoncv==0.10.5.post0", "pillow==13.0.0")
# The request path all three servers answer: KServe v1's, so that the same request goes to each.
V1_PATH = "/v1/models/cifar10:predict"


@dataclass(frozen=True)
class Peer:
    name: str
    package: str  # pinned, e.g. "kserve==0.11.2"
    contemporaries: tuple[str, ...] = ()  # pins the peer needs from its own time

    def python(self) -> Path:
        """The peer's interpreter (its venv made on first use: a few minutes)."""
        return ensure(self.name, (self.package, *self.contemporaries, *MODEL_PACKAGES))

    def version(self) -> str:
        return installed_version(self.python(), self.package.split("==")[0])


KSERVE = Peer("kserve", "kserve==0.11.2")
# uvloop 0.22 made `get_event_loop` refuse to create a loop, which MLServer 1.7.1's inference
# worker relies on at start-up (mlserver/parallel/worker.py): the uvloop of its day, 0.21.
MLSERVER = Peer("mlserver", "mlserver==1.7.1", ("uvloop==0.21.0",))


def kserve_command(python: Path, port: int, grpc_port: int) -> list[str]:
    """KServe's model server (uvicorn, one worker, its gRPC server too) with the custom predictor."""
    return [str(python), "-m", "bench.peers.kserve_predictor", f"--http_port={port}", f"--grpc_port={grpc_port}"]


def mlserver_command(python: Path, port: int, grpc_port: int, metrics_port: int) -> list[str]:
    """`mlserver start` on a folder holding its settings and the runtime's model settings."""
    folder = CACHE / "mlserver"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(
        f'{{"http_port": {port}, "grpc_port": {grpc_port}, "metrics_port": {metrics_port}}}\n'
    )
    (folder / "model-settings.json").write_text(
        '{"name": "cifar10", "implementation": "bench.peers.mlserver_runtime.Cifar10Runtime"}\n'
    )
    return [str(python.parent / "mlserver"), "start", str(folder)]
