"""The batched engine trains each seed exactly as a plain per-seed PyTorch loop would (within float rounding).

The plain loop is what a researcher would write: nn-style layers, autograd, torch.optim.Adam/SGD (not fused),
one seed at a time, with the same initial weights and the same batch order. Agreement here means the
engine's speed-ups (feature-major batching, hand-written backward, fused optimisers, fixed input buffers)
change nothing but rounding.
"""
import pytest
import torch

from ibtui.engine import rng
from ibtui.engine.trainer import Engine
from ibtui.scenario import parse_scenario


def plain_train(engine_init: dict, x, y, orders, lr, optimizer, momentum, batch, seed_index):
    """One seed, trained with autograd and the stock optimiser on the given per-epoch orders."""
    ws = [w[seed_index].clone().requires_grad_(True) for w in engine_init["w"]]
    bs = [b[seed_index, 0].clone().requires_grad_(True) for b in engine_init["b"]]
    params = [p for pair in zip(ws, bs) for p in pair]
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=momentum))
    for order in orders:
        idx = order[seed_index]
        for start in range(0, idx.numel(), batch):
            bi = idx[start:start + batch]
            h = x[bi]
            for layer, (w, b) in enumerate(zip(ws, bs)):
                h = h @ w + b
                if layer < len(ws) - 1:
                    h = torch.tanh(h)
            loss = torch.nn.functional.cross_entropy(h, y[bi])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("optimizer,momentum", [("adam", 0.0), ("sgd", 0.9)])
def test_engine_equals_a_plain_per_seed_loop(optimizer, momentum):
    lr = 1e-3 if optimizer == "adam" else 0.05
    sc = parse_scenario(f'[run]\nepochs = 4\nseeds = 3\ndevice = "cpu"\n[train]\noptimizer = "{optimizer}"\n'
                        f'lr = {lr}\nmomentum = {momentum}\nbatch_size = 300\n'
                        '[measure]\nsnapshots = 1\nestimators = []\n[measure.dynamics]\nenabled = false\n')
    engine = Engine(sc)
    init = {"w": [w.detach().clone() for w in engine.model.weights],
            "b": [b.detach().clone() for b in engine.model.biases]}
    n_train = engine.train_idx.shape[1]
    orders = [engine.train_idx.gather(1, rng.permutations(engine.seed_tensor, (rng.STREAM_BATCH, ep), n_train))
              for ep in range(4)]
    for _ in range(4):
        engine.train_epoch()
    x = engine.data.x.reshape(len(engine.data.x), -1).float()
    for i in range(3):
        plain = plain_train(init, x, engine.data.y, orders, lr, optimizer, momentum, 300, i)
        got = [p[i, 0] if p.dim() == 3 and p.shape[1] == 1 else p[i]
               for pair in zip(engine.model.weights, engine.model.biases) for p in pair]
        for a, b in zip(got, plain):
            torch.testing.assert_close(a.detach(), b, atol=2e-5, rtol=1e-4)
        moved = max(float((a.detach() - w0).abs().max()) for a, w0 in zip(got[::2], [w[i] for w in init["w"]]))
        assert moved > 1e-3  # the weights did train
