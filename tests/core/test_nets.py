import torch

from rlsuite.core.nets import MLP, EnsembleMLP, soft_update


def test_ensemble_equals_members():
    torch.manual_seed(0)
    ens = EnsembleMLP(3, 5, 2, hidden=(8, 8))
    x = torch.randn(4, 5)
    out = ens(x)
    assert out.shape == (3, 4, 2)
    for m in range(3):
        h = x
        layers = [layer for layer in ens.net if hasattr(layer, "weight")]
        for i, layer in enumerate(layers):
            h = h @ layer.weight[m] + layer.bias[m]
            if i < len(layers) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(out[m], h)
    # per-member inputs
    xs = torch.randn(3, 4, 5)
    assert ens(xs).shape == (3, 4, 2)
    torch.testing.assert_close(ens(xs)[1], ens(xs[1])[1])


def test_soft_update():
    a, b = MLP(2, 1, (4,)), MLP(2, 1, (4,))
    before = [p.clone() for p in a.parameters()]
    soft_update(a, b, 0.25)
    for p0, pa, pb in zip(before, a.parameters(), b.parameters(), strict=False):
        torch.testing.assert_close(pa, 0.75 * p0 + 0.25 * pb)
