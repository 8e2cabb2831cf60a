"""Seed-batched image models: the MNIST CNN (ibtui.models.cnn) and ResNet-32 (ibtui.models.resnet)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ibtui.models.cnn import SeedCNN
from ibtui.models.resnet import SeedResNet

SHARED = (Path(__file__).resolve().parents[2] / "../shared/data").resolve()

CNN_SHAPE = (1, 28, 28)
RESNET_SHAPE = (3, 32, 32)


def _x(S: int, B: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand((S, B) + shape, generator=torch.Generator().manual_seed(seed))


def _models(seeds):
    """(model, input shape) pairs: the CNN, ResNet-32 (pooled) and a small unpooled ResNet-8 (for speed)."""
    return [(SeedCNN(len(seeds), seeds), CNN_SHAPE),
            (SeedResNet(len(seeds), seeds), RESNET_SHAPE),  # ResNet-32, pooled
            (SeedResNet(len(seeds), seeds, depth=8, pooled=False), RESNET_SHAPE)]


def test_output_shapes_s2_b3():
    S, B = 2, 3
    expected = [(6272, 3136, 128), (16, 32, 64), (16 * 32 * 32, 32 * 16 * 16, 64 * 8 * 8)]
    for (model, shape), widths in zip(_models([3, 5]), expected):
        logits, reps = model(_x(S, B, shape))
        assert logits.shape == (S, B, 10)
        assert [tuple(r.shape) for r in reps] == [(S, B, d) for d in widths]
        assert model.layer_widths == widths and model.hidden_widths == list(widths)
        weights = model.weight_matrices()  # hidden layers, then the output layer (as BatchedMLP)
        assert len(weights) == len(reps) + 1 and weights[-1].shape[-1] == 10
        assert all(w.shape[0] == S and isinstance(w, torch.nn.Parameter) for w in weights)
    resnet32 = _models([3, 5])[1][0]
    assert [tuple(w.shape) for w in resnet32.weight_matrices()[:3]] == [(S, c, c, 3, 3) for c in (16, 32, 64)]
    assert resnet32.weight_matrices()[2] is resnet32.stages[2][4].conv2_w  # last conv of stage 3 (block 5)


def test_seed_independence():
    """Seed 5 built alone or beside seed 3 has the same parameters and, on the same batch, the same outputs."""
    B = 4
    for (alone, shape), (pair, _) in zip(_models([5]), _models([3, 5])):
        for (name, p1), (_, p2) in zip(alone.named_parameters(), pair.named_parameters()):
            assert torch.equal(p1[0], p2[1]), name
        x = _x(2, B, shape)
        l1, r1 = alone(x[1:])
        l2, r2 = pair(x)
        assert torch.allclose(l1[0], l2[1], rtol=0, atol=1e-6)
        for a, b in zip(r1, r2):
            assert torch.allclose(a[0], b[1], rtol=0, atol=1e-6)
    # different seeds get different initialisations
    pair = SeedCNN(2, [3, 5])
    assert not torch.equal(pair.conv1_w[0], pair.conv1_w[1])


def test_shared_input_equals_repeated_input():
    """x [B, C, H, W] (the engine's measurement pass) means the same images for every seed."""
    for model, shape in _models([3, 5]):
        x = _x(1, 4, shape)[0]
        l1, r1 = model(x)
        l2, r2 = model(x.expand(2, *x.shape))
        assert torch.allclose(l1, l2, rtol=0, atol=1e-6)
        assert all(torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(r1, r2))
        with pytest.raises(ValueError, match="expected"):
            model(_x(3, 4, shape))  # three seeds of input for a two-seed model


def test_resnet_batch_norm_running_stats_are_per_seed():
    alone, pair = SeedResNet(1, [5], depth=8), SeedResNet(2, [3, 5], depth=8)
    x = _x(2, 4, RESNET_SHAPE)
    alone(x[1:])
    pair(x)
    bn_alone, bn_pair = alone.stages[2][0].bn2, pair.stages[2][0].bn2
    assert torch.allclose(bn_alone.running_mean[0], bn_pair.running_mean[1], rtol=0, atol=1e-6)
    assert torch.allclose(bn_alone.running_var[0], bn_pair.running_var[1], rtol=0, atol=1e-6)
    assert not torch.allclose(bn_pair.running_mean[0], bn_pair.running_mean[1])


def test_gradients_do_not_cross_seeds():
    """A loss on seed 0 alone leaves every parameter slice of seed 1 with an exactly zero gradient."""
    for model, shape in _models([3, 5]):
        logits, _ = model(_x(2, 4, shape))
        logits[0].square().sum().backward()
        for name, p in model.named_parameters():
            assert torch.count_nonzero(p.grad[1]) == 0, name
            assert torch.count_nonzero(p.grad[0]) > 0, name


def test_noise_off_is_deterministic_and_never_drawn():
    calls = []

    def noise(layer, t):
        calls.append(layer)
        return torch.randn_like(t)

    for model, shape in _models([3, 5]):
        x = _x(2, 3, shape)
        l1, r1 = model(x)
        l2, r2 = model(x, beta=0.0, noise=noise)
        assert torch.equal(l1, l2) and all(torch.equal(a, b) for a, b in zip(r1, r2))
    assert calls == []


def test_noise_semantics_cnn():
    """β·ε goes after each hidden nonlinearity; returned S_l are noiseless; later layers see T_l = S_l + β·ε."""
    model, beta = SeedCNN(2, [3, 5]), 0.1
    x = _x(2, 3, CNN_SHAPE)
    l0, r0 = model(x)
    seen = []

    def ones(layer, t):
        seen.append((layer, t.clone()))
        return torch.ones_like(t)

    logits, reps = model(x, beta=beta, noise=ones)
    assert [layer for layer, _ in seen] == [0, 1, 2]
    assert all(torch.equal(t, r) for (_, t), r in zip(seen, reps))  # noise gets S_l, shape [S, B, d_l]
    assert torch.equal(reps[0], r0[0])  # the first layer's S_l does not depend on any noise
    assert not torch.allclose(reps[1], r0[1])
    # closed form for the dense layers: S_3 = tanh((S_2 + β) W + b), logits = (S_3 + β) W_out + b_out
    s3 = torch.tanh((reps[1] + beta) @ model.fc_w + model.fc_b[:, None])
    assert torch.allclose(reps[2], s3, rtol=0, atol=1e-5)
    assert torch.allclose(logits, (reps[2] + beta) @ model.out_w + model.out_b[:, None], rtol=0, atol=1e-5)
    # zero noise is the deterministic net, exactly
    lz, rz = model(x, beta=beta, noise=lambda _, t: torch.zeros_like(t))
    assert torch.equal(lz, l0) and all(torch.equal(a, b) for a, b in zip(rz, r0))


def test_noise_semantics_resnet():
    model, beta = SeedResNet(2, [3, 5], depth=8), 0.1
    model.eval()  # running statistics, so a noisy batch cannot change the normalisation of a later one
    x = _x(2, 3, RESNET_SHAPE)
    l0, r0 = model(x)
    shapes = []

    def ones(layer, t):
        shapes.append((layer, tuple(t.shape)))
        return torch.ones_like(t)

    logits, reps = model(x, beta=beta, noise=ones)
    assert shapes == [(0, (2, 3, 16 * 32 * 32)), (1, (2, 3, 32 * 16 * 16)), (2, (2, 3, 64 * 8 * 8))]
    assert torch.equal(reps[0], r0[0]) and not torch.allclose(reps[1], r0[1])
    # logits = mean over pixels of (S_3 + β) · W + b = (pooled S_3 + β) W + b
    assert torch.allclose(logits, (reps[2] + beta) @ model.fc_w + model.fc_b[:, None], rtol=0, atol=1e-5)
    assert model.rep_noise_factor == (1 / 32, 1 / 16, 1 / 8)


def test_parameter_counts():
    # ResNet-32, option A, 10 classes: 3·16·9 + 2·16 (stem) + stage 1: 5·(2·16·16·9 + 4·16)
    # + stage 2: 16·32·9 + 32·32·9 + 4·32 + 4·(2·32·32·9 + 4·32) + stage 3: likewise with 32→64, 64
    # + 64·10 + 10 = 464 154 ("0.46M", He et al. 2016 Table 6)
    stage = lambda c_in, c: (c_in * c * 9 + c * c * 9 + 4 * c) + 4 * (2 * c * c * 9 + 4 * c)
    closed = 3 * 16 * 9 + 2 * 16 + stage(16, 16) + stage(16, 32) + stage(32, 64) + 64 * 10 + 10
    assert closed == 464_154
    assert sum(p.numel() for p in SeedResNet(1, [0]).parameters()) == closed
    assert sum(p.numel() for p in SeedResNet(3, [0, 1, 2]).parameters()) == 3 * closed
    # CNN: conv 1→32 5×5, conv 32→64 5×5, fc 3136→128, fc 128→10, with biases
    cnn = 32 * 25 + 32 + 64 * 32 * 25 + 64 + 3136 * 128 + 128 + 128 * 10 + 10
    assert sum(p.numel() for p in SeedCNN(1, [0]).parameters()) == cnn == 454_922


def _train(model, x, y, steps, lr, momentum=0.0):
    S, B = y.shape
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses = []
    for _ in range(steps + 1):
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(S * B, -1), y.reshape(-1), reduction="none").reshape(S, B).mean(1)
        losses.append(loss.detach())
        opt.zero_grad()
        loss.sum().backward()  # seeds are independent, so the sum trains each seed on its own loss
        opt.step()
    return losses[0], losses[-1]


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_sgd_lowers_the_loss_cnn_mnist():
    if not (SHARED / "mnist-5k").is_dir():
        pytest.skip("real MNIST (mnist-5k) absent")
    from ibtui.data.images import load_mnist
    d = load_mnist(SHARED / "mnist-5k")
    S, B = 2, 64
    x, y = d.x_train[: S * B].reshape(S, B, *CNN_SHAPE), d.y_train[: S * B].reshape(S, B)  # own batch per seed
    first, last = _train(SeedCNN(S, [0, 1]), x, y, steps=10, lr=0.1)
    assert torch.allclose(first, torch.full((S,), math.log(10)), atol=0.05)  # small init logits: loss ≈ ln 10
    assert (last < 0.9 * first).all(), (first, last)


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_sgd_lowers_the_loss_resnet32_cifar():
    if not (SHARED / "cifar-10-batches-py").is_dir():
        pytest.skip("real CIFAR-10 subset absent")
    from ibtui.data.images import load_cifar
    d = load_cifar(SHARED)
    S, B = 2, 16
    x, y = d.x_train[: S * B].reshape(S, B, *RESNET_SHAPE), d.y_train[: S * B].reshape(S, B)
    first, last = _train(SeedResNet(S, [0, 1]), x, y, steps=8, lr=0.05, momentum=0.9)
    # measured 2.68 and 2.64: near ln 10 = 2.30, the batch of 16 and the init's pooled-feature scale add a bit
    assert torch.allclose(first, torch.full((S,), math.log(10)), atol=0.5)
    assert (last < 0.5 * first).all(), (first, last)


def test_default_noise_is_randn_like():
    """Without a noise function, ε = torch.randn_like(·): same draws as passing that function, exactly."""
    for model, shape in _models([3, 5])[:2]:
        model.eval()
        x = _x(2, 3, shape)
        torch.manual_seed(11)
        l1, r1 = model(x, beta=0.05)
        torch.manual_seed(11)
        l2, r2 = model(x, beta=0.05, noise=lambda _, t: torch.randn_like(t))
        l0, _ = model(x)
        assert torch.equal(l1, l2) and all(torch.equal(a, b) for a, b in zip(r1, r2))
        assert not torch.allclose(l1, l0)
