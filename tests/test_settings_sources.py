"""One source of settings: function/config.py, and every other list of them checked against it.

The README's table is printed from config.py (tests/test_config.py); here the chart: each
`function.*` value sets the variable of its name (upper snake case), that variable is a setting of
the function, the schema describes exactly those values, every setting is reachable through the
chart (or says why not), and `extraEnv` may not shadow any variable the chart sets.
"""

import json
from dataclasses import fields

import pytest
import yaml

from function.config import Settings
from function.device import SUPPORTED_RANGE
from tests.chart_render import CHART, CI_VALUES, env, template

SETTINGS = {item.name.upper() for item in fields(Settings)}
NOT_FROM_FUNCTION_VALUES = {
    "PORT": "Knative sets it",
    "HOST": "the container must listen on every address",
    "GPU_MPS": "set from gpu.mps",
    "MODEL_NAME": "the routes' model name: the helm test and the README's examples name cifar10",
}
LIBRARY_VARIABLES = {"OMP_NUM_THREADS": "MXNet", "TMPDIR": "Python's tempfile"}
FUNCTION_VALUES = yaml.safe_load((CHART / "values.yaml").read_text())["function"]


def env_name(key: str) -> str:
    """The chart's cifar10.envName: camelCase to UPPER_SNAKE, ompThreads to OMP_NUM_THREADS."""
    if key == "ompThreads":
        return "OMP_NUM_THREADS"
    return "".join(f"_{c}" if c.isupper() else c.upper() for c in key)


def test_every_function_value_is_a_setting_and_every_setting_a_value() -> None:
    names = {env_name(key) for key in FUNCTION_VALUES} - set(LIBRARY_VARIABLES)
    assert names <= SETTINGS, names - SETTINGS
    assert SETTINGS - names == set(NOT_FROM_FUNCTION_VALUES)


def test_the_schema_describes_exactly_the_function_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["function"]
    assert set(schema["properties"]) == set(FUNCTION_VALUES)
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=["defaults", *(v.name for v in CI_VALUES)])
def test_the_rendered_environment_holds_only_settings(values) -> None:
    rendered = env(*(["-f", str(values)] if values else []))
    document = yaml.safe_load(values.read_text()) if values else {}
    user_set = {e["name"] for e in document.get("extraEnv") or []}  # the user's own variables
    unknown = set(rendered) - SETTINGS - set(LIBRARY_VARIABLES) - user_set
    assert not unknown, unknown


@pytest.mark.parametrize("name", sorted({env_name(key) for key in FUNCTION_VALUES} | {"GPU_MPS", "REPLY_SOURCE"}))
def test_extra_env_may_not_shadow_a_variable_the_chart_sets(name: str) -> None:
    result = template("--set", f"extraEnv[0].name={name}", "--set", "extraEnv[0].value=x")
    assert result.returncode != 0 and "the chart sets it from" in result.stderr


def test_the_chart_and_the_function_declare_the_same_gpu_range() -> None:
    majors = yaml.safe_load((CHART / "values.yaml").read_text())["gpu"]["supportedComputeMajors"]
    (low, _), (high, _) = SUPPORTED_RANGE
    assert majors == list(range(low, high + 1))
