"""Photo-like JPEGs for the benchmark, and the rate at which plain Pillow decodes them on all cores.

The images are made, not downloaded: a smooth two-way gradient, structured noise at three scales
(random colours upsampled bicubically, as clouds, foliage and texture look at a distance), a dozen
hard-edged shapes, and sensor grain, encoded at JPEG quality 90 with 4:2:0 chroma as a phone
does. All of it from one seed, so every run sends the same bytes. Their entropy, and so their
size and decoding cost, is that of a photograph rather than of a flat test card.

The naive limit is what a server could reach if it did nothing but the textbook preprocessing on
every core: `Image.open`, `convert("RGB")`, `resize((32, 32), BILINEAR)`, in a pool of one process
per CPU, with no HTTP at all.
"""

import io
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1920, 1080), (4032, 3024))
QUALITY = 90
SEED = 15
# Structured noise: (cells across, amplitude in levels) from coarse to fine, then texture at a
# fixed scale in pixels, so that a larger photo holds more detail, as a sharper sensor's does.
OCTAVES = ((4, 48.0), (24, 24.0), (160, 12.0))
TEXTURE_PIXELS, TEXTURE_LEVELS = 4, 18.0
SHAPES = 12
GRAIN_LEVELS = 5.0


def photo(width: int, height: int, seed: int = SEED) -> bytes:
    """A deterministic photo-like JPEG of `width` x `height`."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    cols = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    top, bottom, side = rng.uniform(30, 225, (3, 3)).astype(np.float32)
    canvas = top * (1 - rows) + bottom * rows + (side - 128) * 0.4 * cols
    for cells, amplitude in (*OCTAVES, (max(1, width // TEXTURE_PIXELS), TEXTURE_LEVELS)):
        small = rng.integers(0, 256, (max(1, cells * height // width), cells, 3), dtype=np.uint8)
        layer = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
        canvas = canvas + (np.asarray(layer, dtype=np.float32) - 128.0) * (amplitude / 128.0)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    del canvas
    draw = ImageDraw.Draw(image)
    scale = min(width, height)
    for _ in range(SHAPES):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.05, 0.35, 2) * scale
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        elif kind == 1:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            points = rng.uniform(-0.5, 0.5, (5, 2)) * (w, h) * 2 + (x, y)
            draw.polygon([tuple(p) for p in points], fill=colour)
    grain = rng.standard_normal((height, width, 3), dtype=np.float32) * GRAIN_LEVELS
    pixels = np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=QUALITY, subsampling="4:2:0")
    return out.getvalue()


def cached(width: int, height: int, folder: Path, seed: int = SEED) -> Path:
    """The photo's file in `folder`, made once (the content depends on nothing but the arguments)."""
    path = folder / f"photo-{width}x{height}-{seed}.jpg"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(photo(width, height, seed))
        temporary.replace(path)
    return path


def _naive(data: bytes) -> None:
    Image.open(io.BytesIO(data)).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)


def _count_until(job: tuple[bytes, float]) -> int:
    data, deadline = job
    count = 0
    while time.monotonic() < deadline:
        _naive(data)
        count += 1
    return count


def naive_rate(data: bytes, seconds: float, processes: int | None = None) -> float:
    """Images per second that plain Pillow decodes and resizes to 32 x 32, one process per CPU.

    Timed from the moment all processes are running to the moment the last one finishes its last
    image (CLOCK_MONOTONIC is shared by the processes), so no process's head start counts.
    """
    processes = processes or os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.map(_naive, [data] * processes, chunksize=1)  # started, imported and warm
        start = time.monotonic()
        counts = pool.map(_count_until, [(data, start + seconds)] * processes, chunksize=1)
        elapsed = time.monotonic() - start
    return sum(counts) / elapsed
