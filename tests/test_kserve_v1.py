"""KServe v1 parsing, called directly: no server, no model."""

import base64

import numpy as np
import pytest

from function.config import Settings
from function.errors import InvalidBase64, InvalidRequest, TooManyImages
from function.protocols import kserve_v1

SETTINGS = Settings()


def test_b64_instances_become_encoded_images_and_arrays_become_pixels() -> None:
    jpeg = b"\xff\xd8 not decoded here"
    pixels = np.arange(32 * 32 * 3).reshape(32, 32, 3) % 256
    payloads = kserve_v1.parse({"instances": [{"b64": base64.b64encode(jpeg).decode()}, pixels.tolist()]}, SETTINGS)
    assert payloads[0] == jpeg
    assert payloads[1].dtype == np.uint8 and np.array_equal(payloads[1], pixels)


def test_url_safe_base64_is_read_with_or_without_its_padding() -> None:
    data = b"\xfb\xff\xfe\xd8"
    for text in (base64.urlsafe_b64encode(data).decode(), base64.urlsafe_b64encode(data).decode().rstrip("=")):
        assert kserve_v1.parse({"instances": [{"b64": text}]}, SETTINGS) == [data]


@pytest.mark.parametrize(
    "document, error",
    [
        ({"instances": {"b64": "x"}}, InvalidRequest),
        ({"instances": []}, InvalidRequest),
        ({"images": []}, InvalidRequest),
        ([], InvalidRequest),
        ({"instances": [{"b64": 7}]}, InvalidBase64),
        ({"instances": [{"url": "http://127.0.0.1/x.jpg"}]}, InvalidBase64),
        ({"instances": ["aGVsbG8="]}, InvalidRequest),
        ({"instances": [[[[1, 2, 3]] * 32] * 31]}, InvalidRequest),
        ({"instances": [[[[10**400, 2, 3]] * 32] * 32]}, InvalidRequest),
        ({"instances": [[[[True, False, True]] * 32] * 32]}, InvalidRequest),
        ({"instances": [[[["1", 2, 3]] * 32] * 32]}, InvalidRequest),
        ({"instances": [[[[1.5, 2, 3]] * 32] * 32]}, InvalidRequest),
        ({"instances": [{"b64": "aGVsbG8="}] * 65}, TooManyImages),
        ({"instances": [{"b64": "-_8*"}]}, InvalidBase64),  # URL-safe, with a character of neither alphabet
        ({"instances": [{"b64": "+_8A"}]}, InvalidBase64),  # the two alphabets mixed
    ],
)
def test_bad_documents_name_the_problem(document: object, error: type) -> None:
    with pytest.raises(error):
        kserve_v1.parse(document, SETTINGS)
