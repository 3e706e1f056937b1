"""DDPM for actions (rlsuite.core.diffusion): the schedule against hand values, the posterior and the
sampler's mean against an independent derivation, a perfect denoiser that makes the sampler exact, the
fixed noise bank, and a diffusion policy trained through EXPO that keeps both modes of a bimodal dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rlsuite.agents.expo import EXPO, EXPOConfig
from rlsuite.core.diffusion import DDPMSchedule, Denoiser, denoising_loss, sample_actions, vp_betas

# ----------------------------------------------------------------------------- schedule


def test_vp_betas_of_two_steps_by_hand():
    # T = 2, beta_min = 0.1, beta_max = 10: alpha_t = exp(-beta_min / T - 0.5 (beta_max - beta_min) (2t - 1) / T^2)
    #   t = 1: exp(-0.05 - 0.5 * 9.9 * 1 / 4) = exp(-1.2875) = 0.27595982
    #   t = 2: exp(-0.05 - 0.5 * 9.9 * 3 / 4) = exp(-3.7625) = 0.02322560
    # betas = 1 - alpha = [0.72404018, 0.97677440]; alpha_bars = cumprod = [0.27595982, 0.27595982 * 0.02322560 = 0.00640933]
    betas = vp_betas(2)
    assert betas.dtype == torch.float64 and betas.shape == (2,)
    np.testing.assert_allclose(betas.numpy(), [0.72404018, 0.97677440], rtol=0, atol=1e-8)
    s = DDPMSchedule(betas)
    np.testing.assert_allclose(s.alphas.numpy(), [0.27595982, 0.02322560], rtol=1e-6)
    np.testing.assert_allclose(s.alpha_bars.numpy(), [0.27595982, 0.00640933], rtol=1e-6)
    np.testing.assert_allclose(s.alpha_bars_prev.numpy(), [1.0, 0.27595982], rtol=1e-6)
    np.testing.assert_allclose(s.sigmas.numpy(), np.sqrt([0.72404018, 0.97677440]), rtol=1e-6)
    # the docstring's other form, t = 0 .. T-1: exp(-beta_min / T - (beta_max - beta_min) (2t + 1) / (2 T^2)), same values
    t = np.arange(2)
    np.testing.assert_allclose(1 - betas.numpy(), np.exp(-0.1 / 2 - 9.9 * (2 * t + 1) / (2 * 4)), rtol=1e-12)


def test_vp_betas_refuses_bad_arguments():
    with pytest.raises(ValueError, match="at least 1 step"):
        vp_betas(0)
    with pytest.raises(ValueError, match="beta_min <= beta_max"):
        vp_betas(3, beta_min=2.0, beta_max=1.0)


def test_alpha_bars_are_the_cumulative_product_and_betas_grow():
    s = DDPMSchedule(vp_betas(10))
    torch.testing.assert_close(s.alpha_bars, torch.cumprod(1 - vp_betas(10), 0).float())
    assert bool((s.betas[1:] > s.betas[:-1]).all()) and 0 < float(s.betas[0]) < float(s.betas[-1]) < 1


def test_q_sample_by_hand():
    # T = 2: q_sample(a0 = 0.5, t, eps = 1) = sqrt(abar_t) 0.5 + sqrt(1 - abar_t) 1
    #   t = 0: sqrt(0.27595982) * 0.5 + sqrt(0.72404018) = 0.26265995 + 0.85090550 = 1.11356490
    #   t = 1: sqrt(0.00640933) * 0.5 + sqrt(0.99359067) = 0.04002917 + 0.99679017 = 1.03681934
    s = DDPMSchedule(vp_betas(2))
    out = s.q_sample(torch.tensor([[0.5], [0.5]]), torch.tensor([0, 1]), torch.tensor([[1.0], [1.0]]))
    np.testing.assert_allclose(out.numpy()[:, 0], [1.11356490, 1.03681934], rtol=1e-6)


# ----------------------------------------------------------------------------- posterior and reverse mean


def _posterior_by_product_of_gaussians(betas: torch.Tensor, x_t: torch.Tensor, x0: torch.Tensor, t: int) -> torch.Tensor:
    """q(x_{t-1} | x_t, x0) ~ N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) N(x_{t-1}; sqrt(abar_{t-1}) x0, 1 - abar_{t-1}):
    precision alpha_t / beta_t + 1 / (1 - abar_{t-1}); mean (sqrt(alpha_t) x_t / beta_t + sqrt(abar_{t-1}) x0 /
    (1 - abar_{t-1})) / precision (float64, t >= 1)."""
    alphas = 1 - betas
    abar_prev = float(torch.prod(alphas[:t]))
    a, b = float(alphas[t]), float(betas[t])
    precision = a / b + 1 / (1 - abar_prev)
    return (math.sqrt(a) * x_t / b + math.sqrt(abar_prev) * x0 / (1 - abar_prev)) / precision


def test_posterior_mean_two_steps_by_hand():
    # T = 2, t = 1, x_t = 0.3, x0 = -0.5 (alpha_1 = 0.02322560, beta_1 = 0.97677440, abar_0 = 0.27595982):
    #   precision = 0.02322560 / 0.97677440 + 1 / 0.72404018 = 0.02377786 + 1.38113882 = 1.40491668
    #   numerator = sqrt(0.02322560) * 0.3 / 0.97677440 + sqrt(0.27595982) * -0.5 / 0.72404018
    #             = 0.04680697 - 0.36276908 = -0.31596211;  mean = -0.31596211 / 1.40491668 = -0.22489740
    s = DDPMSchedule(vp_betas(2))
    out = s.posterior_mean(torch.tensor([[0.3]]), torch.tensor([[-0.5]]), torch.tensor([1]))
    assert float(out) == pytest.approx(-0.22489740, rel=1e-6)


def test_posterior_mean_matches_the_product_of_gaussians_and_is_x0_at_t0():
    betas = vp_betas(10)
    s = DDPMSchedule(betas)
    g = torch.Generator().manual_seed(0)
    x_t, x0 = torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g).clamp(-1, 1)
    t = torch.arange(10)
    out = s.posterior_mean(x_t, x0, t)
    for i in range(1, 10):
        ref = _posterior_by_product_of_gaussians(betas, x_t[i].double(), x0[i].double(), i)
        torch.testing.assert_close(out[i].double(), ref, rtol=1e-5, atol=1e-6)
    # t = 0: q(x_{-1} | x_0, x0) is the point x0 (abar_{-1} = 1): the coefficient of x_t is 0, that of x0 is 1
    torch.testing.assert_close(out[0], x0[0], rtol=1e-6, atol=1e-6)


def test_reverse_mean_is_the_posterior_mean_at_the_predicted_a0():
    s = DDPMSchedule(vp_betas(10))
    g = torch.Generator().manual_seed(1)
    x_t, eps = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    for t in range(10):
        tt = torch.full((8,), t)
        torch.testing.assert_close(s.reverse_mean(x_t, t, eps), s.posterior_mean(x_t, s.predict_a0(x_t, tt, eps), tt),
                                   rtol=1e-4, atol=1e-5)
    # predict_a0 inverts q_sample
    a0, tt = torch.rand(8, 2, generator=g) * 2 - 1, torch.randint(0, 10, (8,), generator=g)
    torch.testing.assert_close(s.predict_a0(s.q_sample(a0, tt, eps), tt, eps), a0, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- sampler


class PerfectDenoiser(nn.Module):
    """The exact noise for a point mass at ``c(s)``: ``eps*(x_t, t) = (x_t - sqrt(abar_t) c) / sqrt(1 - abar_t)``;
    ``c(s) = tanh(s[:, :act_dim])`` (per state) or a constant."""

    def __init__(self, schedule: DDPMSchedule, act_dim: int, c: torch.Tensor | None = None) -> None:
        super().__init__()
        self.schedule, self.act_dim, self.c = schedule, act_dim, c

    def forward(self, obs: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = torch.tanh(obs[:, : self.act_dim]) if self.c is None else self.c.expand_as(a_t)
        ab = self.schedule.alpha_bars[t][:, None]
        return (a_t - ab.sqrt() * c) / (1 - ab).sqrt()


@pytest.mark.parametrize("steps", [1, 2, 10])
def test_a_perfect_denoiser_makes_the_sampler_return_the_point_from_any_noise(steps):
    s = DDPMSchedule(vp_betas(steps))
    c = torch.tensor([0.3, -0.7])
    den = PerfectDenoiser(s, 2, c)
    obs = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    for seed in range(3):
        out = sample_actions(den, s, obs, 6, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(out, c.expand(5, 6, 2), rtol=0, atol=1e-5)
    wild = 5 * torch.randn(steps + 1, 6, 2, generator=torch.Generator().manual_seed(9))  # far outside [-1, 1]
    torch.testing.assert_close(sample_actions(den, s, obs, 6, noise=wild), c.expand(5, 6, 2), rtol=0, atol=1e-5)


def test_the_sampler_keeps_each_states_candidates_together():
    # c(s) = tanh(s[:, :A]) per state: candidates b*n .. b*n + n-1 are state b's
    s = DDPMSchedule(vp_betas(5))
    obs = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    out = sample_actions(PerfectDenoiser(s, 2), s, obs, 3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, torch.tanh(obs[:, None, :2]).expand(4, 3, 2), rtol=0, atol=1e-5)


class Wild(nn.Module):
    """A denoiser whose predictions drive the chain far outside [-1, 1]."""

    act_dim = 2

    def forward(self, obs, a_t, t):
        return torch.full_like(a_t, -50.0) * torch.sign(obs[:, :1])


def test_sample_shape_and_bounds():
    s = DDPMSchedule(vp_betas(4))
    torch.manual_seed(0)
    den = Denoiser(3, 2, width=16, blocks=1, time_dim=8)
    obs = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    out = sample_actions(den, s, obs, 7, torch.Generator().manual_seed(0))
    assert out.shape == (5, 7, 2) and bool((out.abs() <= 1).all())
    out = sample_actions(Wild(), s, obs, 7, torch.Generator().manual_seed(0))
    assert out.shape == (5, 7, 2) and bool((out.abs() <= 1).all()) and float(out.abs().max()) == 1.0
    # the same generator seed gives the same samples; another seed others
    a = sample_actions(den, s, obs, 7, torch.Generator().manual_seed(3))
    assert torch.equal(a, sample_actions(den, s, obs, 7, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, sample_actions(den, s, obs, 7, torch.Generator().manual_seed(4)))


def test_a_noise_bank_makes_samples_a_function_of_the_state():
    s = DDPMSchedule(vp_betas(4))
    torch.manual_seed(0)
    den = Denoiser(3, 2, width=16, blocks=1, time_dim=8)
    g = torch.Generator().manual_seed(5)
    bank = torch.randn(5, 6, 2, generator=g)  # (T + 1, n, A)
    x, y, z = torch.randn(3, 3, generator=g)
    first = sample_actions(den, s, torch.stack([x, y]), 6, noise=bank)
    again = sample_actions(den, s, torch.stack([x, y]), 6, noise=bank)
    other = sample_actions(den, s, torch.stack([z, x]), 6, noise=bank)  # x in another batch, at another row
    assert torch.equal(first, again)
    torch.testing.assert_close(other[1], first[0], rtol=0, atol=1e-6)
    assert not torch.allclose(first[0], first[1])  # another state, other samples
    # candidate k of every state is driven by the bank's row k: permuting the rows permutes the candidates
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(sample_actions(den, s, torch.stack([x, y]), 6, noise=bank[:, perm]), first[:, perm], rtol=0, atol=1e-6)
    # the bank replaces the generator: a generator's draws leave the result unchanged
    assert torch.equal(first, sample_actions(den, s, torch.stack([x, y]), 6, torch.Generator().manual_seed(1), noise=bank))


def test_a_noise_bank_of_the_wrong_shape_is_refused():
    s = DDPMSchedule(vp_betas(4))
    den = Denoiser(3, 2, width=16, blocks=1, time_dim=8)
    with pytest.raises(ValueError, match=r"noise must have shape \(5, 6, 2\) \(steps \+ 1, samples, action dims\), got \(4, 6, 2\)"):
        sample_actions(den, s, torch.zeros(2, 3), 6, noise=torch.zeros(4, 6, 2))
    with pytest.raises(ValueError, match=r"got \(5, 3, 2\)"):
        sample_actions(den, s, torch.zeros(2, 3), 6, noise=torch.zeros(5, 3, 2))


# ----------------------------------------------------------------------------- loss


class Recorder(nn.Module):
    """Predicts 0 and keeps its inputs."""

    act_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[torch.Tensor, ...]] = []

    def forward(self, obs, a_t, t):
        self.seen.append((obs, a_t, t))
        return self.w * a_t


def test_denoising_loss_is_the_noise_regression_of_the_forward_process():
    s = DDPMSchedule(vp_betas(10))
    obs, act = torch.randn(64, 3), torch.rand(64, 2) * 2 - 1
    rec = Recorder()
    loss, stats = denoising_loss(rec, s, obs, act, torch.Generator().manual_seed(0))
    # the same draws, in the same order: t uniform on 0 .. T-1, then eps ~ N(0, I)
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 10, (64,), generator=g)
    eps = torch.randn(64, 2, generator=g)
    seen_obs, seen_at, seen_t = rec.seen[0]
    assert torch.equal(seen_t, t) and torch.equal(seen_obs, obs)
    torch.testing.assert_close(seen_at, s.q_sample(act, t, eps))
    # a zero prediction: ||eps||^2 summed over action dims, mean over the batch
    torch.testing.assert_close(loss, eps.pow(2).sum(-1).mean())
    assert float(stats["denoising_loss"]) == float(loss.detach())


def test_denoising_loss_is_finite_and_its_gradient_reaches_the_denoiser():
    s = DDPMSchedule(vp_betas(10))
    torch.manual_seed(0)
    den = Denoiser(3, 2, width=16, blocks=2, time_dim=8)
    loss, _ = denoising_loss(den, s, torch.randn(32, 3), torch.rand(32, 2) * 2 - 1, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    for name, p in den.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
    assert float(den.time[0].w.grad.abs().sum()) > 0 and float(den.inp.weight.grad.abs().sum()) > 0


# ----------------------------------------------------------------------------- the reason for a diffusion policy

#: EXPO base pretraining on a bimodal dataset: measured (8 seeds, 800 updates, lr 1e-3, one thread) at 0.42-0.47 of
#: the samples within 0.2 of each mode and 0.07-0.10 with |a| < 0.4; thresholds well below / above.
MIN_MODE_SHARE = 0.25
MAX_MIDDLE_SHARE = 0.25


def test_a_diffusion_base_keeps_both_modes_where_a_gaussian_averages_them():
    """Actions +0.8 or -0.8 with equal odds at one state. The maximum-likelihood Gaussian has its mean
    at the data mean (~0, where the data has no action) and puts 38 % of its mass at |a| < 0.4 and 12 %
    near each mode; the denoiser trained by EXPO's pretraining (denoising only) samples both modes."""
    n = 4000
    rng = np.random.default_rng(1)
    act = np.where(rng.random(n) < 0.5, -0.8, 0.8).astype(np.float32)[:, None]
    obs = np.zeros((n, 2), np.float32)
    arr = {"observations": obs, "actions": act, "rewards": np.zeros(n, np.float32), "next_observations": obs,
           "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}
    cfg = EXPOConfig(denoiser_width=32, denoiser_blocks=1, time_dim=16, batch_size=256, base_learning_rate=1e-3,
                     hidden_sizes=(16,), num_qs=2)
    agent = EXPO(cfg, 2, 1, seed=0)
    agent.set_data(arr, np.array([-1.0]), np.array([1.0]))
    agent.learn_offline(800)
    assert agent.base_updates == 800

    samples = sample_actions(agent.base, agent.schedule, agent.data.norm_obs(obs[:250]), 8, torch.Generator().manual_seed(0)).flatten()
    plus, minus = float(((samples - 0.8).abs() < 0.2).float().mean()), float(((samples + 0.8).abs() < 0.2).float().mean())
    middle = float((samples.abs() < 0.4).float().mean())

    # the Gaussian fitted by maximum likelihood: mean and (biased) std of the same actions
    mu, sd = float(act.mean()), float(act.std())
    gauss = torch.distributions.Normal(mu, sd)
    g_middle = float(gauss.cdf(torch.tensor(0.4)) - gauss.cdf(torch.tensor(-0.4)))
    g_plus = float(gauss.cdf(torch.tensor(1.0)) - gauss.cdf(torch.tensor(0.6)))
    assert abs(mu) < 0.05 and sd == pytest.approx(0.8, abs=0.01) and g_middle > 0.35 and g_plus < 0.15

    assert plus >= MIN_MODE_SHARE and minus >= MIN_MODE_SHARE and middle <= MAX_MIDDLE_SHARE, (plus, minus, middle)
    assert plus > 2 * g_plus and minus > 2 * g_plus and middle < g_middle / 2
