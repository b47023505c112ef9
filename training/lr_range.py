"""Learning-rate range test: a few hundred batches at an exponentially rising learning rate.

    python -m training.lr_range --data PATH --out DIR [--min-lr 1e-3 --max-lr 3 --steps 200]

A long run is too dear to guess its peak learning rate (about 3.5 minutes an epoch here): the loss
curve of this test, minutes long, shows where training still speeds up and where it breaks down.
Writes DIR/lr_range.json and DIR/lr_range.png and prints the learning rate of the lowest loss; a
one-cycle peak is usually chosen a few times below it.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.data import load, stratified_split
from training.plots import plot_lr_range
from training.train import add_model_options, build, make_batch, use_every_core

SMOOTHING = 0.9  # exponential moving average of the loss, debiased, as in fast.ai's range test
DIVERGED = 4.0  # stop once the smoothed loss is this many times its best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="image folder, tarball, or 'cifar10' (gluon download)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--min-lr", type=float, default=1e-3)
    parser.add_argument("--max-lr", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--wd", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    add_model_options(parser)
    parser.add_argument("--val-per-class", type=int, default=500, help="kept out, as in training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(".cache/data"), help="decoded-array cache")
    args = parser.parse_args(argv)
    args.lr = args.min_lr

    import mxnet as mx
    from mxnet import autograd

    args.out.mkdir(parents=True, exist_ok=True)
    dataset = load(args.data, args.cache)
    train_idx, _ = stratified_split(dataset.labels, args.val_per_class, args.seed)
    images, labels = dataset.images[train_idx], dataset.labels[train_idx]
    net, trainer = build(args)
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)
    rng = np.random.default_rng(args.seed)
    rows: list[dict] = []
    average, best = 0.0, math.inf
    for step, lr in enumerate(tqdm(np.geomspace(args.min_lr, args.max_lr, args.steps), desc="lr range", unit="batch")):
        idx = rng.choice(len(images), size=min(args.batch_size, len(images)), replace=False)
        x, target = make_batch(images, labels, idx, rng, args.label_smoothing)
        trainer.set_learning_rate(float(lr))
        with autograd.record():
            loss = loss_fn(net(x), target)
        loss.backward()
        trainer.step(len(idx))
        value = float(loss.mean().asscalar())
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        smoothed = average / (1 - SMOOTHING ** (step + 1))
        rows.append(
            {"learning_rate": round(float(lr), 6), "loss": round(value, 4), "smoothed_loss": round(smoothed, 4)}
        )
        best = min(best, smoothed)
        if not math.isfinite(value) or smoothed > DIVERGED * best:
            break
    lowest = min(rows, key=lambda row: row["smoothed_loss"])
    recipe = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    result = {"lowest_loss_learning_rate": lowest["learning_rate"], "recipe": recipe, "steps": rows}
    (args.out / "lr_range.json").write_text(json.dumps(result, indent=1) + "\n")
    plot_lr_range(rows, args.out / "lr_range.png")
    print(f"lowest smoothed loss {lowest['smoothed_loss']} at learning rate {lowest['learning_rate']:g}", flush=True)
    return result


if __name__ == "__main__":
    use_every_core()
    main()
