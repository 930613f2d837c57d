"""Train on tensors that already live on the device: index batches, one epoch, fit with a progress bar, accuracy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def batches(
    X: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = True, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of (X, y) gathered by indexing the tensors where they are: no per-item work, no image sent to the device.

    Each batch `X[index]` is a gather on X's device into a new tensor of `batch_size` rows (not a view);
    only the shuffled row numbers travel to the device, once per epoch.
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}: they must pair up one to one.")
    # The permutation is drawn on the CPU, so a seeded generator gives the same batches on every device.
    order = torch.randperm(len(X), generator=generator) if shuffle else torch.arange(len(X))
    order = order.to(X.device)
    for start in range(0, len(X), batch_size):
        index = order[start : start + batch_size]
        yield X[index], y[index]


def predict(logits: torch.Tensor) -> torch.Tensor:
    """Class labels from logits: one column is a binary classifier (logit > 0), several mean argmax."""
    if logits.ndim == 2 and logits.shape[1] > 1:
        return logits.argmax(dim=1)
    return (logits.reshape(-1) > 0).long()


def count_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How many predictions from `logits` equal the labels `y` (0-d tensor, on the logits' device)."""
    return (predict(logits) == y.reshape(-1).long()).sum()


def train_epoch(
    model: nn.Module,
    batch_iterable: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Loss,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """One pass of gradient descent over the batches (moved to `device` if given); mean loss and accuracy in %."""
    model.train()
    total_loss = total_correct = 0
    count = 0
    for xb, yb in batch_iterable:
        if device is not None:
            xb, yb = xb.to(device), yb.to(device)
        logits = model(xb)
        loss = loss_fn(logits, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # Sums stay tensors on the device: one synchronization per epoch, not one per batch.
        total_loss = total_loss + loss.detach() * len(xb)
        total_correct = total_correct + count_correct(logits.detach(), yb)
        count += len(xb)
    return float(total_loss) / count, 100 * float(total_correct) / count


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: Loss, batch_size: int = 2000) -> tuple[float, float]:
    """Mean loss and accuracy (in %) of `model` on (X, y), in eval mode and without recording graphs."""
    model.eval()
    total_loss = total_correct = 0
    for xb, yb in batches(X, y, batch_size, shuffle=False):
        logits = model(xb)
        total_loss = total_loss + loss_fn(logits, yb) * len(xb)
        total_correct = total_correct + count_correct(logits, yb)
    return float(total_loss) / len(X), 100 * float(total_correct) / len(X)


@torch.no_grad()
def predictions(model: nn.Module, X: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """The labels `model` predicts for every row of X (in eval mode)."""
    model.eval()
    return torch.cat([predict(model(X[start : start + batch_size])) for start in range(0, len(X), batch_size)])


def percent_correct(predicted: torch.Tensor, y: torch.Tensor) -> float:
    """The share of `predicted` labels that equal the labels `y`, in percent."""
    predicted, y = predicted.reshape(-1), y.reshape(-1)
    if len(predicted) != len(y):
        raise ValueError(f"{len(predicted)} predictions for {len(y)} labels: they must pair up one to one.")
    return 100 * float((predicted.long() == y.long()).double().mean())


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> float:
    """Accuracy of `model` on (X, y) in percent (its predicted labels, in eval mode)."""
    return percent_correct(predictions(model, X, batch_size), y)


def fit(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Loss,
    optimizer: torch.optim.Optimizer,
    num_epochs: int,
    batch_size: int,
    *,
    X_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    desc: str = "training",
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train for `num_epochs` on device-resident batches, with a tqdm bar; per-epoch loss and accuracy (%) history.

    The training figures are averages over each epoch's batches, taken while the model learns;
    the validation figures (if X_val is given) are measured after each epoch. A `scheduler`
    steps once per epoch.
    """
    history: dict[str, list[float]] = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    bar = tqdm(range(num_epochs), desc=desc, unit="epoch", disable=not progress)
    for _ in bar:
        train_loss, train_acc = train_epoch(model, batches(X, y, batch_size, generator=generator), loss_fn, optimizer)
        history["train_loss"].append(train_loss)
        history["train_acc"].append(train_acc)
        if scheduler is not None:
            scheduler.step()
        if X_val is not None:
            val_loss, val_acc = evaluate(model, X_val, y_val, loss_fn)
            history["val_loss"].append(val_loss)
            history["val_acc"].append(val_acc)
            bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.2f}%")
        else:
            bar.set_postfix(loss=f"{train_loss:.4f}", acc=f"{train_acc:.2f}%")
    return history
