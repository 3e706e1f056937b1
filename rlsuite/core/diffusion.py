"""DDPM for actions: a variance-preserving noise schedule, a conditional denoiser and the sampler.

A diffusion policy models ``p(a | s)`` by learning to remove noise (Ho et al., 2020). With ``T`` steps,
``beta_t`` the noise added at step ``t``, ``alpha_t = 1 - beta_t`` and ``abar_t = prod_{i <= t} alpha_i``
(steps ``t = 0 .. T-1``):

* forward (training): ``a_t = sqrt(abar_t) a + sqrt(1 - abar_t) eps`` with ``eps ~ N(0, I)``; the
  denoiser ``eps_psi(s, a_t, t)`` is trained to predict ``eps`` (:func:`denoising_loss`);
* reverse (sampling), from ``a_T ~ N(0, I)`` down to ``t = 0``:
  ``a_{t-1} = (a_t - beta_t / sqrt(1 - abar_t) * eps_psi) / sqrt(alpha_t) + sigma_t z`` with
  ``sigma_t = sqrt(beta_t)`` (``0`` at the last step) and every iterate clipped to ``[-1, 1]``.
  The mean is the posterior mean ``mu~(a_t, a_0)`` of :meth:`DDPMSchedule.posterior_mean` with ``a_0``
  predicted from ``eps_psi`` (tested); ``sigma_t^2 = beta_t`` is Ho et al.'s first choice, the one IDQL
  and EXPO use.

The schedule is the variance-preserving one of IDQL / EXPO (``beta_min = 0.1``, ``beta_max = 10``):
``alpha_t = exp(-beta_min / T - (beta_max - beta_min) (2t + 1) / (2 T^2))`` for ``t = 0 .. T-1``.

The denoiser (:class:`Denoiser`) is an MLP-ResNet on ``concat(s, a_t, time features)`` with learnable
Fourier time features, as in IDQL's reverse network. :func:`sample_actions` runs every candidate of every
state through one denoiser call per step (``B * n`` rows): that cost dominates diffusion policies.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rlsuite.core.nets import activation


def vp_betas(steps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> torch.Tensor:
    """The variance-preserving schedule's ``beta_t`` for ``t = 0 .. steps-1``: ``(steps,)`` float64."""
    if steps < 1:
        raise ValueError(f"a diffusion needs at least 1 step, got {steps}.")
    if not 0.0 < beta_min <= beta_max:
        raise ValueError(f"need 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}.")
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    alpha = torch.exp(-beta_min / steps - 0.5 * (beta_max - beta_min) * (2 * t - 1) / steps**2)
    return 1.0 - alpha


class DDPMSchedule:
    """The constants of a ``T``-step DDPM (float32 tensors ``(T,)`` on ``device``; see the module docstring)."""

    def __init__(self, betas: torch.Tensor, device: torch.device | str = "cpu") -> None:
        betas = betas.to(torch.float64)
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        f = dict(dtype=torch.float32, device=device)
        self.steps = int(betas.shape[0])
        self.betas, self.alphas, self.alpha_bars = betas.to(**f), alphas.to(**f), abar.to(**f)
        self.alpha_bars_prev = abar_prev.to(**f)
        #: the reverse step's ``eps`` coefficient ``beta_t / sqrt(1 - abar_t)`` and ``1 / sqrt(alpha_t)``
        self.eps_coef = (betas / torch.sqrt(1.0 - abar)).to(**f)
        self.inv_sqrt_alpha = (1.0 / torch.sqrt(alphas)).to(**f)
        self.sigmas = torch.sqrt(betas).to(**f)

    def q_sample(self, a0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``a_t = sqrt(abar_t) a0 + sqrt(1 - abar_t) eps``: ``a0, eps (B, A)``, ``t (B,)`` long -> ``(B, A)``."""
        ab = self.alpha_bars[t][:, None]
        return ab.sqrt() * a0 + (1.0 - ab).sqrt() * eps

    def posterior_mean(self, a_t: torch.Tensor, a0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of ``q(a_{t-1} | a_t, a_0)``: ``sqrt(abar_{t-1}) beta_t / (1 - abar_t) a_0 + sqrt(alpha_t)
        (1 - abar_{t-1}) / (1 - abar_t) a_t``; shapes as :meth:`q_sample`."""
        ab, ab_prev = self.alpha_bars[t][:, None], self.alpha_bars_prev[t][:, None]
        beta, alpha = self.betas[t][:, None], self.alphas[t][:, None]
        return (ab_prev.sqrt() * beta * a0 + alpha.sqrt() * (1.0 - ab_prev) * a_t) / (1.0 - ab)

    def predict_a0(self, a_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``a_0`` implied by ``a_t`` and the noise ``eps``: ``(a_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``."""
        ab = self.alpha_bars[t][:, None]
        return (a_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()

    def reverse_mean(self, a_t: torch.Tensor, t: int, eps: torch.Tensor) -> torch.Tensor:
        """The sampler's mean ``(a_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)`` at step ``t`` (an int)."""
        return self.inv_sqrt_alpha[t] * (a_t - self.eps_coef[t] * eps)


class FourierTime(nn.Module):
    """Learnable Fourier features of the step index: ``t (B,) -> (B, dim)`` = ``[cos 2 pi t w, sin 2 pi t w]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"Fourier time features need an even size >= 2, got {dim}.")
        self.w = nn.Parameter(torch.randn(dim // 2) * 0.2)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        f = 2.0 * math.pi * t.to(self.w.dtype)[:, None] * self.w
        return torch.cat([f.cos(), f.sin()], dim=-1)


class ResBlock(nn.Module):
    """``x + W2 act(W1 LayerNorm(x))`` with a 4x wider inner layer: ``(B, width) -> (B, width)``."""

    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.norm, self.inner, self.outer, self.act = nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.Linear(4 * width, width), activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(self.act(self.inner(self.norm(x))))


class Denoiser(nn.Module):
    """``eps_psi(s, a_t, t)``: ``obs (B, obs_dim), a_t (B, act_dim), t (B,) or (1,) -> (B, act_dim)`` (a ``(1,)``
    step is shared by every row: its embedding is computed once).

    Time: learnable Fourier features (``time_dim``) through a 2-layer MLP; then an MLP-ResNet of ``blocks``
    residual blocks of ``width`` units (LayerNorm, swish) on ``concat(s, a_t, time embedding)``.
    """

    def __init__(self, obs_dim: int, act_dim: int, width: int = 256, blocks: int = 3, time_dim: int = 128, act: str = "silu") -> None:
        super().__init__()
        self.time = nn.Sequential(FourierTime(time_dim), nn.Linear(time_dim, 2 * time_dim), activation(act), nn.Linear(2 * time_dim, time_dim))
        self.inp = nn.Linear(obs_dim + act_dim + time_dim, width)
        self.blocks = nn.Sequential(*(ResBlock(width, act) for _ in range(blocks)))
        self.out = nn.Sequential(activation(act), nn.Linear(width, act_dim))
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def forward(self, obs: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(t).expand(obs.shape[0], -1)
        return self.out(self.blocks(self.inp(torch.cat([obs, a_t, emb], dim=-1))))


def denoising_loss(denoiser: nn.Module, schedule: DDPMSchedule, obs: torch.Tensor, act: torch.Tensor,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``E_{t, eps} ||eps - eps_psi(s, a_t, t)||^2`` (sum over action dims, mean over the batch) for data
    ``obs (B, obs_dim)``, ``act (B, A)`` in ``[-1, 1]``; ``t`` uniform on ``0 .. T-1``."""
    t = torch.randint(0, schedule.steps, (act.shape[0],), generator=generator, device=act.device)
    eps = torch.randn(act.shape, generator=generator, device=act.device, dtype=act.dtype)
    pred = denoiser(obs, schedule.q_sample(act, t, eps), t)
    loss = (pred - eps).pow(2).sum(-1).mean()
    return loss, {"denoising_loss": loss.detach()}


def sample_actions(denoiser: nn.Module, schedule: DDPMSchedule, obs: torch.Tensor, n: int,
                   generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` actions per state from the reverse process: ``obs (B, obs_dim) -> (B, n, A)`` in ``[-1, 1]``.

    All ``B * n`` chains go through one denoiser call per step. ``noise (T + 1, n, A)``, when given, replaces
    the random draws (index 0: ``a_T``; index ``k``: the ``z`` of step ``T - k``) and is shared by every
    state: the samples are then a deterministic function of ``obs`` (what an exported policy uses).
    """
    B, T, A = obs.shape[0], schedule.steps, denoiser.act_dim
    rows = obs.repeat_interleave(n, dim=0)  # (B * n, obs): state b's candidates are rows b*n .. b*n + n-1
    if noise is not None:
        if not torch.jit.is_tracing() and noise.shape != (T + 1, n, A):
            raise ValueError(f"noise must have shape {(T + 1, n, A)} (steps + 1, samples, action dims), got {tuple(noise.shape)}.")
        draws = noise[:, None].expand(T + 1, B, n, A).reshape(T + 1, B * n, A)
    else:
        draws = torch.randn((T + 1, B * n, A), generator=generator, device=obs.device, dtype=obs.dtype)
    x = draws[0]
    for k, t in enumerate(range(T - 1, -1, -1), start=1):
        tt = torch.full((1,), t, device=obs.device, dtype=torch.long)  # one step for all rows: one time embedding
        x = schedule.reverse_mean(x, t, denoiser(rows, x, tt))
        if t > 0:
            x = x + schedule.sigmas[t] * draws[k]
        x = x.clamp(-1.0, 1.0)
    return x.reshape(B, n, A)
