"""The load generators, posting one request body over and over on loopback: wrk (Debian's package;
each connection sends its next request when its answer arrives), and hey (Debian's package; Go's
`net/http` client, whose transport keeps a pool of keep-alive connections and hands each request
the most recently idle one, as queue-proxy's does)."""

import base64
import json
import os
import re
import resource
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "post_body.lua"
TIMEOUT_SECONDS = 10  # wrk counts an answer slower than this as an error
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class Body:
    """A request: its path, body (kept in a file for wrk's Lua script) and content type."""

    path: str
    file: Path
    content_type: str

    def read(self) -> bytes:
        return self.file.read_bytes()


def multipart(image: bytes, field: str = "img", filename: str = "image.jpg") -> tuple[bytes, str]:
    """The tutorial's form: one file part named `img`."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + image + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def kserve_v1(image: bytes) -> bytes:
    """A KServe v1 request with the image as one base64 instance."""
    return json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}]}).encode()


def write(folder: Path, name: str, path: str, body: bytes, content_type: str) -> Body:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}.body"
    file.write_bytes(body)
    return Body(path, file, content_type)


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * UNITS[unit]


def wrk(base_url: str, body: Body, connections: int, seconds: int) -> dict:
    """One wrk run of `seconds` with `connections` keep-alive connections (see `parse`)."""
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        f"{TIMEOUT_SECONDS}s",
        "-s",
        str(LUA),
        base_url + body.path,
    ]
    env = {**os.environ, "BENCH_BODY": str(body.file), "BENCH_CONTENT_TYPE": body.content_type}
    out, cores = _run(command, env, seconds)
    return {**parse(out, connections), "client_cores": cores}


def hey(base_url: str, body: Body, connections: int, seconds: int) -> dict:
    """One hey run of `seconds`: `connections` goroutines sharing one Go transport (see `parse_hey`)."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(connections), "-t", str(TIMEOUT_SECONDS), "-m", "POST"]
    command += ["-D", str(body.file), "-T", body.content_type, base_url + body.path]
    out, cores = _run(command, dict(os.environ), seconds)
    return {**parse_hey(out, connections), "client_cores": cores}


def _run(command: list[str], env: dict[str, str], seconds: int) -> tuple[str, float]:
    """The client's report, and the cores it took itself over its run (from the kernel's rusage)."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    after, elapsed = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - started
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return out, round(used / elapsed, 3)


def parse_hey(out: str, connections: int) -> dict:
    """hey's report: requests/s counts only 2xx answers (hey's own, and wrk's, count every answer
    and hey's even the failures); errors are the other statuses and the failed requests, and every
    connection counts as one when hey reported nothing."""
    statuses = [(int(code), int(count)) for code, count in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", out, re.M)]
    failed = sum(
        int(count) for count in re.findall(r"^\s+\[(\d+)\]\s+\S", out.partition("Error distribution:")[2], re.M)
    )
    ok = sum(count for code, count in statuses if 200 <= code < 300)
    total = re.search(r"Total:\s+([\d.]+) secs", out)
    seconds = float(total[1]) if total else 0.0
    percentiles = {p: round(float(v) * 1000, 3) for p, v in re.findall(r"^\s+(50|99)% in ([\d.]+) secs", out, re.M)}
    return {
        "concurrency": connections,
        "requests": sum(count for _, count in statuses) + failed,
        "rps": round(ok / seconds, 2) if seconds else 0.0,
        "p50_ms": percentiles.get("50"),
        "p99_ms": percentiles.get("99"),
        "errors": sum(count for code, count in statuses if not 200 <= code < 300) + failed
        or (0 if ok else connections),
    }


def parse(out: str, connections: int) -> dict:
    """wrk's report: requests/s, p50 and p99 in ms, and errors (non-2xx answers, socket errors and
    time-outs; when nothing at all was answered, each connection counts as one)."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    if requests == 0:  # wrk counts no error, but every connection waited in vain
        errors, percentiles = max(errors, connections), {}
    return {
        "concurrency": connections,
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": to_ms(percentiles["50"]) if "50" in percentiles else None,
        "p99_ms": to_ms(percentiles["99"]) if "99" in percentiles else None,
        "errors": errors,
    }
