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


def test_leaky_relu_mlp_is_torchs_default_init_layer_for_layer():
    """act="leaky_relu" is LeakyReLU(0.01); without ortho_init the weights are nn.Linear's own, drawn in the same
    order as a hand-built Sequential (so a network rebuilt on MLP keeps its seeded initial weights)."""
    torch.manual_seed(3)
    mlp = MLP(5, 1, (8, 4), act="leaky_relu")
    torch.manual_seed(3)
    ref = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.LeakyReLU(0.01), torch.nn.Linear(8, 4), torch.nn.LeakyReLU(0.01),
                              torch.nn.Linear(4, 1))
    for a, b in zip(mlp.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [m.negative_slope for m in mlp.net if isinstance(m, torch.nn.LeakyReLU)] == [0.01, 0.01]
    x = torch.tensor([[-2.0, 0.5, 1.0, -1.0, 3.0]])
    assert torch.equal(mlp(x), ref(x))
    # the slope by hand: -2 -> -0.02, 3 -> 3
    assert torch.equal(mlp.net[1](torch.tensor([-2.0, 3.0])), torch.tensor([-0.02, 3.0]))
