"""The scenario's network for all seeds at once: the one model factory the engine calls.

The scenario has already been validated (`ibtui.scenario`: a CNN reads model.hidden as three sizes,
the ResNet is ReLU, convolutional models need image data, …), so this module only builds.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ibtui.models.mlp import BatchedMLP
from ibtui.scenario import Scenario, measured_layers

if TYPE_CHECKING:
    from ibtui.data.dataset import Dataset


def build_model(sc: Scenario, seeds: list[int], data: "Dataset") -> nn.Module:
    """The scenario's network (model.kind = mlp, cnn or resnet32) for `seeds`, sized for `data`."""
    if sc.model.kind == "mlp":
        return build_mlp(sc, seeds, data.x[0].numel(), data.n_classes)
    _, c, h, _ = data.x.shape
    return build_conv(sc, seeds, c, h, data.n_classes)


def build_mlp(sc: Scenario, seeds: list[int], d_in: int, n_classes: int) -> BatchedMLP:
    """The batched MLP, with the scenario's constant initialisation and fixed readout if asked for."""
    m = sc.model
    model = BatchedMLP(seeds, [d_in, *m.hidden_widths, n_classes], m.activation, m.init)
    if m.init_weight != 0.0 or m.init_bias != 0.0:
        with torch.no_grad():
            for w, b in zip(model.weights, model.biases):
                if m.init_weight != 0.0:
                    w.fill_(m.init_weight)
                b.fill_(m.init_bias)
    if m.fixed_readout:
        with torch.no_grad():
            w, b = model.weights[-1], model.biases[-1]
            width = w.shape[1]
            w[:, :, 0] = -1.0 / width
            w[:, :, 1] = 1.0 / width
            b.zero_()
        w.requires_grad_(False)
        b.requires_grad_(False)
    return model


def build_conv(sc: Scenario, seeds: list[int], in_channels: int, image_size: int, n_classes: int) -> nn.Module:
    """The seed-batched CNN (model.kind = "cnn") or ResNet-32 ("resnet32") for square images.

    Their initialisations are their own (PyTorch's default for the CNN, He-normal for the ResNet), so
    model.init, init_weight and init_bias do not apply; nor does model.depth.
    """
    from ibtui.models.cnn import SeedCNN
    from ibtui.models.resnet import SeedResNet

    m = sc.model
    if m.kind == "cnn":
        c1, c2, dense = m.cnn_sizes
        model = SeedCNN(len(seeds), seeds, channels=(c1, c2), hidden=dense, n_classes=n_classes,
                        activation=m.activation, in_channels=in_channels, image_size=image_size)
    elif m.kind == "resnet32":
        model = SeedResNet(len(seeds), seeds, depth=32, n_classes=n_classes, pooled=True, in_channels=in_channels,
                           image_size=image_size)
    else:
        raise ValueError(f"model.kind = {m.kind!r} is not a convolutional model")
    expected = [wd for _, wd in measured_layers(sc, (in_channels, image_size, image_size), n_classes)[:-1]]
    assert list(model.layer_widths) == expected, (model.layer_widths, expected)
    return model
