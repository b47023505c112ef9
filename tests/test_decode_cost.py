"""Decoding cost follows the 32x32 output: hostile images within the limits stay cheap, the rest get 413.

Each image is decoded in a fresh process, after a warm-up decode of the same format, and measured
there: the growth of the peak resident size (VmHWM, reset through /proc/self/clear_refs just before)
during the one `decode` call. Memory is what is bounded: a full decode of any of these images would
pass the bound, on any machine, where a CPU-time bound would depend on the machine's speed.
"""

import io
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from bench.decode import photo_like
from function.config import Settings
from function.errors import ImageTooLarge, InvalidImage
from function.imaging import _structure, decode
from tests.conftest import ROOT, encode

LIMIT = Settings.max_image_pixels
MAX_PEAK_MIB = 100

PROBE = """
import io, json, sys
from PIL import Image
from function.errors import ClientError
from function.imaging import _structure, decode

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

data = open(sys.argv[1], "rb").read()
warm = io.BytesIO()
Image.new("RGB", (48, 40), (9, 9, 9)).save(warm, sys.argv[2])
decode(warm.getvalue(), int(sys.argv[3]))
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak restarts from the current resident size
before = peak_kib()
try:
    decode(data, int(sys.argv[3]))
    outcome = "decoded"
except ClientError as error:
    outcome = f"{error.status} {error.message}"
print(json.dumps({"mib": (peak_kib() - before) / 1024, "outcome": outcome}))
"""


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def one_bit(size: tuple[int, int]) -> Image.Image:
    image = Image.new("1", size, 1)
    ImageDraw.Draw(image).ellipse((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=0)
    return image


def jpeg_with_repeated_scan(copies: int) -> bytes:
    """A progressive JPEG whose last scan (a refinement) is repeated: each copy is a pass over all blocks."""
    data = encode(Image.new("RGB", (3000, 3000), (90, 120, 200)), "JPEG", quality=90, progressive=True)
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * copies + b"\xff\xd9"


def png_chunk_flood(count: int) -> bytes:
    small = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    return small[:33] + png_chunk(b"zzZz", b"") * count + small[33:]  # after the signature and IHDR


def jpeg_comment_flood(count: int) -> bytes:
    small = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    return small[:2] + b"\xff\xfe\x00\x03a" * count + small[2:]


def gif_comment_flood(count: int) -> bytes:
    small = encode(Image.new("P", (64, 64), 1), "GIF")
    image_start = small.index(b"\x2c")
    return small[:image_start] + b"\x21\xfe" + b"\x01a" * count + b"\x00" + small[image_start:]


def rgba_gradient(size: tuple[int, int]) -> Image.Image:
    grey = Image.radial_gradient("L").resize(size)
    return Image.merge("RGBA", (grey, grey.transpose(Image.Transpose.ROTATE_90), grey, grey.point(lambda v: 255 - v)))


# name: (format of the warm-up decode, bytes of the image)
WITHIN_LIMITS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "PNG 1 x 1,000,000": ("PNG", lambda: encode(Image.new("RGB", (1, 1_000_000), (10, 200, 30)), "PNG")),
    "PNG 1,000,000 x 1": ("PNG", lambda: encode(Image.new("RGB", (1_000_000, 1), (10, 200, 30)), "PNG")),
    "PNG 7000 x 7000 1-bit": ("PNG", lambda: encode(one_bit((7000, 7000)), "PNG")),
    "PNG 3900 x 3900 RGBA": ("PNG", lambda: encode(rgba_gradient((3900, 3900)), "PNG")),
    "JPEG 7000 x 7000": ("JPEG", lambda: encode(photo_like(7000, 7000), "JPEG", quality=90)),
    "JPEG 8000 x 6000": ("JPEG", lambda: encode(photo_like(8000, 6000), "JPEG", quality=90)),
    "JPEG 65000 x 750": ("JPEG", lambda: encode(Image.new("RGB", (65000, 750), (100, 50, 20)), "JPEG")),
    "JPEG 3000 x 3000 progressive 4:4:4": (
        "JPEG",
        lambda: encode(photo_like(3000, 3000), "JPEG", quality=90, progressive=True, subsampling=0),
    ),
    "GIF 65535 x 700": ("GIF", lambda: encode(Image.new("P", (65535, 700), 3), "GIF")),
    "GIF 700 x 65535": ("GIF", lambda: encode(Image.new("P", (700, 65535), 3), "GIF")),
    "WebP 16383 x 200": ("WEBP", lambda: encode(photo_like(16383, 200), "WEBP", quality=80)),
    "TIFF 1 x 1,000,000": (
        "TIFF",
        lambda: encode(Image.new("RGB", (1, 1_000_000), (3, 4, 5)), "TIFF", compression="tiff_deflate"),
    ),
    "TIFF 7000 x 7000 1-bit G4": ("TIFF", lambda: encode(one_bit((7000, 7000)), "TIFF", compression="group4")),
    "BMP 7000 x 7000 1-bit": ("BMP", lambda: encode(one_bit((7000, 7000)), "BMP")),
}
if "AVIF" in Image.OPEN:
    WITHIN_LIMITS["AVIF 2400 x 2400"] = ("AVIF", lambda: encode(photo_like(2400, 2400), "AVIF", speed=10))

# name: (format of the warm-up decode, bytes of the image, the setting named in the 413)
REFUSED: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "PNG 7000 x 7000 RGB": (
        "PNG",
        lambda: encode(Image.new("RGB", (7000, 7000), (1, 2, 3)), "PNG"),
        "MAX_DECODE_BYTES",
    ),
    "JPEG 7000 x 7000 progressive": (
        "JPEG",
        lambda: encode(Image.new("RGB", (7000, 7000), (1, 2, 3)), "JPEG", progressive=True),
        "MAX_DECODE_BYTES",
    ),
    "JPEG with 20,000 scans": ("JPEG", lambda: jpeg_with_repeated_scan(20_000), "MAX_JPEG_SCANS"),
    "JPEG with 2,000,000 comments": ("JPEG", lambda: jpeg_comment_flood(2_000_000), "MAX_IMAGE_SEGMENTS"),
    "PNG with 800,000 chunks": ("PNG", lambda: png_chunk_flood(800_000), "MAX_IMAGE_SEGMENTS"),
    "GIF with 5,000,000 comment blocks": ("GIF", lambda: gif_comment_flood(5_000_000), "MAX_IMAGE_SEGMENTS"),
    # the red team's tile bomb: a 1024x1024 TIFF of one 8192x8192 tile took +148 MiB to decode
    "TIFF 1024 x 1024 of one 8192 x 8192 tile": ("TIFF", lambda: tiled_tiff(1024, 1024, 8192), "MAX_DECODE_BYTES"),
}


def measure(tmp_path: Path, warm_format: str, data: bytes) -> dict:
    path = tmp_path / "image"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), warm_format, str(LIMIT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", list(WITHIN_LIMITS))
def test_hostile_image_within_the_limits_decodes_cheaply(name: str, tmp_path: Path) -> None:
    warm_format, make = WITHIN_LIMITS[name]
    result = measure(tmp_path, warm_format, make())
    assert result["outcome"] == "decoded", result
    assert result["mib"] < MAX_PEAK_MIB, result


@pytest.mark.parametrize("name", list(REFUSED))
def test_image_beyond_a_cost_limit_is_refused_cheaply_with_413(name: str, tmp_path: Path) -> None:
    warm_format, make, setting = REFUSED[name]
    result = measure(tmp_path, warm_format, make())
    assert result["outcome"].startswith("413 ") and setting in result["outcome"], result
    assert result["mib"] < MAX_PEAK_MIB, result


def test_memory_limit_is_the_setting() -> None:
    data = encode(photo_like(400, 300), "PNG")
    assert decode(data, LIMIT).shape == (32, 32, 3)
    with pytest.raises(ImageTooLarge, match=r"MAX_DECODE_BYTES"):
        decode(data, LIMIT, max_decode_bytes=400 * 300 * 4)


def test_the_server_answers_413_naming_the_decode_settings(make_client) -> None:
    client = make_client(MAX_DECODE_BYTES="100000", MAX_JPEG_SCANS="5")
    for data, setting in [
        (encode(photo_like(400, 300), "PNG"), "MAX_DECODE_BYTES"),
        (encode(photo_like(200, 200), "JPEG", progressive=True), "MAX_JPEG_SCANS"),
    ]:
        response = client.post("/", data=data, content_type="application/octet-stream")
        assert response.status_code == 413 and response.json["error"]["code"] == "image_too_large"
        assert setting in response.json["error"]["message"]


def test_scan_and_segment_limits_are_the_settings() -> None:
    progressive = encode(photo_like(200, 200), "JPEG", progressive=True)
    assert decode(progressive, LIMIT).shape == (32, 32, 3)
    with pytest.raises(ImageTooLarge, match=r"MAX_JPEG_SCANS"):
        decode(progressive, LIMIT, max_jpeg_scans=5)
    with pytest.raises(ImageTooLarge, match=r"MAX_IMAGE_SEGMENTS"):
        decode(progressive, LIMIT, max_image_segments=3)


def test_legitimate_files_stay_within_the_structure_limits() -> None:
    """Pillow's own progressive JPEG (10 scans), and a PNG cut into 1 KiB IDAT chunks (libpng cuts 8 KiB)."""
    image = photo_like(1200, 900)
    assert decode(encode(image, "JPEG", progressive=True, subsampling=0, quality=95), LIMIT).shape == (32, 32, 3)
    png = encode(image, "PNG")
    stream = b"".join(data for kind, data in png_chunks(png) if kind == b"IDAT")
    head = png[: png.index(b"IDAT") - 4]
    cut = [png_chunk(b"IDAT", stream[i : i + 1024]) for i in range(0, len(stream), 1024)]
    assert len(cut) > 1500
    assert (decode(head + b"".join(cut) + png_chunk(b"IEND", b""), LIMIT) == decode(png, LIMIT)).all()


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        chunks.append((kind, png[pos + 8 : pos + 8 + length]))
        pos += length + 12
    return chunks


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "QOI", "JPEG2000", "PCX"])
def test_formats_without_a_bounded_decoder_are_refused(fmt: str) -> None:
    with pytest.raises(InvalidImage, match="accepted format"):
        decode(encode(Image.new("RGB", (40, 40), (1, 2, 3)), fmt), LIMIT)


def test_run_length_bmp_is_refused_pillow_decodes_it_in_python() -> None:
    width, height = 4, 2
    pixels = b"\x04\x01\x00\x00" * height + b"\x00\x01"  # a run of 4 of colour 1, end of line; end of bitmap
    palette = b"\x00\x00\x00\x00\xff\xff\xff\x00" + b"\x00" * 4 * 254
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(header) + len(palette)
    data = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + palette + pixels
    assert Image.open(io.BytesIO(data)).tile[0][0] == "bmp_rle"
    with pytest.raises(InvalidImage, match="in Python"):
        decode(data, LIMIT)


@settings(max_examples=500, deadline=None)
@given(
    magic=st.sampled_from([b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"GIF89a"]),
    body=st.binary(max_size=200)
    | st.lists(st.sampled_from([b"\xff", b"\xda", b"\xc2", b"\x00", b"\x21", b"\x80"])).map(b"".join),
)
def test_the_structure_walk_survives_any_bytes(magic: bytes, body: bytes) -> None:
    """The walk runs before Pillow: on any bytes it returns, or refuses with the segment limit."""
    try:
        _structure(magic + body, 20)
    except ImageTooLarge as error:
        assert "MAX_IMAGE_SEGMENTS" in error.message


def tiled_tiff(width: int, height: int, tile: int) -> bytes:
    """A deflate RGB TIFF of `width` x `height` that declares one `tile` x `tile` tile (all zeros)."""
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(b"\0" * tile * 3) for _ in range(tile)) + compressor.flush()
    entries = sorted(
        [
            (256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, 0), (259, 3, 1, 8), (262, 3, 1, 2),
            (277, 3, 1, 3), (284, 3, 1, 1), (322, 4, 1, tile), (323, 4, 1, tile), (324, 4, 1, 0),
            (325, 4, 1, len(data)),
        ]
    )  # fmt: skip
    bits_at = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\0" + struct.pack("<IH", 8, len(entries))
    for tag, kind, count, value in entries:
        value = {258: bits_at, 324: bits_at + 8}.get(tag, value)
        short = kind == 3 and count == 1
        out += (
            struct.pack("<HHIHH", tag, kind, count, value, 0)
            if short
            else struct.pack("<HHII", tag, kind, count, value)
        )
    return out + b"\0\0\0\0" + struct.pack("<HHHH", 8, 8, 8, 0) + data


def test_a_tiff_declaring_one_huge_tile_is_refused_from_its_header() -> None:
    """The red team's tile bomb: a 1024x1024 TIFF of one 8192x8192 tile took +148 MiB to decode."""
    with pytest.raises(ImageTooLarge, match="MAX_DECODE_BYTES"):  # its peak memory: REFUSED, above
        decode(tiled_tiff(1024, 1024, 8192), LIMIT)
