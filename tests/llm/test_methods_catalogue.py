"""BAPO, DRPO, GRAO, TRPA, OTC, IGPO, RTO and the samplers (D3S, VADE, SSB, ExPO, DR-PO, CAPO): pure functions."""

import math

import pytest
import torch

from rlsuite.llm import registered_methods
from rlsuite.llm.advantages import igpo_turn_advantages, token_gae
from rlsuite.llm.aggregation import aggregate
from rlsuite.llm.policy_losses import bapo_bounds, bapo_loss, drpo_decoupled_loss, grao_loss, ppo_clip_loss
from rlsuite.llm.preference_losses import dpo_loss, trpa_levels, trpa_loss, trpa_pairs
from rlsuite.llm.rewards import igpo_turn_rewards, otc_rewards, otc_tool_reward, rto_token_rewards
from rlsuite.llm.samplers import (
    D3SSchedule,
    DatasetResetSampler,
    SelectiveSampleBuffer,
    VadeSampler,
    capo_curvature_contributions,
    capo_curvature_mask,
    expo_positives,
)


def test_every_method_of_the_catalogue_has_a_registered_key():
    keys = registered_methods()
    for k in ["grpo", "rloo", "remax", "ngrpo", "bapo", "sapo", "gspo", "drpo_decoupled", "p3o_pairwise", "copg", "dpo",
              "ipo", "rpo", "xpo", "vpo", "rso", "trpa", "grao", "rto", "drpo_dataset_reset", "igpo_infogain", "otc", "d3s",
              "vade", "capo_curvature", "expo", "spo_minimax", "selective_sample_buffer"]:
        assert k in keys, k


# --- BAPO -------------------------------------------------------------------------------------------------

def _ratio_adv(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    ratio = torch.exp(0.5 * torch.randn(4, n, generator=g))
    adv = torch.randn(4, n, generator=g) - 0.8  # negative-heavy: the imbalance BAPO corrects
    return ratio, adv, torch.ones(4, n)


def test_bapo_bounds_stay_in_their_ranges_and_grow_with_the_target_share():
    ratio, adv, mask = _ratio_adv()
    prev = (0.0, 0.0)
    for target in [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 1.0]:
        c_lo, c_hi, share = bapo_bounds(ratio, adv, mask, target_share=target)
        assert 0.6 <= c_lo <= 0.9 and 1.2 <= c_hi <= 3.0
        assert (c_lo, c_hi) >= prev  # lexicographic: c_lo moves first, then c_hi
        prev = (c_lo, c_hi)
        if share < target:  # only when both bounds are exhausted
            assert (c_lo, c_hi) == (0.9, 3.0)
    assert bapo_bounds(ratio, adv, mask, target_share=0.0)[:2] == (0.6, 1.2)
    assert bapo_bounds(ratio, adv.abs(), mask)[2] == 1.0  # all-positive batch: share 1, starting bounds


def test_bapo_loss_is_ppo_clip_with_the_chosen_bounds():
    ratio, adv, mask = _ratio_adv(1)
    old = torch.zeros_like(ratio)
    logp = ratio.log().requires_grad_(True)
    loss, stats = bapo_loss(logp, old, adv, mask, dual_clip=None)
    c_lo, c_hi = stats["c_lo"], stats["c_hi"]
    ref, _ = ppo_clip_loss(logp, old, adv, mask, eps_low=1 - c_lo, eps_high=c_hi - 1)
    torch.testing.assert_close(loss, ref)


# --- DRPO -------------------------------------------------------------------------------------------------

def test_drpo_hand_computed_and_only_mixed_groups_count():
    # group 0: two correct (lengths 1 and 3), one wrong; group 1: all wrong (ignored)
    logp = torch.tensor([[-1.0, 0, 0], [-0.5, -0.5, -0.5], [-2.0, -2.0, 0], [-1.0, 0, 0], [-3.0, 0, 0], [-1.0, -1.0, 0]], requires_grad=True)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.float32)
    r = torch.tensor([1.0, 1, 0, 0, 0, 0])
    gid = torch.tensor([0, 0, 0, 1, 1, 1])
    loss, stats = drpo_decoupled_loss(logp, logp.detach(), r, mask, gid, max_len=3, tau=1.0, length_temperature=0.5)
    w = torch.softmax(torch.tensor([(1 - 1 / 3) / 0.5, (1 - 3 / 3) / 0.5]), 0)
    expected = -(w[0] * -1.0 + w[1] * -0.5 - (-2.0)) / 2  # two groups in the denominator; on-policy: no KL penalty
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6) and stats["valid_groups"] == 0.5
    loss.backward()
    assert torch.all(logp.grad[3:] == 0)  # the all-wrong group gets no gradient
    assert logp.grad[0, 0] < 0 and logp.grad[2, 0] > 0  # correct pushed up, wrong pushed down


def test_drpo_trust_region_penalty_switches_on_above_delta():
    logp = torch.zeros(2, 2, requires_grad=True)
    old = torch.tensor([[0.5, 0.5], [-0.5, -0.5]])
    r, gid, mask = torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), torch.ones(2, 2)
    _, near = drpo_decoupled_loss(logp, old, r, mask, gid, max_len=2, delta=10.0)
    far_loss, far = drpo_decoupled_loss(logp, old, r, mask, gid, max_len=2, beta=1.0, delta=0.0)
    kl = float(near["kl_old"])
    assert kl == pytest.approx((math.exp(-0.5) - 1 + 0.5 + math.exp(0.5) - 1 - 0.5) / 2, rel=1e-6)  # k3 of KL(old || pi)
    # the penalty beta * (KL - delta) * KL is added only in the second call
    no_pen, _ = drpo_decoupled_loss(logp, old, r, mask, gid, max_len=2, delta=10.0)
    assert (far_loss - no_pen).item() == pytest.approx(kl * kl, rel=1e-5)


# --- GRAO / TRPA ------------------------------------------------------------------------------------------

def test_grao_terms_hand_computed():
    s = torch.tensor([-1.0, -3.0, -0.5, -2.0])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    ref = torch.tensor([-0.8, -1.0])
    ref_adv = torch.tensor([0.5, 2.0])
    loss, st = grao_loss(s, adv, ref, ref_adv, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1]), imitation_weight=1.0, alignment_weight=0.1)
    explore = -(-1 + 3 - 0.5 + 2) / 4
    imitate = -(0.5 * -0.8 + 2.0 * -1.0) / 2
    align = 0.1 * (0 + 0 + 0.5 + 0) / 4  # only sample 3 (-0.5) is above its reference answer (-1.0)
    assert loss.item() == pytest.approx(explore + imitate + align)
    with pytest.raises(ValueError, match="reference answer"):
        grao_loss(s, adv, ref[:1], ref_adv[:1], torch.tensor([0, 0, 1, 1]), torch.tensor([0]))


def test_trpa_pairs_levels_and_dpo_limit():
    levels = trpa_levels(torch.tensor([1, 0, 1, 0, 1]), torch.tensor([1, 1, 0, 0, 1]))
    assert levels.tolist() == [3, 1, 2, 0, 3]
    c, r = trpa_pairs(levels, torch.tensor([0, 0, 0, 0, 1]))
    assert sorted(zip(c.tolist(), r.tolist(), strict=True)) == [(0, 1), (0, 2), (0, 3), (1, 3), (2, 1), (2, 3)]
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(6, generator=g) for _ in range(4))
    torch.testing.assert_close(trpa_loss(pc, pr, rc, rr, beta_chosen=0.2, beta_rejected=0.2)[0], dpo_loss(pc, pr, rc, rr, beta=0.2)[0])
    aniso, _ = trpa_loss(pc, pr, rc, rr, kl_old=torch.tensor(0.3), beta_chosen=0.2, beta_rejected=0.05, alpha=2.0)
    z = 0.2 * (pc - rc) - 0.05 * (pr - rr)
    torch.testing.assert_close(aniso, -torch.nn.functional.logsigmoid(z) + 0.6)


# --- rewards: OTC, IGPO, RTO ------------------------------------------------------------------------------

def test_otc_tool_reward_shape():
    m = torch.tensor([0, 1, 2, 3, 5, 0, 2])
    n = torch.tensor([0, 0, 0, 3, 3, 3, 2])
    r = otc_tool_reward(m, n, c=1.0)
    assert r[0] == 1.0 and r[3] == pytest.approx(1.0) and r[6] == pytest.approx(1.0)
    assert r[1] == pytest.approx(math.cos(math.pi / 3)) and r[1] > r[2]  # n = 0: more calls, less reward
    assert r[4] < 1.0 and r[5] == 0.0  # too many or too few calls are penalised


def test_otc_rewards_need_correctness_and_use_the_groups_fewest_calls():
    correct = torch.tensor([1, 1, 0, 0, 0])
    calls = torch.tensor([2, 4, 1, 3, 0])
    gid = torch.tensor([0, 0, 0, 1, 1])
    r = otc_rewards(correct, calls, gid)
    assert r[0] == pytest.approx(1.0) and 0 < r[1] < 1  # n = 2 in group 0
    assert r[2:].tolist() == [0.0, 0.0, 0.0]


def test_igpo_turn_rewards_and_advantages_hand_computed():
    p = torch.tensor([[0.1, 0.3, 0.6, 0.6], [0.2, 0.1, 0.5, 0.5]])
    turn_mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    r = igpo_turn_rewards(p.log(), torch.tensor([1.0, 0.0]), turn_mask)
    torch.testing.assert_close(r, torch.tensor([[0.2, 0.3, 1.0], [-0.1, 0.0, 0.0]]))
    adv = igpo_turn_advantages(r, turn_mask, torch.tensor([0, 0]), gamma=0.5)
    # turn 0: (0.2, -0.1) -> (+0.7071, -0.7071); turn 1: (0.3, 0.0) -> (+0.7071, -0.7071); turn 2: one member -> 0
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(adv, torch.tensor([[s + 0.5 * s, s, 0.0], [-s - 0.5 * s, -s, 0.0]]), rtol=1e-4, atol=1e-4)


def test_rto_token_rewards_and_gae_reward_to_go():
    dpo = torch.tensor([[-1.0, -2.0, -1.0], [-0.5, -0.5, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -1.0], [-1.0, -1.0, -9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    r = rto_token_rewards(dpo, ref, mask, beta=0.1, seq_reward=torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(r, torch.tensor([[0.05, -0.1, 1.0], [0.05, 2.05, 0.0]]))
    adv, ret = token_gae(r, torch.zeros_like(r), mask, gamma=1.0, gae_lambda=1.0)
    torch.testing.assert_close(adv, torch.tensor([[0.95, 0.9, 1.0], [2.1, 2.05, 0.0]]))
    v = torch.tensor([[0.5, 0.2, 0.1], [1.0, 1.0, 7.0]])  # TD(0): A_t = r_t + V_{t+1} - V_t, no bootstrap past the end
    adv0, _ = token_gae(r, v, mask, gamma=1.0, gae_lambda=0.0)
    torch.testing.assert_close(adv0, torch.tensor([[0.05 + 0.2 - 0.5, -0.1 + 0.1 - 0.2, 1.0 - 0.1], [0.05 + 1.0 - 1.0, 2.05 - 1.0, 0.0]]))


# --- samplers ---------------------------------------------------------------------------------------------

def test_d3s_schedule_anneals_from_aggressive_to_none():
    g = torch.Generator().manual_seed(0)
    adv, ent = torch.randn(16, generator=g), torch.rand(16, 5, generator=g)
    gid, mask = torch.arange(4).repeat_interleave(4), torch.ones(16, 5)
    sched = D3SSchedule(keep_start=2, token_fraction_start=0.25, anneal_steps=10)
    s0, t0 = sched.masks(adv, gid, ent, mask, step=0)
    assert s0.view(4, 4).sum(1).tolist() == [2, 2, 2, 2] and int(t0.sum()) == round(0.25 * 8 * 5)
    assert not (t0 & ~s0.unsqueeze(-1)).any()  # tokens only from kept samples
    s1, t1 = sched.masks(adv, gid, ent, mask, step=10)
    assert s1.all() and t1.all()


def test_vade_posterior_update_and_informative_selection():
    v = VadeSampler(4, prior=(1.0, 1.0), visit_decay=0.5, global_decay=1.0, seed=0)
    v.update(torch.tensor([0, 1, 2]), torch.tensor([16, 8, 0]), torch.tensor([16, 16, 16]))
    assert v.alpha.tolist() == [17.0, 9.0, 1.0, 1.0] and v.beta.tolist() == [1.0, 9.0, 17.0, 1.0]
    v.update(torch.tensor([1]), torch.tensor([2]), torch.tensor([4]))  # old evidence halves before adding
    assert v.alpha[1] == 1 + 0.5 * 8 + 2 and v.beta[1] == 1 + 0.5 * 8 + 2
    picks = torch.stack([v.select(1) for _ in range(200)]).flatten()
    counts = torch.bincount(picks, minlength=4)
    assert counts[1] > counts[0] and counts[1] > counts[2]  # success rate near 0.5 is the most informative
    state = v.state_dict()
    a = [v.select(2).tolist() for _ in range(5)]
    v.load_state_dict(state)
    assert a == [v.select(2).tolist() for _ in range(5)]


def test_vade_global_decay_relaxes_towards_the_prior():
    v = VadeSampler(2, prior=(1.0, 1.0), visit_decay=1.0, global_decay=0.5)
    v.update(torch.tensor([0]), torch.tensor([8]), torch.tensor([8]))
    v.update(torch.tensor([1]), torch.tensor([0]), torch.tensor([0]))
    assert v.alpha[0] == 1 + 0.5 * 8


def test_selective_sample_buffer():
    buf = SelectiveSampleBuffer(capacity=3, min_informative_share=0.5, seed=0)
    stored = buf.push(["a", "b", "c", "d"], [torch.zeros(4), torch.tensor([1.0, -1]), torch.tensor([0.1, -0.1]), torch.tensor([5.0, -5])])
    assert stored == 3 and len(buf) == 3 and "a" not in buf.items
    assert buf.needs_refill(torch.tensor([0.0, 0, 0, 1])) and not buf.needs_refill(torch.tensor([0.0, 1, 1, 1]))
    first = [SelectiveSampleBuffer(seed=s) for s in range(50)]
    for b in first:
        b.push(["low", "high"], [torch.tensor([0.01]), torch.tensor([10.0])])
    assert sum(b.draw(1) == ["high"] for b in first) >= 45  # prioritised by |A|
    drawn = buf.draw(5)
    assert sorted(drawn) == ["b", "c", "d"] and len(buf) == 0


def test_expo_only_for_groups_without_a_correct_sample_and_keeps_verified_explanations():
    calls = []

    def explain(prompts, answers):
        calls.append((prompts, answers))
        return [a if p != "p2" else "wrong" for p, a in zip(prompts, answers, strict=True)]

    rewards = torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    out = expo_positives(["p0", "p1", "p2"], ["a0", "a1", "a2"], rewards, explain, lambda p, t: float(t == "a" + p[1]))
    assert calls == [(["p1", "p2"], ["a1", "a2"])] and out == {1: "a1"}


def test_dataset_reset_prefixes():
    never, always = DatasetResetSampler(0.0), DatasetResetSampler(1.0, seed=3)
    assert never.prefix("521") == ""
    prefixes = [always.prefix("521") for _ in range(60)]
    assert set(prefixes) == {"", "5", "52"}  # strict prefixes, uniform length
    state = always.state_dict()
    a = [always.prefix("12345") for _ in range(10)]
    always.load_state_dict(state)
    assert a == [always.prefix("12345") for _ in range(10)]
    with pytest.raises(ValueError, match="reset_prob"):
        DatasetResetSampler(1.5)


def _softmax_linear(seed=0, n=40, h=6, v=5):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, h, generator=g)
    w = torch.randn(v, h, generator=g) * 0.5
    probs = torch.softmax(feats @ w.T, -1)
    tokens = torch.multinomial(probs, 1, generator=g).squeeze(-1)
    adv = torch.randn(n, generator=g)
    return feats, w, probs, tokens, adv


def test_capo_predicted_kl_matches_a_real_sgd_step_of_the_last_layer():
    feats, w, probs, tokens, adv = _softmax_linear()
    lr = 0.05
    w1 = w.clone().requires_grad_(True)
    logp = torch.log_softmax(feats @ w1.T, -1)[torch.arange(len(tokens)), tokens]
    (-(adv * logp).mean()).backward()
    new = torch.log_softmax(feats @ (w - lr * w1.grad).T, -1)
    actual = (probs * (probs.log() - new)).sum(-1).mean()
    c, predicted = capo_curvature_contributions(feats, probs, tokens, adv, lr)
    assert predicted.item() == pytest.approx(actual.item(), rel=0.05)
    assert 0.5 * c.sum().item() == pytest.approx(predicted.item())


def test_capo_mask_rejects_the_outlier_within_its_budget():
    feats, w, probs, tokens, adv = _softmax_linear(1)
    feats[7] *= 8.0  # one token with a huge feature norm dominates the curvature
    adv[7] = 3.0
    _, kl_all = capo_curvature_contributions(feats, probs, tokens, adv, 0.05)
    keep, st = capo_curvature_mask(feats, probs, tokens, adv, 0.05, max_kl=kl_all.item() / 4, max_reject_fraction=0.1)
    assert not keep[7] and st["kl_after"] <= kl_all.item() / 4 and st["rejected"] <= 0.1
    keep_all, st2 = capo_curvature_mask(feats, probs, tokens, adv, 0.05, max_kl=1e9)
    assert keep_all.all() and st2["rejected"] == 0.0


def test_aggregation_still_sees_masked_tokens_in_the_global_denominator():
    # masks from the samplers multiply the loss mask; the denominator stays the batch's token count
    per_tok, mask = torch.ones(2, 3), torch.ones(2, 3)
    keep = torch.tensor([[1.0, 0, 1], [1, 1, 1]])
    assert aggregate(per_tok * keep, mask, "token-mean", num_tokens=mask.sum()).item() == pytest.approx(5 / 6)
