"""The request layer's own checks, beside the server tests that reach them through a socket."""

import asyncio

import pytest

from function.errors import BodyTooLarge, InvalidRequest, RequestTimeout
from function.http import ClientGone, asgi_body_reader, check_declared_length


@pytest.mark.parametrize("declared", ["0", "100", "0000000000000000000000000100"])  # leading zeros are still 100
def test_a_declared_length_within_the_limit_passes(declared: str) -> None:
    check_declared_length({"content-length": declared}, 100)
    check_declared_length({}, 100)  # none declared: a chunked body is bounded while it is read


@pytest.mark.parametrize("declared", ["101", "9" * 19, "1" + "0" * 400])  # 400 digits: refused before int()
def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read(declared: str) -> None:
    with pytest.raises(BodyTooLarge, match="MAX_BODY_BYTES"):
        check_declared_length({"content-length": declared}, 100)


@pytest.mark.parametrize("declared", ["-1", "+5", " 5", "5 ", "0x10", "1e3", "١٢", ""])  # Arabic-Indic digits too
def test_a_declared_length_that_is_not_ascii_digits_is_400(declared: str) -> None:
    with pytest.raises(InvalidRequest, match="Content-Length"):
        check_declared_length({"content-length": declared}, 100)


def reader_of(*messages: dict, then_wait: bool = False):
    """An ASGI receive that hands out `messages`, then waits forever if `then_wait`."""
    queue = list(messages)

    async def receive() -> dict:
        if queue:
            return queue.pop(0)
        assert then_wait, "read past the last message"
        await asyncio.Event().wait()
        return {}

    return asgi_body_reader(receive)


def test_the_asgi_body_is_joined_from_its_chunks() -> None:
    read = reader_of({"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.request", "body": b"c"})
    assert asyncio.run(read(3, 5)) == b"abc"


def test_the_asgi_body_is_413_once_past_the_limit_and_408_when_it_stalls() -> None:
    big = reader_of({"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.request", "body": b"cd"})
    with pytest.raises(BodyTooLarge, match="MAX_BODY_BYTES"):
        asyncio.run(big(3, 5))
    stalled = reader_of({"type": "http.request", "body": b"a", "more_body": True}, then_wait=True)
    with pytest.raises(RequestTimeout, match="BODY_TIMEOUT_SECONDS"):
        asyncio.run(stalled(10, 0.05))
    gone = reader_of({"type": "http.request", "body": b"a", "more_body": True}, {"type": "http.disconnect"})
    with pytest.raises(ClientGone):
        asyncio.run(gone(10, 5))
