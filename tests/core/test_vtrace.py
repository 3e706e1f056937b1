"""V-trace (rlsuite.core.rollout.vtrace) against hand-computed numbers, the paper's sum written as a loop, and GAE on-policy."""

import pytest
import torch

from rlsuite.core.rollout import compute_gae, vtrace


def test_vtrace_hand_computed():
    # One env, T=2, gamma=0.5, no episode end; rho_0 = 2 (clipped to 1), rho_1 = 0.5 (c_1 = 0.5).
    r = torch.tensor([[1.0], [1.0]])
    v = torch.tensor([[1.0], [2.0]])
    nv = torch.tensor([[2.0], [4.0]])  # V(x_1) = 2, bootstrap V(x_2) = 4
    mu = torch.log(torch.tensor([[0.25], [0.5]]))
    pi = torch.log(torch.tensor([[0.5], [0.25]]))
    no = torch.zeros(2, 1, dtype=torch.bool)
    out = vtrace(mu, pi, r, v, nv, no, no, gamma=0.5)
    # delta_1 = 0.5 * (1 + 0.5*4 - 2) = 0.5            v_1 = 2 + 0.5 = 2.5
    # delta_0 = 1 * (1 + 0.5*2 - 1) = 1                v_0 = 1 + 1 + 0.5 * c_0(=1) * 0.5 = 2.25
    # advantage_0 = 1 + 0.5 * v_1 - 1 = 1.25            pg_0 = min(1, 2) * 1.25 = 1.25
    # advantage_1 = 1 + 0.5 * 4 - 2 = 1                 pg_1 = 0.5 * 1 = 0.5
    assert out.vs.squeeze(1).tolist() == pytest.approx([2.25, 2.5])
    assert out.advantages.squeeze(1).tolist() == pytest.approx([1.25, 1.0])
    assert out.pg_advantages.squeeze(1).tolist() == pytest.approx([1.25, 0.5])
    assert out.rhos.squeeze(1).tolist() == pytest.approx([2.0, 0.5])


def _reference(mu, pi, r, v, nv, term, trunc, gamma, rho_bar, c_bar, lam):
    """The paper's v_s = V(x_s) + sum_{t>=s} gamma^(t-s) (prod_{s<=i<t} c_i) delta_t, summed term by term, the sum
    stopping after the step where the episode ends; advantages from v_{s+1} (the bootstrap at the rollout's end)."""
    T, N = r.shape
    rho = (pi - mu).exp()
    vs = torch.zeros(T, N, dtype=torch.float64)
    adv = torch.zeros(T, N, dtype=torch.float64)
    def delta(t, n):
        boot = 0.0 if term[t, n] else float(nv[t, n])
        return min(rho_bar, float(rho[t, n])) * (float(r[t, n]) + gamma * boot - float(v[t, n]))

    for n in range(N):
        for s in range(T):
            total, weight = 0.0, 1.0
            for t in range(s, T):
                total += weight * delta(t, n)
                if term[t, n] or trunc[t, n]:
                    break
                weight *= gamma * lam * min(c_bar, float(rho[t, n]))
            vs[s, n] = float(v[s, n]) + total
        for s in range(T):
            ended = bool(term[s, n] or trunc[s, n])
            nxt = float(nv[s, n]) if ended or s == T - 1 else float(vs[s + 1, n])
            adv[s, n] = float(r[s, n]) + (0.0 if term[s, n] else gamma * nxt) - float(v[s, n])
    return vs, adv, rho


@pytest.mark.parametrize("rho_bar,c_bar,lam", [(1.0, 1.0, 1.0), (1.5, 0.8, 0.9), (0.5, 2.0, 0.0)])
def test_vtrace_matches_the_papers_sum(rho_bar, c_bar, lam):
    g = torch.Generator().manual_seed(0)
    T, N = 7, 3
    r, v, nv = (torch.randn(T, N, generator=g, dtype=torch.float64) for _ in range(3))
    mu, pi = (torch.randn(T, N, generator=g, dtype=torch.float64) * 0.5 for _ in range(2))
    term = torch.rand(T, N, generator=g) < 0.15
    trunc = (torch.rand(T, N, generator=g) < 0.15) & ~term
    out = vtrace(mu, pi, r, v, nv, term, trunc, gamma=0.9, rho_bar=rho_bar, c_bar=c_bar, lam=lam)
    vs, adv, rho = _reference(mu, pi, r, v, nv, term, trunc, 0.9, rho_bar, c_bar, lam)
    torch.testing.assert_close(out.vs, vs)
    torch.testing.assert_close(out.advantages, adv)
    torch.testing.assert_close(out.pg_advantages, rho.clamp(max=rho_bar) * adv)


@pytest.mark.parametrize("lam", [1.0, 0.95])
def test_on_policy_vtrace_is_td_lambda_and_gae_one(lam):
    g = torch.Generator().manual_seed(1)
    T, N = 16, 4
    r, v, nv = (torch.randn(T, N, generator=g, dtype=torch.float64) for _ in range(3))
    logp = torch.randn(T, N, generator=g, dtype=torch.float64)
    term = torch.rand(T, N, generator=g) < 0.1
    trunc = (torch.rand(T, N, generator=g) < 0.1) & ~term
    goes_on = ~(term | trunc)[:-1]
    nv[:-1] = torch.where(goes_on, v[1:], nv[:-1])  # as in a rollout: V(next obs) is the next step's V(obs) within an episode
    out = vtrace(logp, logp, r, v, nv, term, trunc, gamma=0.99, lam=lam)
    adv, ret = compute_gae(r, v, nv, term, trunc, gamma=0.99, gae_lambda=lam)
    torch.testing.assert_close(out.vs, ret)  # v_s: the TD(lambda) returns
    if lam == 1.0:  # n-step returns bootstrapped at the rollout's end: GAE(1)
        torch.testing.assert_close(out.advantages, adv)
        torch.testing.assert_close(out.pg_advantages, adv)


def test_vtrace_refuses_mismatched_shapes_and_bad_truncations():
    x = torch.zeros(3, 2)
    b = torch.zeros(3, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"equal \(T, N\) shapes.*'values': \(3,\)"):
        vtrace(x, x, x, torch.zeros(3), x, b, b, 0.9)
    with pytest.raises(ValueError, match="rho_bar, c_bar, pg_rho_bar > 0"):
        vtrace(x, x, x, x, x, b, b, 0.9, rho_bar=0.0)
