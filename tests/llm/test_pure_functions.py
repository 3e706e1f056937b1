"""Equivalences and invariances of the LLM policy-optimisation pure functions (no model needed)."""

import math

import pytest
import torch

from rlsuite.llm.advantages import (
    ADVANTAGES,
    grpo_advantages,
    ngrpo_advantages,
    remax_advantages,
    rloo_advantages,
)
from rlsuite.llm.aggregation import AGG_MODES, aggregate
from rlsuite.llm.kl import kl_estimate
from rlsuite.llm.policy_losses import (
    POLICY_LOSSES,
    cispo_loss,
    gspo_loss,
    ppo_clip_loss,
    reinforce_loss,
    sapo_loss,
)
from rlsuite.llm.preference_losses import dpo_loss, ipo_loss, rpo_loss


def test_grpo_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 5.0, 5.0])
    g = torch.tensor([7, 7, 7, 7, 3, 3])
    a = grpo_advantages(r, g, eps=0.0)
    # group 7: mean 0.5, unbiased std sqrt(((0.5^2)*4)/3) = sqrt(1/3) = 0.57735 -> +-0.866025
    assert a[:4].tolist() == pytest.approx([0.866025, -0.866025, -0.866025, 0.866025], abs=1e-5)
    # group 3: zero variance -> 0/0 guarded by eps in practice; with eps=1e-6 the advantage is exactly 0
    assert grpo_advantages(r, g)[4:].tolist() == [0.0, 0.0]


def test_rloo_is_grpo_without_std_times_g_over_g_minus_1():
    torch.manual_seed(0)
    r = torch.rand(12)
    g = torch.arange(3).repeat_interleave(4)
    torch.testing.assert_close(rloo_advantages(r, g), grpo_advantages(r, g, scale="none") * 4 / 3)
    # definition: r_i - mean of the others
    others = torch.stack([(r[:4].sum() - r[i]) / 3 for i in range(4)])
    torch.testing.assert_close(rloo_advantages(r, g)[:4], r[:4] - others)


def test_ngrpo_all_wrong_group_gets_negative_advantages_and_mixed_groups_keep_grpo_order():
    G = 4
    a = ngrpo_advantages(torch.zeros(G), torch.zeros(G, dtype=torch.long), r_max=1.0, eps=0.0)
    # values {0,0,0,0,1}: mean' = 1/5, sd' (unbiased over 5) = sqrt((4*(1/25) + 16/25)/4) = sqrt(0.2)
    expected = -(1 / (G + 1)) / math.sqrt(0.2)
    assert a.tolist() == pytest.approx([expected] * G, abs=1e-6)
    assert (grpo_advantages(torch.zeros(G), torch.zeros(G, dtype=torch.long)) == 0).all()
    r = torch.tensor([0.2, 0.9, 0.5, 0.1])
    g = torch.zeros(4, dtype=torch.long)
    assert torch.equal(torch.argsort(ngrpo_advantages(r, g)), torch.argsort(grpo_advantages(r, g)))


def test_remax_zero_when_sample_equals_greedy():
    r = torch.tensor([1.0, 0.0])
    assert remax_advantages(r, r).tolist() == [0.0, 0.0]


def _batch(seed=0, B=6, T=5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, 7, generator=g, requires_grad=True)
    tokens = torch.randint(0, 7, (B, T), generator=g)
    mask = torch.ones(B, T)
    mask[0, 3:] = 0
    mask[4, 1:] = 0
    adv = torch.randn(B, generator=g)
    return logits, tokens, mask, adv


def _logp(logits, tokens):
    return torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _grad(loss_fn, agg="seq-mean-token-mean"):
    logits, tokens, mask, adv = _batch()
    lp = _logp(logits, tokens)
    per_tok, _ = loss_fn(lp, lp.detach(), adv, mask)
    aggregate(per_tok, mask, agg).backward()
    return logits.grad


def test_on_policy_ppo_clip_sapo_gspo_have_the_same_gradient():
    g_ppo = _grad(ppo_clip_loss)
    torch.testing.assert_close(_grad(sapo_loss), g_ppo)
    torch.testing.assert_close(_grad(gspo_loss), g_ppo)
    torch.testing.assert_close(_grad(reinforce_loss), g_ppo)


def test_cispo_without_clipping_is_importance_weighted_reinforce():
    logits, tokens, mask, adv = _batch(1)
    lp = _logp(logits, tokens)
    old = lp.detach() + 0.1 * torch.randn_like(lp)
    loss, _ = cispo_loss(lp, old, adv, mask, eps_max=1e9)
    (g1,) = torch.autograd.grad(aggregate(loss, mask, "token-mean"), logits, retain_graph=True)
    rho = torch.exp(lp - old)  # gradient of -rho*A equals -rho*A*grad(logp)
    (g2,) = torch.autograd.grad(aggregate(-rho * adv[:, None], mask, "token-mean"), logits)
    torch.testing.assert_close(g1, g2)


def test_ppo_clip_hand_computed_and_asymmetric_bounds():
    lp = torch.log(torch.tensor([[1.5, 0.5, 1.25]]))
    old = torch.zeros(1, 3)
    adv = torch.tensor([[2.0, -1.0, 1.0]])
    loss, stats = ppo_clip_loss(lp, old, adv, torch.ones(1, 3), eps_low=0.2, eps_high=0.28)
    # 1.5 -> clip 1.28 * 2 = 2.56 ; 0.5 with A<0 -> min(-0.5, -0.8) = -0.8 ; 1.25 inside [0.8, 1.28] -> 1.25
    assert (-loss)[0].tolist() == pytest.approx([2.56, -0.8, 1.25])
    assert stats["clip_fraction"].item() == pytest.approx(2 / 3)


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregation_is_micro_batch_split_invariant_with_global_denominators(mode):
    torch.manual_seed(0)
    v = torch.randn(8, 6)
    m = (torch.rand(8, 6) > 0.3).float()
    m[:, 0] = 1
    full = aggregate(v, m, mode, num_tokens=m.sum(), num_seqs=8, max_len=10)
    parts = sum(aggregate(v[i : i + 3], m[i : i + 3], mode, num_tokens=m.sum(), num_seqs=8, max_len=10) for i in range(0, 8, 3))
    torch.testing.assert_close(parts, full)


def test_dr_grpo_aggregation_is_token_sum_over_g_times_lmax():
    v, m = torch.randn(4, 5), torch.ones(4, 5)
    torch.testing.assert_close(aggregate(v, m, "seq-mean-token-sum-norm", max_len=16), v.sum() / (4 * 16))


def test_kl_estimators_exact_expectations_on_a_small_vocabulary():
    torch.manual_seed(0)
    theta = torch.randn(6, dtype=torch.float64, requires_grad=True)
    ref_logp = torch.log_softmax(torch.randn(6, dtype=torch.float64), 0)
    logp = torch.log_softmax(theta, 0)
    p = logp.exp()
    kl = (p * (logp - ref_logp)).sum()  # KL(pi || ref), exact
    for kind in ("k1", "k3"):  # unbiased: E_{y~pi}[k] = KL
        assert (p.detach() * kl_estimate(logp.detach(), ref_logp, kind)).sum().item() == pytest.approx(kl.item(), rel=1e-12)
    # as a loss with the sampling weights held fixed, k2's gradient is exactly grad KL(pi || ref); k1's is zero
    (g_kl,) = torch.autograd.grad(kl, theta, retain_graph=True)
    (g_k2,) = torch.autograd.grad((p.detach() * kl_estimate(logp, ref_logp, "k2")).sum(), theta, retain_graph=True)
    (g_k1,) = torch.autograd.grad((p.detach() * kl_estimate(logp, ref_logp, "k1")).sum(), theta)
    torch.testing.assert_close(g_k2, g_kl)
    torch.testing.assert_close(g_k1, torch.zeros_like(g_k1), atol=1e-12, rtol=0)
    assert (kl_estimate(torch.randn(50), torch.randn(50), "k3") >= 0).all()


def test_dpo_at_initialisation_is_log_2_and_rpo_with_eta_0_is_dpo():
    x = torch.randn(5)
    y = torch.randn(5)
    loss, _ = dpo_loss(x, y, x, y, beta=0.3)
    torch.testing.assert_close(loss, torch.full((5,), math.log(2.0)))
    a, b, c, d = torch.randn(4, 5)
    torch.testing.assert_close(rpo_loss(a, b, c, d, chosen_nll=torch.rand(5), beta=0.2, eta=0.0)[0], dpo_loss(a, b, c, d, beta=0.2)[0])


def test_ipo_minimum_at_half_over_tau():
    h = torch.tensor([5.0])  # margin with ref terms zero: (h - 0) - (0 - 0)
    assert ipo_loss(h, torch.zeros(1), torch.zeros(1), torch.zeros(1), tau=0.1)[0].item() == pytest.approx(0.0)


def test_registries_and_clear_errors():
    assert {"dr_grpo", "grpo", "ngrpo", "remax", "rloo"} <= set(ADVANTAGES.names())
    assert "gspo" in POLICY_LOSSES
    with pytest.raises(ValueError, match="allowed"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "mean")
    with pytest.raises(ValueError, match=r"adv must be \(B,\)"):
        gspo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3))
