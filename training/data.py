"""CIFAR-10 as uint8 arrays: from an image-folder tree, a tarball of one, or gluon's download.

Images are decoded once with the serving decoder (`function.imaging.decode`) and cached as an
`.npz` keyed by the source's sha256, so training epochs never touch JPEG again.
"""

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from function.cifar10 import CLASSES, INPUT_SIZE
from function.errors import ClientError
from function.imaging import decode

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 4096 * 4096
GLUON_SOURCE = "cifar10"


class DataError(ValueError):
    """The data set is unusable; the message says which file or class and why."""


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # uint8, N x INPUT_SIZE x INPUT_SIZE x 3
    labels: np.ndarray  # int32, N
    sha256: str | None  # of the tarball; None for a folder or gluon's download (nothing single to hash)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _class_of(path: PurePosixPath) -> str:
    if len(path.parts) < 2:
        raise DataError(f"{path}: images must sit in a folder named after their class")
    name = path.parts[-2]
    if name not in CLASSES:
        raise DataError(f"{path}: unknown class {name!r}; expected one of {', '.join(CLASSES)}")
    return name


def _decode_all(items: list[tuple[str, str, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    """Decode (name, class, bytes) triples; fails on the first file that is not an image."""
    if not items:
        raise DataError("no images found")
    missing = sorted(set(CLASSES) - {cls for _, cls, _ in items})
    if missing:
        raise DataError(f"no images for class(es): {', '.join(missing)}")
    images = np.empty((len(items), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    labels = np.empty(len(items), dtype=np.int32)
    for i, (name, cls, data) in enumerate(tqdm(items, desc="decode", unit="img", mininterval=2)):
        try:
            images[i] = decode(data, MAX_PIXELS)
        except ClientError as exc:
            raise DataError(f"{name}: {exc.message}") from exc
        labels[i] = CLASSES.index(cls)
    return images, labels


def _read_folder(root: Path) -> list[tuple[str, str, bytes]]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise DataError(f"{root}: the folder holds no files")
    items = []
    for path in files:
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{relative}: not an image file (suffix {path.suffix or 'none'})")
        items.append((str(relative), _class_of(relative), path.read_bytes()))
    return items


def _read_tarball(path: Path) -> list[tuple[str, str, bytes]]:
    items = []
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile() or PurePosixPath(member.name).name.startswith("."):
                continue
            name = PurePosixPath(member.name)
            if name.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{path.name}:{name}: not an image file")
            handle = archive.extractfile(member)
            items.append((str(name), _class_of(name), handle.read() if handle else b""))
    if not items:
        raise DataError(f"{path}: the tarball holds no images")
    items.sort(key=lambda item: item[0])
    return items


def _read_gluon(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from mxnet.gluon.data.vision import CIFAR10

    dataset = CIFAR10(root=str(root), train=True)
    return dataset._data.asnumpy().astype(np.uint8), dataset._label.astype(np.int32)


def load(source: str, cache_dir: Path | None = None) -> Dataset:
    """Load a folder tree, a tarball (cached by sha256) or `cifar10` (gluon's download)."""
    if source == GLUON_SOURCE:
        images, labels = _read_gluon(Path(cache_dir or "~/.mxnet/datasets/cifar10").expanduser())
        return Dataset(images, labels, None)
    path = Path(source)
    if path.is_dir():
        images, labels = _decode_all(_read_folder(path))
        return Dataset(images, labels, None)
    if not path.is_file():
        raise DataError(f"{source}: no such folder or file")
    if not tarfile.is_tarfile(path):
        raise DataError(f"{source}: neither a folder nor a tarball")
    digest = sha256_of(path)
    cached = cache_dir / f"{digest}.npz" if cache_dir else None
    if cached and cached.exists():
        with np.load(cached) as arrays:
            return Dataset(arrays["images"], arrays["labels"], digest)
    images, labels = _decode_all(_read_tarball(path))
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, images=images, labels=labels)
    return Dataset(images, labels, digest)


def stratified_split(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, validation) indices with `per_class` validation images per class."""
    rng = np.random.default_rng(seed)
    validation = []
    for cls in range(len(CLASSES)):
        members = np.flatnonzero(labels == cls)
        if len(members) <= per_class:
            raise DataError(
                f"class {CLASSES[cls]} has {len(members)} images, too few for {per_class} validation images"
            )
        validation.append(rng.choice(members, size=per_class, replace=False))
    val = np.sort(np.concatenate(validation))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val
