import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Normal, kl_divergence

from rlsuite.core.distributions import (
    Categorical,
    CategoricalHead,
    DiagGaussian,
    DiagGaussianHead,
    MaskedCategorical,
    MaskedDiagGaussian,
    MultiCategorical,
    MultiCategoricalHead,
    TanhGaussian,
    TanhGaussianHead,
    empty_mask_rows,
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


def test_masked_diag_gaussian_matches_torch_on_the_masked_entries():
    g = torch.Generator().manual_seed(0)
    mean, x, other = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    mask = torch.rand(5, 4, generator=g) < 0.6
    mask[0] = False  # a row with no entry: everything 0
    for log_std, log_std_q in ((torch.tensor(-0.3), torch.tensor(0.4)), (torch.randn(5, 4, generator=g) * 0.3, torch.randn(4, generator=g) * 0.3)):
        p, q = MaskedDiagGaussian(mean, log_std, mask), MaskedDiagGaussian(other, log_std_q, mask)
        ref_p, ref_q = Normal(mean, log_std.exp().expand_as(mean)), Normal(other, log_std_q.exp().expand_as(other))
        torch.testing.assert_close(p.log_prob(x), (ref_p.log_prob(x) * mask).sum(-1))
        torch.testing.assert_close(p.entropy(), (ref_p.entropy() * mask).sum(-1))
        torch.testing.assert_close(p.kl(q), (kl_divergence(ref_p, ref_q) * mask).sum(-1))
        assert p.log_prob(x)[0] == 0 and p.entropy()[0] == 0 and p.kl(q)[0] == 0
        assert p.kl(p).abs().max() < 1e-6
    # one entry's entropy, log_std + 0.5 log(2 pi e), in log_std's shape
    assert MaskedDiagGaussian(mean, torch.tensor(0.2), mask).entropy_per_entry().shape == ()
    assert MaskedDiagGaussian(mean, torch.tensor(0.2), mask).entropy_per_entry().item() == pytest.approx(float(Normal(0.0, math.exp(0.2)).entropy()))


def test_masked_diag_gaussian_ignores_masked_out_values_and_samples_around_the_mean():
    g = torch.Generator().manual_seed(1)
    mean, x = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    mask = torch.rand(3, 6, generator=g) < 0.5
    d = MaskedDiagGaussian(mean, torch.tensor(-1.0), mask)
    moved = MaskedDiagGaussian(torch.where(mask, mean, 1e3), torch.tensor(-1.0), mask)
    assert torch.equal(moved.log_prob(torch.where(mask, x, -1e3)), d.log_prob(x))
    assert torch.equal(moved.kl(d), torch.zeros(3)) and torch.equal(d.mode, mean)
    # N(0, 1) at 0 and 1 with one entry in: -0.5 log(2 pi) and -0.5 - 0.5 log(2 pi) = -0.918939, -1.418939
    one = MaskedDiagGaussian(torch.zeros(2, 2), torch.tensor(0.0), torch.tensor([[True, False], [True, False]]))
    assert one.log_prob(torch.tensor([[0.0, 5.0], [1.0, 5.0]])).tolist() == pytest.approx([-0.918939, -1.418939], abs=1e-6)
    torch.manual_seed(0)
    s = MaskedDiagGaussian(torch.full((20000, 1), 2.0), torch.tensor(math.log(0.5)), torch.ones(20000, 1, dtype=torch.bool)).sample()
    assert not s.requires_grad and abs(float(s.mean()) - 2.0) < 0.02 and abs(float(s.std()) - 0.5) < 0.02


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


# ----------------------------------------------------------------------------- masked and multi categoricals



@st.composite
def logits_and_masks(draw, max_rows=6, max_n=7):
    """Logits ``(B, n)`` (including extreme values) and masks with at least one True per row."""
    b, n = draw(st.integers(1, max_rows)), draw(st.integers(1, max_n))
    scale = draw(st.sampled_from([1.0, 30.0, 1e4]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, n, generator=g) * scale
    mask = torch.rand(b, n, generator=g) < draw(st.floats(0.1, 0.9))
    keep = torch.randint(0, n, (b,), generator=g)
    mask[torch.arange(b), keep] = True
    return logits, mask


@settings(max_examples=150, deadline=None)
@given(logits_and_masks())
def test_masked_categorical_properties(lm):
    logits, mask = lm
    d = MaskedCategorical(logits, mask)
    p = d.probs
    assert torch.isfinite(p).all()
    assert (p[~mask] == 0).all(), "a forbidden action has non-zero probability"
    torch.testing.assert_close(p.sum(-1), torch.ones(len(p)))
    # entropy = entropy of the renormalised sub-distribution over the allowed actions
    for i in range(len(logits)):
        sub = TorchCategorical(logits=logits[i][mask[i]].double())
        assert d.entropy()[i].item() == pytest.approx(sub.entropy().item(), abs=1e-4)
        allowed = torch.nonzero(mask[i]).flatten()
        ref_lp = sub.log_prob(torch.arange(len(allowed)))
        for j, a in enumerate(allowed.tolist()):
            assert d.logits[i, a].item() == pytest.approx(ref_lp[j].item(), rel=1e-5, abs=1e-4)
    assert mask.gather(1, d.mode[:, None]).all()
    assert torch.isneginf(d.logits[~mask]).all()
    samples = torch.stack([d.sample() for _ in range(50)], 1)  # (B, 50)
    assert mask.gather(1, samples).all(), "a sample hit a forbidden action"


@settings(max_examples=100, deadline=None)
@given(logits_and_masks())
def test_masked_categorical_gradients_are_finite(lm):
    logits, mask = lm
    logits = logits.clone().requires_grad_(True)
    d = MaskedCategorical(logits, mask)
    (d.log_prob(d.sample()).sum() + d.entropy().sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[~mask] == 0).all(), "a forbidden logit received gradient"


def test_masked_categorical_hand_computed():
    # logits [0, ln 3, 5] with the last forbidden: p = [1/4, 3/4, 0]; H = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.562335
    d = MaskedCategorical(torch.tensor([[0.0, math.log(3.0), 5.0]]), torch.tensor([[True, True, False]]))
    torch.testing.assert_close(d.probs, torch.tensor([[0.25, 0.75, 0.0]]))
    assert d.entropy().item() == pytest.approx(0.562335, abs=1e-6)
    assert d.mode.item() == 1  # the unmasked argmax (2) is forbidden
    # a single allowed action: probability 1, entropy 0, log-prob 0
    one = MaskedCategorical(torch.tensor([[3.0, -1.0]]), torch.tensor([[False, True]]))
    assert one.entropy().item() == 0.0 and one.log_prob(torch.tensor([1])).item() == 0.0


def test_masked_categorical_half_precision_and_extreme_logits_stay_finite():
    logits = torch.tensor([[60000.0, -60000.0, 0.0]], dtype=torch.float16)
    d = MaskedCategorical(logits, torch.tensor([[False, True, True]]))
    assert torch.isfinite(d.entropy()).all() and d.probs[0, 0] == 0 and d.mode.item() == 2


def test_masked_categorical_refuses_empty_rows_and_bad_masks():
    logits = torch.zeros(3, 2)
    mask = torch.tensor([[True, False], [False, False], [True, True]])
    with pytest.raises(ValueError, match=r"rows \[1\] allow no action"):
        MaskedCategorical(logits, mask)
    assert empty_mask_rows(mask).tolist() == [False, True, False]
    # without validation (rollout loops check once per rollout) nothing is NaN
    d = MaskedCategorical(logits, mask, validate=False)
    assert torch.isfinite(d.entropy()).all() and d.sample().shape == (3,)
    with pytest.raises(ValueError, match="shape"):
        MaskedCategorical(logits, mask[:, :1])
    with pytest.raises(ValueError, match="bool"):
        MaskedCategorical(logits, mask.float())


def test_multi_categorical_is_a_product_of_independent_categoricals():
    g = torch.Generator().manual_seed(0)
    nvec = [3, 2, 4]
    logits = torch.randn(5, 9, generator=g)
    mask = torch.ones(5, 9, dtype=torch.bool)
    mask[:, 2] = False  # value 2 of component 0
    mask[:, 5 + 3] = False  # value 3 of component 2
    d = MultiCategorical(logits, nvec, mask)
    a = d.sample()
    assert a.shape == (5, 3) and a.dtype == torch.int64
    assert (a[:, 0] != 2).all() and (a[:, 2] != 3).all() and (a[:, 1] < 2).all()
    parts = logits.split(nvec, -1)
    masks = mask.split(nvec, -1)
    ref_lp = sum(MaskedCategorical(p, m).log_prob(a[:, i]) for i, (p, m) in enumerate(zip(parts, masks, strict=True)))
    ref_h = sum(MaskedCategorical(p, m).entropy() for p, m in zip(parts, masks, strict=True))
    torch.testing.assert_close(d.log_prob(a), ref_lp)
    torch.testing.assert_close(d.entropy(), ref_h)
    unmasked = MultiCategorical(logits, nvec)
    torch.testing.assert_close(unmasked.entropy(), sum(TorchCategorical(logits=p).entropy() for p in parts))
    assert MultiCategoricalHead(16, nvec)(torch.randn(7, 16)).sample().shape == (7, 3)
    with pytest.raises(ValueError, match="nvec"):
        MultiCategorical(logits, [3, 3])
