"""utils.training: device-resident batches, predictions, accuracy, one epoch and fit on small made-up data."""

import pytest
import torch
from torch import nn

from utils.training import accuracy, batches, count_correct, evaluate, fit, percent_correct, predict, predictions, train_epoch


def separable(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs in 2-D, far apart: a linear model gets them all right."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    X = torch.randn(n, 2, generator=generator) + 4 * (2 * y.unsqueeze(1) - 1)
    return X, y


def test_batches_cover_every_row_once_in_seeded_order():
    X, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    got = list(batches(X, y, 4, generator=torch.Generator().manual_seed(0)))
    assert [len(xb) for xb, _ in got] == [4, 4, 2]
    rows = torch.cat([yb for _, yb in got])
    assert sorted(rows.tolist()) == list(range(10))
    assert rows.tolist() != list(range(10))  # shuffled
    for xb, yb in got:  # X and y stay paired
        assert torch.equal(xb.squeeze(1).long(), yb)
    again = torch.cat([yb for _, yb in batches(X, y, 4, generator=torch.Generator().manual_seed(0))])
    assert torch.equal(rows, again)
    assert torch.cat([yb for _, yb in batches(X, y, 3, shuffle=False)]).tolist() == list(range(10))


def test_batches_refuse_unpaired_tensors():
    with pytest.raises(ValueError, match="pair up"):
        next(batches(torch.zeros(5, 2), torch.zeros(4), 2))


def test_batches_stay_on_the_data_device():
    X, y = torch.zeros(6, 3, dtype=torch.float64), torch.zeros(6, dtype=torch.long)
    for xb, yb in batches(X, y, 4):
        assert xb.device == X.device and xb.dtype == torch.float64 and yb.dtype == torch.long


def test_predict_binary_and_multiclass():
    assert predict(torch.tensor([[-1.0], [0.5], [0.0]])).tolist() == [0, 1, 0]
    assert predict(torch.tensor([-1.0, 2.0])).tolist() == [0, 1]
    assert predict(torch.tensor([[0.1, 0.7, 0.2], [3.0, 1.0, 2.0]])).tolist() == [1, 0]
    assert int(count_correct(torch.tensor([[2.0], [-2.0]]), torch.tensor([[1.0], [1.0]]))) == 1


def test_percent_correct_counts_labels_exactly():
    assert percent_correct(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1])) == 75.0
    assert percent_correct(torch.tensor([[1], [0]]), torch.tensor([0.0, 1.0])) == 0.0  # shapes and dtypes need not agree
    with pytest.raises(ValueError, match="pair up"):
        percent_correct(torch.zeros(3), torch.zeros(4))


def test_accuracy_counts_exactly():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))  # predicts the larger coordinate's index
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(model, X, torch.tensor([0, 1, 0, 1])) == 100.0
    assert accuracy(model, X, torch.tensor([0, 1, 1, 1])) == 75.0
    assert accuracy(model, X, torch.tensor([1, 0, 1, 0]), batch_size=3) == 0.0  # a wrong model scores 0
    assert predictions(model, X, batch_size=3).tolist() == [0, 1, 0, 1]
    loss, acc = evaluate(model, X, torch.tensor([0, 1, 1, 1]), nn.CrossEntropyLoss(), batch_size=3)
    assert acc == 75.0
    with torch.no_grad():
        expected = nn.CrossEntropyLoss()(model(X), torch.tensor([0, 1, 1, 1])).item()
    assert loss == pytest.approx(expected)


def test_evaluate_uses_eval_mode_and_records_no_graph():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.9))
    X, y = separable(20)
    first = evaluate(model, X, y, nn.CrossEntropyLoss())
    assert evaluate(model, X, y, nn.CrossEntropyLoss()) == first  # dropout off: the same every time
    assert not model.training


def test_train_epoch_learns_and_reports_the_mean():
    torch.manual_seed(0)
    X, y = separable()
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before, _ = evaluate(model, X, y, nn.CrossEntropyLoss())
    batch_iterable = batches(X, y, 50, generator=torch.Generator().manual_seed(0))
    loss, acc = train_epoch(model, batch_iterable, nn.CrossEntropyLoss(), optimizer, "cpu")
    assert model.training
    after, after_acc = evaluate(model, X, y, nn.CrossEntropyLoss())
    assert after < before and after_acc == 100.0
    assert 0 <= acc <= 100 and after < loss <= before * 1.01  # the epoch's mean lies between the start and the end


def test_train_epoch_with_a_dataloader_moves_batches():
    X, y = separable(40)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, acc = train_epoch(model, loader, nn.CrossEntropyLoss(), optimizer, torch.device("cpu"))
    assert loss > 0 and 0 <= acc <= 100


def test_fit_history_and_binary_targets(capsys):
    torch.manual_seed(0)
    X, y = separable()
    y_float = y.float().unsqueeze(1)  # the BCE shape: one column of 0.0 / 1.0
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(
        model, X, y_float, nn.BCEWithLogitsLoss(), optimizer, 3, 32,
        X_val=X, y_val=y_float, generator=torch.Generator().manual_seed(0), scheduler=scheduler, progress=False,
    )
    assert {k: len(v) for k, v in history.items()} == {"train_loss": 3, "train_acc": 3, "val_loss": 3, "val_acc": 3}
    assert history["val_acc"][-1] == 100.0
    assert history["val_loss"][-1] < history["train_loss"][0]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 / 8)  # stepped once per epoch
    assert capsys.readouterr().err == ""  # progress=False: no bar


def test_fit_without_validation_and_with_a_bar(capsys):
    X, y = separable(40)
    model = nn.Linear(2, 2)
    history = fit(model, X, y, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), 2, 8, desc="demo")
    assert history["val_loss"] == [] and len(history["train_acc"]) == 2
    assert "demo" in capsys.readouterr().err
