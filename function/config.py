"""Every setting of the function, read from the environment once, with its default.

The README's configuration table lists the same names; `Settings.from_env` is the only place
that reads `os.environ`.
"""

import os
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_PARAMS = Path(__file__).parent / "weights" / "cifar_resnet20_v1.params"
LOAD_MODES = ("background", "first-request")
DEVICES = ("auto", "cpu", "gpu")


class ConfigError(ValueError):
    """A setting has a value the function cannot run with; raised at start-up, not per request."""


@dataclass(frozen=True)
class Settings:
    model_params: Path = DEFAULT_PARAMS
    model_name: str = "cifar10"
    device: str = "auto"
    load_mode: str = "background"
    load_timeout_seconds: float = 60.0
    load_retry_seconds: float = 30.0
    flip_average: bool = True
    top_k: int = 3
    max_body_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    max_decode_bytes: int = 64 * 1024 * 1024
    max_image_segments: int = 10_000
    max_jpeg_scans: int = 32
    max_images_per_request: int = 64
    batch_max_size: int = 32
    batch_max_delay_ms: float = 2.0
    queue_max_images: int = 256
    cloudevent_reply: bool = True
    reply_type: str = "dev.cifar10.classify.response"
    reply_source: str = ""
    dedup_cache_size: int = 1024
    dedup_ttl_seconds: float = 600.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        """Build settings from `MODEL_PARAMS`, `DEVICE`, ... (the field names, upper-cased)."""
        env = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = env.get(field.name.upper())
            if raw is None or raw == "":
                continue
            values[field.name] = _parse(field.name, field.type, raw)
        if "reply_source" not in values:
            values["reply_source"] = f"/knative/{env.get('K_SERVICE', 'cifar10-function')}"
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
            "batch_max_size",
            "queue_max_images",
            "top_k",
            "load_timeout_seconds",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.upper()} must be positive")
        for name in ("batch_max_delay_ms", "dedup_cache_size", "dedup_ttl_seconds", "load_retry_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.upper()} must not be negative")
        if not self.reply_type:
            raise ConfigError("REPLY_TYPE must not be empty")


def _parse(name: str, kind: object, raw: str) -> object:
    """Convert one environment value to its field's type, naming the variable when it is wrong."""
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
        raise ConfigError(f"{name.upper()}={raw!r} is not a valid {kind}") from exc
