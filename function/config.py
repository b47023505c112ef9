"""Every setting of the function, read from the environment once, with its default and meaning.

`Settings.from_env` is the only reader of `os.environ` for the function's own settings; the README's
configuration table, the chart's environment and its schema are checked against `SETTINGS_TABLE`
(`python -m function.config` prints the table) so the lists cannot drift apart.
"""

import os
import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

DEFAULT_PARAMS = Path(__file__).parent / "weights" / "cifar_resnet20_v1.params"
LOAD_MODES = ("background", "first-request")
DEVICES = ("auto", "cpu", "gpu")
SERVICE_NAME = "cifar10-function"


class ConfigError(ValueError):
    """A setting has a value the function cannot run with; raised at start-up, not per request."""


def _setting(default: object, doc: str, *, env_default: str | None = None) -> object:
    return field(default=default, metadata={"doc": doc, "env_default": env_default})


@dataclass(frozen=True)
class Settings:
    # The model and where it runs.
    model_params: Path = _setting(
        DEFAULT_PARAMS,
        "parameter file (gluon `save_parameters` of gluoncv's `cifar_resnet20_v1`)",
        env_default="function/weights/cifar_resnet20_v1.params",
    )
    model_name: str = _setting("cifar10", "the model's name in the KServe v1 and OIP v2 routes")
    device: str = _setting(
        "auto",
        "`auto` (worker i on supported GPU i mod n, else the CPU, with a warning naming a GPU it cannot use), "
        "`cpu`, or `gpu` (503 with the device's error when no supported GPU is visible); see GPU support",
    )
    workers: int = _setting(
        0,
        "inference worker processes, each with its own copy of the network; 0 sizes them from the CPUs the "
        "pod may use (at most 4 per GPU unless `GPU_MPS`)",
    )
    gpu_mps: bool = _setting(False, "the GPUs are shared through NVIDIA MPS: no cap of 4 workers per GPU")
    load_mode: str = _setting(
        "background",
        "`background`: workers load as soon as they start (ready once all are warmed up); "
        "`first-request`: nothing loads until a request needs the model",
    )
    load_timeout_seconds: float = _setting(60.0, "how long a request waits for the model before 503")
    load_retry_seconds: float = _setting(30.0, "least interval between two attempts to load a broken parameter file")
    flip_average: bool = _setting(
        True,
        "average each image's probabilities with those of its mirror image (one forward pass of twice the batch); "
        "the model card's `validation_accuracy` is measured this way; `false` halves the compute per image",
    )
    top_k: int = _setting(3, "length of `top` in answers (`?top_k=` overrides it per request)")
    # Limits on what one request may cost.
    max_body_bytes: int = _setting(10 * 1024 * 1024, "largest request body, judged before reading it")
    max_image_pixels: int = _setting(50_000_000, "largest image, in pixels, judged from its header before decoding")
    max_decode_bytes: int = _setting(
        64 * 1024 * 1024,
        "memory one image's decoding may hold, estimated from its header before decoding (413 above)",
    )
    max_image_segments: int = _setting(
        10_000, "markers, chunks or blocks an image may hold before its pixel data (413 above)"
    )
    max_jpeg_scans: int = _setting(32, "scans in a progressive JPEG (libjpeg's default progressive JPEG has 10)")
    max_images_per_request: int = _setting(64, "most images in one request (at most `QUEUE_MAX_IMAGES`)")
    max_form_parts: int = _setting(16, "most parts in a multipart form (the tutorial's has one)")
    max_url_bytes: int = _setting(8192, "longest request target (path and query); longer is 414")
    max_header_bytes: int = _setting(16384, "largest total of header names and values; larger is 431")
    header_timeout_seconds: float = _setting(
        10.0, "a connection must deliver a request's headers within this; else 408 and closed"
    )
    body_timeout_seconds: float = _setting(30.0, "a request's whole body must arrive within this; else 408 and closed")
    keepalive_timeout_seconds: float = _setting(5.0, "an idle keep-alive connection is closed after this")
    send_timeout_seconds: float = _setting(
        30.0, "a client that reads none of its answers for this long while they back up is cut off"
    )
    shutdown_timeout_seconds: float = _setting(
        25.0, "on SIGTERM, how long requests in flight may take before the server exits"
    )
    # Batching.
    batch_max_size: int = _setting(32, "most images in one forward pass (larger on a GPU: the chart sets 64)")
    batch_max_bytes: int = _setting(
        4 << 20,
        "most encoded image bytes in one forward pass unless it holds one image: a few phone photos share "
        "a pass without one worker holding seconds of decoding",
    )
    queue_max_images: int = _setting(256, "images that may wait for a worker before 429")
    worker_timeout_seconds: float = _setting(
        60.0, "a batch not answered within this ends its worker (killed, replaced; its images retried alone)"
    )
    # CloudEvents.
    cloudevent_reply: bool = _setting(True, "reply with an event (200) or answer 202 with no body")
    reply_type: str = _setting("dev.cifar10.classify.response", "type of reply events")
    reply_source: str = _setting(
        "", "source of reply events (`/knative/cifar10-function` without K_SERVICE)", env_default="/knative/$K_SERVICE"
    )
    dedup_cache_bytes: int = _setting(
        16 * 1024 * 1024, "bytes of replies kept for redelivered CloudEvents (0 keeps none)"
    )
    dedup_ttl_seconds: float = _setting(600.0, "how long a reply is kept for redeliveries")
    # The server.
    port: int = _setting(8080, "listening port (Knative sets it)")
    host: str = _setting("0.0.0.0", "listening address")
    log_level: str = _setting("INFO", "Python logging level; logs go to stdout")
    access_log: bool = _setting(
        True,
        "one log line per request (method, route, status, milliseconds, request id), written once the front "
        "waits on a forward pass, at most 50 ms late",
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        """Build settings from `MODEL_PARAMS`, `DEVICE`, ... (the field names, upper-cased)."""
        env = os.environ if environ is None else environ
        values = {}
        for item in fields(cls):
            raw = env.get(item.name.upper())
            if raw is None or raw == "":
                continue
            values[item.name] = parse_setting(item.name, item.type, raw)
        if "reply_source" not in values:
            values["reply_source"] = f"/knative/{env.get('K_SERVICE', SERVICE_NAME)}"
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"DEVICE must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.load_mode not in LOAD_MODES:
            raise ConfigError(f"LOAD_MODE must be one of {', '.join(LOAD_MODES)}, not {self.load_mode!r}")
        positive = (
            "max_body_bytes",
            "max_image_pixels",
            "max_decode_bytes",
            "max_image_segments",
            "max_jpeg_scans",
            "max_images_per_request",
            "max_form_parts",
            "max_url_bytes",
            "max_header_bytes",
            "header_timeout_seconds",
            "body_timeout_seconds",
            "keepalive_timeout_seconds",
            "send_timeout_seconds",
            "worker_timeout_seconds",
            "batch_max_size",
            "batch_max_bytes",
            "queue_max_images",
            "top_k",
            "load_timeout_seconds",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.upper()} must be positive")
        not_negative = ("workers", "dedup_cache_bytes", "dedup_ttl_seconds", "load_retry_seconds")
        for name in (*not_negative, "shutdown_timeout_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.upper()} must not be negative")
        if not 0 < self.port < 65536:
            raise ConfigError(f"PORT must be a TCP port, not {self.port}")
        if not self.reply_type:
            raise ConfigError("REPLY_TYPE must not be empty")
        if self.max_images_per_request > self.queue_max_images:  # such a request would be a 429 forever
            raise ConfigError(
                f"MAX_IMAGES_PER_REQUEST ({self.max_images_per_request}) must not exceed "
                f"QUEUE_MAX_IMAGES ({self.queue_max_images}): a request that large could never be queued"
            )


def parse_setting(name: str, kind: object, raw: str) -> object:
    """Convert one environment value to its field's type, naming the variable when it is wrong (also
    for `python -m function.device`, which must read GPU_MPS as the server does)."""
    try:
        if kind is bool:
            if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw)
        return raw
    except ValueError as exc:
        raise ConfigError(f"{name.upper()}={raw!r} is not a valid {getattr(kind, '__name__', kind)}") from exc


def _default_text(item) -> str:
    if item.metadata.get("env_default"):
        return item.metadata["env_default"]
    value = item.default if item.default is not MISSING else ""
    return str(value).lower() if isinstance(value, bool) else str(value)


SETTINGS_TABLE: list[tuple[str, str, str]] = [
    (item.name.upper(), _default_text(item), item.metadata["doc"]) for item in fields(Settings)
]


def markdown_table() -> str:
    """The README's configuration table, one row per setting."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | `{default}` | {doc} |" for name, default, doc in SETTINGS_TABLE]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
