"""One epoch of lecture 06's MLP fed by a DataLoader vs by device-resident batches; print the ratio.

    python benchmarks/mnist_epoch.py                  # the best device present, 10 training epochs
    python benchmarks/mnist_epoch.py --device cpu --epochs 3
    python benchmarks/mnist_epoch.py --record         # also add the figures to benchmarks/RESULTS.md
    python benchmarks/mnist_epoch.py --num-workers 2 --pin-memory   # a tuned DataLoader instead of the default

Both paths train the same network (utils.models.make_mlp) from the same weights with the same loop
(utils.training.train_epoch), in this one process. The DataLoader path is torchvision's MNIST
dataset with ToTensor + Normalize per item, batches of 128, each batch copied to the device; by
default it is the default DataLoader (num_workers=0, no pinned memory), and --num-workers /
--pin-memory tune it (pinned batches are then copied with non_blocking=True). The device-resident
path moves the normalized images to the device once and gathers each batch with an index. Each path
is warmed up on a few batches, then timed with utils.timing.time_it (the median of --repeat epochs,
the device synchronized around each). Then the lecture's training recipe runs for --epochs epochs on
device-resident batches, for its wall time and test accuracy.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import os
import platform
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from utils.data import MNIST_MEAN, MNIST_STD, has_full_mnist, load_mnist, mnist_dataset
from utils.device import get_device, seed_everything
from utils.models import make_mlp
from utils.settings import DATA_ROOT, SEED
from utils.timing import conditions, time_it
from utils.training import accuracy, batches, fit, train_epoch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## mnist_epoch.py"
HEADER = (
    "| date | device | torch | data | DataLoader epoch (s) | device-resident epoch (s) | ratio "
    "| batches only: DataLoader / resident (s) | training: epochs, wall time (s) | test accuracy |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple GPU (mps, {platform.machine()})"
    threads = torch.get_num_threads()
    cores = f"{os.cpu_count()} cores" + ("" if threads == os.cpu_count() else f", {threads} threads")
    return f"CPU, {cores} ({platform.machine()})"


def record(row: str) -> None:
    """Add a row to this script's table in RESULTS.md (created with its header if missing)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{HEADER}"
    start = text.index(SECTION)
    lines = text[start:].splitlines(keepends=True)
    last_row = max(i for i, line in enumerate(lines) if line.startswith("|"))
    lines.insert(last_row + 1, row + "\n")
    RESULTS.write_text(text[:start] + "".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="cpu, cuda or mps (default: the best present)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the full training run (default 10; 0 skips it)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--pin-memory", action="store_true", help="pinned DataLoader batches, copied with non_blocking=True")
    parser.add_argument("--repeat", type=int, default=3, help="timed epochs per path; the median is reported (default 3)")
    parser.add_argument("--root", default=str(DATA_ROOT), help="data root (default: the course's)")
    parser.add_argument("--record", action="store_true", help="add the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()

    device = torch.device(args.device) if args.device else get_device()
    seed_everything()
    X_train, y_train = load_mnist(train=True, root=args.root)
    X_test, y_test = load_mnist(train=False, root=args.root)
    data = "full MNIST" if has_full_mnist(args.root) else "offline 5,000-digit sample"
    print(f"{conditions(device)}   data: {data} ({len(X_train):,} train)")

    holder: dict[str, torch.Tensor] = {}

    def move_once() -> None:
        holder["X"] = ((X_train - MNIST_MEAN) / MNIST_STD).to(device)
        holder["y"] = y_train.to(device)

    move_s = time_it(move_once, repeat=1, warmup=0, device=device).median  # once: that is the point
    X_dev, y_dev = holder["X"], holder["y"]
    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    loader = DataLoader(
        mnist_dataset(train=True, root=args.root, transform=to_tensor),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        pin_memory=args.pin_memory,
        persistent_workers=args.num_workers > 0,  # start the workers once, not every epoch
        generator=torch.Generator().manual_seed(SEED),
    )

    def loader_batches():
        # Pinned host memory lets the copy run asynchronously (non_blocking) while the device computes.
        for xb, yb in loader:
            yield xb.to(device, non_blocking=args.pin_memory), yb.to(device, non_blocking=args.pin_memory)

    def resident_batches():
        return batches(X_dev, y_dev, args.batch_size, generator=torch.Generator().manual_seed(SEED))

    torch.manual_seed(SEED)
    start_model = make_mlp().to(device)
    loss_fn = nn.CrossEntropyLoss()

    def epoch_timing(make_batches):
        """Seconds per training epoch over make_batches(), after a warm-up on a few batches."""
        model = copy.deepcopy(start_model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        # Warm-up: one-off costs (CUDA context, kernels, allocator, worker start) are not what we measure.
        train_epoch(model, itertools.islice(make_batches(), 20), loss_fn, optimizer)
        return time_it(lambda: train_epoch(model, make_batches(), loss_fn, optimizer), repeat=args.repeat, warmup=0,
                       device=device)

    loader_name = f"DataLoader (ToTensor per item, num_workers={args.num_workers}, pin_memory={args.pin_memory})"
    loader_t = epoch_timing(loader_batches)
    resident_t = epoch_timing(resident_batches)
    loader_s, resident_s = loader_t.median, resident_t.median
    print(f"one epoch, {loader_name}: {loader_t.median:.3f} s ({loader_t})")
    print(f"one epoch, device-resident batches: {resident_t.median:.3f} s ({resident_t})")
    print(f"ratio: {loader_s / resident_s:.1f}x   (moving the training set to the device once took {move_s:.3f} s)")

    # Where the time goes: producing the batches alone, without the network.
    loader_data_s = time_it(lambda: list(loader_batches()), repeat=args.repeat, warmup=0, device=device).median
    resident_data_s = time_it(lambda: list(resident_batches()), repeat=args.repeat, device=device).median
    print(f"batches only (no training): DataLoader {loader_data_s:.3f} s, device-resident {resident_data_s:.4f} s "
          f"({loader_data_s / resident_data_s:.0f}x); the network's arithmetic takes about {resident_s - resident_data_s:.3f} s")

    train_s, test_acc = float("nan"), float("nan")
    if args.epochs > 0:
        model = copy.deepcopy(start_model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

        def train() -> None:
            fit(model, X_dev, y_dev, loss_fn, optimizer, args.epochs, args.batch_size,
                generator=torch.Generator().manual_seed(SEED), scheduler=scheduler, progress=False)

        train_s = time_it(train, repeat=1, warmup=0, device=device).median  # one run: training twice would train further
        test_acc = accuracy(model, ((X_test - MNIST_MEAN) / MNIST_STD).to(device), y_test.to(device))
        print(f"training, {args.epochs} epochs on device-resident batches: {train_s:.1f} s, test accuracy {test_acc:.2f}%")

    if args.num_workers or args.pin_memory:  # the table's default is the default DataLoader: say when it was tuned
        data += f"; DataLoader num_workers={args.num_workers}, pin_memory={args.pin_memory}"
    row = (
        f"| {datetime.date.today().isoformat()} | {device_label(device)} | {torch.__version__} | {data} "
        f"| {loader_s:.2f} | {resident_s:.2f} | {loader_s / resident_s:.1f}x "
        f"| {loader_data_s:.2f} / {resident_data_s:.4f} | {args.epochs}, {train_s:.1f} | {test_acc:.2f}% |"
    )
    print(row)
    if args.record:
        record(row)
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
