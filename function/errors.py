"""Every error a client can see, each with its HTTP status and a stable code.

Protocols and the server raise these; `function.http.error_response` turns them into the JSON body
the route's protocol prescribes, in one place. `ClientError` is the client's fault (4xx, or 501 and
505 for what HTTP says a server does not implement: do not retry unchanged); `Unavailable` and
`Overloaded` are ours and temporary (retry after `Retry-After`).
"""

import typing


class HTTPError(Exception):
    """An answer other than success: `status`, a stable `code`, a message and extra headers."""

    status = 500
    code = "internal"
    headers: typing.ClassVar[dict[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def prefixed(self, prefix: str) -> "HTTPError":
        """The same error with `prefix` in front of its message (which image of several)."""
        self.message = f"{prefix}{self.message}"
        self.args = (self.message,)
        return self


class ClientError(HTTPError):
    """A problem with the request itself."""

    status = 400
    code = "bad_request"


class InvalidImage(ClientError):
    code = "invalid_image"


class InvalidJSON(ClientError):
    code = "invalid_json"


class InvalidBase64(ClientError):
    code = "invalid_base64"


class InvalidRequest(ClientError):
    code = "invalid_request"


class InvalidCloudEvent(ClientError):
    code = "invalid_cloudevent"


class EmptyBody(ClientError):
    code = "empty_body"


class MalformedHTTP(ClientError):
    code = "malformed_http"


class RequestTimeout(ClientError):
    status = 408
    code = "request_timeout"


class BodyTooLarge(ClientError):
    status = 413
    code = "body_too_large"


class ImageTooLarge(ClientError):
    status = 413
    code = "image_too_large"


class TooManyImages(ClientError):
    status = 413
    code = "too_many_images"


class TooManyParts(ClientError):
    status = 413
    code = "too_many_parts"


class URITooLong(ClientError):
    status = 414
    code = "uri_too_long"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class HeadersTooLarge(ClientError):
    status = 431
    code = "headers_too_large"


class NotImplementedHere(ClientError):
    """A request that needs what no route of this server does (a transfer coding, CONNECT): 501, as
    RFC 9112 asks of a server that meets a transfer coding it does not understand."""

    status = 501
    code = "not_implemented"


class VersionNotSupported(ClientError):
    status = 505
    code = "http_version_not_supported"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.headers = {"Allow": ", ".join(allowed)}


class Unavailable(HTTPError):
    """The model cannot answer now (loading, or its parameters or device are broken): retry later."""

    status = 503
    code = "model_unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class Overloaded(HTTPError):
    """The queue is full or the server is stopping: a Broker or client retries after Retry-After."""

    status = 429
    code = "overloaded"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}
