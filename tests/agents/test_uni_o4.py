"""Uni-O4 building blocks: the disagreement term acts on the gradient, AM-Q ranks policies as their
true values do on a toy problem with a known answer, and the accept-if-improved rule."""

import pytest
import torch

from rlsuite.agents.uni_o4 import AcceptIfImproved, am_q, ensemble_bc_loss, normalized_advantage


def _grads(detach_max):
    torch.manual_seed(0)
    logp = torch.randn(3, 8, requires_grad=True)
    ensemble_bc_loss(logp, alpha=0.1, detach_max=detach_max).backward()
    return logp, logp.grad.clone()


def test_reference_mode_only_rescales_bc_and_ours_repels():
    logp, g_ref = _grads(True)
    # detached max: each member's gradient is (1 + alpha) x plain BC, -(1 + alpha) / B
    torch.testing.assert_close(g_ref, torch.full_like(g_ref, -1.1 / 8))
    logp, g = _grads(False)
    assert not torch.allclose(g, g_ref)
    # a member that is the best "other" for some member gets a push down (+alpha / B) on that sample
    with torch.no_grad():
        best = logp.argmax(0)
    for b in range(8):
        winner = int(best[b])
        assert g[winner, b] > g_ref[winner, b]
    with pytest.raises(ValueError, match="at least 2 members"):
        ensemble_bc_loss(torch.zeros(1, 4))


def test_normalized_advantage_is_standardised_and_detached():
    q = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a = normalized_advantage(q, torch.zeros(3))
    assert not a.requires_grad and float(a.mean()) == pytest.approx(0.0, abs=1e-6) and float(a.std(unbiased=False)) == pytest.approx(1.0)


def test_am_q_ranks_policies_by_their_true_value_and_the_gate_accepts_only_improvements():
    """1-D system s' = s + a, reward -(s + a)^2, gamma = 0.9. For the policy a = -k s the true Q of the
    *optimal* policy (k = 1) is Q*(s, a) = -(s + a)^2. AM-Q with Q* scores k = 1 highest (0), then
    k = 0.5, then k = 0.1: the known answer."""
    q_star = lambda s, a: -((s + a) ** 2).squeeze(-1)  # noqa: E731
    step = lambda s, a: s + a  # noqa: E731
    starts = torch.linspace(-1, 1, 64)[:, None]
    scores = {k: am_q(lambda s, k=k: -k * s, step, q_star, starts, horizon=20) for k in (0.1, 0.5, 1.0)}
    assert scores[1.0] == pytest.approx(0.0) and scores[1.0] > scores[0.5] > scores[0.1]
    # the exact value for k = 0.5: mean over t < 20 and starts of -(0.5^(t+1) s0)^2
    s2 = float((starts**2).mean())
    expected = -sum(0.25 ** (t + 1) for t in range(20)) * s2 / 20
    assert scores[0.5] == pytest.approx(expected, rel=1e-5)
    # terminated trajectories stop counting
    term = am_q(lambda s: -0.1 * s, step, q_star, starts, horizon=20, is_terminal=lambda s: torch.ones(s.shape[0], dtype=torch.bool))
    assert term == pytest.approx(float(q_star(starts, -0.1 * starts).mean()), rel=1e-6)

    gate = AcceptIfImproved(scores[0.1])
    assert gate(scores[0.5]) and not gate(scores[0.1]) and not gate(scores[0.5]) and gate(scores[1.0])
    assert (gate.accepted, gate.rejected, gate.best) == (2, 2, scores[1.0])
