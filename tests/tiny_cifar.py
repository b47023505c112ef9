"""A tiny CIFAR-10-shaped data set and a second network, made in the test's folder, for the training tests."""

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from function.cifar10 import CLASSES
from tests.conftest import SHIPPED
from training import evaluate


def make_tree(root: Path, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for index, name in enumerate(CLASSES):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(index * 25, 10, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=95)
    return root / "train"


def make_tarball(tree: Path, path: Path) -> Path:
    with tarfile.open(path, "w:xz") as archive:
        archive.add(tree, arcname="train")
    return path


def another_network(path: Path) -> Path:
    """The shipped network with its output rows rolled by one class: a teacher that disagrees."""
    net = evaluate.load_network(SHIPPED)
    for param in (net.output.weight, net.output.bias):
        param.set_data(np.roll(param.data().asnumpy(), 1, axis=0))
    net.save_parameters(str(path))
    return path
