"""Every quantity a run can emit, in one registry: name, label, unit, scale, definition and scope.

The engine writes these names into records, the CSV carries them, and every pane, figure and report reads
them from here, so the lists cannot drift.  `scope` says what the record's `layer` holds: "layer" (a layer
label "1".."L", the last is the output), "pair" (a layer pair "k-k1"), "network" (empty: the whole
network) or "run" (empty: an event of the run, e.g. a noise change).  `scale` is how a plot draws it.
MI is in bits, losses in nats.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    name: str  # as written in the export's `quantity` column
    label: str  # short, for axes and table headers
    unit: str  # "" for a pure number
    scale: str  # "linear" or "log": how a plot's axis draws it
    definition: str  # one line: what it is and where it comes from
    scope: str  # "layer", "pair", "network" or "run"
    group: str  # "mi", "loss", "run", "dynamics", "bound" or "clustering"

    @property
    def axis(self) -> str:
        """Axis title: the label with its unit, e.g. "I(X;T) [bits]"."""
        return f"{self.label} [{self.unit}]" if self.unit else self.label


SNR_DEFINITION = ("SNR = ||mean_b g_b||_2 / sqrt(tr Cov_b g_b) per layer (not cumulative), weight gradients only, "
                  "over the mini-batches of the window (unbiased n-1 covariance); Shwartz-Ziv, Painsky & Tishby "
                  "2019, Sec. 6")
BOUND_DEFINITION = ("Gaussian bound on I(T_k;T_k+1) in bits = 1/2 sum_i log2(1 + A_ii/(lambda_i + sz2/sT2)), "
                    "dW = W - W*, dW^T dW = Q Lambda Q^T, A = Q^T W*^T W* Q; W* and sT2 frozen at the "
                    "drift->diffusion transition (Shwartz-Ziv, Painsky & Tishby 2019, eq. 9)")

_ALL = (
    # information plane
    Quantity("I(X;T)", "I(X;T)", "bits", "linear", "mutual information between the input and a layer's "
             "representation, by the record's estimator", "layer", "mi"),
    Quantity("I(T;Y)", "I(T;Y)", "bits", "linear", "mutual information between a layer's representation "
             "and the label, by the record's estimator", "layer", "mi"),
    Quantity("I(X;T)_se", "SE of I(X;T)", "bits", "linear", "standard error of the I(X;T) estimate (sample "
             "propagation): its Monte Carlo draws and, over a fixed subset of the inputs, the subset's sampling; "
             "the mean row is the SE of the seed mean, √(Σ SE²)/n", "layer", "mi"),
    Quantity("I(T;Y)_se", "SE of I(T;Y)", "bits", "linear", "standard error of the I(T;Y) estimate (sample "
             "propagation): its Monte Carlo draws and, over a fixed subset of the inputs, the subset's sampling; "
             "the mean row is the SE of the seed mean, √(Σ SE²)/n", "layer", "mi"),
    # loss and accuracy
    Quantity("loss_train", "train loss", "nats", "log", "cross-entropy on the training points", "network",
             "loss"),
    Quantity("loss_test", "test loss", "nats", "log", "cross-entropy on the test points", "network", "loss"),
    Quantity("acc_train", "train accuracy", "", "linear", "fraction of training points classified right",
             "network", "loss"),
    Quantity("acc_test", "test accuracy", "", "linear", "fraction of test points classified right", "network",
             "loss"),
    # run events
    Quantity("noise_beta", "noise beta", "", "linear", "std of the Gaussian noise added to every hidden layer "
             "from this epoch on (Goldfeld et al. 2019); recorded at epoch 0 and at every change", "run", "run"),
    Quantity("diverged", "diverged", "", "linear", "1 at the epoch a seed's loss became NaN or inf; the seed "
             "stops there", "run", "run"),
    # training dynamics (Shwartz-Ziv, Painsky & Tishby 2019)
    Quantity("grad_mean", "gradient mean ‖E[g]‖₂", "", "log", "norm of the mean mini-batch weight gradient over the "
             "window", "layer", "dynamics"),
    Quantity("grad_std", "gradient std √tr Cov g", "", "log", "sqrt(tr Cov) of the mini-batch weight gradients over the "
             "window", "layer", "dynamics"),
    Quantity("snr", "gradient SNR", "", "log", SNR_DEFINITION, "layer", "dynamics"),
    Quantity("weight_norm", "weight norm ‖W‖_F", "", "linear", "Frobenius norm of the layer's weight", "layer", "dynamics"),
    Quantity("weight_change", "weight change ‖W − W₀‖_F", "", "log", "Frobenius distance of the layer's weight from its "
             "initial value", "layer", "dynamics"),
    Quantity("transition_epoch", "transition", "epoch", "log", "epoch of the layer's drift->diffusion "
             "transition (steepest fall of the smoothed log SNR); NaN until declared", "layer", "dynamics"),
    Quantity("phase", "phase", "", "linear", "0 = drift, 1 = diffusion", "layer", "dynamics"),
    Quantity("gen_gap", "generalisation gap", "nats", "linear", "loss_test - loss_train", "network",
             "dynamics"),
    Quantity("error_gap", "error gap", "", "linear", "acc_train - acc_test", "network", "dynamics"),
    Quantity("input_compression_bound", "input-compression bound", "", "linear",
             "sqrt((2^I(X;T) + ln(2/delta)) / (2m)) with the last hidden layer's I(X;T) (Shwartz-Ziv, Painsky & "
             "Tishby 2019, Theorem 1 as printed)", "network", "dynamics"),
    Quantity("gaussian_bound", "Gaussian bound", "bits", "linear", BOUND_DEFINITION, "pair", "bound"),
    # clustering table (Goldfeld et al. 2019; the survey's partitions)
    Quantity("cells", "occupied cells", "count", "log", "occupied cells of a grid of width B (B = 10*beta by default) over the "
             "layer's noiseless representations of the N inputs; N = no clustering, #classes or fewer = "
             "collapsed", "layer", "clustering"),
    Quantity("H_bin", "H(Bin(T))", "bits", "linear", "H(Bin(T)): entropy of the occupied-cell frequencies, inputs "
             "equiprobable (Goldfeld et al. 2019 clustering measure, bin 10*beta); log2(N) = no clustering",
             "layer", "clustering"),
    Quantity("homogeneity", "homogeneity I(C;Y)/H(Y)", "fraction", "linear", "I(C;Y)/H(Y) = 1 - H(Y|C)/H(Y) over the grid cells C "
             "of width B: 1 = every cell holds one class, 0 = cells independent of the label (the survey's "
             "partition homogeneity)", "layer", "clustering"),
    Quantity("spread_ratio", "within / between spread", "ratio", "log", "mean squared distance of a point to its class centroid / "
             "class-size-weighted mean squared distance of class centroids to the global centroid; near 0 = "
             "tight class clusters", "layer", "clustering"),
    Quantity("close_pairs", "close pairs", "fraction of pairs", "linear", "fraction of input pairs i<j with ||h_i - h_j|| < "
             "radius (radius = beta, the noise scale): pairs the noise cannot tell apart", "layer",
             "clustering"),
    Quantity("cos_within", "cosine within class", "cosine", "linear", "mean cosine similarity over pairs of inputs of the same "
             "class (Goldfeld et al. 2019, MNIST CNN)", "layer", "clustering"),
    Quantity("cos_between", "cosine between classes", "cosine", "linear", "mean cosine similarity over pairs of inputs of "
             "different classes (Goldfeld et al. 2019, MNIST CNN)", "layer", "clustering"),
)

QUANTITIES: dict[str, Quantity] = {q.name: q for q in _ALL}

# What each MI estimator of `measure.estimators` computes, for the `?` help (the run's exact settings are in its
# sidecar's run_info.estimator_settings). Keyed by the scenario's estimator name; records carry a label
# ("bin30", "kde_upper", …) that starts with it.
ESTIMATORS = {
    "binning": "equal-width bins per unit; I(X;T) = H(Bin(T)) for a deterministic net, I(T;Y) by plug-in "
               "(Shwartz-Ziv & Tishby 2017); saturates at log2 N on wide layers",
    "kde": "Kolchinsky-Tracey pairwise-distance upper (KL) and lower (Bhattacharyya) bounds with Gaussian noise of "
           "variance sigma^2 added to T (Saxe et al. 2018)",
    "sp": "sample propagation: Gaussian-mixture entropies of a noisy network's layers by Monte Carlo "
          "(Goldfeld et al. 2019)",
    "exact": "quadrature of a 1-unit noisy layer's Gaussian mixture",
    "renyi": "matrix-based Renyi alpha-entropy: S = log2(sum lambda_i^alpha)/(1-alpha) of the trace-1 Gaussian Gram "
             "A_ij = K_ij/n; joint S(A o B / tr(A o B)); I = S(A) + S(B) - S(A,B), with the inputs' Gram for "
             "I(X;T) and the class-indicator Gram for I(T;Y); alpha = 1.01, sigma by Silverman's rule "
             "(Giraldo, Rao & Principe 2014; Yu et al. 2019); made for wide layers",
    "ksg": "Kraskov-Stoegbauer-Grassberger kNN estimator 1: I = psi(k) + psi(N) - <psi(n_x+1) + psi(n_t+1)>, "
           "max-norm, each variable at unit variance; labels at distance infinity between classes for I(T;Y) "
           "(Kraskov et al. 2004; Ross 2014)",
}


def of_group(group: str) -> tuple[str, ...]:
    """The names of one group, in registry order (e.g. the clustering table's columns)."""
    return tuple(q.name for q in _ALL if q.group == group)


def definition(name: str) -> str:
    return QUANTITIES[name].definition


# Names the code refers to directly.
MI_XT = "I(X;T)"
MI_TY = "I(T;Y)"
MI_XT_SE = "I(X;T)_se"
MI_TY_SE = "I(T;Y)_se"
LOSS_TRAIN = "loss_train"
LOSS_TEST = "loss_test"
ACC_TRAIN = "acc_train"
ACC_TEST = "acc_test"
NOISE_BETA = "noise_beta"
SEED_DIVERGED = "diverged"
GRAD_MEAN = "grad_mean"
GRAD_STD = "grad_std"
SNR = "snr"
WEIGHT_NORM = "weight_norm"
WEIGHT_CHANGE = "weight_change"
TRANSITION_EPOCH = "transition_epoch"
PHASE = "phase"
GEN_GAP = "gen_gap"
ERROR_GAP = "error_gap"
INPUT_COMPRESSION_BOUND = "input_compression_bound"
GAUSSIAN_BOUND = "gaussian_bound"
CLUSTERING = of_group("clustering")
DYNAMICS_PER_LAYER = (SNR, GRAD_MEAN, GRAD_STD, WEIGHT_CHANGE, WEIGHT_NORM)  # the dynamics pane's `d` cycle
