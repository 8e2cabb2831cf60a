"""The batched MLP: its hand-written backward equals autograd, for every activation, with noise, any class count."""
import pytest
import torch

from ibtui.engine.snapshot import pointwise_cross_entropy
from ibtui.models.mlp import BatchedMLP


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_manual_backward_equals_autograd(activation, n_classes, beta):
    torch.manual_seed(0)
    model = BatchedMLP([0, 1, 2], [12, 10, 7, 5, n_classes], activation)
    xt = torch.rand(3, 12, 64).round()
    y = torch.randint(0, n_classes, (3, 64))
    eps = {layer: torch.randn(3, w, 64) for layer, w in enumerate([10, 7, 5])}
    noise = lambda layer, like: eps[layer]

    logits_t, _ = model.forward_t(xt, beta, noise)
    loss = pointwise_cross_entropy(logits_t, y).mean(dim=1)
    loss.sum().backward()
    auto = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    manual_loss = model.train_grads(xt, y, beta, noise)
    assert torch.allclose(manual_loss, loss.detach(), atol=1e-6)
    for a, m in zip(auto, [p.grad for p in model.parameters()]):
        assert a.shape == m.shape and torch.allclose(a, m, atol=1e-6, rtol=1e-4)


def test_forward_shared_and_batched_inputs_agree():
    model = BatchedMLP([4, 5], [12, 10, 3, 2])
    x = torch.rand(20, 12)
    logits_shared, hidden_shared = model(x)
    logits_batched, hidden_batched = model(x.expand(2, -1, -1))
    assert logits_shared.shape == (2, 20, 2) and [h.shape for h in hidden_shared] == [(2, 20, 10), (2, 20, 3)]
    assert torch.allclose(logits_shared, logits_batched) and torch.allclose(hidden_shared[1], hidden_batched[1])
    assert torch.allclose(hidden_shared[0][0], torch.tanh(x @ model.weights[0][0] + model.biases[0][0]), atol=2e-7)
