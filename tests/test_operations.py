"""The readiness body's one word for several workers (the server tests reach it with one worker)."""

import pytest

from function.protocols.operations import _overall


@pytest.mark.parametrize(
    ("states", "overall"),
    [
        (["ready", "ready"], "ready"),
        (["ready", "loading"], "loading"),  # not every worker can answer yet
        (["loading", "not_loaded", "ready"], "not_loaded"),
        (["ready", "failed", "not_loaded"], "failed"),  # a failure is reported whatever the others do
        ([], "not_loaded"),
    ],
)
def test_the_least_advanced_worker_names_the_model_state_but_a_failure_wins(states: list[str], overall: str) -> None:
    assert _overall(iter(states)) == overall
