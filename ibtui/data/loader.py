"""The scenario's data set: the one place that knows every data set ibtui can load."""
from __future__ import annotations

import torch

from ibtui.data.boolean import load_boolean4
from ibtui.data.dataset import Dataset
from ibtui.data.images import load_image_dataset
from ibtui.data.npz import load_npz
from ibtui.data.szt import load_szt
from ibtui.data.toys import saturation_dataset


def load_dataset(sc, seeds: list[int], device: torch.device) -> Dataset:
    """Build the scenario's data set (data.dataset) on `device`."""
    name = sc.data.dataset
    if name == "szt":
        return load_szt(sc, seeds, device)
    if name == "saturation":
        return saturation_dataset(len(seeds), device)
    if name == "boolean4":
        return load_boolean4(sc, seeds, device)
    if name == "npz":
        return load_npz(sc, seeds, device)
    return load_image_dataset(sc, seeds, device)  # mnist, cifar10, cifar100
