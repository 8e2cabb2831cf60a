"""Fixed random subsets: the same k of n points every time, for measuring on fewer points than there are."""
from __future__ import annotations

import torch


def fixed_subset(n: int, k: int, seed: int, device: torch.device | str | None = None) -> torch.Tensor | None:
    """The sorted first k entries of a permutation of range(n) drawn from torch.Generator().manual_seed(seed),
    int64 [k] on `device`; None (all points) when k is 0 or k ≥ n.

    The same (n, k, seed) gives the same points on any device, and the subset of size k is contained in
    the subset of size k' > k for the same n and seed.
    """
    if not k or k >= n:
        return None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    keep = perm[:k].sort().values
    return keep if device is None else keep.to(device)
