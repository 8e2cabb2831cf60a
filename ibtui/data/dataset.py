"""A data set as the engine sees it: all points on the device once, and per-seed train/test masks.

The base of ibtui.data: the data set modules (szt, toys, boolean, images, npz) build on it and on
`make_split`; `ibtui.data.loader.load_dataset` picks the scenario's.

Keeping every point in one tensor and describing the split with masks [S, N] lets the engine
evaluate all seeds on all points in one forward pass, even when each seed has its own split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Dataset:
    name: str
    x: torch.Tensor  # [N, ...] float32, on the device
    y: torch.Tensor  # [N] int64
    n_classes: int
    train: torch.Tensor  # [S, N] bool
    test: torch.Tensor  # [S, N] bool
    distinct_inputs: bool  # every x appears once (then H(T|X) = 0 for a deterministic T)
    notes: tuple[str, ...] = ()
    input_ids: torch.Tensor | None = None  # [N] identity of each input when inputs repeat (equal x → equal id)

    @property
    def n_train(self) -> int:
        return int(self.train[0].sum())

    @classmethod
    def from_arrays(cls, name: str, x: np.ndarray, y: np.ndarray, split, device: torch.device, *,
                    distinct_inputs: bool, notes: tuple[str, ...] = (), input_ids: np.ndarray | None = None,
                    n_classes: int = 2) -> "Dataset":
        """A small data set held as numpy arrays (SZT, boolean4, own npz data), moved to the device once."""
        return cls(
            name=name,
            x=torch.as_tensor(x, dtype=torch.float32, device=device),
            y=torch.as_tensor(y.astype(np.int64), device=device),
            n_classes=n_classes,
            train=torch.as_tensor(split.train, device=device),
            test=torch.as_tensor(split.test, device=device),
            distinct_inputs=distinct_inputs,
            notes=tuple(notes),
            input_ids=None if input_ids is None else torch.as_tensor(input_ids, device=device),
        )

    def train_indices(self) -> torch.Tensor:
        """[S, n_train] indices of each seed's training points (every seed has the same count)."""
        s = self.train.shape[0]
        return self.train.nonzero()[:, 1].reshape(s, -1)


@dataclass(frozen=True)
class Split:
    """Train/test membership per seed as boolean masks [S, N] (seeds may share one split)."""

    train: np.ndarray
    test: np.ndarray
    biased: bool = False  # True for the original unshuffled split


def make_split(n: int, seeds: list[int], mode: str, train_fraction: float, split_seed: int,
               per_seed: bool) -> Split:
    """Split n points into train/test.

    mode "random": a random permutation (numpy PCG64 from `split_seed`, or from the run seed when
    `per_seed`); mode "unshuffled": the first round(f·n) rows in counting order, as the original code of
    Shwartz-Ziv & Tishby (2017) does — biased on SZT (43.7 % positives in train, 83.6 % in test), so it
    is flagged.
    """
    n_train = int(round(train_fraction * n))
    masks = np.zeros((len(seeds), n), dtype=bool)
    if mode == "unshuffled":
        masks[:, :n_train] = True
    elif mode == "random":
        for row, s in enumerate(seeds):
            rng = np.random.default_rng(s if per_seed else split_seed)
            masks[row, rng.permutation(n)[:n_train]] = True
    else:  # validated in scenario.py; kept as a guard for direct callers
        raise ValueError(f"unknown split mode {mode!r}")
    return Split(train=masks, test=~masks, biased=mode == "unshuffled")
