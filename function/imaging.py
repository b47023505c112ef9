"""Image decoding with limits and the preprocessing shared by training and serving.

Serving calls `load_rgb` then `to_input_array`; training decodes its JPEGs with the same two
functions and normalizes with `normalize`, so both see identical pixels.
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from function.cifar10 import INPUT_SIZE, MEAN, STD
from function.errors import ImageTooLarge, InvalidImage

_MEAN = np.array(MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.array(STD, dtype=np.float32).reshape(1, 3, 1, 1)


def load_rgb(data: bytes, max_pixels: int) -> Image.Image:
    """Decode `data` to an upright RGB image, refusing more than `max_pixels` before decoding."""
    if not data:
        raise InvalidImage("the image is empty")
    # gluoncv sets this Pillow global to True when imported (gluoncv/data/mhp.py), which would
    # silently accept truncated images: insist on strict decoding every time.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(f"the image has {width}x{height} pixels, over the limit of {max_pixels}")
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"the image is a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage("the body is not an image in a format Pillow can read") from exc
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise InvalidImage(f"the image cannot be decoded: {exc}") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image.convert("F") if image.mode != "F" else image, dtype=np.float32)
        top = float(array.max()) or 1.0
        image = Image.fromarray(np.clip(array * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def to_input_array(image: Image.Image) -> np.ndarray:
    """Resize the short side to the input size and center-crop: uint8 array HxWx3."""
    width, height = image.size
    scale = INPUT_SIZE / min(width, height)
    if (width, height) != (INPUT_SIZE, INPUT_SIZE):
        size = (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        left = (size[0] - INPUT_SIZE) // 2
        top = (size[1] - INPUT_SIZE) // 2
        image = image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    return np.asarray(image, dtype=np.uint8)


def decode(data: bytes, max_pixels: int) -> np.ndarray:
    """Bytes of any image format to the network's uint8 input array (32x32x3)."""
    return to_input_array(load_rgb(data, max_pixels))


def normalize(batch: np.ndarray) -> np.ndarray:
    """uint8 NHWC batch to the float32 NCHW tensor the network was trained on."""
    chw = batch.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return (chw - _MEAN) / _STD
