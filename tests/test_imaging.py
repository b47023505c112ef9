"""Decoding limits and preprocessing of odd images, shared by serving and training."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from function.cifar10 import MEAN, STD
from function.errors import ImageTooLarge, InvalidImage
from function.imaging import decode, normalize, to_input_array
from tests.conftest import encode

LIMIT = 50_000_000


def gradient(mode: str, size=(64, 48)) -> Image.Image:
    rgb = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    rgb[..., 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    rgb[..., 1] = 128
    return Image.fromarray(rgb, "RGB").convert(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "RGB", "1", "I", "F"])
def test_every_mode_becomes_32x32_rgb(mode: str) -> None:
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    array = decode(encode(gradient(mode), fmt), LIMIT)
    assert array.shape == (32, 32, 3)
    assert array.dtype == np.uint8


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    values = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    array = decode(encode(image, "PNG"), LIMIT)
    assert array.shape == (32, 32, 3)
    assert array.max() > 200 and array.min() < 50


def test_transparency_is_composited_on_white() -> None:
    clear = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert (decode(encode(clear, "PNG"), LIMIT) == 255).all()


@pytest.mark.parametrize("size", [(64, 32), (4000, 2000)])  # decoded in full, and DCT-scaled (draft)
def test_exif_orientation_is_applied(size: tuple[int, int]) -> None:
    width, height = size
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, width // 2, height))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: the left half goes on top
    array = decode(encode(image, "JPEG", exif=exif, quality=95), LIMIT).astype(int)
    top, bottom = array[:12].mean(axis=(0, 1)), array[-12:].mean(axis=(0, 1))
    assert top[2] > 200 and top[0] < 60
    assert bottom[0] > 200 and bottom[2] < 60


def test_exif_orientation_of_a_square_image_is_applied_without_resampling() -> None:
    image = Image.new("RGB", (32, 32), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 16, 32))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees: blue on the right
    data = encode(image, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    array = decode(data, LIMIT)
    assert np.array_equal(array, expected)
    assert array[:, -1, 2].min() == 255 and array[:, 0, 0].min() == 255


def test_short_side_resized_and_center_cropped() -> None:
    image = Image.new("RGB", (300, 100), (0, 0, 0))
    image.paste((255, 255, 255), (100, 0, 200, 100))  # white middle third
    array = to_input_array(image)
    assert array.shape == (32, 32, 3)
    assert array.mean() > 250  # the center crop sees only the white third


def test_tiny_image_is_upscaled() -> None:
    assert decode(encode(Image.new("RGB", (3, 5), (10, 20, 30)), "PNG"), LIMIT).shape == (32, 32, 3)


def test_large_image_is_decoded_within_the_limit() -> None:
    assert decode(encode(gradient("RGB", (4000, 3000)), "JPEG"), LIMIT).shape == (32, 32, 3)


def test_pixel_limit_refuses_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match="over the limit"):
        decode(encode(gradient("RGB", (200, 200)), "PNG"), 100 * 100)


def test_the_pixel_limit_is_the_settings_even_above_pillows_own() -> None:
    """Pillow refuses more than 89.5 M pixels by itself unless told not to: 90.25 M here."""
    big = encode(Image.new("L", (9500, 9500), 128), "JPEG")
    assert decode(big, 100_000_000).shape == (32, 32, 3)
    with pytest.raises(ImageTooLarge, match=r"over the limit of 90000000 \(MAX_IMAGE_PIXELS\)"):
        decode(big, 90_000_000)


def test_decompression_bomb_png_is_refused() -> None:
    bomb = encode(Image.new("L", (20000, 20000), 0), "PNG")  # small file, 400 megapixels
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageTooLarge):
        decode(bomb, LIMIT)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_garbage_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        decode(data, LIMIT)


def test_truncated_jpeg_is_invalid() -> None:
    data = encode(gradient("RGB", (200, 200)), "JPEG")
    with pytest.raises(InvalidImage):
        decode(data[: len(data) // 2], LIMIT)


def test_normalize_uses_the_training_mean_and_std() -> None:
    batch = np.full((2, 32, 32, 3), 255, dtype=np.uint8)
    out = normalize(batch)
    assert out.shape == (2, 3, 32, 32)
    expected = (1.0 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(out[0, :, 0, 0], expected, rtol=1e-6)


def test_gif_and_webp_and_bmp_decode() -> None:
    for fmt in ("GIF", "WEBP", "BMP"):
        assert decode(encode(gradient("RGB"), fmt), LIMIT).shape == (32, 32, 3)


def test_jpeg_bytes_roundtrip_is_stable() -> None:
    data = io.BytesIO()
    gradient("RGB", (32, 32)).save(data, "PNG")
    assert np.array_equal(decode(data.getvalue(), LIMIT), np.asarray(gradient("RGB", (32, 32))))


def test_truncated_jpeg_stays_invalid_after_gluoncv_is_imported() -> None:
    import gluoncv.data  # noqa: F401 - flips PIL's LOAD_TRUNCATED_IMAGES on import

    data = encode(gradient("RGB", (200, 200)), "JPEG")
    with pytest.raises(InvalidImage):
        decode(data[: len(data) // 2], LIMIT)
