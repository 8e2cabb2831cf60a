"""One module a claim of the papers, in the report's order; importing this package registers them all."""
from __future__ import annotations

import importlib

ORDER = ("szt_tanh", "szt_relu", "szt_fullbatch", "noisy_sp", "saturation", "orthonormal", "mnist_cnn_noisy",
         "snr_transition", "batch_sweep", "depth_sweep", "mnist_fc", "cifar_resnet32", "boolean4", "mnist_plane")

for _name in ORDER:
    importlib.import_module(f"{__name__}.{_name}")
