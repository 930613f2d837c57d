"""Pictures of training: loss and accuracy curves, and a grid of the digits a model got wrong."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def plot_history(history: Mapping[str, Sequence[float]], title: str = "", axes: Sequence[Axes] | None = None) -> Figure:
    """Loss and accuracy per epoch, training and (if recorded) validation, side by side.

    By default on a new figure titled `title`. Pass two `axes` (loss, accuracy) to draw into a figure of
    your own, for instance one row per model; `title` then heads both panels.
    """
    epochs = range(1, len(history["train_loss"]) + 1)
    if axes is None:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    else:
        ax_loss, ax_acc = axes
        fig = ax_loss.figure
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy (%)")):
        ax.plot(epochs, history[f"train_{key}"], "o-", label="training")
        if history.get(f"val_{key}"):
            ax.plot(epochs, history[f"val_{key}"], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
        if title and axes is not None:
            ax.set_title(f"{title}: {label}")
    if title and axes is None:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_misclassified(
    images: torch.Tensor,
    labels: torch.Tensor,
    predicted: torch.Tensor,
    num_images: int = 24,
    num_columns: int = 8,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """A grid of the first `num_images` images whose prediction differs from the label, titled 'true → predicted'."""
    labels, predicted = labels.reshape(-1).long().cpu(), predicted.reshape(-1).long().cpu()
    wrong = (labels != predicted).nonzero().squeeze(1)[:num_images]
    if len(wrong) == 0:
        raise ValueError("Every prediction matches its label: there is no misclassified image to show.")
    name = (lambda k: class_names[k]) if class_names is not None else str
    num_rows = -(-len(wrong) // num_columns)
    fig, axes = plt.subplots(num_rows, num_columns, figsize=(1.3 * num_columns, 1.5 * num_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong.tolist()):
        image = images[i].detach().cpu().numpy()
        side = round(image.size**0.5)
        ax.imshow(image.reshape(side, side) if side * side == image.size else image.squeeze(), cmap="gray_r")
        ax.set_title(f"{name(int(labels[i]))} → {name(int(predicted[i]))}", fontsize=10, color="C3")
    fig.tight_layout()
    return fig
