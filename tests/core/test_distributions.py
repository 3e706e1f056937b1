import math

import pytest
import torch
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Normal

from rlsuite.core.distributions import (
    Categorical,
    CategoricalHead,
    DiagGaussian,
    DiagGaussianHead,
    TanhGaussian,
    TanhGaussianHead,
)


def test_diag_gaussian_matches_torch():
    g = torch.Generator().manual_seed(0)
    mean, log_std, a = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g) * 0.3, torch.randn(4, 3, generator=g)
    d = DiagGaussian(mean, log_std)
    ref = Normal(mean, log_std.exp())
    torch.testing.assert_close(d.log_prob(a), ref.log_prob(a).sum(-1))
    torch.testing.assert_close(d.entropy(), ref.entropy().sum(-1))
    assert torch.equal(d.mode, mean)


def test_diag_gaussian_hand_computed():
    # Standard normal in 1-D at 0: log p = -0.5 * log(2 pi) = -0.918939
    d = DiagGaussian(torch.zeros(1, 1), torch.zeros(1))
    assert d.log_prob(torch.zeros(1, 1)).item() == pytest.approx(-0.5 * math.log(2 * math.pi), abs=1e-6)


def test_categorical_matches_torch():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    d, ref = Categorical(logits), TorchCategorical(logits=logits)
    a = torch.tensor([1, 2])
    torch.testing.assert_close(d.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(d.entropy(), ref.entropy())
    assert d.mode.tolist() == [1, 0]
    # Uniform over 3: entropy = log 3
    assert d.entropy()[1].item() == pytest.approx(math.log(3), abs=1e-6)
    torch.manual_seed(0)
    s = Categorical(torch.tensor([[0.0, 5.0]]).expand(4000, 2)).sample()
    assert s.shape == (4000,) and s.float().mean().item() == pytest.approx(1 / (1 + math.exp(-5)), abs=0.02)


def test_tanh_gaussian_log_prob_change_of_variables():
    g = torch.Generator().manual_seed(1)
    mean, log_std = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g) * 0.2
    d = TanhGaussian(mean, log_std)
    torch.manual_seed(0)
    a, logp = d.rsample_with_log_prob()
    assert a.abs().max() < 1
    # log p(a) = log N(u) - sum log(1 - tanh(u)^2), u = atanh(a)
    u = torch.atanh(a)
    ref = Normal(mean, log_std.exp()).log_prob(u).sum(-1) - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    torch.testing.assert_close(logp, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(d.log_prob(a), ref, rtol=1e-3, atol=1e-3)


def test_heads_shapes():
    h = torch.randn(7, 16)
    assert CategoricalHead(16, 4)(h).sample().shape == (7,)
    assert DiagGaussianHead(16, 3)(h).sample().shape == (7, 3)
    d = TanhGaussianHead(16, 3)(h)
    a, lp = d.rsample_with_log_prob()
    assert a.shape == (7, 3) and lp.shape == (7,)
