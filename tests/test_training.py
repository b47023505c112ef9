"""Training pipeline on a tiny data set made here: loaders, bad data, a smoke run, evaluation."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from function.cifar10 import CLASSES
from training import evaluate, train
from training.data import DataError, load, stratified_split
from training.evaluate import scores


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


def test_augment_keeps_shape_and_pixels() -> None:
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    out = train.augment(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)


def test_learning_rate_warms_up_then_anneals() -> None:
    rates = [train.learning_rate(s, 100, 0.4, 0.2, 0.0) for s in range(100)]
    assert rates[0] == pytest.approx(0.04)
    assert max(rates) == pytest.approx(0.4)
    assert rates.index(max(rates)) == 20
    assert rates[-1] < 0.001


def test_smoke_run_writes_loadable_weights_and_card_then_resumes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data", per_class=6)
    out = tmp_path / "run"
    args = ["--data", str(tree), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--val-per-class", "2"]
    card = train.main(args)
    assert (out / "cifar_resnet20_v1.params").exists() and (out / "history.png").exists()
    written = json.loads((out / "cifar_resnet20_v1.json").read_text())
    assert written == card
    assert written["classes"] == list(CLASSES)
    for key in (
        "mean",
        "std",
        "validation_accuracy",
        "validation_accuracy_single_view",
        "per_class_accuracy",
        "epochs",
        "recipe",
        "training_seconds",
        "machine",
        "data",
        "mxnet_version",
        "gluoncv_version",
        "input_size",
        "network",
    ):
        assert key in written
    result = evaluate.main(
        ["--data", str(tree), "--params", str(out / "cifar_resnet20_v1.params"), "--out", str(tmp_path / "eval")]
    )
    assert result["accuracy"] == pytest.approx(written["validation_accuracy"], abs=1e-4)
    assert (tmp_path / "eval" / "confusion.png").exists()
    single = evaluate.main(["--data", str(tree), "--params", str(out / "cifar_resnet20_v1.params"), "--single-view"])
    assert single["accuracy"] == pytest.approx(written["validation_accuracy_single_view"], abs=1e-4)
    resumed = train.main([*args[:5], "2", *args[6:]])  # same run, one more epoch: resumes from epoch 1
    assert resumed["epochs"] == 2
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1, 2]


def test_scores_match_a_hand_count() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 0])
    result = scores(labels, predictions)
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["per_class_accuracy"]["airplane"] == 0.5
    assert result["per_class_accuracy"]["automobile"] == 1.0
    assert result["per_class_accuracy"]["bird"] == 0.0
    assert result["confusion"][0][:3] == [1, 1, 0]
