"""Coverage-guided fuzz target (atheris) over every protocol's parsing and image decoding.

    python -m tests.fuzz.fuzz_requests -atheris_runs=20000   # `make fuzz` runs a bounded session

The first byte picks a seed request (or raw image decoding); the rest is the mutated body.
"""

import contextlib
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import functions_framework

    from function.errors import RequestError
    from function.imaging import decode
    from tests.fuzz import corpus

REQUESTS = corpus.requests()
APP = None


def client():
    global APP
    if APP is None:
        APP = functions_framework.create_app("handle", "function/main.py").test_client()
    return APP


def one_input(data: bytes) -> None:
    if not data:
        return
    choice, body = data[0] % (len(REQUESTS) + 1), data[1:]
    if choice == len(REQUESTS):
        with contextlib.suppress(RequestError):
            decode(body, 4_000_000)
        return
    path, headers, _ = REQUESTS[choice]
    response = client().post(path, data=body, headers=headers)
    corpus.check_answer(response.status_code, response.content_type or "", response.data)


def seeds() -> list[bytes]:
    """Valid inputs for the corpus folder: one per request form, and each image format."""
    return [bytes([i]) + body for i, (_, _, body) in enumerate(REQUESTS)] + [
        bytes([len(REQUESTS)]) + image for image in corpus.images()
    ]


def main(argv: list[str]) -> None:
    """Seed the corpus folders named on the command line, then fuzz."""
    for folder in (Path(a) for a in argv[1:] if not a.startswith("-")):
        folder.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            (folder / f"seed-{i}").write_bytes(seed)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
