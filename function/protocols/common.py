"""What the wire formats share: JSON and base64 parsing, the image-count limit, pixel arrays, top-k.

Every value read from a client's JSON is type-checked here or where it is read, so no document,
however odd, reaches the network or a 500.
"""

import asyncio
import base64
import binascii
import json
import warnings
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from function.cifar10 import CLASSES, INPUT_SIZE
from function.config import Settings
from function.errors import InvalidBase64, InvalidJSON, InvalidRequest, TooManyImages
from function.http import Request

# Bodies larger than this are parsed in a thread, so that the event loop goes on answering others
# while a 10 MiB JSON or multipart body is taken apart (the GIL passes to it every 5 ms).
OFF_LOOP_BYTES = 256 * 1024
T = TypeVar("T")
IMAGE_TYPES = ("image/", "application/octet-stream")  # media types of a bare encoded image
TENSOR_SHAPE = (INPUT_SIZE, INPUT_SIZE, 3)  # one image as pixels (KServe v1 instances, OIP v2 UINT8)


async def parsed(body: bytes, parse: Callable[[], T]) -> T:
    """`parse()` here for a small body, in a thread for a large one."""
    return parse() if len(body) <= OFF_LOOP_BYTES else await asyncio.to_thread(parse)


def parse_json(body: bytes) -> object:
    if not body:
        raise InvalidJSON("the body is empty; expected JSON")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        raise InvalidJSON(f"the body is not valid JSON: {str(exc)[:200]}") from exc


_URL_SAFE = str.maketrans("-_", "+/")


def b64decode(text: object, where: str) -> bytes:
    """Strict base64 (standard or URL-safe alphabet), optionally as a `data:` URI."""
    if not isinstance(text, str):
        raise InvalidBase64(f"{where}: expected a base64 string, got {type(text).__name__}")
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    text = "".join(text.split())
    try:
        if "-" in text or "_" in text:  # the URL-safe alphabet, unpadded as it often is; as strict as the other
            if "+" in text or "/" in text:
                raise ValueError("the standard and the URL-safe alphabets mixed")
            text = text.translate(_URL_SAFE) + "=" * (-len(text) % 4)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64(f"{where}: invalid base64: {exc}") from exc


def check_count(count: int, settings: Settings) -> None:
    if count == 0:
        raise InvalidRequest("the request holds no images")
    if count > settings.max_images_per_request:
        raise TooManyImages(
            f"{count} images in one request, over the limit of "
            f"{settings.max_images_per_request} (MAX_IMAGES_PER_REQUEST)"
        )


def pixels(values: object, shape: tuple[int, ...], where: str) -> np.ndarray:
    """JSON numbers as a uint8 array of `shape`: integers 0-255 only (no floats, no 10**400)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.VisibleDeprecationWarning)  # ragged lists
            array = np.asarray(values)
    except (ValueError, TypeError, OverflowError, RecursionError, np.VisibleDeprecationWarning) as exc:
        raise InvalidRequest(f"{where}: expected numbers from 0 to 255 in shape {list(shape)}") from exc
    if array.dtype.kind not in "iuf":  # strings, booleans, objects (ragged lists, integers past 64 bits)
        raise InvalidRequest(f"{where}: expected numbers from 0 to 255 in shape {list(shape)}")
    if array.shape != shape:
        raise InvalidRequest(f"{where}: shape {list(array.shape)}, expected {list(shape)}")
    if not np.all((array >= 0) & (array <= 255) & (array == np.round(array))):
        raise InvalidRequest(f"{where}: pixel values must be integers from 0 to 255")
    return array.astype(np.uint8)


def is_whole_number(text: str, digits: int) -> bool:
    """ASCII digits only, at most `digits` of them: `str.isdigit` also takes '²' and Arabic-Indic digits,
    and `int` refuses strings of over 4,300 digits."""
    return 0 < len(text) <= digits and text.isascii() and text.isdigit()


def top_k(request: Request, settings: Settings) -> int:
    """`?top_k=` from the query, else the TOP_K setting; 1 to the number of classes."""
    raw = request.query("top_k")
    if raw is None:
        return min(settings.top_k, len(CLASSES))
    if not is_whole_number(raw, digits=2) or not 1 <= int(raw) <= len(CLASSES):
        raise InvalidRequest(f"top_k must be a whole number from 1 to {len(CLASSES)}, not {raw[:20]!r}")
    return int(raw)
