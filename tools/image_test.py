"""Runs a built image as Knative runs it and checks it from the outside (HTTP, the process table, logs).

    python tools/image_test.py --image localhost/cifar10-function:test-cpu --variant cpu

Used by `make image-test` after it builds each variant with podman. The container gets a read-only
root with a writable scratch mount (TMPDIR there, as the chart's tmpVolume sets it), the image's own
user, no capabilities, no privilege escalation, memory and CPU limits and a `PORT` other than the image's
default. Nothing here knows the server's internals: readiness at /health/readiness, a JPEG body
POSTed to / answered with JSON holding "label", and /metrics in Prometheus' text format.

The GPU variant runs on this machine without a GPU or a driver and must serve on the CPU, with its
fallback driver (LIBCUDA_FALLBACK) off the loader's path, so that a real driver always wins: a
second run mounts a driver where the NVIDIA container runtime puts it and checks that it, not the
fallback, is the one loaded.
"""

import argparse
import io
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data"
CONTAINER_PORT = 9090  # not the image's default 8080, to show that PORT is honoured
SCRATCH = "/scratch"
SCRATCH_SIZE = "256m"  # the chart's tmpVolume.sizeLimit
MEMORY_LIMIT = {"cpu": "2g", "gpu": "4g"}  # chart/ci/cpu-only-values.yaml and the chart's default
CPU_LIMIT = "2"  # both: a CFS quota, as Kubernetes sets from resources.limits.cpu
READY_TIMEOUT_SECONDS = 180.0
REQUEST_TIMEOUT_SECONDS = 60.0
MIN_CORRECT = 9  # of the ten sample images
LOAD_CLIENTS = 8
LOAD_IMAGE_SIDE = 3000  # pixels: each request decodes 9 MP, so requests are still in flight at SIGTERM
LOAD_SECONDS_BEFORE_SIGTERM = 2.0
SECONDS_AFTER_SIGTERM = 0.5
GRACE_SECONDS = 30.0  # Kubernetes' default terminationGracePeriodSeconds
SYSTEM_DRIVER = "/usr/lib/x86_64-linux-gnu/libcuda.so.1"  # where the NVIDIA container runtime mounts it
ERROR_LINE = re.compile(r"\bERROR\b|\bCRITICAL\b|^Traceback ", re.MULTILINE)


@dataclass
class Report:
    """Each check's outcome, printed as it is known; the process exits 1 if any failed."""

    variant: str
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.results.append((name, passed, detail))
        print(f"[{self.variant}] {'PASS' if passed else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        return passed

    @property
    def failed(self) -> int:
        return sum(not passed for _, passed, _ in self.results)


def podman(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def error_lines(logs: str) -> list[str]:
    """Log lines at level ERROR or worse, and tracebacks: a clean start, load and stop has none."""
    return [line for line in logs.splitlines() if ERROR_LINE.search(line)]


def samples() -> dict[str, bytes]:
    return {path.stem: path.read_bytes() for path in sorted(SAMPLES.glob("*.jpg"))}


def large_jpeg() -> bytes:
    """A sample scaled up to LOAD_IMAGE_SIDE: a legitimate request that takes the server a while."""
    with Image.open(SAMPLES / "horse.jpg") as image:
        large = image.convert("RGB").resize((LOAD_IMAGE_SIDE, LOAD_IMAGE_SIDE))
    buffer = io.BytesIO()
    large.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def classify(url: str, jpeg: bytes) -> dict:
    """One request on its own connection, so that a shutdown cannot catch it on a reused one."""
    response = requests.post(
        f"{url}/",
        data=jpeg,
        headers={"Content-Type": "image/jpeg", "Connection": "close"},
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    response.raise_for_status()
    return response.json()


class Container:
    """One detached run of the image with Knative's constraints; removed on exit whatever happened."""

    def __init__(self, image: str, variant: str, extra: tuple[str, ...] = ()) -> None:
        self.image = image
        self.name = f"cifar10-image-test-{variant}-{time.monotonic_ns()}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = (
            "--read-only",
            "--read-only-tmpfs=false",  # a read-only root as Kubernetes makes it: no writable /tmp
            f"--tmpfs={SCRATCH}:rw,size={SCRATCH_SIZE},mode=1777",
            f"--env=TMPDIR={SCRATCH}",
            f"--env=PORT={CONTAINER_PORT}",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            f"--memory={MEMORY_LIMIT[variant]}",
            f"--cpus={CPU_LIMIT}",
            f"--publish=127.0.0.1:{self.port}:{CONTAINER_PORT}",
            *extra,
        )
        self.started = 0.0

    def __enter__(self) -> "Container":
        self.started = time.monotonic()
        podman("run", "--detach", f"--name={self.name}", *self.args, self.image)
        return self

    def __exit__(self, *_: object) -> None:
        podman("rm", "--force", "--time=0", self.name, check=False)

    def running(self) -> bool:
        return podman("inspect", "--format={{.State.Running}}", self.name).strip() == "true"

    def logs(self) -> str:
        result = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr

    def wait_ready(self) -> tuple[float | None, str]:
        """Seconds from `podman run` to a 200 from the readiness probe, or None and the last answer."""
        last = "no answer"
        while time.monotonic() - self.started < READY_TIMEOUT_SECONDS:
            if not self.running():
                return None, f"the container exited: {self.logs()[-2000:]}"
            try:
                response = requests.get(f"{self.url}/health/readiness", timeout=5)
                if response.status_code == 200:
                    return time.monotonic() - self.started, response.text
                last = f"{response.status_code} {response.text[:300]}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.25)
        return None, f"not ready after {READY_TIMEOUT_SECONDS:.0f} s: {last}"

    def uids(self) -> set[str]:
        """The uid of every process in the container, as the host's kernel reports it (no userns here)."""
        rows = podman("top", self.name, "pid", "huser").splitlines()[1:]
        return {row.split()[1] for row in rows if row.strip()}

    def mapped_libcuda(self) -> set[str]:
        """Paths of every libcuda.so.1 mapped by any process in the container."""
        maps = podman("exec", self.name, "sh", "-c", "cat /proc/[0-9]*/maps 2>/dev/null", check=False)
        return {line.split()[-1] for line in maps.splitlines() if line.endswith("libcuda.so.1")}


def check_user(report: Report, image: str, container: Container) -> None:
    user = podman("image", "inspect", "--format={{.Config.User}}", image).strip()
    report.check("the image's USER is a numeric uid other than 0 (runAsNonRoot)", user.isdigit() and user != "0", user)
    uids = container.uids()
    report.check("every process runs as the image's user", uids == {user}, f"uids {sorted(uids)}")


def check_classification(report: Report, url: str, variant: str) -> None:
    answers = {name: classify(url, jpeg) for name, jpeg in samples().items()}
    correct = sum(answer["label"] == name for name, answer in answers.items())
    report.check(
        f"at least {MIN_CORRECT} of the {len(answers)} samples classified right",
        correct >= MIN_CORRECT,
        ", ".join(f"{name}->{answer['label']}" for name, answer in answers.items()),
    )
    if variant == "gpu":
        devices = {answer.get("device") for answer in answers.values()}
        report.check("the GPU image answers from the CPU", devices == {"cpu"}, f"devices {sorted(map(str, devices))}")


def check_metrics(report: Report, url: str) -> None:
    response = requests.get(f"{url}/metrics", timeout=10)
    names = {family.name for family in text_string_to_metric_families(response.text)}
    ours = sorted(name for name in names if name.startswith("cifar10_"))
    report.check(
        "/metrics answers the Prometheus text format with the function's metrics",
        response.status_code == 200 and response.headers.get("Content-Type", "").startswith("text/plain") and ours,
        f"{response.status_code}, {len(ours)} cifar10_* families",
    )


def check_sigterm_under_load(report: Report, container: Container) -> None:
    """Clients keep requests in flight until the signal is sent; every request started before it is answered
    (requests started while the server stops may be refused at connect: they were never accepted)."""
    jpeg = large_jpeg()
    stop = threading.Event()
    outcomes: list[tuple[float, float, str]] = []  # (started, finished, "ok" or what went wrong)

    def client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                outcome = "ok" if "label" in classify(container.url, jpeg) else "no label"
            except (requests.RequestException, ValueError) as exc:
                outcome = type(exc).__name__
            outcomes.append((started, time.monotonic(), outcome))

    clients = [threading.Thread(target=client) for _ in range(LOAD_CLIENTS)]
    for thread in clients:
        thread.start()
    time.sleep(LOAD_SECONDS_BEFORE_SIGTERM)
    signalling = time.monotonic()
    podman("kill", "--signal=TERM", container.name)
    signalled = time.monotonic()
    # uvicorn notices the signal on its next tick (0.1 s): keep requests coming until it has, so some are
    # in flight when it starts draining. Those sent from here on may be refused: they are not counted.
    time.sleep(SECONDS_AFTER_SIGTERM)
    stop.set()
    for thread in clients:
        thread.join()
    try:
        podman("wait", container.name, timeout=GRACE_SECONDS)
        stopped = time.monotonic() - signalled
        exit_code = podman("inspect", "--format={{.State.ExitCode}}", container.name).strip()
    except subprocess.TimeoutExpired:
        stopped, exit_code = None, "still running"
    lost = [outcome for started, _, outcome in outcomes if started < signalling and outcome != "ok"]
    # When the signal landed is the server's to say: its answers logged after uvicorn's "Shutting down"
    # were in flight then.
    log = container.logs()
    after = log[log.find("Shutting down") :].count("function.access: POST / 200") if "Shutting down" in log else 0
    report.check(
        f"SIGTERM under load: every accepted request answered ({LOAD_CLIENTS} clients)",
        not lost and after > 0,
        f"{sum(started < signalling for started, _, _ in outcomes)} requests sent before the signal, "
        f"{len(lost)} lost {sorted(set(lost))}, {after} answered after the server began shutting down",
    )
    report.check(
        f"exit 0 within the {GRACE_SECONDS:.0f} s grace period",
        exit_code == "0",
        f"exit {exit_code}" + (f" after {stopped:.1f} s" if stopped is not None else ""),
    )


def check_logs(report: Report, container: Container) -> None:
    errors = error_lines(container.logs())
    report.check("no ERROR line in the logs", not errors, "; ".join(errors[:5]))


def serve_and_check(report: Report, image: str, variant: str, fallback: str | None) -> None:
    """The main run: ready, then every check over HTTP and the process table, then SIGTERM and the logs."""
    ready_name = "GPU image ready on the CPU without a driver" if variant == "gpu" else "ready"
    with Container(image, variant) as container:
        seconds, detail = container.wait_ready()
        if not report.check(ready_name, seconds is not None, detail if seconds is None else f"{seconds:.1f} s"):
            check_logs(report, container)
            return
        print(f"[{variant}] start to ready: {seconds:.1f} s", flush=True)
        check_user(report, image, container)
        if variant == "gpu":
            loaded = container.mapped_libcuda()
            report.check(
                "without a driver the fallback is the libcuda loaded", loaded == {fallback}, str(sorted(loaded))
            )
        check_classification(report, container.url, variant)
        check_metrics(report, container.url)
        check_sigterm_under_load(report, container)
        check_logs(report, container)


def check_fallback_placement(report: Report, image: str) -> str | None:
    """The fallback exists and is neither on LD_LIBRARY_PATH nor in the loader's cache; returns its path."""
    env = dict(
        line.split("=", 1)
        for line in json.loads(podman("image", "inspect", "--format={{json .Config.Env}}", image))
        if "=" in line
    )
    fallback = env.get("LIBCUDA_FALLBACK")
    if not report.check("LIBCUDA_FALLBACK names the fallback driver", bool(fallback), str(fallback)):
        return None
    folder = str(Path(fallback).parent)
    probe = f"test -f {fallback} && echo file; ldconfig -p | grep -c libcuda.so || true; cat /etc/ld.so.conf.d/*"
    shell = podman("run", "--rm", "--entrypoint=sh", image, "-c", probe)
    on_path = folder in env.get("LD_LIBRARY_PATH", "").split(":")
    report.check(
        "the fallback is off the loader's path (not on LD_LIBRARY_PATH, not in ld.so.conf or its cache)",
        shell.startswith("file\n0\n") and not on_path and folder not in shell,
        shell.replace("\n", " | "),
    )
    return fallback


def check_real_driver_wins(report: Report, image: str, fallback: str) -> None:
    """A libcuda.so.1 where the NVIDIA runtime mounts the driver must be the one loaded, not the fallback."""
    with tempfile.TemporaryDirectory() as folder:
        driver = Path(folder) / "libcuda.so.1"
        copy = subprocess.run(
            ["podman", "run", "--rm", "--entrypoint=cat", image, fallback], capture_output=True, timeout=120, check=True
        )
        driver.write_bytes(copy.stdout)  # answers "no device" like the fallback; only its path differs
        driver.chmod(0o755)
        with Container(image, "gpu", (f"--volume={driver}:{SYSTEM_DRIVER}:ro",)) as container:
            seconds, detail = container.wait_ready()
            if not report.check("ready with a driver in the system library path", seconds is not None, detail):
                return
            answer = classify(container.url, samples()["horse"])
            loaded = container.mapped_libcuda()
            report.check(
                "a driver in the system library path wins over the fallback",
                loaded == {SYSTEM_DRIVER} and answer["label"] == "horse",
                f"loaded {sorted(loaded)}",
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--variant", choices=("cpu", "gpu"), required=True)
    args = parser.parse_args()
    report = Report(args.variant)
    started = time.monotonic()
    size = int(podman("image", "inspect", "--format={{.Size}}", args.image))
    print(f"[{args.variant}] image {args.image}: {size / 1e6:.0f} MB", flush=True)
    try:
        fallback = None
        if args.variant == "gpu":
            fallback = check_fallback_placement(report, args.image)
            if fallback:
                check_real_driver_wins(report, args.image, fallback)
        serve_and_check(report, args.image, args.variant, fallback)
    except Exception as exc:  # a check that raises is a failure with its cause, not a crash of the run
        report.check("the checks ran to the end", False, f"{type(exc).__name__}: {exc}")
    passed = len(report.results) - report.failed
    print(f"[{args.variant}] image-test took {time.monotonic() - started:.0f} s")
    print(f"image-test-{args.variant}: {passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
