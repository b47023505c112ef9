"""Pieces every protocol needs: JSON and base64 parsing, image-count limit, decoding, top-k."""

import base64
import binascii
import json

import numpy as np
from flask import Request

from function.cifar10 import CLASSES
from function.config import Settings
from function.errors import InvalidBase64, InvalidJSON, InvalidRequest, RequestError, TooManyImages
from function.imaging import decode

IMAGE_TYPES = ("image/", "application/octet-stream")  # media types of a bare encoded image


def parse_json(body: bytes) -> object:
    if not body:
        raise InvalidJSON("the body is empty; expected JSON")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidJSON(f"the body is not valid JSON: {exc}") from exc


def b64decode(text: object, where: str) -> bytes:
    """Strict base64 (standard or URL-safe alphabet), optionally as a `data:` URI."""
    if not isinstance(text, str):
        raise InvalidBase64(f"{where}: expected a base64 string, got {type(text).__name__}")
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    text = "".join(text.split())
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
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


def decode_all(blobs: list[bytes], settings: Settings) -> list[np.ndarray]:
    """Decode every image of a request; an error names the image's position when there are several."""
    check_count(len(blobs), settings)
    images = []
    for position, blob in enumerate(blobs):
        try:
            images.append(
                decode(
                    blob,
                    settings.max_image_pixels,
                    max_decode_bytes=settings.max_decode_bytes,
                    max_image_segments=settings.max_image_segments,
                    max_jpeg_scans=settings.max_jpeg_scans,
                )
            )
        except RequestError as exc:
            if len(blobs) > 1:
                exc.message = f"image {position}: {exc.message}"
                exc.args = (exc.message,)
            raise
    return images


def top_k(request: Request, settings: Settings) -> int:
    """`?top_k=` from the query, else the TOP_K setting; 1 to the number of classes."""
    raw = request.args.get("top_k")
    if raw is None:
        return min(settings.top_k, len(CLASSES))
    try:
        k = int(raw)
    except ValueError as exc:
        raise InvalidRequest(f"top_k must be a whole number, not {raw!r}") from exc
    if not 1 <= k <= len(CLASSES):
        raise InvalidRequest(f"top_k must be between 1 and {len(CLASSES)}")
    return k
