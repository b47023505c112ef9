"""Image decoding whose cost follows the 32x32 output, and the preprocessing shared by training and serving.

A request may hold a 50-megapixel image or a 1 x 1,000,000 strip, so decoding never builds anything
the size of the input that it can avoid: the file's structure is checked before Pillow parses it
(`_structure`), the memory the decoder must hold is estimated from the header and refused over
MAX_DECODE_BYTES, JPEG is decoded at a reduced scale in the DCT domain (`Image.draft`), and only
the centred square that the network sees is reduced, strip by strip, converted to RGB and resampled
once. Training decodes its 32x32 JPEGs with the same `decode`; an image whose short side is already
32 pixels is never resampled, so serving and training see identical pixels.
"""

import io
import math
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageFilter, PngImagePlugin, UnidentifiedImageError

from function.cifar10 import INPUT_SIZE, MEAN, STD
from function.config import Settings
from function.errors import ImageTooLarge, InvalidImage

_MEAN = np.array(MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.array(STD, dtype=np.float32).reshape(1, 3, 1, 1)

# Formats with a decoder in C and a known memory cost (AVIF when this Pillow has it); others are refused.
Image.init()
# MAX_IMAGE_PIXELS and MAX_DECODE_BYTES bound every image, judged from its header (`_open`, `decode`).
# Pillow's own check would cap the first at its 89.5 M pixels, whatever the setting says.
Image.MAX_IMAGE_PIXELS = None
FORMATS = tuple(name for name in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF") if name in Image.OPEN)
# Decoding reduces the image to at least this short side before the one resample to INPUT_SIZE.
REDUCED_SIZE = 2 * INPUT_SIZE
# Area averaging (BOX) then a mild unsharp mask: with the weights shipped until p200 (r40), on the
# validation split upscaled to 480 or 1024 px (bicubic, JPEG q90), this scored 89.7% flip-averaged
# against 90.1% for the 32 px originals; BOX alone 88.6%, LANCZOS 88.8%, the former full decode with
# BILINEAR 86.1% (480 px). `python -m bench.decode --accuracy` gives today's weights' figures.
DOWNSCALE = Image.Resampling.BOX
SHARPEN = ImageFilter.UnsharpMask(radius=0.8, percent=50, threshold=0)
UPSCALE = Image.Resampling.BILINEAR
STRIP_BYTES = 1 << 20  # modes that need converting before averaging are converted this much at a time
# Bytes Pillow holds per pixel of the decoded image, as a multiple of its own storage: WebP and AVIF
# decode into a buffer of libwebp's or libavif's that Pillow copies (measured: 17 and 10 bytes/pixel).
_DECODER_COPIES = {"WEBP": 4.5, "AVIF": 2.5}
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHUNK = struct.Struct(">I4s")
_PNG_EXPANDING = (b"zTXt", b"iTXt", b"iCCP")  # Pillow inflates these, up to MAX_TEXT_CHUNK each
_JPEG_FILL = re.compile(rb"\xff+")
_JPEG_PROGRESSIVE = (0xC2, 0xC6, 0xCA, 0xCE)
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))


@dataclass(frozen=True)
class _Structure:
    """What the file's container costs Pillow, read from the bytes before Pillow parses them."""

    side_bytes: int = 0  # metadata Pillow copies or inflates besides the pixels
    jpeg_scans: int = 0
    jpeg_coefficient_bytes: int = 0  # libjpeg's whole-image DCT buffer (progressive or multi-scan)


def decode(
    data: bytes,
    max_pixels: int,
    *,
    max_decode_bytes: int = Settings.max_decode_bytes,
    max_image_segments: int = Settings.max_image_segments,
    max_jpeg_scans: int = Settings.max_jpeg_scans,
) -> np.ndarray:
    """Bytes of an image to the network's uint8 input array (32x32x3), within the given limits."""
    if not data:
        raise InvalidImage("the image is empty")
    with _pillow_errors():
        structure = _structure(data, max_image_segments)
        if structure.jpeg_scans > max_jpeg_scans:
            raise ImageTooLarge(
                f"the JPEG has {structure.jpeg_scans} scans, over the limit of {max_jpeg_scans} (MAX_JPEG_SCANS)"
            )
        image = _open(data, max_pixels)
        width, height = image.size
        if image.format in ("JPEG", "MPO") and min(image.size) >= 2 * REDUCED_SIZE:
            image.draft("RGB", (REDUCED_SIZE, REDUCED_SIZE))
        cost = _decode_bytes(image, structure)
        if cost > max_decode_bytes:
            raise ImageTooLarge(
                f"decoding this {image.format} image of {width}x{height} pixels ({image.mode}) "
                f"would take {cost / 2**20:.0f} MiB, over the limit of {max_decode_bytes / 2**20:.0f} MiB "
                "(MAX_DECODE_BYTES)"
            )
        return to_input_array(image)


def to_input_array(image: Image.Image) -> np.ndarray:
    """The centre square of `image`, upright, as uint8 RGB INPUT_SIZE x INPUT_SIZE x 3.

    Only the square is reduced and converted; an image whose short side is INPUT_SIZE is cropped
    and converted, never resampled. The square is symmetric, so EXIF orientation is applied last.
    """
    image.load()
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    width, height = image.size
    side = min(width, height)
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    if side == INPUT_SIZE:
        left, top = (width - side) // 2, (height - side) // 2
        square = _to_rgb(image.crop((left, top, left + side, top + side)), _white_point(image))
    else:
        factor = max(1, side // REDUCED_SIZE)
        region = (
            math.floor(box[0] / factor) * factor,
            math.floor(box[1] / factor) * factor,
            min(width, math.ceil(box[2] / factor) * factor),
            min(height, math.ceil(box[3] / factor) * factor),
        )
        reduced = _reduce_rgb(image, region, factor)
        inner = tuple((value - origin) / factor for value, origin in zip(box, region[:2] * 2, strict=True))
        size = (INPUT_SIZE, INPUT_SIZE)
        if side > INPUT_SIZE:
            square = reduced.resize(size, DOWNSCALE, box=inner).filter(SHARPEN)
        else:
            square = reduced.resize(size, UPSCALE, box=inner)
    if orientation in _ORIENTATION:
        square = square.transpose(_ORIENTATION[orientation])
    return np.asarray(square, dtype=np.uint8)


def normalize(batch: np.ndarray) -> np.ndarray:
    """uint8 NHWC batch to the float32 NCHW tensor the network was trained on."""
    chw = batch.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return (chw - _MEAN) / _STD


@contextmanager
def _pillow_errors() -> Iterator[None]:
    """Pillow's many exceptions for a bad file, as the request errors a client can act on."""
    # gluoncv sets this Pillow global to True when imported (gluoncv/data/mhp.py), which would
    # silently accept truncated images: insist on strict decoding every time.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"the body is not an image in an accepted format ({', '.join(FORMATS)})") from exc
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error) as exc:
        raise InvalidImage(f"the image cannot be decoded: {exc}") from exc


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Pillow's lazy image, refused before decoding when it is too large or Pillow decodes it in Python."""
    image = Image.open(io.BytesIO(data), formats=FORMATS)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"the image has {width}x{height} pixels, over the limit of {max_pixels} (MAX_IMAGE_PIXELS)")
    slow = sorted({tile[0] for tile in image.tile if tile[0] in Image.DECODERS})
    if slow:
        raise InvalidImage(
            f"this {image.format} variant ({', '.join(slow)}) is decoded by Pillow in Python, too slowly to accept"
        )
    return image


def _storage_bytes(mode: str, width: int, height: int) -> int:
    """Memory of a Pillow image: its rows, padded to 1, 2 or 4 bytes a pixel, and a pointer per row."""
    pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return height * (width * pixel + 8)


def _decode_bytes(image: Image.Image, structure: _Structure) -> int:
    """What decoding `image` (after any draft) holds at once, from its header alone."""
    cost = _storage_bytes(image.mode, *image.size) * _DECODER_COPIES.get(image.format, 1)
    if image.format == "TIFF":  # libtiff reads a strip or tile at a time: at most the raw image
        bits = image.tag_v2.get(258, (1,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        per_pixel = max(sum(bits), max(bits, default=1) * image.tag_v2.get(277, 1))
        cost += math.ceil(image.width * per_pixel / 8) * image.height
        # A tile is allocated whole, raw and as RGBA, whatever the image's size: a 1024x1024 image
        # may declare one 16384x16384 tile (measured: +577 MiB for a 783 KB file).
        tile_pixels = int(image.tag_v2.get(322, 0)) * int(image.tag_v2.get(323, 0))
        cost += tile_pixels * (4 + math.ceil(per_pixel / 8))
    return int(cost) + structure.side_bytes + structure.jpeg_coefficient_bytes


def _white_point(image: Image.Image) -> float | None:
    """The value drawn as white for 16- and 32-bit grey images (their maximum), else None."""
    if image.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
        return None
    return float(image.getextrema()[1]) or 1.0


def _to_rgb(image: Image.Image, white: float | None) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited onto white."""
    if image.mode == "RGB":
        return image
    if white is not None:
        array = np.asarray(image.convert("F") if image.mode != "F" else image, dtype=np.float32)
        image = Image.fromarray(np.clip(array * (255.0 / white), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _reduce_rgb(image: Image.Image, region: tuple[int, int, int, int], factor: int) -> Image.Image:
    """`region` of `image` averaged over factor x factor blocks, in RGB.

    RGB and L images are reduced in place; other modes must be converted first (a palette or alpha
    cannot be averaged), which is done a strip at a time so no full-size RGB copy ever exists.
    """
    if image.mode in ("RGB", "L"):
        reduced = image.reduce(factor, box=region) if factor > 1 else image.crop(region)
        return _to_rgb(reduced, None)
    white = _white_point(image)
    left, top, right, bottom = region
    rows = max(1, STRIP_BYTES // (4 * (right - left)) // factor) * factor
    out = Image.new("RGB", (math.ceil((right - left) / factor), math.ceil((bottom - top) / factor)))
    for y in range(top, bottom, rows):
        strip = _to_rgb(image.crop((left, y, right, min(bottom, y + rows))), white)
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, (y - top) // factor))
    return out


def _structure(data: bytes, max_segments: int) -> _Structure:
    """Walk the container of a JPEG, PNG or GIF, whose markers, chunks and blocks Pillow parses in Python."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_structure(data, max_segments)
    if data.startswith(_PNG_SIGNATURE):
        return _png_structure(data, max_segments)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif_structure(data, max_segments)
    return _Structure()


def _too_many_segments(kind: str, max_segments: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"the {kind} holds more than {max_segments} markers, chunks or blocks before its pixels (MAX_IMAGE_SEGMENTS)"
    )


def _jpeg_structure(data: bytes, max_segments: int) -> _Structure:
    """Header bytes, scans and coefficient buffer of a JPEG; stray bytes count as segments, as Pillow
    reads them one at a time."""
    pos, segments, side = 2, 0, 0
    frame: tuple[int, int, int, list[tuple[int, int]]] | None = None  # marker, width, height, sampling
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            stray = data.find(b"\xff", pos)
            stray = len(data) if stray < 0 else stray
            segments += stray - pos
            pos = stray
            continue
        fill = _JPEG_FILL.match(data, pos).end() - 1  # the marker's own 0xFF is the last of the run
        segments += fill - pos + 1
        if segments > max_segments:
            raise _too_many_segments("JPEG", max_segments)
        if fill + 1 >= len(data):
            break
        pos = fill
        marker = data[pos + 1]
        pos += 2
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9 or pos + 2 > len(data):
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if marker in _JPEG_FRAMES and pos + 8 <= len(data):
            height, width = struct.unpack_from(">HH", data, pos + 3)
            count = data[pos + 7]
            sampling = [(data[i] >> 4, data[i] & 15) for i in range(pos + 9, min(pos + 9 + 3 * count, len(data)), 3)]
            frame = (marker, width, height, sampling)
        if marker == 0xDA:
            components = data[pos + 2] if pos + 2 < len(data) else 0
            if frame is None or (frame[0] not in _JPEG_PROGRESSIVE and components >= len(frame[3])):
                return _Structure(side, 1)  # one interleaved scan: libjpeg streams it, and stops there
            end = data.find(b"\xff\xd9", pos)
            scans = data.count(b"\xff\xda", pos - 2, len(data) if end < 0 else end)
            return _Structure(side, scans, _coefficient_bytes(*frame[1:]))
        side += min(length, len(data) - pos)
        pos += length
    return _Structure(side)


def _coefficient_bytes(width: int, height: int, sampling: list[tuple[int, int]]) -> int:
    """libjpeg's whole-image coefficient arrays: 64 16-bit values per 8x8 block of every component."""
    if not sampling or any(h == 0 or v == 0 for h, v in sampling):
        return 0
    most_h = max(h for h, _ in sampling)
    most_v = max(v for _, v in sampling)
    total = 0
    for h, v in sampling:
        blocks_wide = math.ceil(math.ceil(width * h / most_h) / 8)
        blocks_high = math.ceil(math.ceil(height * v / most_v) / 8)
        total += math.ceil(blocks_wide / h) * h * math.ceil(blocks_high / v) * v * 128
    return total


def _png_structure(data: bytes, max_segments: int) -> _Structure:
    """Chunk count and metadata bytes of a PNG; Pillow inflates each text or ICC chunk up to 1 MiB."""
    pos, segments, side = len(_PNG_SIGNATURE), 0, 0
    while pos + 8 <= len(data):
        length, kind = _PNG_CHUNK.unpack_from(data, pos)
        segments += 1
        if segments > max_segments:
            raise _too_many_segments("PNG", max_segments)
        if kind != b"IDAT":
            side += min(length, len(data) - pos) + (2 * PngImagePlugin.MAX_TEXT_CHUNK if kind in _PNG_EXPANDING else 0)
        if kind == b"IEND":
            break
        pos += length + 12
    return _Structure(side)


def _gif_structure(data: bytes, max_segments: int) -> _Structure:
    """Sub-blocks of the extensions before a GIF's first image, which Pillow reads in Python."""
    pos = 13
    if len(data) > 10 and data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    segments, side = 0, 0
    while pos < len(data) and data[pos] == 0x21:
        segments += 1
        pos += 2
        while pos < len(data) and data[pos]:
            segments += 1
            if segments > max_segments:
                raise _too_many_segments("GIF", max_segments)
            side += data[pos]
            pos += data[pos] + 1
        pos += 1
    return _Structure(side)
