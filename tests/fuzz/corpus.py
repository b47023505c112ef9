"""Inputs worth mutating: valid images in every format, and one valid request per protocol."""

import base64
import io
import json

from PIL import Image

from tests.conftest import DATA

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
SAMPLE = (DATA / "horse.jpg").read_bytes()


def images() -> list[bytes]:
    source = Image.open(io.BytesIO(SAMPLE))
    encoded = []
    for fmt in FORMATS:
        buffer = io.BytesIO()
        source.convert("P" if fmt == "GIF" else "RGB").save(buffer, fmt)
        encoded.append(buffer.getvalue())
    return encoded


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def requests() -> list[tuple[str, dict[str, str], bytes]]:
    """(path, headers, body) of a valid request of each protocol."""
    boundary = "fuzzboundary"
    multipart = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="img"; filename="h.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + SAMPLE
        + f"\r\n--{boundary}--\r\n".encode()
    )
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "/fuzz",
        "type": "dev.cifar10.classify.request",
        "data_base64": b64(SAMPLE),
    }
    return [
        ("/predict", {"Content-Type": f"multipart/form-data; boundary={boundary}"}, multipart),
        ("/", {"Content-Type": "image/jpeg"}, SAMPLE),
        ("/", {"Content-Type": "application/json"}, json.dumps({"instances": [{"b64": b64(SAMPLE)}]}).encode()),
        (
            "/v2/models/cifar10/infer",
            {},
            json.dumps(
                {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(SAMPLE)]}]}
            ).encode(),
        ),
        ("/", {"Content-Type": "application/cloudevents+json"}, json.dumps(event).encode()),
        (
            "/",
            {
                "Content-Type": "image/jpeg",
                "ce-specversion": "1.0",
                "ce-id": "2",
                "ce-source": "/fuzz",
                "ce-type": "dev.cifar10.classify.request",
            },
            SAMPLE,
        ),
    ]


def check_answer(status: int, content_type: str, body: bytes) -> None:
    """The invariant: a well-formed 2xx, or a 4xx with the JSON error body; never a 5xx."""
    assert status < 500, (status, body[:300])
    if status >= 400:
        error = json.loads(body)["error"]
        if not isinstance(error, str):  # the Open Inference Protocol's errors are a bare message
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
    elif status == 200 and content_type.startswith("application/json"):
        json.loads(body)
