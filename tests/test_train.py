"""training.train on a tiny data set made here: batches and targets, levers, teachers, recipes, resumption."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from function.cifar10 import CLASSES, NETWORK
from function.inference import probabilities
from tests.tiny_cifar import another_network, make_tarball, make_tree
from training import checkpoint, evaluate, machine, train

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "function" / "weights" / "cifar_resnet20_v1.params"  # a real teacher
# MXNet's threaded engine and OpenMP reductions make CPU training differ in the last bits from run to
# run; its synchronous engine on one thread is bit-reproducible, which the resumption test needs.
DETERMINISTIC = {"MXNET_ENGINE_TYPE": "NaiveEngine", "OMP_NUM_THREADS": "1"}


def test_augment_keeps_shape_and_pixels() -> None:
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    out = train.augment(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)


def test_mixup_blends_each_input_and_its_target_with_another_by_one_weight() -> None:
    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    labels, idx = np.arange(8) % len(CLASSES), np.arange(8)
    plain_x, plain_t = (a.asnumpy() for a in train.make_batch(images, labels, idx, np.random.default_rng(3), 0.1))
    x, t = (a.asnumpy() for a in train.make_batch(images, labels, idx, np.random.default_rng(3), 0.1, mixup=1.0))
    rng = np.random.default_rng(3)
    train.augment(images, rng)  # the same crops and flips, then mixup's draws
    weight, partner = rng.beta(1.0, 1.0), rng.permutation(8)
    assert 0 < weight < 1 and not np.array_equal(partner, np.arange(8))
    assert np.allclose(x, weight * plain_x + (1 - weight) * plain_x[partner], atol=1e-5)
    assert np.allclose(t, weight * plain_t + (1 - weight) * plain_t[partner], atol=1e-6)
    assert np.allclose(t.sum(axis=1), 1)


def test_distillation_blends_each_smoothed_label_with_its_images_soft_target_before_mixup() -> None:
    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    labels, idx = np.arange(8) % len(CLASSES), np.array([5, 2, 7, 0, 1, 3, 6, 4])
    soft = np.random.default_rng(1).dirichlet(np.ones(len(CLASSES)), 8).astype(np.float32)
    _, plain = (a.asnumpy() for a in train.make_batch(images, labels, idx, np.random.default_rng(3), 0.1))
    _, t = (a.asnumpy() for a in train.make_batch(images, labels, idx, np.random.default_rng(3), 0.1, 0.0, soft, 0.3))
    assert np.allclose(t, 0.7 * plain + 0.3 * soft[idx], atol=1e-6)
    _, mixed = (
        a.asnumpy() for a in train.make_batch(images, labels, idx, np.random.default_rng(3), 0.1, 1.0, soft, 0.3)
    )
    rng = np.random.default_rng(3)
    train.augment(images[idx], rng)
    weight, partner = rng.beta(1.0, 1.0), rng.permutation(8)
    assert np.allclose(mixed, weight * t + (1 - weight) * t[partner], atol=1e-6)


def test_consistent_distillation_targets_the_teachers_softmax_of_the_students_own_input(tmp_path: Path) -> None:
    import mxnet as mx

    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    labels, idx = np.arange(8) % len(CLASSES), np.array([5, 2, 7, 0, 1, 3, 6, 4])
    teachers = [evaluate.load_network(path) for path in (SHIPPED, another_network(tmp_path / "other.params"))]
    _, plain = (a.asnumpy() for a in train.make_batch(images, labels, idx, np.random.default_rng(3), 0.1, 1.0))
    x, t = train.make_batch(images, labels, idx, np.random.default_rng(3), 0.1, 1.0, None, 0.7, teachers)
    seen = [mx.nd.softmax(teacher(x)).asnumpy() for teacher in teachers]
    assert not np.allclose(seen[0], seen[1], atol=1e-3)
    assert np.allclose(t.asnumpy(), 0.3 * plain + 0.7 * (seen[0] + seen[1]) / 2, atol=1e-5)
    clean = train.teacher_probabilities([str(SHIPPED)], images)[idx]  # not the unaugmented image's
    assert not np.allclose(t.asnumpy(), 0.3 * plain + 0.7 * clean, atol=1e-2)
    rng = np.random.default_rng(3)  # batch-flip: the same input, and the teachers' view of its mirror too
    x2, flipped = train.make_batch(images, labels, idx, rng, 0.1, 1.0, None, 0.7, teachers, teacher_flip=True)
    mirrored = [mx.nd.softmax(teacher(x.flip(axis=3))).asnumpy() for teacher in teachers]
    assert np.array_equal(x2.asnumpy(), x.asnumpy()) and not np.allclose(mirrored[0], seen[0], atol=1e-3)
    assert np.allclose(flipped.asnumpy(), 0.3 * plain + 0.7 * (sum(seen) + sum(mirrored)) / 4, atol=1e-5)


def test_the_split_has_its_own_seed_so_teachers_can_differ_on_the_same_validation_images(tmp_path: Path) -> None:
    data = ["--data", str(make_tree(tmp_path / "data", per_class=4))]
    recipe = ["--epochs", "1", "--batch-size", "8", "--val-per-class", "1"]
    cards = {
        name: train.main([*data, *recipe, "--out", str(tmp_path / name), *extra])
        for name, extra in (("a", []), ("b", ["--seed", "1"]), ("c", ["--split-seed", "1"]))
    }
    assert cards["a"]["validation_split"] == cards["b"]["validation_split"] and cards["b"]["recipe"]["seed"] == 1
    histories = {name: checkpoint.read_history(tmp_path / name)[0] for name in cards}
    assert histories["a"]["train_loss"] != histories["b"]["train_loss"]  # other weights, order and crops
    assert cards["c"]["validation_split"]["seed"] == 1 and cards["c"]["recipe"]["seed"] == 0
    for name in cards:  # evaluate finds each run's split in its card
        scored = evaluate.main([*data, "--params", str(tmp_path / name / "cifar_resnet20_v1.params"), "--single-view"])
        assert scored["accuracy"] == pytest.approx(cards[name]["validation_accuracy_single_view"], abs=1e-4)


def test_teachers_give_their_mean_flip_averaged_probabilities(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 255, (600, 32, 32, 3), dtype=np.uint8)  # over one 500-image chunk
    other = another_network(tmp_path / "other.params")
    soft = train.teacher_probabilities([str(SHIPPED), str(other)], images)
    each = [probabilities(evaluate.load_network(path), images) for path in (SHIPPED, other)]
    assert not np.allclose(each[0], each[1], atol=1e-3)
    assert soft.shape == (600, len(CLASSES)) and np.allclose(soft, (each[0] + each[1]) / 2, atol=1e-6)


def test_learning_rate_warms_up_then_anneals() -> None:
    rates = [train.learning_rate(s, 100, 0.4, 0.2, 0.0) for s in range(100)]
    assert rates[0] == pytest.approx(0.04)
    assert max(rates) == pytest.approx(0.4)
    assert rates.index(max(rates)) == 20
    assert rates[-1] < 0.001


def test_smoke_run_stops_resumes_and_writes_loadable_weights_and_card(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data", per_class=6)
    out = tmp_path / "run"
    args = ["--data", str(tree), "--out", str(out), "--epochs", "2", "--batch-size", "8", "--val-per-class", "2"]
    assert train.main([*args, "--stop-after", "1"]) is None
    assert sorted(path.name for path in out.glob("epoch-*")) == ["epoch-001.params", "epoch-001.states"]
    assert not (out / "cifar_resnet20_v1.params").exists()
    (out / "epoch-002.params").write_bytes(b"half-written by a killed run")  # history still says epoch 1
    card = train.main(["--data", str(tree), "--out", str(out)])  # the rest of the recipe comes from the folder
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert [row["step"] for row in history] == [5, 10]  # 40 training images in batches of 8
    assert history[-1]["learning_rate"] == pytest.approx(train.learning_rate(9, 10, 0.2, 0.15, 0.0), abs=1e-5)
    assert sorted(path.name for path in out.glob("epoch-*")) == ["epoch-002.params", "epoch-002.states"]
    assert (out / "cifar_resnet20_v1.params").exists() and (out / "history.png").exists()
    written = json.loads((out / "cifar_resnet20_v1.json").read_text())
    assert written == card
    assert written["classes"] == list(CLASSES)
    assert written["epochs"] == 2 and written["recipe"]["weights"] == "the last step's"
    assert "live_weights" not in written  # only beside a weight average
    assert written["machine"]["epochs_by_cpu"] == {machine.cpu_model(): 2}
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


def test_a_run_folder_refuses_another_recipe_or_other_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tree = make_tree(tmp_path / "data", per_class=3)
    first = make_tarball(tree, tmp_path / "first.tar.xz")
    (tree / "cat" / "0000.jpg").unlink()
    other = make_tarball(tree, tmp_path / "other.tar.xz")
    out = tmp_path / "run"
    args = ["--out", str(out), "--epochs", "2", "--batch-size", "8", "--val-per-class", "1", "--stop-after", "1"]
    train.main(["--data", str(first), *args])
    with pytest.raises(SystemExit):
        train.main(["--data", str(first), *args, "--lr", "0.3", "--zero-init-residual"])
    assert "--lr 0.3 (the run's recipe says 0.2); --zero-init-residual True (the run's recipe says False)" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        train.main(["--data", str(other), *args])
    assert "data with sha256" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not "no limit": that would train the whole run
        train.main(["--data", str(first), *args[:-1], "0"])
    assert "--stop-after 0: the epoch to stop after is 1 or more" in capsys.readouterr().err
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1]


def test_a_taught_run_learns_from_its_teacher_and_refuses_a_changed_or_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = ["--data", str(make_tree(tmp_path / "data", per_class=3))]
    recipe = ["--epochs", "2", "--batch-size", "8", "--val-per-class", "1", "--stop-after", "1"]
    teacher, taught, plain = tmp_path / "teacher.params", tmp_path / "taught", tmp_path / "plain"
    teacher.write_bytes(SHIPPED.read_bytes())
    train.main([*data, *recipe, "--out", str(plain)])
    train.main([*data, *recipe, "--out", str(taught), "--teacher", str(teacher), "--distill", "1.0"])
    consistent = tmp_path / "consistent"
    train.main([*data, *recipe, "--out", str(consistent), "--teacher", str(teacher), "--distill-on", "batch"])
    losses = [checkpoint.read_history(folder)[0]["train_loss"] for folder in (plain, taught, consistent)]
    assert len(set(losses)) == 3  # the soft targets reached the loss, each kind its own
    assert json.loads((consistent / "recipe.json").read_text())["options"]["distill_on"] == "batch"
    train.main([*data, "--out", str(taught), "--teacher", str(teacher), "--stop-after", "1"])  # the same teacher
    for argv, message in (
        ([*data, "--out", str(plain), "--teacher", str(teacher)], "--teacher"),  # a run begun without one
        ([*data, *recipe, "--out", str(tmp_path / "x"), "--distill", "0.3"], "--distill needs --teacher"),
        ([*data, *recipe, "--out", str(tmp_path / "z"), "--distill-on", "batch"], "--distill-on needs --teacher"),
        ([*data, *recipe, "--out", str(tmp_path / "y"), "--teacher", str(teacher), "--distill", "2"], "between 0"),
    ):
        with pytest.raises(SystemExit):
            train.main(argv)
        assert message in capsys.readouterr().err
    assert not any((tmp_path / name / "recipe.json").exists() for name in "xyz")  # a refused start keeps no recipe
    train.main([*data, *recipe, "--out", str(tmp_path / "y"), "--teacher", str(teacher), "--distill", "0.5"])
    assert [row["epoch"] for row in checkpoint.read_history(tmp_path / "y")] == [1]  # the corrected command runs
    teacher.write_bytes(SHIPPED.read_bytes()[:-4] + b"\0\0\0\0")
    for argv in ([*data, "--out", str(taught)], [*data, "--out", str(taught), "--teacher", str(teacher)]):
        with pytest.raises(SystemExit):
            train.main(argv)
        assert f"teacher {teacher} has changed since the run began" in capsys.readouterr().err
    teacher.unlink()
    with pytest.raises(SystemExit):
        train.main([*data, "--out", str(taught)])
    assert f"teacher {teacher} is missing" in capsys.readouterr().err
    assert [row["epoch"] for row in checkpoint.read_history(taught)] == [1]


def test_a_deeper_teacher_trains_under_its_own_name_and_loads_from_its_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import mxnet as mx

    data = ["--data", str(make_tree(tmp_path / "data", per_class=3))]
    recipe = ["--epochs", "1", "--batch-size", "8", "--val-per-class", "1"]
    deep = tmp_path / "deep"
    card = train.main([*data, *recipe, "--out", str(deep), "--network", "cifar_resnet56_v1"])
    teacher = deep / "cifar_resnet56_v1.params"
    assert card["network"] == "cifar_resnet56_v1" and teacher.exists()
    assert not (deep / "cifar_resnet20_v1.params").exists()
    assert len(evaluate.load_network(teacher).features[2]) == 9  # blocks per stage: 6 x 9 + 2 = 56 layers
    assert evaluate.network_of(SHIPPED) == NETWORK
    taught = tmp_path / "taught"
    student = train.main([*data, *recipe, "--out", str(taught), "--teacher", str(teacher), "--distill-on", "batch"])
    assert student["network"] == NETWORK and (taught / "cifar_resnet20_v1.params").exists()
    shallow = tmp_path / "shallow.params"  # two blocks a stage: a depth gluoncv's CIFAR ResNets do not have
    mx.nd.save(str(shallow), {k: v for k, v in mx.nd.load(str(SHIPPED)).items() if not k.startswith("features.2.2.")})
    with pytest.raises(SystemExit):
        train.main([*data, *recipe, "--out", str(tmp_path / "x"), "--teacher", str(shallow)])
    assert f"--teacher: {shallow} holds no gluoncv CIFAR ResNet v1" in capsys.readouterr().err
    v2 = tmp_path / "v2.params"  # the same stages behind a leading batch norm
    mx.nd.save(
        str(v2), {k.replace("features.0.weight", "features.0.gamma"): v for k, v in mx.nd.load(str(SHIPPED)).items()}
    )
    shallow.write_text("not parameters")
    for path, message in ((v2, "holds no gluoncv CIFAR ResNet v1"), (shallow, "is not an MXNet parameter file")):
        with pytest.raises(SystemExit):
            evaluate.main(["--data", str(tmp_path / "nowhere"), "--params", str(path)])  # refused before the data
        assert f"{path} {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main([*data, "--params", str(tmp_path / "typo.params")])
    assert f"{tmp_path / 'typo.params'}: no such file" in capsys.readouterr().err


def test_a_run_started_from_another_runs_weights_begins_at_them_and_refuses_a_changed_or_foreign_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import mxnet as mx
    from gluoncv.model_zoo import get_model

    data = ["--data", str(make_tree(tmp_path / "data", per_class=3))]
    still = ["--epochs", "1", "--batch-size", "8", "--val-per-class", "1", "--lr", "1e-12", "--wd", "0"]
    start = tmp_path / "start.params"
    start.write_bytes(SHIPPED.read_bytes())
    card = train.main([*data, *still, "--out", str(tmp_path / "warm"), "--init", str(start)])
    fresh = train.main([*data, *still, "--out", str(tmp_path / "fresh")])
    assert card["recipe"]["init"] == f"the weights of {start} (sha256 {train.sha256_of(str(start))})"
    assert fresh["recipe"]["init"].startswith("Xavier")
    shipped = mx.nd.load(str(SHIPPED))
    convolutions = [k for k in shipped if k.endswith(".weight")]
    for run, same in (("warm", True), ("fresh", False)):  # a learning rate of 1e-12 leaves the weights where they began
        weights = mx.nd.load(str(tmp_path / run / "cifar_resnet20_v1.params"))
        assert weights.keys() == shipped.keys()
        assert all(np.allclose(weights[k].asnumpy(), shipped[k].asnumpy(), atol=1e-6) for k in convolutions) is same

    deep = tmp_path / "deep.params"
    net = get_model("cifar_resnet56_v1", classes=len(CLASSES))
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.save_parameters(str(deep))
    for argv, message in (
        ([*data, *still, "--out", str(tmp_path / "a"), "--init", str(deep)], "holds a cifar_resnet56_v1; this run"),
        ([*data, *still, "--out", str(tmp_path / "b"), "--init", str(tmp_path / "no.params")], "--init: "),
        ([*data, *still, "--out", str(tmp_path / "c"), "--init", str(start), "--zero-init-residual"], "no effect"),
    ):
        with pytest.raises(SystemExit):
            train.main(argv)
        assert message in capsys.readouterr().err
    assert not any((tmp_path / name / "recipe.json").exists() for name in "abc")  # a refused start keeps no recipe
    assert train.main([*data, *still, "--out", str(tmp_path / "a"), "--init", str(start)])  # the corrected command
    gone = tmp_path / "gone.params"
    gone.write_bytes(SHIPPED.read_bytes())
    halfway = [*data, *still, "--epochs", "2", "--out", str(tmp_path / "halfway"), "--init", str(gone)]
    assert train.main([*halfway, "--stop-after", "1"]) is None
    gone.unlink()  # the first checkpoint holds the weights now: the same command resumes without the file
    assert train.main(halfway)["recipe"]["init"] == f"the weights of {gone} (sha256 {train.sha256_of(str(SHIPPED))})"
    resumable = tmp_path / "warm"  # as if killed during its first epoch: the recipe alone, no checkpoint yet
    for path in [*resumable.glob("epoch-*"), resumable / "history.json"]:
        path.unlink()
    start.write_bytes(SHIPPED.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(SystemExit):
        train.main([*data, "--out", str(resumable)])
    assert f"--init {start} has changed since the run began" in capsys.readouterr().err
    start.unlink()
    with pytest.raises(SystemExit):
        train.main([*data, "--out", str(resumable)])
    assert f"--init {start} is missing" in capsys.readouterr().err


def test_a_run_begun_before_network_was_an_option_resumes_as_cifar_resnet20_v1(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = ["--data", str(make_tree(tmp_path / "data", per_class=3))]
    out = tmp_path / "run"
    train.main(
        [*data, "--out", str(out), "--epochs", "2", "--batch-size", "8", "--val-per-class", "1", "--stop-after", "1"]
    )
    recipe = json.loads((out / "recipe.json").read_text())
    del recipe["options"]["network"]  # as written before --network existed
    (out / "recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(SystemExit):
        train.main([*data, "--out", str(out), "--network", "cifar_resnet56_v1"])
    assert "--network cifar_resnet56_v1 (the run's recipe says cifar_resnet20_v1)" in capsys.readouterr().err
    assert train.main([*data, "--out", str(out)])["network"] == NETWORK


def model_args(**overrides: object) -> argparse.Namespace:
    options = {
        "seed": 0,
        "lr": 0.1,
        "momentum": 0.9,
        "wd": 5e-4,
        "zero_init_residual": False,
        "output_init_scale": 1.0,
        "network": NETWORK,
    }
    return argparse.Namespace(**{**options, **overrides})


def initialised(args: argparse.Namespace) -> tuple:
    """A built network after one forward pass (which ends the deferred initialisation) and its weights in order.

    Names carry a per-process counter (cifarresnetv1N_), so two networks are compared position by position.
    """
    import mxnet as mx

    net, _ = train.build(args)
    net(mx.nd.zeros((2, 3, 32, 32)))
    return net, [(name, param.data().asnumpy()) for name, param in net.collect_params().items()]


def test_zero_init_residual_zeroes_exactly_each_blocks_last_batch_norm_gamma(tmp_path: Path) -> None:
    from gluoncv.model_zoo.cifarresnet import CIFARBasicBlockV1
    from mxnet.gluon import nn

    net, zeroed = initialised(model_args(zero_init_residual=True))
    _, plain = initialised(model_args())
    blocks: list = []
    net.apply(blocks.append)
    blocks = [block for block in blocks if isinstance(block, CIFARBasicBlockV1)]
    assert len(blocks) == 9  # resnet20: three stages of three blocks
    last = {block.body[-1].gamma.name for block in blocks}
    assert all(isinstance(block.body[-1], nn.BatchNorm) for block in blocks)
    assert len(zeroed) == len(plain)
    for (name, value), (_, reference) in zip(zeroed, plain, strict=True):
        if name in last:
            assert not value.any(), name
        else:  # the first batch norm of each body, the shortcuts' and the stem's keep gamma 1; the rest is unchanged
            assert np.array_equal(value, reference), name
    tree = make_tree(tmp_path / "data", per_class=4)
    out = tmp_path / "run"
    args = ["--data", str(tree), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--val-per-class", "1"]
    card = train.main([*args, "--zero-init-residual"])
    assert "last batch-norm gamma 0" in card["recipe"]["init"]
    import mxnet as mx

    trained = mx.nd.load(str(out / "epoch-001.params"))
    gammas = [trained[key].asnumpy() for key in trained if key.endswith("body.4.gamma")]
    assert len(gammas) == 9 and all(gamma.any() for gamma in gammas)  # training moved them off zero


def test_output_init_scale_scales_only_the_output_layer() -> None:
    net, scaled = initialised(model_args(output_init_scale=0.1))
    _, plain = initialised(model_args())
    for (name, value), (_, reference) in zip(scaled, plain, strict=True):
        expected = reference * np.float32(0.1) if name == net.output.weight.name else reference
        assert np.array_equal(value, expected), name
    assert any(name == net.output.weight.name for name, _ in scaled)


def test_weight_average_follows_every_parameter_and_swaps_back() -> None:
    net, weights = initialised(model_args())
    start = dict(weights)
    average = train.WeightAverage(net, decay=0.5)
    average.update()  # the first update starts from the live weights
    params = net.collect_params()
    for param in params.values():
        param.set_data(param.data() + 1)
    average.update()  # second update: the ramp caps the decay at (1 + 2) / (10 + 2)
    ramp = 3 / 12
    with average.applied():
        for name, param in params.items():
            np.testing.assert_allclose(param.data().asnumpy(), start[name] + (1 - ramp), atol=1e-6, err_msg=name)
    assert any(name.endswith("running_var") for name in params)  # batch-norm statistics are averaged too
    for name, param in params.items():
        np.testing.assert_array_equal(param.data().asnumpy(), start[name] + 1, err_msg=name)


def run_module(module: str, *args: str) -> None:
    env = {**os.environ, **DETERMINISTIC, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_run_resumed_from_its_kept_checkpoint_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    """Stop after epoch 1, keep the checkpoint (as committed to training/runs/), resume elsewhere: bit for bit."""
    import mxnet as mx

    tree = make_tree(tmp_path / "data", per_class=6)
    data = ["--data", str(tree)]
    recipe = ["--epochs", "2", "--batch-size", "8", "--val-per-class", "2", "--lr", "0.05"]
    init = ["--zero-init-residual", "--output-init-scale", "0.1", "--mixup", "1.0", "--mixup-off-epochs", "1"]
    init += ["--teacher", str(SHIPPED), "--distill", "0.4"]
    levers = [*init, "--ema-decay", "0.8"]
    run_module("training.train", *data, *recipe, *levers, "--out", str(tmp_path / "whole"))
    run_module("training.train", *data, *recipe, *init, "--out", str(tmp_path / "no-ema"))
    run_module("training.train", *data, *recipe, *levers, "--out", str(tmp_path / "stopped"), "--stop-after", "1")
    kept = tmp_path / "repo" / "training" / "runs" / "r"
    assert checkpoint.keep(tmp_path / "stopped", kept) == 1
    assert sorted(path.name for path in kept.iterdir()) == [
        "epoch-001-ema.params",
        "epoch-001.params",
        "epoch-001.states",
        "history.json",
        "history.png",
        "recipe.json",
    ]
    assert sum(path.stat().st_size for path in kept.iterdir()) < 4e6
    for path in (tmp_path / "stopped").iterdir():  # a new machine: only the kept files are left
        path.unlink()
    run_module("training.train", *data, "--out", str(kept))

    def rows(folder: Path) -> list[dict]:  # what was computed, not where or how fast
        return [
            {k: v for k, v in row.items() if k not in ("seconds", "cpu")} for row in checkpoint.read_history(folder)
        ]

    assert rows(kept) == rows(tmp_path / "whole")
    assert len(rows(kept)) == 2 and "validation_accuracy_ema" in rows(kept)[-1]
    # the average leaves training alone: the same losses without it
    assert [row["train_loss"] for row in rows(tmp_path / "no-ema")] == [row["train_loss"] for row in rows(kept)]
    for name in ("epoch-002.params", "epoch-002.states", "epoch-002-ema.params", "cifar_resnet20_v1.params"):
        assert (kept / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    shipped = mx.nd.load(str(kept / "cifar_resnet20_v1.params"))
    live = mx.nd.load(str(kept / "epoch-002.params"))
    assert (kept / "cifar_resnet20_v1.params").read_bytes() == (kept / "epoch-002-ema.params").read_bytes()
    assert any(not np.array_equal(shipped[key].asnumpy(), live[key].asnumpy()) for key in live)
    card = json.loads((kept / "cifar_resnet20_v1.json").read_text())
    assert card["recipe"]["weights"].startswith("exponential moving average, decay 0.8")
    assert f"{SHIPPED} (sha256 {train.sha256_of(str(SHIPPED))})" in card["recipe"]["distillation"]
    assert card["live_weights"]["validation_accuracy_single_view"] == rows(kept)[-1]["validation_accuracy"]
    live_flip = evaluate.main([*data, "--params", str(kept / "epoch-002.params"), "--val-per-class", "2"])["accuracy"]
    assert card["live_weights"]["validation_accuracy"] == pytest.approx(live_flip, abs=1e-4)
    single = evaluate.main([*data, "--params", str(kept / "cifar_resnet20_v1.params"), "--single-view"])
    assert single["accuracy"] == pytest.approx(card["validation_accuracy_single_view"], abs=1e-4)
    assert single["accuracy"] == pytest.approx(rows(kept)[-1]["validation_accuracy_ema"], abs=1e-4)


def test_a_run_resumed_on_another_machine_counts_its_epochs_by_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card's seconds can span machines: it says how many epochs each CPU model trained."""
    run = ["--data", str(make_tree(tmp_path / "data", per_class=3)), "--out", str(tmp_path / "run")]
    run += ["--epochs", "3", "--batch-size", "8", "--val-per-class", "1"]
    assert train.main([*run, "--stop-after", "2"]) is None
    history = checkpoint.read_history(tmp_path / "run")
    here = machine.cpu_model()
    assert [row["cpu"] for row in history] == [here] * 2
    del history[0]["cpu"]  # as an epoch trained before rows named their CPU
    checkpoint.write_json(tmp_path / "run" / "history.json", history)
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Elsewhere CPU @ 3.0GHz\n")
    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "cpuinfo")
    card = train.main(run)
    assert card["machine"]["cpu_model"] == "Elsewhere CPU @ 3.0GHz"  # the machine that finished the run
    assert card["machine"]["epochs_by_cpu"] == {machine.UNRECORDED: 1, here: 1, "Elsewhere CPU @ 3.0GHz": 1}


def training_commands(target: str) -> dict[str, list[str]]:
    """`make -n TARGET`: each training.train command's arguments, by its run folder's name (the folders
    given, so that a RUN or TEACHERS of `make test`'s own does not rename them)."""
    folders = ["RUN=runs/shipped", "TEACHERS=runs/teachers"]
    out = subprocess.run(["make", "-n", target, *folders], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    commands = [line.split() for line in out.replace("\\\n", " ").splitlines() if "training.train" in line]
    found = {}
    for words in commands:
        argv = words[words.index("training.train") + 1 :]
        found[Path(argv[argv.index("--out") + 1]).name] = argv
    return found


@pytest.mark.parametrize(
    ("target", "name", "card"),
    [
        ("train", "shipped", ROOT / "function" / "weights" / "cifar_resnet20_v1.json"),
        ("teachers", "r40", ROOT / "training" / "experiments" / "r40-card.json"),
        ("teachers", "r120-zero-gamma", ROOT / "training" / "experiments" / "r120-zero-gamma-card.json"),
        ("teachers", "r150-mixup", ROOT / "training" / "experiments" / "r150-mixup-card.json"),
    ],
)
def test_make_trains_each_run_with_the_recipe_its_card_records(target: str, name: str, card: Path) -> None:
    """`make train` gives the shipped card's recipe, teachers' files included; `make teachers` each teacher's."""
    args = train.make_parser().parse_args(training_commands(target)[name])
    args.teacher_sha256 = [train.sha256_of(str(ROOT / path)) for path in args.teacher]
    recorded = json.loads(card.read_text())
    ours = train.recipe(args)
    assert args.epochs == recorded["epochs"] and args.network == recorded["network"]
    assert {key: ours[key] for key in recorded["recipe"]} == recorded["recipe"]  # older cards name no weights
    assert set(ours) - set(recorded["recipe"]) <= {"weights"}
