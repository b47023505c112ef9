"""The original tutorial's contract: multipart `POST /predict` with the file field `img`.

Old clients that ask for `text/plain` get the tutorial's sentence instead of JSON.
"""

from flask import Request
from werkzeug.exceptions import HTTPException

from function.body_limit import check_not_exceeded
from function.classify import Prediction
from function.config import Settings
from function.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType

FIELD = "img"


def image_bytes(request: Request, settings: Settings) -> bytes:
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"/predict takes multipart/form-data with a file field {FIELD!r}, "
            f"not {request.mimetype or 'no content type'}"
        )
    try:
        upload = request.files.get(FIELD)
    except HTTPException as exc:
        if exc.code == 413:
            raise BodyTooLarge(f"the multipart body is too large: {exc.description}") from exc
        raise InvalidRequest(f"malformed multipart body: {exc.description}") from exc
    except (ValueError, EOFError) as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from exc
    check_not_exceeded(request, settings.max_body_bytes)
    if upload is None:
        raise InvalidRequest(f"the multipart body has no file field {FIELD!r}")
    return upload.read()


def wants_text(request: Request) -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/plain"]) == "text/plain"


def sentence(prediction: Prediction) -> str:
    return f"The input picture is classified as [{prediction.label}], with probability {prediction.probability:.3f}."
