"""Matrix-based Rényi α-order entropy and mutual information (Giraldo, Rao & Príncipe 2014; Yu et al. 2019).

The entropy is read off the eigenvalues of a normalised Gram matrix instead of a density, so it does not
saturate at log2 n on a wide layer the way binning does (Yu et al. apply it to CNN feature maps):

    K_ij = exp(−‖t_i − t_j‖² / 2σ²),   A_ij = K_ij / (n √(K_ii K_jj))   (tr A = 1)
    S_α(A) = 1/(1−α) · log2 Σ_i λ_i(A)^α
    S_α(A, B) = S_α(A∘B / tr(A∘B))       (Hadamard product: the joint, Yu et al. 2019, eq. 4)
    I_α(A; B) = S_α(A) + S_α(B) − S_α(A, B)

Defaults, from the literature: α = 1.01, close to Shannon's α → 1 (Yu et al. 2019). The kernel width is
Silverman's rule of thumb in the form of Yu et al. 2019, σ = γ n^(−1/(4+d)), with two factors that make it
mean the same on any layer: √d (Tapia & Estévez 2020, with their γ = 0.8: distances between points grow as
√d, so without it every point of a wide layer sits many widths from every other and S = log2 n, binning's
ceiling again), and σ̂, the layer's root-mean marginal standard deviation (per seed, on the measured points),
the data scale of Silverman's own rule, which Yu et al. fold into γ by hand. So σ = γ σ̂ √d n^(−1/(4+d)),
and the estimate does not change with the units of a layer (a ReLU layer's scale, a tanh layer's
saturation level). A fixed width (the `sigma` setting) is the alternative, e.g. to follow one scale over
a run. The label Gram is the class indicator δ(y_i, y_j), the narrow-width limit of the Gaussian kernel on
one-hot labels, so S_α(A_Y) is exactly the Rényi entropy of the class frequencies and I(T;Y) ≤ H_α(Y).

All functions take every seed at once ([S, n, d] → [S]) and work in float64 on the input's device; the
eigendecomposition is O(n³), so callers keep n to a few hundred or thousand points.
"""
from __future__ import annotations

import math

import torch

ALPHA = 1.01  # Yu et al. 2019: close to 1, the Shannon limit, while the α-entropy stays defined
GAMMA = 0.8  # Tapia & Estévez 2020: the constant of the rule with its √d normalisation


def silverman_width(n: int, d: int, gamma: float = GAMMA, scale: float | torch.Tensor = 1.0) -> float | torch.Tensor:
    """σ = γ · scale · √d · n^(−1/(4+d)): Silverman's rule as Yu et al. 2019 write it, with Tapia & Estévez's √d
    and the data's scale (root-mean marginal standard deviation) of Silverman's own rule."""
    return gamma * scale * math.sqrt(d) * n ** (-1.0 / (4 + d))


def data_scale(h: torch.Tensor) -> torch.Tensor:
    """Root-mean marginal standard deviation [S] of points h [S, n, d] (float64; tiny, not 0, for identical points)."""
    h = h.double()
    return h.var(dim=1, unbiased=False).mean(-1).sqrt().clamp_min(1e-30)


def auto_width(h: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """The default kernel width [S] of points h [S, n, d] (`silverman_width` with their `data_scale`)."""
    return silverman_width(h.shape[1], math.prod(h.shape[2:]), gamma, data_scale(h))


def gram(h: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Normalised Gaussian Gram matrices A [S, n, n] (float64, trace 1) of points h [S, n, d]; sigma a number or [S]."""
    h = h.double()
    d2 = torch.cdist(h, h).square()
    d2.diagonal(dim1=1, dim2=2).zero_()  # K_ii = 1 exactly, so A_ij = K_ij / n is the paper's normalisation
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=h.device).reshape(-1, 1, 1).clamp_min(1e-30)
    return torch.exp(-d2 / (2 * sigma * sigma)) / h.shape[1]


def entropy_of_eigenvalues(lam: torch.Tensor, alpha: float) -> torch.Tensor:
    """S_α in bits from eigenvalues [..., n] of a trace-1 matrix (α = 1: Shannon's −Σ λ log2 λ)."""
    lam = lam.clamp_min(0.0)
    lam = lam / lam.sum(-1, keepdim=True)  # round-off of the eigensolver: the spectrum sums to 1
    if alpha == 1.0:
        return -(torch.special.xlogy(lam, lam).sum(-1)) / math.log(2)
    return torch.log2((lam ** alpha).sum(-1)) / (1.0 - alpha)


def entropy(a: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """S_α(A) [S] of trace-1 matrices A [S, n, n], from float64 eigenvalues."""
    return entropy_of_eigenvalues(torch.linalg.eigvalsh(a.double()), alpha)


def joint_entropy(a: torch.Tensor, b: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """S_α(A, B) = S_α(A∘B / tr(A∘B)) [S]."""
    ab = a * b
    return entropy(ab / ab.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None], alpha)


def mutual_information(a: torch.Tensor, b: torch.Tensor, alpha: float = ALPHA,
                       s_a: torch.Tensor | None = None, s_b: torch.Tensor | None = None) -> torch.Tensor:
    """I_α(A; B) = S_α(A) + S_α(B) − S_α(A, B) [S] in bits (s_a, s_b: the marginal entropies, if known)."""
    s_a = entropy(a, alpha) if s_a is None else s_a
    s_b = entropy(b, alpha) if s_b is None else s_b
    return s_a + s_b - joint_entropy(a, b, alpha)


def label_entropy(labels: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """S_α(A_Y) of the class-indicator Gram of labels [n]: the Rényi entropy of the class frequencies (scalar)."""
    p = torch.bincount(labels.long()).double()
    p = p[p > 0] / labels.numel()
    return entropy_of_eigenvalues(p, alpha)


def joint_label_entropy(a: torch.Tensor, labels: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """S_α(A, A_Y) [S] with the class-indicator label Gram: A∘A_Y keeps A's same-class blocks (its trace stays 1),
    so its spectrum is the union of the blocks' spectra, one eigendecomposition per class instead of one of n."""
    lams = []
    for c in torch.unique(labels):
        idx = (labels == c).nonzero().squeeze(1)
        lams.append(torch.linalg.eigvalsh(a[:, idx][:, :, idx]))
    return entropy_of_eigenvalues(torch.cat(lams, dim=-1), alpha)


def renyi_mi(h: torch.Tensor, labels: torch.Tensor, alpha: float = ALPHA, sigma: float = 0.0,
             gamma: float = GAMMA, x_gram: torch.Tensor | None = None,
             x_entropy: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Matrix-based Rényi I(T;Y) (and I(X;T) when x_gram, the inputs' A_X [S or 1, n, n], is given) of one layer.

    h: [S, n, d] the layer on n points; labels: [n] class ids shared by the seeds; sigma: the kernel width
    (0 = `auto_width` of the layer, per seed). Returns {"mi_ty", "h_t" and, with x_gram, "mi_xt"}: [S] in bits.
    """
    a = gram(h, sigma if sigma > 0 else auto_width(h, gamma))
    s_t = entropy(a, alpha)
    out = {"h_t": s_t, "mi_ty": s_t + label_entropy(labels, alpha) - joint_label_entropy(a, labels, alpha)}
    if x_gram is not None:
        s_x = entropy(x_gram, alpha) if x_entropy is None else x_entropy
        out["mi_xt"] = mutual_information(x_gram.expand_as(a), a, alpha, s_a=s_x, s_b=s_t)
    return out
