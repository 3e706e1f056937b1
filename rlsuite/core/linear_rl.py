"""Linear function approximation for episodic (robust) RL: the shared math of LSVI-UCB, DR-LSVI-UCB and DR-RPO.

Everything here is a pure function of tensors (any device, any float dtype), except the data buffer
:class:`LinearEpisodes` and :func:`rollout_episodes`, which every linear agent uses to collect and keep
its episodes.

**Linear-feature observations.** An env built for these agents (``rlsuite/LinearMDP-v0``,
``rlsuite/PutOption-v0``) shows the agent, for *every* action, the feature vector and the (known) reward,
then the step index:

    obs = concat(phi(s, 0), r(s, 0), phi(s, 1), r(s, 1), ..., phi(s, A - 1), r(s, A - 1), [h])      shape (A (d + 1) + 1,)

with ``phi(s, a)`` in the probability simplex of R^d (``phi_i >= 0``, ``sum_i phi_i = 1``: a d-rectangular
linear MDP), ``r(s, a) >= 0`` the reward of taking ``a`` in ``s`` (the theory's known reward function) and ``h``
in ``0 .. H - 1``. The observation space is a ``Box`` whose feature entries lie in ``[0, 1]``, reward entries in
``[0, r_max]`` and last entry in ``[0, H - 1]``, so ``A``, ``d`` and ``H`` are read from the spaces
(:func:`feature_layout`); the policy needs nothing but the observation, so ``rlsuite eval``, ``--robust`` and
``export`` work unchanged. :func:`feature_observation` builds such observations (the envs use it),
:func:`split_features` reads them (the agents use it).

**The math** (``N`` samples, ``d`` features, ``A`` actions, ``J`` points of the alpha grid):

- :func:`ridge_regression`: ``w = Lambda^-1 Phi^T y`` with ``Lambda = Phi^T Phi + ridge I``;
- :func:`elliptical_bonus` (LSVI-UCB: ``sqrt(phi^T Lambda^-1 phi)``) and :func:`factor_bonus`
  (d-rectangular: ``sum_i phi_i sqrt(e_i^T Lambda^-1 e_i)``, linear in ``phi``);
- :func:`tv_dual`: the total-variation robust expectation per factor,
  ``nu_i = max_alpha { E_{mu_i}[min(V, alpha)] - rho (alpha - min_s V(s)) }``, from regressions of
  ``min(V, alpha)`` over an alpha grid (:func:`alpha_grid`); :func:`tv_robust_expectation` is the same
  dual for one known distribution (what the tests compare with a brute-force inner minimisation);
- :func:`mirror_descent_step`: the KL-regularised mirror-descent policy update in closed form,
  :func:`regularized_value` and :func:`kl_to_reference`;
- :func:`robust_dp`: exact backward induction on a known d-rectangular linear MDP (nominal or robust),
  the reference the learned policies are measured against.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.checkpoint import optional_tensor, restore_optional
from rlsuite.core.horizon import log_horizon_note

# ----------------------------------------------------------------------------- feature observations


def feature_observation_space(n_actions: int, dim: int, horizon: int, reward_high: float = 1.0) -> gym.spaces.Box:
    """The ``Box`` of linear-feature observations: per action ``d`` features in ``[0, 1]`` and a reward in
    ``[0, reward_high]``, then ``h`` in ``[0, H - 1]``."""
    if n_actions < 1 or dim < 1 or horizon < 1 or not reward_high > 0:
        raise ValueError(f"need n_actions, dim, horizon >= 1 and reward_high > 0; got {n_actions}, {dim}, {horizon}, {reward_high}.")
    high = np.ones((n_actions, dim + 1), dtype=np.float32)
    high[:, dim] = reward_high
    high = np.concatenate([high.ravel(), np.array([horizon - 1], dtype=np.float32)])
    return gym.spaces.Box(np.zeros_like(high), high, dtype=np.float32)


def feature_observation(phi: torch.Tensor, reward: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``phi`` ``(B, A, d)``, rewards ``(B, A)`` and step indices ``h`` ``(B,)`` -> observations ``(B, A (d + 1) + 1)`` float32."""
    rows = torch.cat([phi, reward[..., None].to(phi.dtype)], dim=-1)
    return torch.cat([rows.reshape(phi.shape[0], -1), h.reshape(-1, 1).to(phi.dtype)], dim=1).to(torch.float32)


def feature_layout(observation_space: gym.Space, action_space: gym.Space, who: str = "this agent") -> tuple[int, int, int]:
    """``(A, d, H)`` of a linear-feature observation space (see the module docstring).

    Raises:
        ValueError: the spaces are not those of a linear-feature env (the message says what is expected).
    """
    hint = ("it learns on linear-feature envs, whose observation is the features and reward of every action and the step "
            "index (rlsuite.core.linear_rl): rlsuite/LinearMDP-v0, rlsuite/PutOption-v0.")
    if not isinstance(action_space, gym.spaces.Discrete) or int(action_space.start) != 0:
        raise ValueError(f"{who} needs a Discrete(n) action space starting at 0, got {action_space}; {hint}")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(f"{who} needs a flat Box observation space, got {observation_space}; {hint}")
    n = int(action_space.n)
    size = int(observation_space.shape[0])
    low, high = np.asarray(observation_space.low, np.float64), np.asarray(observation_space.high, np.float64)
    horizon = high[-1] + 1
    ok = (size - 1) % n == 0 and (size - 1) // n >= 2 and (low >= 0).all() and low[-1] == 0 \
        and np.isfinite(horizon) and horizon == round(horizon) and horizon >= 1
    if ok:
        rows = high[:-1].reshape(n, -1)
        ok = bool((rows[:, :-1] <= 1).all() and np.isfinite(rows[:, -1]).all())
    if not ok:
        raise ValueError(f"{who}: the observation space {observation_space} is not a linear-feature space for {n} actions "
                         f"(per action d features in [0, 1] and a reward >= 0, then the step index in [0, H - 1]); {hint}")
    return n, (size - 1) // n - 1, int(horizon)


def split_features(obs: torch.Tensor, n_actions: int, dim: int, horizon: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Observations ``(B, A (d + 1) + 1)`` -> ``(phi (B, A, d), reward (B, A), h (B,) int64)``; ``h`` is rounded and
    clamped to ``[0, H - 1]`` (so any input acts)."""
    rows = obs[:, : n_actions * (dim + 1)].reshape(obs.shape[0], n_actions, dim + 1)
    h = obs[:, -1].round().clamp(0, horizon - 1).to(torch.int64)
    return rows[..., :dim], rows[..., dim], h


# ----------------------------------------------------------------------------- regression and bonuses


def ridge_regression(phi: torch.Tensor, targets: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression of several targets on the same features.

    Args:
        phi: ``(N, d)`` features.
        targets: ``(..., N)`` one target vector per leading index (e.g. ``(J, N)``: one per alpha).
        ridge: ``lambda_r > 0``, added to the diagonal of the Gram matrix.

    Returns:
        ``(coef (..., d), lambda_inv (d, d))`` with ``coef = Lambda^-1 Phi^T y`` and ``Lambda = Phi^T Phi + ridge I``.
    """
    if ridge <= 0:
        raise ValueError(f"ridge must be > 0 (it keeps Lambda invertible), got {ridge}.")
    d = phi.shape[-1]
    gram = phi.T @ phi + ridge * torch.eye(d, dtype=phi.dtype, device=phi.device)
    lambda_inv = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    rhs = targets @ phi  # (..., d) = (Phi^T y)^T
    return rhs @ lambda_inv, lambda_inv  # lambda_inv is symmetric


def elliptical_bonus(phi: torch.Tensor, lambda_inv: torch.Tensor) -> torch.Tensor:
    """``sqrt(phi^T Lambda^-1 phi)`` for ``phi`` ``(..., d)`` -> ``(...)`` (LSVI-UCB's bonus, without beta)."""
    return torch.einsum("...i,ij,...j->...", phi, lambda_inv, phi).clamp_min(0).sqrt()


def factor_bonus(lambda_inv: torch.Tensor) -> torch.Tensor:
    """``(d,)`` coefficients ``sqrt(e_i^T Lambda^-1 e_i)``: the d-rectangular bonus ``sum_i phi_i sqrt(...)`` is
    ``phi @ factor_bonus(lambda_inv)``, linear in ``phi`` (DR-LSVI-UCB's and DR-RPO's bonus, without beta)."""
    return torch.diagonal(lambda_inv).clamp_min(0).sqrt()


# ----------------------------------------------------------------------------- total-variation duals


def alpha_grid(values: torch.Tensor, n: int) -> torch.Tensor:
    """``n >= 2`` evenly spaced points from ``min(values)`` to ``max(values)`` (both included) -> ``(n,)``."""
    if n < 2:
        raise ValueError(f"the alpha grid needs at least 2 points (min V and max V), got {n}.")
    lo, hi = values.min(), values.max()
    return lo + (hi - lo) * torch.linspace(0.0, 1.0, n, dtype=values.dtype, device=values.device)


def tv_dual(coef_alpha: torch.Tensor, alphas: torch.Tensor, v_min: torch.Tensor | float, rho: float) -> torch.Tensor:
    """The total-variation dual per factor.

    For a distribution ``mu`` and a value function ``V``, strong duality gives

        inf_{mu': TV(mu', mu) <= rho} E_{mu'}[V] = max_{alpha in [min V, max V]} { E_mu[min(V, alpha)] - rho (alpha - min_s V(s)) }.

    With ``coef_alpha[j] ~ E_{mu_i}[min(V, alphas[j])]`` per factor ``i`` (ridge regressions of ``min(V, alpha)``),
    this returns the maximum over the grid per factor.

    Args:
        coef_alpha: ``(J, d)`` regression coefficients, one row per alpha.
        alphas: ``(J,)`` the grid, increasing, its last point ``max V`` (:func:`alpha_grid`).
        v_min: ``min_s V(s)`` (over the visited next states).
        rho: the radius, ``>= 0``. ``rho = 0`` returns the row of ``alpha = max V`` (``min(V, max V) = V``: the
            plain regression of ``V``): the ball is the nominal kernel alone, and maximising over noisy
            estimates would only add an optimistic bias.

    Returns:
        ``(d,)`` the robust factor values ``nu_i``.
    """
    if rho < 0:
        raise ValueError(f"the uncertainty radius rho must be >= 0, got {rho}.")
    if rho == 0:
        return coef_alpha[-1]
    penalty = rho * (alphas - v_min)  # (J,)
    return (coef_alpha - penalty[:, None]).max(dim=0).values


def tv_robust_expectation(p0: torch.Tensor, values: torch.Tensor, rho: float, alphas: torch.Tensor | None = None) -> torch.Tensor:
    """``inf_{p: TV(p, p0) <= rho} E_p[V]`` through :func:`tv_dual` for one known distribution.

    Args:
        p0: ``(S,)`` the nominal distribution.
        values: ``(S,)`` ``V``.
        rho: the radius.
        alphas: the grid; default the sorted values of ``V`` (the dual's maximum sits at one of them: exact).

    Returns:
        a scalar tensor.
    """
    if alphas is None:
        alphas = torch.unique(values)  # sorted; the last is max V
    clipped = torch.minimum(values[None, :], alphas[:, None])  # (J, S)
    return tv_dual((clipped @ p0)[:, None], alphas, values.min(), rho)[0]


# ----------------------------------------------------------------------------- policies


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(logits) || softmax(ref_logits))`` over the last dimension: ``(..., A) -> (...)``."""
    logp, logq = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    return (logp.exp() * (logp - logq)).sum(-1)


def regularized_value(logits: torch.Tensor, q: torch.Tensor, lam: float, ref_logits: torch.Tensor) -> torch.Tensor:
    """``V(s) = sum_a pi(a|s) Q(s, a) - lam KL(pi(.|s) || pi_ref(.|s))`` with ``pi = softmax(logits)``: ``(..., A) -> (...)``."""
    pi = torch.softmax(logits, -1)
    return (pi * q).sum(-1) - lam * kl_to_reference(logits, ref_logits)


def mirror_descent_step(logits: torch.Tensor, q: torch.Tensor, eta: float, lam: float,
                        ref_logits: torch.Tensor | None = None) -> torch.Tensor:
    """One KL-regularised mirror-descent step of a softmax policy, in closed form.

    The new policy solves, per state,

        pi' = argmax_pi  <Q, pi> - lam KL(pi || pi_ref) - (1 / eta) KL(pi || pi_k)

    whose stationarity condition ``Q - lam (log pi' - log pi_ref) - (log pi' - log pi_k) / eta = const`` gives

        log pi' = [ log pi_k + eta lam log pi_ref + eta Q ] / (1 + eta lam) + const,

    i.e. ``pi' ~ pi_k^(1/(1+eta lam)) pi_ref^(eta lam/(1+eta lam)) exp(eta Q / (1+eta lam))``.

    Args:
        logits: ``(..., A)`` logits of ``pi_k`` (any normalisation).
        q: ``(..., A)`` ``Q`` of ``pi_k``.
        eta: step size ``> 0``.
        lam: KL strength toward the reference, ``>= 0``.
        ref_logits: ``(..., A)`` logits of ``pi_ref``; ``None`` is the uniform policy (a constant, dropped).

    Returns:
        ``(..., A)`` the new logits, normalised (``log pi'``).
    """
    if eta <= 0 or lam < 0:
        raise ValueError(f"need eta > 0 and lam >= 0, got eta={eta}, lam={lam}.")
    z = torch.log_softmax(logits, -1) + eta * q
    if ref_logits is not None:
        z = z + eta * lam * torch.log_softmax(ref_logits, -1)
    return torch.log_softmax(z / (1.0 + eta * lam), -1)


# ----------------------------------------------------------------------------- exact planning


def robust_dp(phi: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, horizon: int, rho: float = 0.0,
              policy: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward induction on a known d-rectangular linear MDP under the TV set of radius ``rho`` per factor.

    ``P(.|s, a) = sum_i phi_i(s, a) mu_i``, ``r(s, a) = phi(s, a)^T theta``; the adversary picks each factor in
    ``{mu'_i : TV(mu'_i, mu_i) <= rho}`` (the inner problem solved exactly by :func:`tv_robust_expectation`).

    Args:
        phi: ``(S, A, d)`` features.
        mu: ``(d, S)`` factor distributions (rows sum to 1).
        theta: ``(d,)`` reward coefficients.
        horizon: ``H``.
        rho: radius (0: the nominal MDP).
        policy: ``(H, S)`` int64 actions to evaluate instead of maximising (its robust value).

    Returns:
        ``(Q (H, S, A), V (H + 1, S))``; ``V[0]`` is the (robust) value at the start.
    """
    S, A, d = phi.shape
    V = torch.zeros(horizon + 1, S, dtype=phi.dtype, device=phi.device)
    Q = torch.zeros(horizon, S, A, dtype=phi.dtype, device=phi.device)
    for h in reversed(range(horizon)):
        nu = torch.stack([tv_robust_expectation(mu[i], V[h + 1], rho) for i in range(d)])
        Q[h] = phi @ (theta + nu)
        V[h] = Q[h].max(-1).values if policy is None else Q[h].gather(1, policy[h][:, None])[:, 0]
    return Q, V


# ----------------------------------------------------------------------------- data


class LinearEpisodes:
    """Every transition of the episodes seen so far, by step ``h``: what the regressions of every update use.

    Stored as ``phi_sa (H, N, d)`` (the taken action's features), ``next_phi (H, N, A, d)`` and ``next_reward
    (H, N, A)`` (the next state's features and rewards for every action), ``N`` growing by whole batches of episodes.
    """

    def __init__(self, horizon: int, n_actions: int, dim: int, device: torch.device, dtype: torch.dtype = torch.float64) -> None:
        self.horizon, self.n_actions, self.dim = horizon, n_actions, dim
        self.device, self.dtype = device, dtype
        self.n = 0
        self._alloc(0)

    def _alloc(self, cap: int) -> None:
        H, A, d = self.horizon, self.n_actions, self.dim
        kw = {"device": self.device, "dtype": self.dtype}
        self._phi, self._next, self._next_r = torch.zeros(H, cap, d, **kw), torch.zeros(H, cap, A, d, **kw), torch.zeros(H, cap, A, **kw)

    def add(self, phi_sa: torch.Tensor, next_phi: torch.Tensor, next_reward: torch.Tensor) -> None:
        """Append a batch of ``B`` whole episodes: ``phi_sa (H, B, d)``, ``next_phi (H, B, A, d)``, ``next_reward (H, B, A)``."""
        B = phi_sa.shape[1]
        if self.n + B > self._phi.shape[1]:  # grow by doubling
            old = (self.phi, self.next_phi, self.next_reward)
            self._alloc(max(self.n + B, 2 * self._phi.shape[1], 64))
            self._phi[:, : self.n], self._next[:, : self.n], self._next_r[:, : self.n] = old
        sl = slice(self.n, self.n + B)
        self._phi[:, sl] = phi_sa.to(self.device, self.dtype)
        self._next[:, sl] = next_phi.to(self.device, self.dtype)
        self._next_r[:, sl] = next_reward.to(self.device, self.dtype)
        self.n += B

    @property
    def phi(self) -> torch.Tensor:
        return self._phi[:, : self.n]

    @property
    def next_phi(self) -> torch.Tensor:
        return self._next[:, : self.n]

    @property
    def next_reward(self) -> torch.Tensor:
        return self._next_r[:, : self.n]

    def state_dict(self) -> dict[str, Any]:
        return {"phi": self.phi.clone(), "next_phi": self.next_phi.clone(), "next_reward": self.next_reward.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        phi, nxt = state["phi"], state["next_phi"]
        if (phi.shape[0], phi.shape[2]) != (self.horizon, self.dim) or tuple(nxt.shape[2:]) != (self.n_actions, self.dim):
            raise ValueError(f"stored episodes have shape {tuple(phi.shape)} / {tuple(nxt.shape)}; this agent keeps "
                             f"(H={self.horizon}, N, d={self.dim}) / (H, N, A={self.n_actions}, d): was it trained on another env?")
        self.n = 0
        self._alloc(0)
        self.add(phi, nxt, state["next_reward"])


@torch.no_grad()
def rollout_episodes(env: Any, obs: torch.Tensor, sample: Any, n_actions: int, dim: int, horizon: int
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Run one batch of whole episodes of a fixed-horizon linear-feature env (all envs in lockstep).

    Args:
        env: a :class:`rlsuite.core.vec_env.TorchVecEnv` whose episodes last exactly ``horizon`` steps.
        obs: ``(B, A (d + 1) + 1)`` the first observations of the episodes.
        sample: ``sample(obs) -> (B,)`` int64 actions.
        n_actions, dim, horizon: the layout (:func:`feature_layout`).

    Returns:
        ``(batch, next obs)``: ``phi_sa (H, B, d)``, ``next_phi (H, B, A, d)`` and ``next_reward (H, B, A)`` (zeros
        after the last step), ``first_phi (B, A, d)`` and ``first_reward (B, A)`` (the start states),
        ``episode_return (B,)``; the next observation is the first of the next batch.

    Raises:
        ValueError: the env's episodes do not start at ``h = 0`` and end after exactly ``horizon`` steps.
    """
    B, dev = obs.shape[0], obs.device
    phi_sa = torch.zeros(horizon, B, dim, device=dev)
    next_phi = torch.zeros(horizon, B, n_actions, dim, device=dev)
    next_reward = torch.zeros(horizon, B, n_actions, device=dev)
    first_phi, first_reward, _ = split_features(obs, n_actions, dim, horizon)
    steps = torch.zeros(horizon, B, dtype=torch.int64, device=dev)  # the env's step index, checked once at the end
    ended = torch.zeros(horizon, B, dtype=torch.bool, device=dev)
    info: dict[str, Any] = {}
    for t in range(horizon):
        phi, _, steps[t] = split_features(obs, n_actions, dim, horizon)
        action = sample(obs)
        phi_sa[t] = phi.gather(1, action.view(B, 1, 1).expand(B, 1, dim))[:, 0]
        obs, _, _, _, info = env.step(action)
        ended[t] = info["_final_obs"]
        if t + 1 < horizon:
            next_phi[t], next_reward[t], _ = split_features(obs, n_actions, dim, horizon)
    expected = torch.arange(horizon, device=dev)[:, None]
    if bool((steps != expected).any()):
        raise ValueError(f"linear agents train on whole episodes in lockstep from h = 0, but the env's step indices over this "
                         f"batch were {sorted(set(steps.flatten().tolist()))} (expected 0 .. {horizon - 1}); use a fixed-horizon "
                         "linear-feature env (rlsuite/LinearMDP-v0, rlsuite/PutOption-v0).")
    if bool(ended[:-1].any()) or not bool(ended[-1].all()):
        raise ValueError(f"linear agents need every episode to end after exactly H = {horizon} steps; this env's ended elsewhere.")
    return {"phi_sa": phi_sa, "next_phi": next_phi, "next_reward": next_reward, "first_phi": first_phi.clone(),
            "first_reward": first_reward.clone(), "episode_return": info["episode_return"]}, obs


class LinearEpisodicAgent:
    """What LSVI-UCB, DR-LSVI-UCB and DR-RPO share: the feature layout, the episodes kept, the training loop,
    exact-resume state. A subclass sets ``algo`` and implements:

    - ``sample(obs) -> (B,)`` int64: the actions taken while training;
    - ``update() -> dict[str, float]``: the backward pass over :attr:`data` after each batch of episodes;
    - ``weights() -> dict[str, Tensor]`` and ``load_weights(weights)``: the policy (fixed shapes: ``H``, ``d``, ``A``).

    Args:
        config: the algorithm's config (needs ``num_envs``: episodes per update, run in parallel).
        observation_space, action_space: single-env linear-feature spaces (:func:`feature_layout`).
        device: where the episodes and the policy live (float64).
    """

    algo = "linear"

    def __init__(self, config: Any, observation_space: gym.Space, action_space: gym.Space, device: torch.device) -> None:
        self.config = config
        self.observation_space, self.action_space = observation_space, action_space
        self.device = device
        self.n_actions, self.dim, self.horizon = feature_layout(observation_space, action_space, self.algo)
        self.obs_dim = self.n_actions * (self.dim + 1) + 1
        self.data = LinearEpisodes(self.horizon, self.n_actions, self.dim, device)
        self.global_step = 0
        self.iteration = 0
        self._obs: torch.Tensor | None = None
        self._first: tuple[torch.Tensor, torch.Tensor] | None = None  # the last batch's start states (for the logs)

    def features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Observations ``(B, obs_dim)`` -> ``(phi (B, A, d), reward (B, A), h (B,))``, float64 on the agent's device."""
        return split_features(obs.to(self.device, torch.float64).reshape(-1, self.obs_dim), self.n_actions, self.dim, self.horizon)

    # ------------------------------------------------------------------ training
    @property
    def batch_steps(self) -> int:
        return self.horizon * int(self.config.num_envs)

    def check_env(self, env: Any) -> None:
        """Refuse an env whose layout or batch differs from the agent's (before a run directory is written)."""
        n, d, H = feature_layout(env.single_observation_space, env.single_action_space, self.algo)
        if (n, d, H) != (self.n_actions, self.dim, self.horizon):
            raise ValueError(f"the env has {n} actions, {d} features and horizon {H}; this {self.algo} agent was built for "
                             f"{self.n_actions}, {self.dim} and {self.horizon}.")
        if env.num_envs != self.config.num_envs:
            raise ValueError(f"the env has {env.num_envs} parallel envs but config.num_envs={self.config.num_envs}; make them equal.")

    def budget_note(self, total_steps: int) -> str | None:
        """Said at the start when ``total_steps`` is not a whole number of updates."""
        return log_horizon_note(total_steps, self.global_step, self.batch_steps,
                                f"{self.config.num_envs} episodes x {self.horizon} steps")

    def learn(self, env: Any, total_steps: int, run: Any = None, seed: int = 0) -> LinearEpisodicAgent:
        """Collect ``num_envs`` episodes with :meth:`sample`, add them to :attr:`data`, :meth:`update`; repeat until
        ``global_step >= total_steps`` (whole batches; a restored agent continues where it stopped)."""
        import time

        self.check_env(env)
        if self._obs is None:
            self._obs, _ = env.reset(seed=seed)
        while self.global_step < total_steps:
            t0 = time.perf_counter()
            batch, self._obs = rollout_episodes(env, self._obs, self.sample, self.n_actions, self.dim, self.horizon)
            self.data.add(batch["phi_sa"], batch["next_phi"], batch["next_reward"])
            self._first = (batch["first_phi"].to(torch.float64), batch["first_reward"].to(torch.float64))
            t_collect = time.perf_counter() - t0
            stats = self.update()
            self.global_step += self.batch_steps
            self.iteration += 1
            if run is not None:
                run.logger.log(self.global_step, {
                    "rollout/ep_return": float(batch["episode_return"].mean()),
                    "rollout/episodes": float(self.data.n),
                    **{f"train/{k}": v for k, v in stats.items()},
                    "time/sps": self.batch_steps / (time.perf_counter() - t0),
                    "time/collect_seconds": t_collect,
                    "time/update_seconds": time.perf_counter() - t0 - t_collect,
                })
                run.step_done(self, env)
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``weights`` (the policy) and ``counters``; the episodes are in :meth:`training_state`."""
        return {"weights": self.weights(), "counters": {"global_step": self.global_step, "iteration": self.iteration}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_weights({k: v.to(self.device) for k, v in state["weights"].items()})
        counters = state.get("counters", {})
        self.global_step = int(counters.get("global_step", 0))
        self.iteration = int(counters.get("iteration", 0))

    def training_state(self, env: Any) -> dict[str, Any]:
        """The episodes collected, the env's state and its current observation (exact resume)."""
        return {"obs": optional_tensor(self._obs), "env": env.state_dict(), "data": self.data.state_dict()}

    def load_training_state(self, state: dict[str, Any], env: Any) -> None:
        env.load_state_dict(state["env"])
        self.data.load_state_dict(state["data"])
        self._obs = restore_optional(state["obs"], self.device)

    # ------------------------------------------------------------------ for subclasses
    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self) -> dict[str, float]:
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError
