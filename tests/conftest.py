"""Shared fixtures: a parameter file of our own, image factories, the app in-process, the real server."""

import io
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from bench.processes import function_command

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
SHIPPED = ROOT / "function" / "weights" / "cifar_resnet20_v1.params"


@pytest.fixture(scope="session")
def random_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real cifar_resnet20_v1 parameter file, randomly initialized with a fixed seed."""
    import mxnet as mx
    from gluoncv.model_zoo import get_model

    mx.random.seed(7)
    net = get_model("cifar_resnet20_v1", classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 32, 32)))
    path = tmp_path_factory.mktemp("weights") / "random.params"
    net.save_parameters(str(path))
    return path


@pytest.fixture(scope="session")
def params(random_params: Path) -> Path:
    """The shipped weights when they exist, else the random ones: protocol tests need only a real net."""
    return SHIPPED if SHIPPED.exists() else random_params


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def jpeg() -> bytes:
    return (DATA / "horse.jpg").read_bytes()


@pytest.fixture
def make_app(params: Path, monkeypatch: pytest.MonkeyPatch) -> Callable:
    """`make_app(**env)`: a fresh functions-framework app (new settings, new model holder)."""
    import functions_framework

    def factory(**env: str):
        monkeypatch.setenv("MODEL_PARAMS", str(params))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return functions_framework.create_app("handle", str(ROOT / "function" / "main.py"))

    return factory


@pytest.fixture
def client(make_app: Callable):
    return make_app().test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The real server process: `functions-framework` (gunicorn) on 127.0.0.1."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # a file, not a pipe: a full pipe would block the server
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed with the process
        # one worker unless a test asks for more: the tests speak of one process's model and metrics
        full_env = {**os.environ, "PORT": str(self.port), "HOST": "127.0.0.1", "WORKERS": "1", **env}
        self.process = subprocess.Popen(
            [*function_command(), "--port", str(self.port)],
            cwd=ROOT,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait(self, path: str = "/health/readiness", status: int = 200, timeout: float = 60) -> requests.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                response = requests.get(self.url + path, timeout=5)
                if response.status_code == status:
                    return response
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{path} did not answer {status} within {timeout} s")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


@pytest.fixture
def start_server(params: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(**env: str) -> Server:
        server = Server({"MODEL_PARAMS": str(params), **env})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(random_params: Path) -> Iterator[Server]:
    """One ready server shared by a module's tests (random weights: protocol behaviour only)."""
    srv = Server({"MODEL_PARAMS": str(SHIPPED if SHIPPED.exists() else random_params)})
    srv.wait()
    yield srv
    srv.stop()
