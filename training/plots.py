"""PNG charts of a training run and of a confusion matrix."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from function.cifar10 import CLASSES


def plot_history(history: list[dict], path: Path) -> None:
    """Loss and accuracy per epoch, as the tutorial showed them."""
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [row["train_loss"] for row in history], label="train loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    acc_ax.plot(epochs, [row["train_accuracy"] for row in history], label="train")
    acc_ax.plot(epochs, [row["validation_accuracy"] for row in history], label="validation")
    if "validation_accuracy_ema" in history[-1]:
        acc_ax.plot(epochs, [row["validation_accuracy_ema"] for row in history], label="validation, weight average")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("top-1 accuracy")
    acc_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, path: Path) -> None:
    """Row-normalized confusion matrix with the counts written in the cells."""
    fig, ax = plt.subplots(figsize=(8, 7))
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (row, col), count in np.ndenumerate(confusion):
        color = "white" if rates[row, col] > 0.5 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_lr_range(rows: list[dict], path: Path) -> None:
    """Loss against learning rate on a log axis: the range test's answer."""
    fig, ax = plt.subplots(figsize=(6, 4))
    rates = [row["learning_rate"] for row in rows]
    ax.plot(rates, [row["loss"] for row in rows], alpha=0.3, label="batch loss")
    ax.plot(rates, [row["smoothed_loss"] for row in rows], label="smoothed")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
