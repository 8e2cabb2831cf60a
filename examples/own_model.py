"""Your own model, watched by ibtui: a small CNN on MNIST, trained by a plain PyTorch loop.

    python examples/own_model.py [MNIST_FOLDER] [--epochs 5] [--export run.csv]
    ibtui view run.csv          # in another terminal or tmux pane: the information plane, live
    ibtui plot run.csv          # the figures, once it is done (or while it runs)

MNIST_FOLDER (or the environment variable MNIST_DIR) holds the four IDX files (train-images-idx3-ubyte[.gz], …);
without one the example trains on synthetic 28×28 "digits" (ten noisy prototypes), so it runs anywhere.
"""
from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import ibtui


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not): big-endian header, then uint8 data."""
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist(folder: Path):
    """(x_train, y_train, x_test, y_test) as float tensors in [0, 1] [N, 1, 28, 28] and int64 labels."""
    def find(stem: str) -> Path:
        return next(p for p in (folder / stem, folder / f"{stem}.gz") if p.exists())

    out = []
    for split in ("train", "t10k"):
        x = read_idx(find(f"{split}-images-idx3-ubyte")).astype(np.float32) / 255.0
        y = read_idx(find(f"{split}-labels-idx1-ubyte")).astype(np.int64)
        out += [torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)]
    return tuple(out)


def synthetic(n_train: int = 4000, n_test: int = 1000, seed: int = 0):
    """Ten random 28×28 prototypes plus noise: a stand-in with MNIST's shapes."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(10, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    x = (prototypes[y] + 0.3 * torch.randn(len(y), 1, 28, 28, generator=g)).clamp(0, 1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 5), nn.Conv2d(8, 16, 5)
        self.fc1, self.act, self.fc2 = nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=os.environ.get("MNIST_DIR", ""), help="MNIST IDX folder")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--export", default="run.csv")
    parser.add_argument("--mi-points", type=int, default=1000, help="training images MI is measured on")
    parser.add_argument("--train", type=int, default=0, help="use only this many training images (0 = all)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    x_train, y_train, x_test, y_test = mnist(Path(args.folder)) if args.folder else synthetic()
    if args.train:
        x_train, y_train = x_train[:args.train], y_train[:args.train]
    torch.manual_seed(0)
    model = SmallCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    # --- the ibtui part: watch two layers on a fixed set of training images, export as a run. On 1,000 points
    # binning and KDE (σ² = 0.1) put both layers at the log2 N ceiling after one epoch; the matrix-based Rényi
    # estimator ("renyi"), made for wide layers, does not.
    mon = ibtui.watch(model, inputs=x_train[:args.mi_points], labels=y_train[:args.mi_points],
                      layers=["act", "fc2"], export=args.export, every=1, epochs=args.epochs,
                      estimators=["binning", "kde", "renyi"],
                      settings={"measure.kde.noise_variance": 0.1}, scenario_name="own_model",
                      overwrite=args.overwrite)
    with mon:
        for epoch in range(args.epochs):
            model.train()
            order = torch.randperm(len(x_train))
            for i in range(0, len(order), 64):
                batch = order[i:i + 64]
                loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                mon.step(loss=loss, batch_size=len(batch))  # gradient SNR, the epoch's training loss
            with mon.snapshot(epoch + 1) as snap:  # measured at the epochs the schedule says
                if snap.due:
                    model.eval()
                    with torch.no_grad():
                        snap.test_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
            print(f"epoch {epoch + 1}: test accuracy {snap.test_acc}")
    print(f"wrote {mon.path}: `ibtui view {mon.path}` or `ibtui plot {mon.path}`")
    return mon.path


if __name__ == "__main__":
    main()
