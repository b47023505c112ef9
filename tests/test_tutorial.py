"""The tutorial's multipart contract, called directly: no server, no model."""

import pytest

from function.config import Settings
from function.errors import ClientError, InvalidRequest, TooManyParts, UnsupportedMediaType
from function.http import Request
from function.protocols import tutorial

SETTINGS = Settings()


def form(parts: bytes, boundary: str = "b") -> Request:
    return Request("POST", "/predict", b"", {"content-type": f"multipart/form-data; boundary={boundary}"}, parts)


def part(name: str, data: bytes, filename: str | None = "x.jpg") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


def test_the_img_field_as_a_file_or_a_plain_field() -> None:
    two_fields = form(part("other", b"no") + part("img", b"\xff\xd8yes") + b"--b--\r\n")
    assert tutorial.image_bytes(two_fields, SETTINGS) == b"\xff\xd8yes"
    assert tutorial.image_bytes(form(part("img", b"plain", filename=None) + b"--b--\r\n"), SETTINGS) == b"plain"


@pytest.mark.parametrize(
    "request_, error",
    [
        (form(part("image", b"x") + b"--b--\r\n"), InvalidRequest),
        (form(b"--b\r\ngarbage"), InvalidRequest),
        (form(b""), ClientError),
        (Request("POST", "/predict", b"", {"content-type": "multipart/form-data"}, b"x"), InvalidRequest),
        (Request("POST", "/predict", b"", {"content-type": "image/jpeg"}, b"x"), UnsupportedMediaType),
    ],
)
def test_malformed_forms_are_4xx(request_: Request, error: type) -> None:
    with pytest.raises(error):
        tutorial.image_bytes(request_, SETTINGS)


def test_text_only_for_clients_that_prefer_it() -> None:
    def accepting(accept: str) -> Request:
        return Request("POST", "/predict", b"", {"accept": accept}, b"")

    assert tutorial.wants_text(accepting("text/plain"))
    assert not tutorial.wants_text(accepting("application/json, text/plain"))
    assert not tutorial.wants_text(accepting("*/*"))


def test_a_form_of_too_many_parts_is_refused_early() -> None:
    many = form(b"".join(part(f"f{i}", b"x", filename=None) for i in range(1000)) + b"--b--\r\n")
    with pytest.raises(TooManyParts, match="MAX_FORM_PARTS"):
        tutorial.image_bytes(many, SETTINGS)
    sixteen = form(b"".join(part(f"f{i}", b"x", filename=None) for i in range(15)) + part("img", b"y") + b"--b--\r\n")
    assert tutorial.image_bytes(sixteen, SETTINGS) == b"y"
