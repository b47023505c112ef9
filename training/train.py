"""Train gluoncv's cifar_resnet20_v1 (or a deeper teacher, --network) on CIFAR-10 with a one-cycle recipe, resumably.

    python -m training.train --data PATH --epochs N --out DIR

DIR/recipe.json keeps the run's options; each epoch writes a checkpoint (weights, optimizer state,
weight average, history) to DIR (`training/checkpoint.py`). Rerunning with the same --out, on this
machine or after a copy of DIR on another one, resumes; options not given come from the recipe.
The end writes DIR/<network>.params (the weight average when --ema-decay is set) and its
model card. The history's per-epoch validation accuracies are single-view; the card's
`validation_accuracy` is flip-averaged, as the function serves by default, and
`validation_accuracy_single_view` is beside it.
"""

import argparse
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from function.cifar10 import CLASSES, INPUT_SIZE, MEAN, NETWORK, STD
from function.imaging import normalize
from training import checkpoint, machine
from training.data import load, stratified_split
from training.evaluate import NETWORKS, load_network, mean_probabilities, network_of, predict, scores
from training.plots import plot_confusion, plot_history

PAD = 4
NOT_RECIPE = ("data", "out", "cache", "stop_after")  # options that do not change what a run computes
DISTILL_ON = ("image", "batch", "batch-flip")  # what the teachers see: see --distill-on
EMA_RAMP = 10  # the average's decay ramps as (1 + n) / (EMA_RAMP + n), so early steps do not pin it to the init


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


def use_every_core() -> None:
    """Before MXNet is imported (command line only): one OpenMP thread per CPU this process may use,
    and the synchronous engine. MXNet otherwise starts one OpenMP thread here (it takes half the CPUs
    for hyperthreads), which left one of this project's two cores idle.
    Values already in the environment win (the resumption test pins one thread for bit-exactness)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Network and initialisation options, shared with the learning-rate range test."""
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        default=NETWORK,
        help=f"gluoncv CIFAR ResNet to train; deeper ones serve as teachers (the function serves {NETWORK})",
    )
    parser.add_argument(
        "--zero-init-residual",
        action="store_true",
        help="start each residual block's last batch-norm gamma at 0: every block starts as the identity",
    )
    parser.add_argument(
        "--output-init-scale", type=float, default=1.0, help="factor on the output layer's initial weights"
    )


def build(args: argparse.Namespace):
    """Network and trainer; weight decay spares batch-norm and bias parameters."""
    import mxnet as mx
    from gluoncv.model_zoo import get_model
    from gluoncv.model_zoo.cifarresnet import CIFARBasicBlockV1

    mx.random.seed(args.seed)
    net = get_model(args.network, classes=len(CLASSES))
    if args.zero_init_residual:
        blocks: list = []
        net.apply(blocks.append)
        for block in blocks:
            if isinstance(block, CIFARBasicBlockV1):
                block.body[-1].gamma.init = mx.init.Zero()  # the BatchNorm before the sum with the shortcut
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2))
    if args.output_init_scale != 1.0:  # the output layer knows its input size: initialised already
        net.output.weight.set_data(net.output.weight.data() * args.output_init_scale)
    for param in net.collect_params(".*gamma|.*beta|.*bias").values():
        param.wd_mult = 0.0
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = mx.gluon.Trainer(
        net.collect_params(), "nag", {"learning_rate": args.lr, "momentum": args.momentum, "wd": args.wd}
    )
    return net, trainer


class WeightAverage:
    """Exponential moving average of every parameter, batch-norm running mean and variance included.

    Averaging the running statistics along with the weights keeps them close to the statistics of
    the averaged network (as timm's ModelEmaV2 does) without another pass over the data.
    """

    def __init__(self, net, decay: float, updates: int = 0) -> None:
        self.net, self.decay, self.updates = net, decay, updates
        self.params = list(net.collect_params().values())
        self.shadow: list | None = None  # taken at the first update, when deferred initialisation is done

    def update(self) -> None:
        """Fold the current weights in, after an optimizer step."""
        if self.shadow is None:
            self.shadow = [param.data().copy() for param in self.params]
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (EMA_RAMP + self.updates))
        for shadow, param in zip(self.shadow, self.params, strict=True):
            shadow *= decay
            shadow += (1 - decay) * param.data()

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The network holds the averaged weights inside the block, its live weights again after it."""
        live = [param.data().copy() for param in self.params]
        for param, shadow in zip(self.params, self.shadow, strict=True):
            param.set_data(shadow)
        try:
            yield
        finally:
            for param, weights in zip(self.params, live, strict=True):
                param.set_data(weights)

    def save(self, path: str) -> None:
        """The average as a parameter file any gluoncv user loads with `load_parameters`."""
        with self.applied():
            self.net.save_parameters(path)

    def load(self, path: str) -> None:
        """Read a saved average; the network's parameters must be initialised (loaded) already."""
        live = [param.data().copy() for param in self.params]
        self.net.load_parameters(path)
        self.shadow = [param.data().copy() for param in self.params]
        for param, weights in zip(self.params, live, strict=True):
            param.set_data(weights)


def make_batch(
    images: np.ndarray,
    labels: np.ndarray,
    idx: np.ndarray,
    rng: np.random.Generator,
    smooth: float,
    mixup: float = 0.0,
    soft: np.ndarray | None = None,
    distill: float = 0.0,
    teachers: list | None = None,
    teacher_flip: bool = False,
):
    """Augmented, normalized inputs and label-smoothed one-hot targets of one batch, as NDArrays.

    With `soft` (the teachers' probabilities per image), each target is (1 - distill) times the
    smoothed label plus distill times the image's soft target. With `mixup` > 0, each input and its
    target are then blended with those of another image of the batch, by one weight drawn from
    Beta(mixup, mixup) (Zhang et al., as gluoncv's mixup recipe). With `teachers` instead of `soft`,
    the teachers' share is their mean softmax of the very input the student sees, crop, flip and
    blend included: consistent targets (Beyer et al., "A good teacher is patient and consistent");
    with `teacher_flip`, averaged with their softmax of its mirror image (the three teachers' ensemble
    scores 91.6% flip-averaged against 91.2% single view on the validation split)."""
    import mxnet as mx

    x = normalize(augment(images[idx], rng))
    target = np.full((len(idx), len(CLASSES)), smooth / len(CLASSES), dtype=np.float32)
    target[np.arange(len(idx)), labels[idx]] += 1 - smooth
    if soft is not None:
        target = (1 - np.float32(distill)) * target + np.float32(distill) * soft[idx]
    if mixup > 0:
        weight, partner = np.float32(rng.beta(mixup, mixup)), rng.permutation(len(idx))
        x = weight * x + (1 - weight) * x[partner]
        target = weight * target + (1 - weight) * target[partner]
    x = mx.nd.array(x)
    target = mx.nd.array(target)
    if teachers:
        views = [x, x.flip(axis=3)] if teacher_flip else [x]
        seen = mx.nd.add_n(*(mx.nd.softmax(teacher(v)) for teacher in teachers for v in views))
        target = (1 - distill) * target + distill * seen / (len(teachers) * len(views))
    return x, target


def teacher_probabilities(paths: list[str], images: np.ndarray) -> np.ndarray:
    """The teachers' mean flip-averaged softmax of each (unaugmented) image: distillation's soft
    targets, computed once per start (about half a minute per cifar_resnet20_v1 teacher for the
    45,000 training images)."""
    return mean_probabilities([load_network(Path(path)) for path in paths], images)


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train_epoch(
    net,
    trainer,
    average: WeightAverage | None,
    images,
    labels,
    args,
    epoch: int,
    step: int,
    total: int,
    soft: np.ndarray | None = None,
    teachers: list | None = None,
) -> tuple[float, float, int]:
    """One epoch over `images` in a fixed, epoch-seeded order; returns loss, accuracy, step."""
    import mxnet as mx
    from mxnet import autograd

    rng = np.random.default_rng([args.seed, epoch])
    order = rng.permutation(len(images))
    batches = len(order) // args.batch_size  # the ragged tail is dropped
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)
    loss_sum, correct, seen, pending = 0.0, 0, 0, None
    mixup = args.mixup if epoch <= args.epochs - args.mixup_off_epochs else 0.0
    flip_teachers = args.distill_on == "batch-flip"
    bar = tqdm(range(batches), desc=f"epoch {epoch}", unit="batch", mininterval=5, leave=False)
    for b in bar:
        idx = order[b * args.batch_size : (b + 1) * args.batch_size]
        x, target = make_batch(
            images, labels, idx, rng, args.label_smoothing, mixup, soft, args.distill, teachers, flip_teachers
        )
        trainer.set_learning_rate(learning_rate(step, total, args.lr, args.warmup, args.final_lr_ratio))
        with autograd.record():
            out = net(x)
            loss = loss_fn(out, target)
        loss.backward()
        trainer.step(len(idx))
        if average is not None:
            average.update()
        step += 1
        if pending is not None:  # read the previous batch while this one computes
            loss_sum += pending[0].asscalar()
            correct += int(pending[1].asscalar())
        pending = (loss.sum(), (out.argmax(axis=1) == mx.nd.array(labels[idx])).sum())
        seen += len(idx)
    loss_sum += pending[0].asscalar()
    correct += int(pending[1].asscalar())
    return loss_sum / seen, correct / seen, step


def recipe(args: argparse.Namespace) -> dict:
    """The model card's words for what a run's options compute (`make train` and `make teachers` are
    checked against the shipped and the teachers' cards with it)."""
    return {
        "optimizer": "nag",
        "batch_size": args.batch_size,
        "peak_learning_rate": args.lr,
        "schedule": f"linear warm-up {args.warmup:.0%} from peak/10, cosine to peak*{args.final_lr_ratio}",
        "momentum": args.momentum,
        "weight_decay": args.wd,
        "weight_decay_on_bn_and_bias": False,
        "label_smoothing": args.label_smoothing,
        "augmentation": f"random crop with {PAD}-pixel reflect padding, horizontal flip"
        + (
            f", mixup Beta({args.mixup}, {args.mixup}) but the last {args.mixup_off_epochs} epochs"
            if args.mixup
            else ""
        ),
        **(
            {
                "distillation": f"targets {1 - args.distill:g} x the smoothed label + {args.distill:g} x the "
                + (
                    "mean flip-averaged softmax, on the unaugmented image, of the teachers "
                    if args.distill_on == "image"
                    else "mean softmax, on the student's own augmented input, of the teachers "
                    if args.distill_on == "batch"
                    else "mean softmax, on the student's own augmented input and its mirror image, of the teachers "
                )
                + ", ".join(map("{} (sha256 {})".format, args.teacher, args.teacher_sha256))
            }
            if args.teacher
            else {}
        ),
        "init": f"the weights of {args.init} (sha256 {args.init_sha256})"
        if args.init
        else "Xavier gaussian, out, magnitude 2"
        + (", each residual block's last batch-norm gamma 0" if args.zero_init_residual else "")
        + (f", output layer scaled by {args.output_init_scale}" if args.output_init_scale != 1.0 else ""),
        "weights": f"exponential moving average, decay {args.ema_decay} ramped as (1+n)/({EMA_RAMP}+n), "
        "batch-norm running statistics included"
        if args.ema_decay
        else "the last step's",
        "seed": args.seed,
    }


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="image folder, tarball, or 'cifar10' (gluon download)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: recipe, checkpoints, history, results")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.2, help="peak learning rate")
    parser.add_argument("--warmup", type=float, default=0.15, help="fraction of steps spent warming up")
    parser.add_argument("--final-lr-ratio", type=float, default=0.0)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--wd", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    add_model_options(parser)
    parser.add_argument(
        "--ema-decay",
        type=float,
        default=0.0,
        help="keep an exponential moving average of the weights with this per-step decay (e.g. 0.999) and ship it; "
        "0: off",
    )
    parser.add_argument(
        "--mixup", type=float, default=0.0, help="Beta(a, a) of mixup's blending weight (e.g. 1.0); 0: no mixup"
    )
    parser.add_argument("--mixup-off-epochs", type=int, default=0, help="the last N epochs train on unblended images")
    parser.add_argument(
        "--teacher",
        action="append",
        default=[],
        help="a trained network's parameter file (repeat for an ensemble): targets take in the teachers' mean "
        "probabilities, by --distill",
    )
    parser.add_argument(
        "--init",
        default=None,
        help="start from this parameter file (a finished run of the same --network) instead of random weights: "
        "a further cycle, under stronger teachers say",
    )
    parser.add_argument("--distill", type=float, default=0.5, help="the teachers' share of a target (with --teacher)")
    parser.add_argument(
        "--distill-on",
        choices=DISTILL_ON,
        default="image",
        help="image: the teachers' flip-averaged softmax of each unaugmented image, computed once per start; "
        "batch: their softmax of each augmented (and blended) input, computed every step (about 1.5 times "
        "the time per epoch with three cifar_resnet20_v1 teachers; a deeper teacher costs more); "
        "batch-flip: that averaged with their softmax of its mirror image (twice the teachers' passes)",
    )
    parser.add_argument("--val-per-class", type=int, default=500)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="initial weights, data order, crops, flips and mixup: teachers that differ in it differ more",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="the validation split (every shipped run and teacher used 0: a teacher of another split has "
        "trained on some of the student's validation images)",
    )
    parser.add_argument("--cache", type=Path, default=Path(".cache/data"), help="decoded-array cache")
    parser.add_argument(
        "--stop-after", type=int, default=None, help="stop cleanly after this epoch; the same command resumes"
    )
    return parser


def check_distillation(parser: argparse.ArgumentParser, args: argparse.Namespace, given: set[str]) -> None:
    """--distill within [0, 1] and with a teacher; each teacher still the file the run began with."""
    if not 0 <= args.distill <= 1:
        parser.error(f"--distill {args.distill}: the teachers' share of a target is between 0 and 1")
    for option in ("distill", "distill_on"):
        if option in given and not args.teacher:
            parser.error(f"--{option.replace('_', '-')} needs --teacher")
    for path, digest in zip(args.teacher, args.teacher_sha256, strict=True):
        if not Path(path).is_file():
            parser.error(f"teacher {path} is missing: a run's teachers stay where it began (commit them with it)")
        if sha256_of(path) != digest:
            parser.error(f"teacher {path} has changed since the run began (its sha256 was {digest})")
        try:
            network_of(Path(path))
        except ValueError as exc:
            parser.error(f"--teacher: {exc}")


def check_init(parser: argparse.ArgumentParser, args: argparse.Namespace, given: set[str]) -> None:
    """Before a run's first epoch: --init is still the file the run began with, of the network it trains."""
    for option in ("zero_init_residual", "output_init_scale"):
        if option in given:
            parser.error(f"--{option.replace('_', '-')} initialises random weights: it has no effect with --init")
    if not Path(args.init).is_file():
        parser.error(
            f"--init {args.init} is missing: until its first epoch is done, a run needs the file it began with"
        )
    if sha256_of(args.init) != args.init_sha256:
        parser.error(f"--init {args.init} has changed since the run began (its sha256 was {args.init_sha256})")
    try:
        network = network_of(Path(args.init))
    except ValueError as exc:
        parser.error(f"--init: {exc}")
    if network != args.network:
        parser.error(f"--init {args.init} holds a {network}; this run trains a {args.network} (--network)")


def main(argv: list[str] | None = None) -> dict | None:
    """Train, resuming from --out's checkpoint; returns the model card, or None when stopped early."""
    parser = make_parser()
    args = parser.parse_args(argv)
    # argparse leaves attributes already in the namespace alone unless the option is given (an
    # appending option starts from None, which it replaces with a list)
    unset = {key: None if isinstance(value, list) else object() for key, value in vars(args).items()}
    seen = parser.parse_args(argv, argparse.Namespace(**unset))
    given = {key for key, value in vars(seen).items() if value is not unset[key]}
    if args.stop_after is not None and args.stop_after < 1:
        parser.error(f"--stop-after {args.stop_after}: the epoch to stop after is 1 or more")

    args.out.mkdir(parents=True, exist_ok=True)
    dataset = load(args.data, args.cache)
    history = checkpoint.read_history(args.out)
    try:  # a teacher is its file: the recipe keeps each one's sha256 beside its path
        args.teacher_sha256 = [sha256_of(path) for path in args.teacher]
    except OSError as exc:
        parser.error(f"--teacher: {exc}")
    try:  # the same for the weights a run starts from, which its first checkpoint then holds
        args.init_sha256 = sha256_of(args.init) if args.init and not history else None
    except OSError as exc:
        parser.error(f"--init: {exc}")
    options = {key: value for key, value in vars(args).items() if key not in NOT_RECIPE}
    defaults = {key: parser.get_default(key) for key in options}
    try:
        recipe = checkpoint.settle_recipe(args.out, options, given, dataset.sha256, defaults)
    except checkpoint.RecipeError as exc:
        parser.error(str(exc))
    vars(args).update(recipe["options"])
    check_distillation(parser, args, given)
    if args.init and not history:
        check_init(parser, args, given)
    checkpoint.write_recipe(args.out, recipe)

    train_idx, val_idx = stratified_split(dataset.labels, args.val_per_class, args.split_seed)
    train_x, train_y = dataset.images[train_idx], dataset.labels[train_idx]
    val_x, val_y = dataset.images[val_idx], dataset.labels[val_idx]
    net, trainer = build(args)
    total = args.epochs * (len(train_x) // args.batch_size)
    step = history[-1]["step"] if history else 0
    average = WeightAverage(net, args.ema_decay, step) if args.ema_decay else None
    if history:
        checkpoint.load(args.out, history[-1]["epoch"], net, trainer, average)
        print(f"resumed after epoch {history[-1]['epoch']} from {args.out}", flush=True)
    elif args.init:  # once a checkpoint exists it holds the run's weights, and the file is not needed
        net.load_parameters(args.init)

    last = min(args.epochs, args.stop_after) if args.stop_after else args.epochs
    soft, teachers = None, None
    if args.teacher and len(history) < last:
        if args.distill_on == "image":
            soft = teacher_probabilities(args.teacher, train_x)
        else:
            teachers = [load_network(Path(path)) for path in args.teacher]
    for epoch in range(len(history) + 1, last + 1):
        start = time.time()
        loss, acc, step = train_epoch(net, trainer, average, train_x, train_y, args, epoch, step, total, soft, teachers)
        row = {
            "epoch": epoch,
            "train_loss": round(loss, 4),
            "train_accuracy": round(acc, 4),
            "validation_accuracy": round(scores(val_y, predict(net, val_x, flip_average=False))["accuracy"], 4),
        }
        if average is not None:
            with average.applied():
                row["validation_accuracy_ema"] = round(
                    scores(val_y, predict(net, val_x, flip_average=False))["accuracy"], 4
                )
        row.update(
            learning_rate=round(trainer.learning_rate, 5),
            step=step,
            seconds=round(time.time() - start, 1),
            cpu=machine.cpu_model(),
        )
        history.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        checkpoint.save(args.out, epoch, net, trainer, average, history)
        plot_history(history, args.out / checkpoint.CURVES)

    if len(history) < args.epochs:
        print(f"stopped after epoch {len(history)} of {args.epochs}; the same command resumes", flush=True)
        return None
    if average is None:
        return finish(net, args, dataset, history, val_x, val_y)
    live = {  # what the average gained, on the card
        "validation_accuracy": round(scores(val_y, predict(net, val_x))["accuracy"], 4),
        "validation_accuracy_single_view": history[-1]["validation_accuracy"],
    }
    with average.applied():
        return finish(net, args, dataset, history, val_x, val_y, live)


def finish(net, args: argparse.Namespace, dataset, history: list[dict], val_x, val_y, live: dict | None = None) -> dict:
    """Write the shipped parameters and their model card; `live`: the live weights' accuracies beside an average's."""
    import gluoncv
    import mxnet as mx

    result = scores(val_y, predict(net, val_x))
    single_view = scores(val_y, predict(net, val_x, flip_average=False))["accuracy"]
    params = args.out / f"{args.network}.params"
    net.save_parameters(str(params))
    plot_confusion(np.array(result["confusion"]), args.out / "confusion.png")
    card = {
        "network": args.network,
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
            "seed": args.split_seed,
            "images": len(val_y),
            "train_images": int(len(dataset.labels) - len(val_y)),
        },
        **({"live_weights": live} if live else {}),
        "epochs": len(history),
        "recipe": recipe(args),
        "training_seconds": round(sum(row["seconds"] for row in history), 1),
        "machine": {**machine.describe(), "epochs_by_cpu": machine.epochs_by_cpu(history)},
        "data": {"source": Path(args.data).name, "sha256": dataset.sha256},
        "mxnet_version": mx.__version__,
        "gluoncv_version": gluoncv.__version__,
    }
    params.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {params} (validation accuracy {card['validation_accuracy']:.4f})", flush=True)
    return card


if __name__ == "__main__":
    use_every_core()
    main()
