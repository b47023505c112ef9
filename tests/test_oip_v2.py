"""Open Inference Protocol v2 parsing and rendering, called directly: no server, no model."""

import base64
import json
import struct

import numpy as np
import pytest
from PIL import Image

from function.config import Settings
from function.errors import ClientError, InvalidRequest
from function.prediction import Prediction
from function.protocols import oip_v2
from tests.conftest import encode

SETTINGS = Settings()
IMAGE = b"\x89PNG not decoded here"


def request(**tensor) -> dict:
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], **tensor}]}


def body(document: dict) -> bytes:
    return json.dumps(document).encode()


def test_bytes_input_in_json_flat_or_nested() -> None:
    encoded = base64.b64encode(IMAGE).decode()
    assert oip_v2.parse(body(request(data=[encoded])), None, SETTINGS)[1] == [IMAGE]
    assert oip_v2.parse(body(request(data=[[encoded]])), None, SETTINGS)[1] == [IMAGE]


def test_binary_tensor_extension() -> None:
    document = body(request(parameters={"binary_data_size": 4 + len(IMAGE)}))
    raw = struct.pack("<I", len(IMAGE)) + IMAGE
    _, payloads = oip_v2.parse(document + raw, str(len(document)), SETTINGS)
    assert payloads == [IMAGE]


def test_a_binary_image_whose_bytes_all_look_ascii_is_taken_as_it_is() -> None:
    """A dark uncompressed BMP: every byte below 0x80, a '-' among them (pixel value 45). URL-safe base64
    was read leniently and turned it into other bytes."""
    bmp = encode(Image.new("RGB", (2, 4), (45, 45, 45)), "BMP", dpi=(1, 1))  # 39 pixels per metre: ASCII too
    assert max(bmp) < 0x80 and b"-" in bmp
    document = body(request(parameters={"binary_data_size": 4 + len(bmp)}))
    _, payloads = oip_v2.parse(document + struct.pack("<I", len(bmp)) + bmp, str(len(document)), SETTINGS)
    assert payloads == [bmp]


def test_counting_stops_past_the_shape_in_binary_and_json_data() -> None:
    # 2.5 million empty binary elements were each unpacked and base64-tried: seconds of the front's CPU
    document = body(request(parameters={"binary_data_size": 4 * 2_500_000}))
    with pytest.raises(InvalidRequest, match=r"shape says 1 images, the data holds more than 1$"):
        oip_v2.parse(document + bytes(4 * 2_500_000), str(len(document)), SETTINGS)
    with pytest.raises(InvalidRequest, match=r"the data holds more than 1$"):
        oip_v2.parse(body(request(data=["aGk="] * 100_000)), None, SETTINGS)
    nest = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [[]] * 1_000_000}]}
    with pytest.raises(InvalidRequest, match="nests more lists than its shape holds"):
        oip_v2.parse(body(nest), None, SETTINGS)


def test_uint8_input_becomes_pixel_arrays() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3))
    document = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [2, 32, 32, 3], "data": pixels.tolist()}]}
    _, payloads = oip_v2.parse(body(document), None, SETTINGS)
    assert len(payloads) == 2 and np.array_equal(payloads[1], pixels[1])


@pytest.mark.parametrize(
    "document",
    [
        {"inputs": "x"},
        {"inputs": [], "parameters": []},
        {**request(data=["aGk="]), "parameters": "fast"},
        {**request(data=["aGk="]), "outputs": [{"name": 7}]},
        {**request(data=["aGk="]), "outputs": ["label"]},
        {**request(data=["aGk="]), "outputs": {"name": "label"}},
        {**request(data=["aGk="]), "id": {"a": 1}},
        request(data=["aGk="], parameters=[1]),
        request(data=["aGk="], parameters={"binary_data_size": "4"}),
        request(data=["aGk="], shape=[True]),
        request(data=["aGk="], shape=[2]),
        request(data="aGk="),
        {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [10**400] * 3072}]},
        {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
        {"inputs": [{"name": "other", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}]},
    ],
)
def test_every_field_is_type_checked(document: dict) -> None:
    with pytest.raises(ClientError):
        oip_v2.parse(body(document), None, SETTINGS)


def test_bad_binary_header_is_a_400() -> None:
    for header in ("abc", "-1", "999999"):
        with pytest.raises(InvalidRequest):
            oip_v2.parse(body(request(data=["aGk="])), header, SETTINGS)


def test_render_keeps_the_id_and_only_the_outputs_asked_for() -> None:
    probabilities = np.full(10, 0.05, dtype=np.float32)
    probabilities[7] = 0.55
    document = {"id": "r1", "outputs": [{"name": "label"}]}
    rendered, binary = oip_v2.render(document, [Prediction(probabilities)], "cifar10")
    assert binary == b""
    assert rendered == {
        "model_name": "cifar10",
        "model_version": "1",
        "id": "r1",
        "outputs": [{"name": "label", "datatype": "BYTES", "shape": [1], "data": ["horse"]}],
    }


def test_outputs_asked_for_in_binary_follow_the_header_in_order() -> None:
    """Triton's binary tensor extension: `binary_data` per output, `binary_data_output` for all of them."""
    probabilities = np.full(10, 0.05, dtype=np.float32)
    probabilities[7] = 0.55
    predictions = [Prediction(probabilities), Prediction(np.roll(probabilities, 1))]
    document = {"outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "probability"}]}
    header, binary = oip_v2.render(document, predictions, "cifar10")
    label, probability = header["outputs"]
    assert label["parameters"] == {"binary_data_size": len(binary)} and "data" not in label
    assert binary == struct.pack("<I", 5) + b"horse" + struct.pack("<I", 4) + b"ship"
    assert probability["data"] == [0.55, 0.55] and "parameters" not in probability
    header, binary = oip_v2.render({"parameters": {"binary_data_output": True}}, predictions, "cifar10")
    sizes = [output["parameters"]["binary_data_size"] for output in header["outputs"]]
    assert [o["name"] for o in header["outputs"]] == ["label", "probability", "probabilities"]
    assert sizes == [17, 8, 80] and len(binary) == sum(sizes)
    each = np.frombuffer(binary[25:], "<f4").reshape(2, 10)  # after the labels (17 bytes) and probability (8)
    assert np.array_equal(each, np.stack([p.probabilities for p in predictions]))


@pytest.mark.parametrize(
    "document",
    [
        {"parameters": {"binary_data_output": "yes"}},
        {"outputs": [{"name": "label", "parameters": {"binary_data": 1}}]},
        {"outputs": [{"name": "label", "parameters": []}]},
    ],
)
def test_a_binary_flag_that_is_not_a_boolean_is_a_400(document: dict) -> None:
    with pytest.raises(InvalidRequest):
        oip_v2.requested_outputs(document)
