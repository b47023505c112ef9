"""Coverage-guided fuzz target (atheris) over every protocol's parsing and image decoding.

    python -m tests.fuzz.fuzz_requests -atheris_runs=20000   # `make fuzz` runs a bounded session

The first byte picks a seed request (or raw image decoding); the rest is the mutated body.
"""

import contextlib
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from function.errors import ClientError
    from function.imaging import decode
    from tests.asgi import InProcess
    from tests.fuzz import corpus

REQUESTS = corpus.requests()
APP = None


def client():
    global APP
    if APP is None:
        APP = InProcess(MAX_IMAGE_PIXELS="4000000", WORKERS="1", ACCESS_LOG="false")
    return APP


def one_input(data: bytes) -> None:
    if not data:
        return
    choice, body = data[0] % (len(REQUESTS) + 1), data[1:]
    if choice == len(REQUESTS):
        with contextlib.suppress(ClientError):
            decode(body, 4_000_000)
        return
    path, headers, _ = REQUESTS[choice]
    status, answer_headers, data = client().post(path, headers, body)
    corpus.check_answer(status, answer_headers.get("content-type", ""), data)


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
