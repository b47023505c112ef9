"""Open Inference Protocol v2 (KServe v2 / Triton): infer, server and model metadata.

One input named `image`: BYTES [N] of encoded images (base64 strings in JSON, or raw bytes with
the binary tensor extension), or UINT8 [N,32,32,3]. Outputs: `label`, `probability`,
`probabilities`. The body is parsed as JSON whatever its Content-Type, since tritonclient sends
none; `Inference-Header-Content-Length` marks the binary extension that tritonclient uses.
"""

import struct

import numpy as np

from function.cifar10 import CLASSES, INPUT_SIZE
from function.classify import Prediction
from function.config import Settings
from function.errors import InvalidBase64, InvalidRequest
from function.protocols.payload import b64decode, check_count, decode_all, parse_json

INPUT = "image"
TENSOR_SHAPE = [INPUT_SIZE, INPUT_SIZE, 3]
OUTPUTS = {"label": ("BYTES", [-1]), "probability": ("FP32", [-1]), "probabilities": ("FP32", [-1, len(CLASSES)])}
BINARY_HEADER = "Inference-Header-Content-Length"


def server_metadata(version: str) -> dict:
    return {"name": "cifar10-function", "version": version, "extensions": ["binary_tensor_data"]}


def model_metadata(name: str, ready: bool) -> dict:
    return {
        "name": name,
        "versions": ["1"],
        "platform": "mxnet_gluon",
        "ready": ready,
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


def parse(body: bytes, header_length: str | None, settings: Settings) -> tuple[dict, list[np.ndarray]]:
    """The request document and its decoded images."""
    binary = b""
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError as exc:
            raise InvalidRequest(f"{BINARY_HEADER} is not a number") from exc
        if not 0 < split <= len(body):
            raise InvalidRequest(f"{BINARY_HEADER} {split} does not fit a body of {len(body)} bytes")
        body, binary = body[:split], body[split:]
    document = parse_json(body)
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise InvalidRequest('expected a JSON object with "inputs": [...]')
    unknown = [name for name in requested_outputs(document) if name not in OUTPUTS]
    if unknown:
        raise InvalidRequest(f"unknown output(s) {unknown}; this model has {list(OUTPUTS)}")
    named = [i for i in document["inputs"] if isinstance(i, dict) and i.get("name") == INPUT]
    if len(named) != 1 or len(document["inputs"]) != 1:
        raise InvalidRequest(f"expected exactly one input, named {INPUT!r}")
    tensor = named[0]
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) or not shape:
        raise InvalidRequest('"shape" must be a non-empty list of non-negative integers')
    raw = _binary_part(tensor, binary)
    datatype = tensor.get("datatype")
    if datatype == "BYTES":
        return document, _bytes_images(tensor, shape, raw, settings)
    if datatype == "UINT8":
        return document, _uint8_images(tensor, shape, raw, settings)
    raise InvalidRequest(f"input {INPUT!r} must be BYTES or UINT8, not {datatype!r}")


def _binary_part(tensor: dict, binary: bytes) -> bytes | None:
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or size < 0 or size > len(binary):
        raise InvalidRequest("binary_data_size does not match the binary part of the body")
    return binary[:size]


def _bytes_images(tensor: dict, shape: list[int], raw: bytes | None, settings: Settings) -> list[np.ndarray]:
    if len(shape) != 1:
        raise InvalidRequest(f"a BYTES input has shape [N], not {shape}")
    check_count(shape[0], settings)
    if raw is not None:
        blobs = _unpack_bytes(raw)
    else:
        data = tensor.get("data")
        if not isinstance(data, list):
            raise InvalidRequest('"data" must be a list of base64 strings')
        blobs = [b64decode(item, f"data[{i}]") for i, item in enumerate(_flatten(data))]
    if len(blobs) != shape[0]:
        raise InvalidRequest(f"shape says {shape[0]} images, the data holds {len(blobs)}")
    return decode_all([_maybe_base64(blob) for blob in blobs], settings)


def _unpack_bytes(raw: bytes) -> list[bytes]:
    """Triton's binary BYTES layout: each element a 4-byte little-endian length, then the bytes."""
    blobs, offset = [], 0
    while offset < len(raw):
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
    """Binary elements may carry the image itself or its base64 text; image magic never is base64."""
    try:
        return b64decode(blob.decode("ascii"), "data")
    except (UnicodeDecodeError, InvalidBase64):
        return blob


def _uint8_images(tensor: dict, shape: list[int], raw: bytes | None, settings: Settings) -> list[np.ndarray]:
    if len(shape) != 4 or shape[1:] != TENSOR_SHAPE:
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
        try:
            values = np.asarray(_flatten(data), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest('"data" must hold only integers from 0 to 255') from exc
        if values.shape != (expected,):
            raise InvalidRequest(f"data holds {values.size} values, shape {shape} needs {expected}")
        if not np.all((values >= 0) & (values <= 255) & (values == np.round(values))):
            raise InvalidRequest("UINT8 values must be integers from 0 to 255")
        array = values.astype(np.uint8)
    return list(array.reshape(shape))


def _flatten(data: list) -> list:
    """OIP allows the data of a tensor flat or nested in its shape: accept both."""
    flat, stack = [], [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def requested_outputs(document: dict) -> list[str]:
    outputs = document.get("outputs") or []
    if not isinstance(outputs, list):
        raise InvalidRequest('"outputs" must be a list')
    return [o.get("name") for o in outputs if isinstance(o, dict)]


def render(document: dict, predictions: list[Prediction], model_name: str) -> dict:
    """The response, limited to the outputs the request names (all of them when it names none)."""
    count = len(predictions)
    outputs = {
        "label": ("BYTES", [count], [p.label for p in predictions]),
        "probability": ("FP32", [count], [round(p.probability, 6) for p in predictions]),
        "probabilities": (
            "FP32",
            [count, len(CLASSES)],
            [round(float(v), 6) for p in predictions for v in p.probabilities],
        ),
    }
    wanted = requested_outputs(document)
    response = {
        "model_name": model_name,
        "model_version": "1",
        "outputs": [
            {"name": n, "datatype": d, "shape": s, "data": v}
            for n, (d, s, v) in outputs.items()
            if not wanted or n in wanted
        ],
    }
    if "id" in document:
        response["id"] = document["id"]
    return response
