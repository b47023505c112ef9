"""Every error a client can cause, each with its HTTP status and a stable code.

Protocols raise these; `main` turns them into `{"error": {"code", "message"}}` in one place.
"""

import typing


class RequestError(Exception):
    """A problem with the request: answered with `status` and a JSON error body."""

    status = 400
    code = "bad_request"
    headers: typing.ClassVar[dict[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidImage(RequestError):
    code = "invalid_image"


class InvalidJSON(RequestError):
    code = "invalid_json"


class InvalidBase64(RequestError):
    code = "invalid_base64"


class InvalidRequest(RequestError):
    code = "invalid_request"


class InvalidCloudEvent(RequestError):
    code = "invalid_cloudevent"


class EmptyBody(RequestError):
    code = "empty_body"


class BodyTooLarge(RequestError):
    status = 413
    code = "body_too_large"


class ImageTooLarge(RequestError):
    status = 413
    code = "image_too_large"


class TooManyImages(RequestError):
    status = 413
    code = "too_many_images"


class UnsupportedMediaType(RequestError):
    status = 415
    code = "unsupported_media_type"


class NotFound(RequestError):
    status = 404
    code = "not_found"


class MethodNotAllowed(RequestError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.headers = {"Allow": ", ".join(allowed)}


class Unavailable(RequestError):
    """The model cannot answer now (loading, or its parameters are broken): retry later."""

    status = 503
    code = "model_unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class Overloaded(RequestError):
    """The batch queue is full: a Broker or client retries after Retry-After."""

    status = 429
    code = "overloaded"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}
