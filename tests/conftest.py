"""Shared fixtures: a parameter file of our own, image factories, and the real server process.

Every route test talks HTTP to the real server (`python -m function` on 127.0.0.1): `client` is one
server shared by a test module, `make_client(**env)` starts one with its own settings.
"""

import io
import json
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
# The project's shared folder beside the clone (CIFAR-10's training JPEGs, Knative's CRD schemas),
# as every developer machine and CI have it; a clone elsewhere skips what needs it, saying why.
SHARED = ROOT.parent / "shared"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"needs the project's shared folder at {SHARED} (data set and Knative schemas)"
)


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
def params() -> Path:
    return SHIPPED


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def jpeg() -> bytes:
    return (DATA / "horse.jpg").read_bytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The real server process on 127.0.0.1, one inference worker unless asked for more."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = int(env.get("PORT") or free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed with the process; a full pipe would block
        full_env = {**os.environ, "HOST": "127.0.0.1", "WORKERS": "1", "MODEL_PARAMS": str(SHIPPED), **env}
        full_env["PORT"] = str(self.port)
        self.process = subprocess.Popen(
            function_command(), cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )

    def wait(self, path: str = "/health/readiness", status: int = 200, timeout: float = 90) -> requests.Response:
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
            time.sleep(0.05)
        raise TimeoutError(f"{path} did not answer {status} within {timeout} s:\n{self.output()}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


class Reply:
    """A `requests` response with the few conveniences the route tests use."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.data = response.content
        self.mimetype = response.headers.get("Content-Type", "").split(";")[0]

    @property
    def json(self) -> object:
        return json.loads(self.data)


class Client:
    """HTTP to a real server: `post(path, data=..., json=..., content_type=..., headers=..., files=...)`.

    A connection idle for IDLE_REUSE_SECONDS is not reused: the server closes idle keep-alive
    connections after KEEPALIVE_TIMEOUT_SECONDS (5), and a request sent on one at that very moment
    fails with RemoteDisconnected (seen once in CI, after other tests' servers kept this one idle).
    """

    IDLE_REUSE_SECONDS = 2.0

    def __init__(self, server: Server) -> None:
        self.server = server
        self.session = requests.Session()
        self.used = time.monotonic()

    def request(self, method: str, path: str, content_type: str | None = None, **kwargs) -> Reply:
        headers = dict(kwargs.pop("headers", {}))
        if content_type is not None:
            headers["Content-Type"] = content_type
        kwargs.setdefault("timeout", 60)
        if time.monotonic() - self.used > self.IDLE_REUSE_SECONDS:
            self.session.close()  # its pooled connections; the next request opens a new one
        try:
            return Reply(self.session.request(method, self.server.url + path, headers=headers, **kwargs))
        finally:
            self.used = time.monotonic()

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> Reply:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs) -> Reply:
        return self.request("DELETE", path, **kwargs)


def worker_pids(server: Server) -> list[int]:
    """The server's inference worker processes (multiprocessing's spawn children)."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(**env: str) -> Server:
        server = Server(env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_client(start_server: Callable[..., Server]) -> Callable[..., Client]:
    """`make_client(**env)`: a ready server with these settings (readiness not awaited in first-request mode)."""

    def make(**env: str) -> Client:
        server = start_server(**env)
        server.wait("/health/liveness")
        return Client(server)

    return make


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One ready server (shipped weights) shared by a module's tests."""
    srv = Server({})
    srv.wait()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server)
