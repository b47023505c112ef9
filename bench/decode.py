"""Decoding speed and accuracy on photo-sized inputs: this function's decoder against plain Pillow.

    python -m bench.decode [--seconds 2] [--accuracy] [--data PATH]

Speed: decodes per second on one core (CPU time of this process) of deterministic photo-like JPEGs
of 640x480, 1920x1080 and 4032x3024, for plain Pillow (full decode, RGB, short side resized to 32
with BILINEAR, centre crop: this function's former path) and for `function.imaging.decode`.

Accuracy (--accuracy, needs the shipped weights and the training tarball): the served (flip-averaged)
accuracy on the validation split of the model card, at 32 px and upscaled to 480 and 1024 px
(bicubic, JPEG quality 90; square, so no crop intervenes), decoded both ways.
"""

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from function.cifar10 import INPUT_SIZE
from function.imaging import decode

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "function" / "weights" / "cifar_resnet20_v1.params"
DATA = ROOT.parent / "shared" / "data" / "cifar10-train-jpeg.tar.xz"
SIZES = ((640, 480), (1920, 1080), (4032, 3024))
UPSCALED = (480, 1024)
LIMIT = 50_000_000


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic RGB image with a photo's mix of smooth regions and fine detail."""
    rng = np.random.default_rng(seed)

    def noise(step: int, resample: Image.Resampling) -> Image.Image:
        cells = rng.integers(0, 256, (height // step + 2, width // step + 2, 3), dtype=np.uint8)
        return Image.fromarray(cells, "RGB").resize((width, height), resample)

    return Image.blend(noise(64, Image.Resampling.BICUBIC), noise(3, Image.Resampling.BILINEAR), 0.3)


def jpeg(image: Image.Image, quality: int = 90, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


def naive(data: bytes) -> np.ndarray:
    """Plain Pillow: full decode, RGB, short side to INPUT_SIZE (BILINEAR), centre crop."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    scale = INPUT_SIZE / min(width, height)
    size = (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - INPUT_SIZE) // 2, (size[1] - INPUT_SIZE) // 2
    return np.asarray(image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE)))


def ours(data: bytes) -> np.ndarray:
    return decode(data, LIMIT)


def rate(function: Callable[[bytes], np.ndarray], data: bytes, seconds: float) -> float:
    """Calls per second of CPU time, at least three calls and `seconds` of CPU."""
    function(data)
    calls, start = 0, time.process_time()
    while calls < 3 or time.process_time() - start < seconds:
        function(data)
        calls += 1
    return calls / (time.process_time() - start)


def speed(seconds: float) -> list[dict]:
    rows = []
    for width, height in SIZES:
        data = jpeg(photo_like(width, height))
        row = {"size": f"{width}x{height}", "bytes": len(data)}
        row["naive_per_s"] = rate(naive, data, seconds)
        row["ours_per_s"] = rate(ours, data, seconds)
        print(
            f"{row['size']:>10} JPEG ({len(data) / 1e6:.1f} MB): plain Pillow {row['naive_per_s']:7.1f}/s, "
            f"ours {row['ours_per_s']:7.1f}/s per core ({row['ours_per_s'] / row['naive_per_s']:.1f}x)",
            flush=True,
        )
        rows.append(row)
    return rows


def upscaled(images: np.ndarray, side: int) -> list[bytes]:
    """Each 32 px image upscaled to side x side (bicubic) and saved as JPEG quality 90."""
    return [jpeg(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC)) for image in images]


def served_accuracy(net, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of the served forward pass (flip-averaged, as FLIP_AVERAGE's default)."""
    from function.inference import probabilities

    predictions = [probabilities(net, images[i : i + 250]).argmax(axis=1) for i in range(0, len(images), 250)]
    return float((np.concatenate(predictions) == labels).mean())


def validation(per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The model card's validation split (the first `per_class` of each class when given)."""
    from training.data import load, stratified_split

    split = json.loads(PARAMS.with_suffix(".json").read_text())["validation_split"]
    dataset = load(str(DATA), ROOT / ".cache" / "data")
    _, indices = stratified_split(dataset.labels, split["per_class"], split["seed"])
    if per_class is not None:
        indices = np.concatenate([indices[dataset.labels[indices] == c][:per_class] for c in range(10)])
    return dataset.images[indices], dataset.labels[indices]


def accuracy(per_class: int | None = None) -> dict:
    from training.evaluate import load_network

    net = load_network(PARAMS)
    images, labels = validation(per_class)
    result = {"images": len(labels), "32": served_accuracy(net, images, labels)}
    print(f"served accuracy on {len(labels)} validation images at 32 px: {result['32']:.2%}", flush=True)
    for side in UPSCALED:
        blobs = upscaled(images, side)
        for name, function in (("naive", naive), ("ours", ours)):
            score = served_accuracy(net, np.stack([function(blob) for blob in blobs]), labels)
            result[f"{side}_{name}"] = score
            print(f"  upscaled to {side} px, {name:>5}: {score:.2%} ({(score - result['32']) * 100:+.2f} points)")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per measurement")
    parser.add_argument("--accuracy", action="store_true", help="also the validation accuracy on upscaled images")
    parser.add_argument("--per-class", type=int, default=None, help="accuracy on this many images per class")
    args = parser.parse_args(argv)
    result = {"speed": speed(args.seconds)}
    if args.accuracy:
        result["accuracy"] = accuracy(args.per_class)
    return result


if __name__ == "__main__":
    main()
