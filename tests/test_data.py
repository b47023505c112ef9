"""Loading the training images (a folder or a tarball of one), bad data named, and the validation split."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.tiny_cifar import make_tarball, make_tree
from training.data import DataError, load, stratified_split


def test_folder_and_tarball_give_the_same_arrays(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data")
    folder = load(str(tree))
    packed = load(str(make_tarball(tree, tmp_path / "d.tar.xz")), tmp_path / "cache")
    assert folder.images.shape == (40, 32, 32, 3) and folder.images.dtype == np.uint8
    assert np.array_equal(folder.images, packed.images) and np.array_equal(folder.labels, packed.labels)
    assert sorted(set(folder.labels.tolist())) == list(range(10))
    assert len(packed.sha256) == 64
    cached = load(str(tmp_path / "d.tar.xz"), tmp_path / "cache")  # second read comes from the cache
    assert list((tmp_path / "cache").glob("*.npz")) and np.array_equal(cached.images, packed.images)


def test_empty_folder_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        load(str(tmp_path / "empty"))


def test_missing_class_fails_clearly(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data")
    for file in (tree / "frog").iterdir():
        file.unlink()
    (tree / "frog").rmdir()
    with pytest.raises(DataError, match=r"no images for class.*frog"):
        load(str(tree))


def test_unknown_class_fails_clearly(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data")
    (tree / "giraffe").mkdir()
    Image.new("RGB", (32, 32)).save(tree / "giraffe" / "0.jpg")
    with pytest.raises(DataError, match="unknown class 'giraffe'"):
        load(str(tree))


def test_non_image_file_fails_clearly(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data")
    (tree / "cat" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes.txt: not an image"):
        load(str(tree))
    (tree / "cat" / "notes.txt").unlink()
    (tree / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg"):
        load(str(tree))


def test_split_is_stratified_and_deterministic() -> None:
    labels = np.repeat(np.arange(10), 20)
    train_a, val_a = stratified_split(labels, 5, seed=3)
    train_b, val_b = stratified_split(labels, 5, seed=3)
    assert np.array_equal(val_a, val_b) and np.array_equal(train_a, train_b)
    assert np.bincount(labels[val_a]).tolist() == [5] * 10
    assert not set(train_a) & set(val_a) and len(train_a) + len(val_a) == 200
