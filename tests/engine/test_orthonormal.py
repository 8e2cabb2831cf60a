"""Orthonormal regularisation: the hand-written gradient is autograd's, it is added to .grad of the chosen
layers only, and training with a large λ holds every penalised WᵀW at I."""
import pytest
import torch

from ibtui.engine.orthonormal import OrthonormalPenalty, orthonormal_grad, orthonormal_penalty, small_gram
from ibtui.engine.trainer import Engine
from ibtui.scenario import ScenarioError, parse_scenario


def szt(orthonormal=0.0, layers="[]", seeds=2, lr=0.01):
    return parse_scenario(f'[run]\nepochs = 1\nseeds = {seeds}\ndevice = "cpu"\n'
                          f'[model]\northonormal = {orthonormal}\northonormal_layers = {layers}\n'
                          f'[train]\nlr = {lr}\nbatch_size = 256\n[measure]\nsnapshots = 1\n'
                          f'[measure.dynamics]\nenabled = false\n')


def autograd_penalty_grad(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """‖WᵀW − I_out‖²_F per seed and its gradient, by autograd (the form written in the docs)."""
    w = w.detach().clone().requires_grad_(True)
    eye = torch.eye(w.shape[2], dtype=w.dtype)
    p = (w.transpose(1, 2) @ w - eye).pow(2).sum(dim=(1, 2))
    (g,) = torch.autograd.grad(p.sum(), w)
    return p.detach(), g


@pytest.mark.parametrize("shape", [(3, 12, 10), (3, 4, 4), (2, 3, 5), (1, 10, 1)])
def test_gradient_equals_autograd(shape):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p_ref, g_ref = autograd_penalty_grad(w)
    # Same gradient whichever Gram is used (4W(WᵀW−I) = 4(WWᵀ−I)W), to float64 rounding.
    torch.testing.assert_close(orthonormal_grad(w), g_ref, rtol=1e-12, atol=1e-12)
    # The value is the reachable form: ‖WᵀW − I_out‖² minus the constant max(0, out − in).
    torch.testing.assert_close(orthonormal_penalty(w), p_ref - max(0, shape[2] - shape[1]), rtol=1e-12, atol=1e-10)
    assert small_gram(w).shape[-1] == min(shape[1:])


def test_penalty_is_zero_exactly_for_partial_isometries():
    q, _ = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    w = q[:, :5].unsqueeze(0)  # orthonormal columns: WᵀW = I_5
    assert orthonormal_penalty(w).item() < 1e-24 and orthonormal_grad(w).abs().max().item() < 1e-12
    assert orthonormal_penalty(w.transpose(1, 2)).item() < 1e-24  # widening layer: WWᵀ = I_5 is reached


def test_after_step_adds_lambda_times_the_gradient_to_hidden_layers_only():
    lam = 0.3
    eng = Engine(szt(lam))
    pens = [r for r in eng.regularizers if isinstance(r, OrthonormalPenalty)]
    assert len(pens) == 1 and pens[0].layers == [1, 2, 3, 4, 5]  # empty = every hidden layer, not the output
    eng.backend.start_epoch(eng.train_idx)
    eng.backend.forward_backward(0, 256, 0.0, 0)
    before = [w.grad.clone() for w in eng.model.weight_matrices()]
    pens[0].after_step(0, 0)
    for layer, (w, g0) in enumerate(zip(eng.model.weight_matrices(), before), start=1):
        _, g_ref = autograd_penalty_grad(w.detach().double())
        expected = lam * g_ref.float() if layer <= 5 else torch.zeros_like(g0)
        torch.testing.assert_close(w.grad - g0, expected, rtol=1e-5, atol=1e-6)


def test_chosen_layers_and_a_bad_layer():
    eng = Engine(szt(0.5, "[2, 6]"))
    assert eng.regularizers[0].layers == [2, 6]
    w = eng.model.weight_matrices()
    expected = 0.5 * (orthonormal_penalty(w[1].detach()) + orthonormal_penalty(w[5].detach()))
    torch.testing.assert_close(eng.regularizers[0].penalty(), expected)
    with pytest.raises(ScenarioError, match="orthonormal_layers"):
        szt(0.5, "[7]")
    assert Engine(szt(0.0)).regularizers == []


def test_training_with_a_large_lambda_holds_wtw_at_identity():
    def max_dev(eng):
        return [float((small_gram(w.detach()) - torch.eye(min(w.shape[1:]))).abs().amax())
                for w in eng.model.weight_matrices()[:5]]

    devs = {}
    for lam in (0.0, 1.0):
        eng = Engine(szt(lam))
        for _ in range(60):  # Adam lr 0.01, 60 epochs of 13 steps: the task is learnt (train acc ≥ 0.9)
            eng.train_epoch()
        values, _, _ = eng.backend.snapshot(None)
        assert values[("", "acc_train", "")].min().item() > 0.9
        devs[lam] = max_dev(eng)
    # Measured: λ = 1 gives max |WᵀW − I| ≈ 0.011–0.016 per layer; λ = 0 gives 1.1–5.2.
    assert max(devs[1.0]) < 0.05
    assert min(devs[0.0]) > 0.5
