"""Top-1, per-class accuracy and confusion matrix of a parameter file on the validation split.

python -m training.evaluate --data PATH --params FILE [--params FILE ...] [--out DIR]

Several --params evaluate their ensemble (each image's probabilities averaged over the networks),
as distillation's teachers (`train.py --teacher`) are combined.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from function.cifar10 import CLASSES, NETWORK
from function.inference import probabilities
from training.data import load, stratified_split
from training.plots import plot_confusion

NETWORKS = (NETWORK, "cifar_resnet56_v1", "cifar_resnet110_v1")  # the served network, and deeper teachers


def mean_probabilities(nets: list, images: np.ndarray, batch_size: int = 500, flip_average: bool = True) -> np.ndarray:
    """Each uint8 NHWC image's softmax, computed exactly as the function serves it, averaged over `nets`."""
    total = np.zeros((len(images), len(CLASSES)), dtype=np.float64)
    for net in nets:
        for i in range(0, len(images), batch_size):
            total[i : i + batch_size] += probabilities(net, images[i : i + batch_size], flip_average=flip_average)
    return (total / len(nets)).astype(np.float32)


def predict(net, images: np.ndarray, batch_size: int = 500, flip_average: bool = True) -> np.ndarray:
    """Predicted class indices for uint8 NHWC images, computed exactly as the function serves them."""
    return mean_probabilities([net], images, batch_size, flip_average).argmax(axis=1).astype(np.int32)


def scores(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Accuracy, per-class accuracy and confusion matrix (rows: true class)."""
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": float(confusion.trace() / max(len(labels), 1)),
        "per_class_accuracy": {name: round(float(acc), 4) for name, acc in zip(CLASSES, per_class, strict=True)},
        "confusion": confusion.tolist(),
    }


def network_of(params: Path) -> str:
    """The gluoncv CIFAR ResNet v1 whose parameters `params` holds, from its depth (6 x blocks per stage
    + 2), so that a deeper teacher is loaded from its file alone."""
    import mxnet as mx

    if not Path(params).is_file():
        raise ValueError(f"{params}: no such file")
    try:
        names = set(mx.nd.load(str(params)))
    except mx.base.MXNetError:
        raise ValueError(f"{params} is not an MXNet parameter file") from None
    blocks = {name.split(".")[2] for name in names if name.startswith("features.2.")}
    network = f"cifar_resnet{6 * len(blocks) + 2}_v1"
    # v1 opens with a convolution then its batch norm; v2 (same stage layout) with a batch norm
    if network not in NETWORKS or not {"features.0.weight", "features.1.gamma"} <= names:
        raise ValueError(f"{params} holds no gluoncv CIFAR ResNet v1 this project trains ({', '.join(NETWORKS)})")
    return network


def load_network(params: Path):
    """A bare gluoncv network with `params` loaded, hybridized for speed."""
    from gluoncv.model_zoo import get_model

    net = get_model(network_of(params), classes=len(CLASSES))
    net.load_parameters(str(params))
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="image folder, tarball, or 'cifar10'")
    parser.add_argument("--params", type=Path, action="append", required=True, help="repeat it for an ensemble")
    parser.add_argument(
        "--split",
        choices=("validation", "all"),
        default="validation",
        help="'all' evaluates every image of --data, e.g. a held-out test folder",
    )
    parser.add_argument(
        "--single-view",
        action="store_true",
        help="no flip averaging: the accuracy the function serves with FLIP_AVERAGE=false",
    )
    parser.add_argument("--val-per-class", type=int, default=None, help="default: from the model card, else 500")
    parser.add_argument("--seed", type=int, default=None, help="split seed; default: from the model card, else 0")
    parser.add_argument("--cache", type=Path, default=Path(".cache/data"))
    parser.add_argument("--out", type=Path, default=None, help="folder for confusion.png and evaluation.json")
    args = parser.parse_args(argv)

    try:  # before the data, whose first load is slow
        for path in args.params:
            network_of(path)
    except ValueError as exc:
        parser.error(str(exc))
    card_path = args.params[0].with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    split = card.get("validation_split", {})
    dataset = load(args.data, args.cache)
    indices = np.arange(len(dataset.labels))
    if args.split == "validation":
        per_class = args.val_per_class or split.get("per_class", 500)
        seed = args.seed if args.seed is not None else split.get("seed", 0)
        _, indices = stratified_split(dataset.labels, per_class, seed)
    nets = [load_network(path) for path in args.params]
    probs = mean_probabilities(nets, dataset.images[indices], flip_average=not args.single_view)
    result = scores(dataset.labels[indices], probs.argmax(axis=1).astype(np.int32))
    view = "single view" if args.single_view else "flip-averaged"
    what = f"the ensemble of {len(nets)}" if len(nets) > 1 else str(args.params[0])
    print(f"top-1 accuracy of {what}: {result['accuracy']:.4f} on {len(indices)} images ({args.split}, {view})")
    for name, acc in result["per_class_accuracy"].items():
        print(f"  {name:<10} {acc:.4f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_confusion(np.array(result["confusion"]), args.out / "confusion.png")
        (args.out / "evaluation.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
