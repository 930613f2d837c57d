"""utils.plots: the curves and the misclassified grid draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from utils.plots import plot_history, show_misclassified  # noqa: E402


def test_plot_history_draws_training_and_validation():
    history = {"train_loss": [1.0, 0.5], "train_acc": [60.0, 80.0], "val_loss": [1.1, 0.7], "val_acc": [55.0, 75.0]}
    fig = plot_history(history, title="demo")
    ax_loss, ax_acc = fig.axes
    assert [line.get_label() for line in ax_loss.lines] == ["training", "validation"]
    assert list(ax_acc.lines[1].get_ydata()) == [55.0, 75.0]
    assert list(ax_loss.lines[0].get_xdata()) == [1, 2]
    plt.close(fig)


def test_plot_history_into_given_axes_one_row_per_model():
    fig, axes = plt.subplots(2, 2)
    first = {"train_loss": [1.0, 0.5], "train_acc": [60.0, 80.0], "val_loss": [1.1, 0.7], "val_acc": [55.0, 75.0]}
    second = {"train_loss": [0.9, 0.2], "train_acc": [70.0, 95.0], "val_loss": [1.0, 0.4], "val_acc": [65.0, 90.0]}
    assert plot_history(first, "first", axes=axes[0]) is fig
    plot_history(second, "second", axes=axes[1])
    assert len(fig.axes) == 4  # no new axes, no new figure
    assert [ax.get_title() for ax in axes.flat] == ["first: loss", "first: accuracy (%)", "second: loss", "second: accuracy (%)"]
    assert list(axes[1, 1].lines[1].get_ydata()) == [65.0, 90.0]
    assert list(axes[0, 0].lines[0].get_ydata()) == [1.0, 0.5]
    plt.close(fig)


def test_plot_history_without_validation():
    fig = plot_history({"train_loss": [1.0], "train_acc": [50.0], "val_loss": [], "val_acc": []})
    assert [len(ax.lines) for ax in fig.axes] == [1, 1]
    plt.close(fig)


def test_show_misclassified_shows_only_the_mistakes():
    images = torch.rand(10, 28, 28)
    labels = torch.arange(10)
    predicted = labels.clone()
    predicted[[2, 7]] = torch.tensor([3, 1])
    fig = show_misclassified(images, labels, predicted, num_columns=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["2 → 3", "7 → 1"]
    assert len(fig.axes) == 4  # one row of four, two of them empty
    plt.close(fig)


def test_show_misclassified_names_classes_and_accepts_flat_images():
    labels = torch.tensor([[1.0], [0.0]])  # a binary classifier's column of targets
    fig = show_misclassified(torch.rand(2, 784), labels, torch.tensor([0, 0]), class_names=["even", "odd"])
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["odd → even"]
    assert fig.axes[0].images[0].get_array().shape == (28, 28)
    plt.close(fig)


def test_show_misclassified_with_no_mistakes_says_so():
    with pytest.raises(ValueError, match="no misclassified"):
        show_misclassified(torch.rand(3, 28, 28), torch.arange(3), torch.arange(3))
