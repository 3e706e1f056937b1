import itertools

import pytest
import torch

from rlsuite.llm.policy_losses import p3o_loss
from rlsuite.llm.preference_losses import (
    copg_loss,
    dpo_loss,
    ipo_loss,
    rso_accept_prob,
    rso_hinge_loss,
    vpo_loss,
    xpo_loss,
)
from rlsuite.llm.rewards import spo_winrate_rewards
from rlsuite.llm.samplers import d3s_sample_mask, d3s_token_mask, max_variance_subset


def test_p3o_is_invariant_to_a_per_prompt_reward_shift_and_hand_computed():
    torch.manual_seed(0)
    lp1, o1, lp2, o2 = torch.randn(4, 6)
    r1, r2 = torch.randn(2, 6)
    for mode in ("joint", "separate"):
        a, _ = p3o_loss(lp1, o1, lp2, o2, r1, r2, clip=mode)
        b, _ = p3o_loss(lp1, o1, lp2, o2, r1 + 3.0, r2 + 3.0, clip=mode)
        torch.testing.assert_close(a, b)
    # D = 1, q = exp(log 1.5) = 1.5 -> min(1.5, 1.2) = 1.2 -> loss -0.6
    loss, _ = p3o_loss(torch.log(torch.tensor([1.5])), torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.ones(1), torch.zeros(1))
    assert loss.item() == pytest.approx(-0.6)


def test_copg_with_binary_preferences_is_scaled_ipo():
    torch.manual_seed(0)
    beta = 0.2
    pw, pl, rw, rl = torch.randn(4, 5)
    copg, _ = copg_loss(torch.ones(5), torch.zeros(5), pw - rw, pl - rl, beta=beta)
    ipo, _ = ipo_loss(pw, pl, rw, rl, tau=beta / 2)
    torch.testing.assert_close(copg, ipo * beta / 2)


def test_xpo_and_vpo_reduce_to_dpo_and_signs():
    a, b, c, d, s = torch.randn(5, 4)
    dpo, _ = dpo_loss(a, b, c, d, beta=0.1)
    torch.testing.assert_close(xpo_loss(a, b, c, d, s, alpha=0.0)[0], dpo)
    opt, _ = vpo_loss(a, b, c, d, s, alpha=0.5, optimistic=True)
    pes, _ = vpo_loss(a, b, c, d, s, alpha=0.5, optimistic=False)
    torch.testing.assert_close(opt - dpo, -(pes - dpo))
    torch.testing.assert_close(opt - dpo, 0.5 * s)


def test_rso():
    r = torch.tensor([1.0, 0.5, 0.0])
    p = rso_accept_prob(r, beta=0.5)
    assert p[0].item() == 1.0 and p.tolist() == pytest.approx([1.0, 0.367879, 0.135335], abs=1e-6)  # exp(-1), exp(-2)
    with pytest.raises(ValueError):
        rso_accept_prob(r, beta=0.0)
    h = torch.tensor([0.0, 10.0])  # margins via chosen logp
    assert rso_hinge_loss(h, torch.zeros(2), torch.zeros(2), torch.zeros(2), gamma=0.5)[0].tolist() == [1.0, 0.0]


def test_spo_winrates():
    pref = torch.tensor([[0.5, 1.0, 0.8], [0.0, 0.5, 0.3], [0.2, 0.7, 0.5]])
    r = spo_winrate_rewards(pref)
    assert r.tolist() == pytest.approx([0.9, 0.15, 0.45])
    # a consistent preference (P_ij + P_ji = 1) gives rewards that sum to G/2
    assert r.sum().item() == pytest.approx(1.5)


def test_max_variance_subset_is_optimal_exhaustively():
    torch.manual_seed(0)
    for _ in range(20):
        v = torch.randn(7)
        for k in (1, 2, 3, 5):
            got = float(v[max_variance_subset(v, k)].var(unbiased=False))
            best = max(float(v[list(c)].var(unbiased=False)) for c in itertools.combinations(range(7), k))
            assert got == pytest.approx(best, abs=1e-6)


def test_d3s_masks():
    adv = torch.tensor([0.1, 2.0, -1.5, 0.0, 3.0, 3.1, -3.0, 0.2])
    g = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    m = d3s_sample_mask(adv, g, keep=2)
    assert m.tolist() == [False, True, True, False, False, True, True, False]
    ent = torch.rand(8, 4)
    valid = torch.ones(8, 4)
    valid[:, 3] = 0
    tm = d3s_token_mask(adv, ent, valid, keep_fraction=0.25)
    assert int(tm.sum()) == 6 and not (tm & ~valid.bool()).any()
    score = adv.abs()[:, None] * ent
    assert score[tm].min() >= score[valid.bool() & ~tm].max()
