"""Settings come from the environment, with defaults, and refuse values the function cannot use."""

from pathlib import Path

import pytest

from function.config import DEFAULT_PARAMS, ConfigError, Settings, markdown_table


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.model_params == DEFAULT_PARAMS
    assert settings.load_mode == "background"
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.max_images_per_request == 64
    assert settings.top_k == 3
    assert settings.flip_average is True
    assert settings.reply_source == "/knative/cifar10-function"


def test_environment_overrides_and_types() -> None:
    settings = Settings.from_env(
        {
            "MODEL_PARAMS": "/m/p.params",
            "TOP_K": "5",
            "CLOUDEVENT_REPLY": "false",
            "FLIP_AVERAGE": "no",
            "DEDUP_CACHE_BYTES": "1000",
            "LOAD_MODE": "first-request",
            "K_SERVICE": "cifar",
        }
    )
    assert settings.model_params == Path("/m/p.params")
    assert settings.top_k == 5
    assert settings.cloudevent_reply is False
    assert settings.flip_average is False
    assert settings.dedup_cache_bytes == 1000
    assert settings.load_mode == "first-request"
    assert settings.reply_source == "/knative/cifar"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DEVICE": "tpu"}, "DEVICE"),
        ({"LOAD_MODE": "eager"}, "LOAD_MODE"),
        ({"TOP_K": "three"}, "TOP_K"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES"),
        ({"MAX_DECODE_BYTES": "0"}, "MAX_DECODE_BYTES"),
        ({"MAX_IMAGE_SEGMENTS": "-1"}, "MAX_IMAGE_SEGMENTS"),
        ({"MAX_JPEG_SCANS": "0"}, "MAX_JPEG_SCANS"),
        ({"CLOUDEVENT_REPLY": "maybe"}, "CLOUDEVENT_REPLY"),
        ({"WORKERS": "-1"}, "WORKERS"),
        ({"HEADER_TIMEOUT_SECONDS": "0"}, "HEADER_TIMEOUT_SECONDS"),
        ({"PORT": "70000"}, "PORT"),
        ({"QUEUE_MAX_IMAGES": "10"}, r"MAX_IMAGES_PER_REQUEST \(64\) must not exceed QUEUE_MAX_IMAGES \(10\)"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_readme_table_is_the_settings_table() -> None:
    """One source of settings: the README's configuration table is `python -m function.config`'s."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert markdown_table() in readme
