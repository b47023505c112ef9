"""The original tutorial's contract: multipart `POST /predict` with the file field `img`.

Old clients that ask for `text/plain` get the tutorial's sentence instead of JSON. The body is
parsed with python-multipart (Starlette's parser), already in memory and within MAX_BODY_BYTES.
"""

from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import create_form_parser

from function.config import Settings
from function.errors import InvalidRequest, TooManyParts, UnsupportedMediaType
from function.http import Request, Response, json_response
from function.prediction import Prediction
from function.protocols.common import parsed, top_k

if TYPE_CHECKING:
    from function.lifecycle import Function

FIELD = "img"


def image_bytes(request: Request, settings: Settings) -> bytes:
    """The bytes of the form's `img` part (a file, or a plain field holding the image); a form of more than
    MAX_FORM_PARTS parts is refused as soon as the parser meets one more (220,000 tiny parts took 1.4 s)."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"/predict takes multipart/form-data with a file field {FIELD!r}, "
            f"not {request.mimetype or 'no content type'}"
        )
    found: list[bytes] = []
    parts = 0

    def on_part(part) -> None:
        nonlocal parts
        parts += 1
        if parts > settings.max_form_parts:
            raise TooManyParts(f"the form has more than {settings.max_form_parts} parts (MAX_FORM_PARTS)")
        if part.field_name == FIELD.encode() and not found:
            found.append(part.file_object.getvalue() if hasattr(part, "file_object") else part.value or b"")

    headers = {"Content-Type": request.content_type.encode("latin-1")}
    try:
        parser = create_form_parser(headers, on_part, on_part, config={"MAX_MEMORY_FILE_SIZE": float("inf")})
        parser.write(request.require_body())
        parser.finalize()
    except (MultipartParseError, ValueError) as exc:
        raise InvalidRequest(f"malformed multipart body: {str(exc)[:200]}") from exc
    if not found:
        raise InvalidRequest(f"the multipart body has no file field {FIELD!r}")
    return found[0]


def wants_text(request: Request) -> bool:
    """Only a client that prefers text/plain to JSON gets the sentence."""
    accept = (request.header("accept") or "").lower()
    return "text/plain" in accept and "application/json" not in accept


def sentence(prediction: Prediction) -> str:
    return f"The input picture is classified as [{prediction.label}], with probability {prediction.probability:.3f}."


async def predict(request: Request, fn: "Function") -> Response:
    """`POST /predict` (and `POST /` with a multipart body)."""
    k = top_k(request, fn.settings)
    (prediction,) = await fn.classify([await parsed(request.body, lambda: image_bytes(request, fn.settings))])
    if wants_text(request):
        return Response(200, sentence(prediction).encode(), {"Content-Type": "text/plain; charset=utf-8"})
    return json_response(prediction.as_json(k, fn.device))
