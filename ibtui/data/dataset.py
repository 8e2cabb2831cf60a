"""A data set as the engine sees it: all points on the device once, and per-seed train/test masks.

Keeping every point in one tensor and describing the split with masks [S, N] lets the engine
evaluate all seeds on all points in one forward pass, even when each seed has its own split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ibtui.data.szt import make_split, szt_inputs, szt_labels


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
                    distinct_inputs: bool, notes: tuple[str, ...] = (), input_ids: np.ndarray | None = None
                    ) -> "Dataset":
        """A small two-class data set held as numpy arrays (SZT, boolean4), moved to the device once."""
        return cls(
            name=name,
            x=torch.as_tensor(x, dtype=torch.float32, device=device),
            y=torch.as_tensor(y.astype(np.int64), device=device),
            n_classes=2,
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


def load_dataset(sc, seeds: list[int], device: torch.device) -> Dataset:
    """Build the scenario's data set on `device`."""
    d = sc.data
    if d.dataset == "szt":
        x = szt_inputs()
        y = szt_labels(x)
        split = make_split(len(x), seeds, d.split, d.train_fraction, d.split_seed, d.split_per_seed)
        notes = []
        if split.biased:
            pos_train = y[split.train[0]].mean() * 100
            pos_test = y[split.test[0]].mean() * 100 if split.test[0].any() else float("nan")
            notes.append(f"biased split: data.split = \"unshuffled\" takes the first rows in counting order "
                         f"({pos_train:.1f} % positives in train, {pos_test:.1f} % in test), as the original IDNNs code")
        return Dataset.from_arrays("szt", x, y, split, device, distinct_inputs=True, notes=tuple(notes))
    if d.dataset == "saturation":
        return saturation_dataset(len(seeds), device)
    if d.dataset == "boolean4":
        from ibtui.data.boolean import load_boolean4

        return load_boolean4(sc, seeds, device)
    from ibtui.data.images import load_image_dataset  # mnist, cifar10, cifar100

    return load_image_dataset(sc, seeds, device)


def saturation_dataset(n_seeds: int, device: torch.device) -> Dataset:
    """The four inputs of Goldfeld et al.'s single-neuron toy, X uniform on {−3, −1, 1, 3}.

    Classes {−3, −1, 1} → 0 and {3} → 1 (papers.md §1.4, recalled). All four points train, and MI is
    measured on all four; there is no test set.
    """
    from ibtui.data.toys import SATURATION_X, saturation_labels

    x = torch.tensor(SATURATION_X, dtype=torch.float32, device=device).reshape(-1, 1)
    train = torch.ones(n_seeds, len(x), dtype=torch.bool, device=device)
    return Dataset(name="saturation", x=x, y=saturation_labels().to(device), n_classes=2, train=train,
                   test=~train, distinct_inputs=True)
