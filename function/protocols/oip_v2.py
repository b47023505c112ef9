"""Open Inference Protocol v2 (KServe v2 / Triton): infer, server and model metadata, model readiness.

One input named `image`: BYTES [N] of encoded images (base64 strings in JSON, or raw bytes with
the binary tensor extension), or UINT8 [N,32,32,3]. Outputs: `label`, `probability`,
`probabilities`. The body is parsed as JSON whatever its Content-Type, since tritonclient sends
none; `Inference-Header-Content-Length` marks the binary extension that tritonclient uses, in a
request and in a response whose outputs are asked for in binary. Errors
on these routes are `{"error": "<message>"}`, as the protocol prescribes.
"""

import json
import struct
from typing import TYPE_CHECKING

import numpy as np

from function.cifar10 import CLASSES, INPUT_SIZE
from function.config import SERVICE_NAME, Settings
from function.errors import InvalidBase64, InvalidRequest
from function.http import Request, Response, json_response
from function.inference_worker import Payload
from function.prediction import Prediction
from function.protocols.common import TENSOR_SHAPE, b64decode, check_count, is_whole_number, parse_json, parsed, pixels

if TYPE_CHECKING:
    from function.lifecycle import Function

INPUT = "image"
OUTPUTS = {"label": ("BYTES", [-1]), "probability": ("FP32", [-1]), "probabilities": ("FP32", [-1, len(CLASSES)])}
BINARY_HEADER = "inference-header-content-length"


def parse(body: bytes, header_length: str | None, settings: Settings) -> tuple[dict, list[Payload]]:
    """The request document (checked field by field) and its images."""
    binary = b""
    if header_length is not None:
        if not is_whole_number(header_length, digits=12):
            raise InvalidRequest("Inference-Header-Content-Length is not a number")
        split = int(header_length)
        if not 0 < split <= len(body):
            raise InvalidRequest(f"Inference-Header-Content-Length {split} does not fit a body of {len(body)} bytes")
        body, binary = body[:split], body[split:]
    document = parse_json(body)
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise InvalidRequest('expected a JSON object with "inputs": [...]')
    if "id" in document and not isinstance(document["id"], str):
        raise InvalidRequest('"id" must be a string')
    _object(document, "parameters", "the request")
    unknown = [name for name in requested_outputs(document) if name not in OUTPUTS]
    if unknown:
        raise InvalidRequest(f"unknown output(s) {unknown}; this model has {list(OUTPUTS)}")
    inputs = document["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict) or inputs[0].get("name") != INPUT:
        raise InvalidRequest(f"expected exactly one input, named {INPUT!r}")
    tensor = inputs[0]
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidRequest('"shape" must be a non-empty list of non-negative integers')
    raw = _binary_part(tensor, binary)
    datatype = tensor.get("datatype")
    if datatype == "BYTES":
        return document, _bytes_images(tensor, shape, raw, settings)
    if datatype == "UINT8":
        return document, _uint8_images(tensor, shape, raw, settings)
    raise InvalidRequest(f"input {INPUT!r} must be BYTES or UINT8, not {str(datatype)[:40]!r}")


def _object(document: dict, name: str, where: str) -> dict:
    value = document.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f'"{name}" of {where} must be an object, not {type(value).__name__}')
    return value


def _binary_part(tensor: dict, binary: bytes) -> bytes | None:
    size = _object(tensor, "parameters", f"input {INPUT!r}").get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0 or size > len(binary):
        raise InvalidRequest("binary_data_size does not match the binary part of the body")
    return binary[:size]


def _bytes_images(tensor: dict, shape: list[int], raw: bytes | None, settings: Settings) -> list[Payload]:
    if len(shape) != 1:
        raise InvalidRequest(f"a BYTES input has shape [N], not {shape}")
    check_count(shape[0], settings)
    if raw is not None:
        blobs = [_maybe_base64(blob) for blob in _unpack_bytes(raw, shape[0] + 1)]
    else:
        data = tensor.get("data")
        if not isinstance(data, list):
            raise InvalidRequest('"data" must be a list of base64 strings')
        blobs = [b64decode(item, f"data[{i}]") for i, item in enumerate(_flatten(data, shape[0] + 1))]
    if len(blobs) != shape[0]:
        held = f"more than {shape[0]}" if len(blobs) > shape[0] else len(blobs)  # counting stops past the shape
        raise InvalidRequest(f"shape says {shape[0]} images, the data holds {held}")
    return blobs


def _unpack_bytes(raw: bytes, limit: int) -> list[bytes]:
    """Triton's binary BYTES layout: each element a 4-byte little-endian length, then the bytes.
    At most `limit` elements are read: 10 MB of empty elements is 2.5 million of them."""
    blobs, offset = [], 0
    while offset < len(raw) and len(blobs) < limit:
        if offset + 4 > len(raw):
            raise InvalidRequest("truncated BYTES element in the binary data")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidRequest("truncated BYTES element in the binary data")
        blobs.append(raw[offset : offset + length])
        offset += length
    return blobs


def _maybe_base64(blob: bytes) -> bytes:
    """Binary elements may carry the image itself or its base64 text. Base64 is read strictly, so an
    image's bytes (binary header fields, outside the alphabet) are never taken for it."""
    try:
        return b64decode(blob.decode("ascii"), "data")
    except (UnicodeDecodeError, InvalidBase64):
        return blob


def _uint8_images(tensor: dict, shape: list[int], raw: bytes | None, settings: Settings) -> list[Payload]:
    if len(shape) != 4 or tuple(shape[1:]) != TENSOR_SHAPE:
        raise InvalidRequest(f"a UINT8 input has shape [N,{INPUT_SIZE},{INPUT_SIZE},3], not {shape}")
    check_count(shape[0], settings)
    expected = int(np.prod(shape))
    if raw is not None:
        if len(raw) != expected:
            raise InvalidRequest(f"binary data has {len(raw)} bytes, shape {shape} needs {expected}")
        array = np.frombuffer(raw, dtype=np.uint8)
    else:
        data = tensor.get("data")
        if not isinstance(data, list):
            raise InvalidRequest('"data" must be a list of integers')
        array = pixels(_flatten(data, expected + 1), (expected,), '"data"')
    return list(array.reshape(shape))


def _flatten(data: list, limit: int) -> list:
    """OIP allows a tensor's data flat or nested in its shape: accept both, reading at most `limit`
    items. Lists count too, up to as many again as items (nested in [N,32,32,3] they are a third as
    many): millions of empty lists would otherwise cost seconds and yield nothing."""
    flat, stack, visited = [], [iter(data)], 0
    while stack:
        for item in stack[-1]:
            visited += 1
            if visited > 2 * limit:
                raise InvalidRequest('"data" nests more lists than its shape holds')
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
            if len(flat) == limit:
                return flat
        else:
            stack.pop()
    return flat


def _flag(parameters: dict, name: str, where: str) -> bool | None:
    value = parameters.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"{where}: parameter {name!r} must be true or false")
    return value


def requested_outputs(document: dict) -> dict[str, bool]:
    """The outputs the request names (all when it names none), each with whether it wants it in binary:
    its own `binary_data`, else the request's `binary_data_output` (what tritonclient sends by default)."""
    every = bool(_flag(_object(document, "parameters", "the request"), "binary_data_output", "the request"))
    outputs = document.get("outputs")
    if outputs is None:
        return dict.fromkeys(OUTPUTS, every)
    if not isinstance(outputs, list):
        raise InvalidRequest('"outputs" must be a list')
    wanted = {}
    for position, output in enumerate(outputs):
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidRequest(f'outputs[{position}] must be an object with a string "name"')
        binary = _flag(_object(output, "parameters", f"outputs[{position}]"), "binary_data", f"outputs[{position}]")
        wanted[output["name"]] = every if binary is None else binary
    return wanted or dict.fromkeys(OUTPUTS, every)


def render(document: dict, predictions: list[Prediction], model_name: str) -> tuple[dict, bytes]:
    """The response header and, with Triton's binary tensor extension, the binary part: the outputs
    asked for in binary, in order (BYTES as 4-byte little-endian lengths and bytes, FP32 little-endian)."""
    count = len(predictions)
    outputs = {
        "label": ("BYTES", [count], [p.label for p in predictions]),
        "probability": ("FP32", [count], [p.probability for p in predictions]),
        "probabilities": ("FP32", [count, len(CLASSES)], [float(v) for p in predictions for v in p.probabilities]),
    }
    wanted = requested_outputs(document)
    rendered, binary = [], []
    for name, (datatype, shape, values) in outputs.items():
        if name not in wanted:
            continue
        output = {"name": name, "datatype": datatype, "shape": shape}
        if wanted[name]:
            blob = _binary(datatype, values)
            output["parameters"] = {"binary_data_size": len(blob)}
            binary.append(blob)
        else:
            output["data"] = values if datatype == "BYTES" else [round(v, 6) for v in values]
        rendered.append(output)
    response = {"model_name": model_name, "model_version": "1", "outputs": rendered}
    if "id" in document:
        response["id"] = document["id"]
    return response, b"".join(binary)


def _binary(datatype: str, values: list) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(data)) + data for data in (value.encode() for value in values))
    return np.asarray(values, dtype="<f4").tobytes()


async def infer(request: Request, fn: "Function") -> Response:
    """`POST /v2/models/<name>/infer`: JSON, or its header then the binary part when an output is
    asked for in binary (`Inference-Header-Content-Length` says where the header ends)."""
    body = request.require_body()
    document, payloads = await parsed(body, lambda: parse(body, request.header(BINARY_HEADER), fn.settings))
    header, binary = render(document, await fn.classify(payloads), fn.settings.model_name)
    if not binary:
        return json_response(header)
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return Response(200, head + binary, headers)


async def server_metadata(request: Request, fn: "Function") -> Response:
    return json_response({"name": SERVICE_NAME, "version": fn.version, "extensions": ["binary_tensor_data"]})


async def model_metadata(request: Request, fn: "Function") -> Response:
    return json_response(
        {
            "name": fn.settings.model_name,
            "versions": ["1"],
            "platform": "mxnet_gluon",
            "ready": fn.model_ready(),
            "inputs": [
                {
                    "name": INPUT,
                    "datatype": "BYTES",
                    "shape": [-1],
                    "parameters": {"alternative": {"datatype": "UINT8", "shape": [-1, *TENSOR_SHAPE]}},
                }
            ],
            "outputs": [{"name": n, "datatype": d, "shape": s} for n, (d, s) in OUTPUTS.items()],
            "parameters": {"classes": list(CLASSES)},
        }
    )
