"""The survey's 4-boolean task (the blog survey "Information Theory for Deep Learning", its own experiment):
16 patterns, noisy labels, repeated inputs.

The survey samples 4096 points uniformly from the 16 patterns of 4 booleans, labels them by a rule of
the inputs, and flips each label with probability 0.07. Its rule is lost (a missing formula image), so
ibtui uses **majority with the last bit breaking ties**: y = 1 ⇔ x1 + x2 + x3 + 2·x4 ≥ 3. Why this one:
- it is balanced, p(y=1) = 8/16 exactly (the rule is self-dual: complementing x complements y), so
  I(X;Y) reaches the survey's bound H(Y) − H_b(0.07) = 1 − 0.3659 = 0.6341 bits;
- it depends on all four inputs, so no input is noise to be compressed away for free;
- it is linearly separable, a "simple task" as the survey calls it, that 4-4-4-4-2 tanh learns to the
  noise floor (Bayes accuracy 0.93).

The sample is the same for every seed (numpy PCG64 from a fixed constant); seeds differ in their
initialisation and batch order, and in the split when data.split_per_seed is set. Inputs repeat, so
the data set carries the pattern index of each row as its input identity: the binning estimator then
computes H(T|X) from the data instead of assuming it is 0.
"""
from __future__ import annotations

import numpy as np
import torch

from ibtui.data.dataset import Dataset, make_split

N_BITS = 4
N_PATTERNS = 2**N_BITS
SAMPLE_SEED = 2002  # fixed: the data set is part of the task, not of a seed


def boolean4_patterns() -> np.ndarray:
    """The 16 patterns as uint8 [16, 4], row i = binary expansion of i, most significant bit in column 0."""
    i = np.arange(N_PATTERNS)[:, None]
    return ((i >> np.arange(N_BITS - 1, -1, -1)[None, :]) & 1).astype(np.uint8)


def boolean4_rule(x: np.ndarray) -> np.ndarray:
    """Noiseless label of patterns x [n, 4]: majority of the four bits, ties (two ones) broken by the last bit."""
    x = x.astype(np.int64)
    return (x[:, 0] + x[:, 1] + x[:, 2] + 2 * x[:, 3] >= 3).astype(np.uint8)


def boolean4_sample(n: int, label_noise: float, seed: int = SAMPLE_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pattern index [n] int64, noisy label [n] uint8, flipped [n] bool): n patterns drawn uniformly with
    replacement, each label the rule's flipped with probability `label_noise`, independently."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, N_PATTERNS, size=n)
    flipped = rng.random(n) < label_noise
    y = boolean4_rule(boolean4_patterns()[idx]) ^ flipped.astype(np.uint8)
    return idx.astype(np.int64), y, flipped


def load_boolean4(sc, seeds: list[int], device: torch.device) -> Dataset:
    """The boolean4 data set on `device`: x [samples, 4] in {0, 1}, noisy labels, input_ids = pattern index."""
    d = sc.data
    idx, y, flipped = boolean4_sample(d.samples, d.label_noise)
    x = boolean4_patterns()[idx]
    split = make_split(len(x), seeds, d.split, d.train_fraction, d.split_seed, d.split_per_seed)
    p = d.label_noise
    h_b = 0.0 if p in (0.0, 1.0) else float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))
    notes = (f"boolean4: {d.samples} samples of the 16 patterns of 4 bits (rule: majority, last bit breaks ties; the "
             f"survey's rule is lost), {flipped.mean() * 100:.2f} % of labels flipped (p = {d.label_noise:g}): "
             f"I(X;Y) = 1 − H_b({p:g}) = {1 - h_b:.4f} bits, I(X;T) ≤ 4 bits; inputs repeat, so binning "
             f"computes H(T|X)",)
    return Dataset.from_arrays("boolean4", x, y, split, device, distinct_inputs=False, notes=notes, input_ids=idx)
