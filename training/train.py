"""Train gluoncv's cifar_resnet20_v1 on CIFAR-10 with a short one-cycle recipe, resumably.

    python -m training.train --data PATH --epochs N --out DIR

Each epoch writes a checkpoint (parameters, optimizer state, history) to DIR; rerunning the same
command resumes from it. The end writes DIR/cifar_resnet20_v1.params and its model card. The history's
per-epoch validation accuracy is single-view; the card's `validation_accuracy` is flip-averaged, as
the function serves by default, and `validation_accuracy_single_view` is beside it.
"""

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from function.cifar10 import CLASSES, INPUT_SIZE, MEAN, NETWORK, STD
from function.imaging import normalize
from training.data import load, stratified_split
from training.evaluate import predict, scores
from training.plots import plot_confusion, plot_history

PAD = 4


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random crop from a reflect-padded copy and random horizontal flip, on uint8 arrays."""
    count = len(images)
    padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), mode="reflect")
    dy = rng.integers(0, 2 * PAD + 1, count)
    dx = rng.integers(0, 2 * PAD + 1, count)
    rows = dy[:, None] + np.arange(INPUT_SIZE)[None, :]
    cols = dx[:, None] + np.arange(INPUT_SIZE)[None, :]
    flip = rng.random(count) < 0.5
    cols[flip] = cols[flip, ::-1]
    return padded[np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]


def learning_rate(step: int, total: int, peak: float, warmup: float, final_ratio: float) -> float:
    """One cycle: linear warm-up from peak/10 to peak, then cosine down to peak*final_ratio."""
    warm = max(1, int(total * warmup))
    if step < warm:
        return peak * (0.1 + 0.9 * step / warm)
    progress = (step - warm) / max(1, total - warm)
    return peak * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def build(args: argparse.Namespace):
    """Network and trainer; weight decay spares batch-norm and bias parameters."""
    import mxnet as mx
    from gluoncv.model_zoo import get_model

    mx.random.seed(args.seed)
    net = get_model(NETWORK, classes=len(CLASSES))
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2))
    for param in net.collect_params(".*gamma|.*beta|.*bias").values():
        param.wd_mult = 0.0
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = mx.gluon.Trainer(
        net.collect_params(), "nag", {"learning_rate": args.lr, "momentum": args.momentum, "wd": args.wd}
    )
    return net, trainer


def make_batch(images: np.ndarray, labels: np.ndarray, idx: np.ndarray, rng: np.random.Generator, smooth: float):
    """Augmented, normalized inputs and label-smoothed one-hot targets of one batch, as NDArrays."""
    import mxnet as mx

    x = mx.nd.array(normalize(augment(images[idx], rng)))
    target = np.full((len(idx), len(CLASSES)), smooth / len(CLASSES), dtype=np.float32)
    target[np.arange(len(idx)), labels[idx]] += 1 - smooth
    return x, mx.nd.array(target)


def train_epoch(net, trainer, images, labels, args, epoch: int, step: int, total: int) -> tuple[float, float, int]:
    """One epoch over `images` in a fixed, epoch-seeded order; returns loss, accuracy, step."""
    import mxnet as mx
    from mxnet import autograd

    rng = np.random.default_rng([args.seed, epoch])
    order = rng.permutation(len(images))
    batches = len(order) // args.batch_size  # the ragged tail is dropped
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)
    loss_sum, correct, seen, pending = 0.0, 0, 0, None
    bar = tqdm(range(batches), desc=f"epoch {epoch}", unit="batch", mininterval=5, leave=False)
    for b in bar:
        idx = order[b * args.batch_size : (b + 1) * args.batch_size]
        x, target = make_batch(images, labels, idx, rng, args.label_smoothing)
        trainer.set_learning_rate(learning_rate(step, total, args.lr, args.warmup, args.final_lr_ratio))
        with autograd.record():
            out = net(x)
            loss = loss_fn(out, target)
        loss.backward()
        trainer.step(len(idx))
        step += 1
        if pending is not None:  # read the previous batch while this one computes
            loss_sum += pending[0].asscalar()
            correct += int(pending[1].asscalar())
        pending = (loss.sum(), (out.argmax(axis=1) == mx.nd.array(labels[idx])).sum())
        seen += len(idx)
    loss_sum += pending[0].asscalar()
    correct += int(pending[1].asscalar())
    return loss_sum / seen, correct / seen, step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="image folder, tarball, or 'cifar10' (gluon download)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, history, results")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.2, help="peak learning rate")
    parser.add_argument("--warmup", type=float, default=0.15, help="fraction of steps spent warming up")
    parser.add_argument("--final-lr-ratio", type=float, default=0.0)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--wd", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--val-per-class", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(".cache/data"), help="decoded-array cache")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    dataset = load(args.data, args.cache)
    train_idx, val_idx = stratified_split(dataset.labels, args.val_per_class, args.seed)
    train_x, train_y = dataset.images[train_idx], dataset.labels[train_idx]
    val_x, val_y = dataset.images[val_idx], dataset.labels[val_idx]
    net, trainer = build(args)
    total = args.epochs * (len(train_x) // args.batch_size)

    ckpt, history_path = args.out / "checkpoint", args.out / "history.json"
    history: list[dict] = []
    if history_path.exists() and ckpt.with_suffix(".params").exists():
        history = json.loads(history_path.read_text())
        net.load_parameters(str(ckpt.with_suffix(".params")))
        trainer.load_states(str(ckpt.with_suffix(".states")))
        print(f"resumed after epoch {history[-1]['epoch']} from {args.out}", flush=True)
    step = len(history) * (len(train_x) // args.batch_size)

    for epoch in range(len(history) + 1, args.epochs + 1):
        start = time.time()
        loss, acc, step = train_epoch(net, trainer, train_x, train_y, args, epoch, step, total)
        val_acc = scores(val_y, predict(net, val_x, flip_average=False))["accuracy"]
        row = {
            "epoch": epoch,
            "train_loss": round(loss, 4),
            "train_accuracy": round(acc, 4),
            "validation_accuracy": round(val_acc, 4),
            "learning_rate": round(trainer.learning_rate, 5),
            "seconds": round(time.time() - start, 1),
        }
        history.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        net.save_parameters(str(ckpt.with_suffix(".params")))
        trainer.save_states(str(ckpt.with_suffix(".states")))
        history_path.write_text(json.dumps(history, indent=1))
        plot_history(history, args.out / "history.png")

    return finish(net, args, dataset, history, val_x, val_y)


def finish(net, args: argparse.Namespace, dataset, history: list[dict], val_x, val_y) -> dict:
    """Write the shipped parameters and their model card."""
    import gluoncv
    import mxnet as mx

    result = scores(val_y, predict(net, val_x))
    single_view = scores(val_y, predict(net, val_x, flip_average=False))["accuracy"]
    params = args.out / f"{NETWORK}.params"
    net.save_parameters(str(params))
    plot_confusion(np.array(result["confusion"]), args.out / "confusion.png")
    card = {
        "network": NETWORK,
        "classes": list(CLASSES),
        "input_size": [INPUT_SIZE, INPUT_SIZE, 3],
        "mean": list(MEAN),
        "std": list(STD),
        "preprocessing": "Pillow decode (JPEG scaled in the DCT domain), centre square, area-averaged to 32x32 "
        "then unsharp mask (radius 0.8, 50%; a 32x32 image is not resampled), RGB, EXIF orientation, "
        "(x/255 - mean) / std, NCHW",
        "validation_accuracy": round(result["accuracy"], 4),
        "validation_accuracy_single_view": round(single_view, 4),
        "test_time_augmentation": "softmax averaged over the image and its mirror image (FLIP_AVERAGE=true)",
        "per_class_accuracy": result["per_class_accuracy"],
        "validation_split": {
            "per_class": args.val_per_class,
            "seed": args.seed,
            "images": len(val_y),
            "train_images": int(len(dataset.labels) - len(val_y)),
        },
        "epochs": len(history),
        "recipe": {
            "optimizer": "nag",
            "batch_size": args.batch_size,
            "peak_learning_rate": args.lr,
            "schedule": f"linear warm-up {args.warmup:.0%} from peak/10, cosine to peak*{args.final_lr_ratio}",
            "momentum": args.momentum,
            "weight_decay": args.wd,
            "weight_decay_on_bn_and_bias": False,
            "label_smoothing": args.label_smoothing,
            "augmentation": f"random crop with {PAD}-pixel reflect padding, horizontal flip",
            "init": "Xavier gaussian, out, magnitude 2",
            "seed": args.seed,
        },
        "training_seconds": round(sum(row["seconds"] for row in history), 1),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "data": {"source": Path(args.data).name, "sha256": dataset.sha256},
        "mxnet_version": mx.__version__,
        "gluoncv_version": gluoncv.__version__,
    }
    params.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {params} (validation accuracy {card['validation_accuracy']:.4f})", flush=True)
    return card


if __name__ == "__main__":
    main()
