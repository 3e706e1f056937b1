"""IQL: Implicit Q-Learning (Kostrikov, Nair, Levine, ICLR 2022), offline and then online fine-tuning.

Losses (pure functions below; ``u = Q_target(s, a) - V(s)``):

* value: expectile regression ``|tau - 1(u < 0)| u^2`` (``tau = 0.7`` for locomotion), so ``V``
  approaches an upper expectile of ``Q`` over the dataset's actions without querying other actions;
* Q: ``(r + gamma (1 - terminal) V(s') - Q_i(s, a))^2`` for both critics; time-limit truncations are
  **not** terminals (they bootstrap);
* policy: advantage-weighted regression ``- exp(beta u).clip(max=100) log pi(a | s)`` (``beta = 3``).

Set-up as in the paper's locomotion runs: 2 x 256 MLPs, Adam 3e-4, batch 256, Polyak 0.005, cosine
decay of the actor's learning rate over the offline phase, Gaussian policy with a tanh mean and a
state-independent log-std, observations standardised with the dataset's statistics and rewards scaled
by ``1000 / (max episode return - min episode return)`` of the dataset. Actions are handled in
``[-1, 1]`` and rescaled to the env's bounds at the output.

Online fine-tuning continues the same updates on the dataset plus the transitions collected by the
stochastic policy (one update per env step), as in the paper's fine-tuning experiments.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.nets import MLP, adam, soft_update
from rlsuite.core.seeding import resolve_device


@dataclasses.dataclass(frozen=True)
class IQLConfig:
    """IQL hyper-parameters (the paper's locomotion settings)."""

    expectile: float = 0.7
    """Expectile tau of the value regression (0.5: the mean; towards 1: the max over dataset actions)."""
    beta: float = 3.0
    """Inverse temperature of advantage-weighted regression for the actor."""
    max_weight: float = 100.0
    """Clip of the exponentiated advantage weights."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target Q networks."""
    learning_rate: float = 3e-4
    """Adam learning rate of actor, Q and V (the actor's decays with a cosine schedule offline)."""
    batch_size: int = 256
    """Transitions per update."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor, Q and V."""
    normalize_reward: bool = True
    """Scale rewards by 1000 / (max - min episode return) of the dataset, as the paper does for locomotion."""


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Mean of ``|expectile - 1(diff < 0)| diff^2`` over ``diff (B,)``."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


def iql_q_loss(q1: torch.Tensor, q2: torch.Tensor, rewards: torch.Tensor, terminals: torch.Tensor, next_v: torch.Tensor,
               gamma: float) -> torch.Tensor:
    """Both critics' squared TD errors against ``r + gamma (1 - terminal) V(s')`` (all ``(B,)``)."""
    target = (rewards + gamma * (1.0 - terminals.float()) * next_v).detach()
    return ((q1 - target).pow(2) + (q2 - target).pow(2)).mean()


def awr_policy_loss(log_prob: torch.Tensor, advantage: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """``- mean(exp(beta * advantage).clip(max) * log_prob)``; the weights carry no gradient."""
    weight = torch.exp(beta * advantage.detach()).clamp(max=max_weight)
    return -(weight * log_prob).mean()


class GaussianPolicy(nn.Module):
    """``N(tanh(mlp(s)), exp(log_std))`` over actions in [-1, 1]; ``(B, obs) -> mean (B, act)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = MLP(obs_dim, act_dim, hidden)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        mean, log_std = self(obs), self.log_std.clamp(-5.0, 2.0)
        return (-0.5 * ((actions - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mean = self(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return (mean + noise * self.log_std.clamp(-5.0, 2.0).exp()).clamp(-1.0, 1.0)


class _Twin(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.q1, self.q2 = MLP(obs_dim + act_dim, 1, hidden), MLP(obs_dim + act_dim, 1, hidden)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


def check_same_data(data: OfflineData | None, state: dict[str, Any], keys: tuple[str, ...] = ("optim", "generator")) -> None:
    """Raise ``ValueError`` unless ``state`` holds ``keys`` (what an agent needs to continue training)
    and ``data`` has the observation statistics and action bounds that the saved agent was trained with
    (the networks expect inputs standardised the same way)."""
    if data is None:
        raise RuntimeError("call set_data(dataset arrays, action low, action high) before load_state_dict.")
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"the saved agent state lacks {', '.join(missing)} (written by an rlsuite before training could "
                         "continue from a checkpoint); its networks can be evaluated, not trained on: train again.")
    for key, mine in (("obs_mean", data.mean), ("obs_std", data.std), ("action_low", data.low), ("action_high", data.high)):
        saved = np.asarray(state[key].cpu(), np.float32)
        if saved.shape != np.shape(mine) or not np.allclose(saved, mine, rtol=1e-5, atol=1e-6):
            raise ValueError(f"the saved agent was trained on data with another {key} (shape {saved.shape}, received data has "
                             f"{np.shape(mine)}); load it after set_data with the dataset it was trained on.")


class OfflineData:
    """The dataset as tensors on ``device`` (actions scaled to [-1, 1], observations standardised,
    rewards optionally scaled), with uniform minibatch sampling; :meth:`add` appends online data."""

    def __init__(self, arrays: dict[str, np.ndarray], low: np.ndarray, high: np.ndarray, device: torch.device,
                 normalize_reward: bool, obs_stats: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        obs = arrays["observations"].astype(np.float32)
        self.mean, self.std = obs_stats or (obs.mean(0), obs.std(0) + 1e-3)
        self.reward_scale = 1.0
        if normalize_reward:
            rets = episode_returns(arrays["rewards"], arrays["terminals"] | arrays["timeouts"])
            spread = float(rets.max() - rets.min()) if len(rets) > 1 else 0.0
            self.reward_scale = 1000.0 / spread if spread > 0 else 1.0
        self.device = device
        self._buf: dict[str, torch.Tensor] = {}
        self._n = 0
        self.add(arrays)

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> OfflineData:
        """The statistics of a saved agent (``obs_mean``, ``obs_std``, ``action_low``, ``action_high``,
        ``reward_scale``) with no transitions: enough to act with the loaded networks, not to train."""
        self = cls.__new__(cls)
        self.low, self.high = (np.asarray(state[k].cpu(), np.float32) for k in ("action_low", "action_high"))
        self.mean, self.std = (np.asarray(state[k].cpu(), np.float32) for k in ("obs_mean", "obs_std"))
        self.reward_scale = float(state["reward_scale"]) if "reward_scale" in state else 1.0
        self.device, self._buf, self._n = device, {}, 0
        return self

    @property
    def t(self) -> dict[str, torch.Tensor]:
        """The stored transitions as tensors ``(N, ...)`` (views of the first ``N`` rows of the buffers)."""
        return {k: v[: self._n] for k, v in self._buf.items()}

    def norm_obs(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return (o - torch.as_tensor(self.mean, device=self.device)) / torch.as_tensor(self.std, device=self.device)

    def scale_action(self, act: np.ndarray) -> np.ndarray:
        return 2.0 * (act - self.low) / (self.high - self.low) - 1.0

    def unscale_action(self, act: torch.Tensor) -> np.ndarray:
        return self.low + (act.detach().cpu().numpy() + 1.0) * 0.5 * (self.high - self.low)

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        new = {"obs": self.norm_obs(arrays["observations"]),
               "act": torch.as_tensor(np.clip(self.scale_action(arrays["actions"]), -1, 1), dtype=torch.float32, device=self.device),
               "rew": torch.as_tensor(arrays["rewards"] * self.reward_scale, dtype=torch.float32, device=self.device),
               "next_obs": self.norm_obs(arrays["next_observations"]),
               "term": torch.as_tensor(arrays["terminals"], dtype=torch.float32, device=self.device)}
        m = int(new["obs"].shape[0])
        if not self._buf or self._n + m > self._buf["obs"].shape[0]:  # grow by doubling: O(1) amortised per step online
            cap = max(self._n + m, 2 * (self._buf["obs"].shape[0] if self._buf else 0))
            grown = {k: torch.empty((cap, *v.shape[1:]), dtype=v.dtype, device=self.device) for k, v in new.items()}
            for k in grown:
                if self._buf:
                    grown[k][: self._n] = self._buf[k][: self._n]
            self._buf = grown
        for k, v in new.items():
            self._buf[k][self._n : self._n + m] = v
        self._n += m

    def __len__(self) -> int:
        return self._n

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, len(self), (n,), generator=generator).to(self.device)
        return {k: v[idx] for k, v in self._buf.items()}


def episode_returns(rewards: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Undiscounted returns of the episodes in flat ``rewards`` whose last steps are marked by ``ends``."""
    out, acc = [], 0.0
    for r, e in zip(rewards, ends, strict=True):
        acc += float(r)
        if e:
            out.append(acc)
            acc = 0.0
    return np.asarray(out)


class ScaledPolicy(nn.Module):
    """``obs (B, obs) -> env-unit actions (B, act)``: standardise with the dataset statistics, run ``body``
    (an action in [-1, 1]), clip and rescale to the action bounds. The export module of the offline agents."""

    def __init__(self, data: OfflineData, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        for name, value in (("mean", data.mean), ("std", data.std), ("low", data.low), ("high", data.high)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32).clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.body((obs - self.mean) / self.std).clamp(-1.0, 1.0)
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)


def as_array_in(obs: np.ndarray | torch.Tensor, act: np.ndarray, device: torch.device) -> np.ndarray | torch.Tensor:
    """Return ``act`` as the caller passed ``obs``: a tensor on ``device`` for a tensor, else an array."""
    return torch.as_tensor(act, device=device) if isinstance(obs, torch.Tensor) else act


def flat_dim(space: Any) -> int:
    """The flat size of a Box space (what the offline agents' networks take)."""
    return int(np.prod(space.shape))


def offline_build(cls: type) -> Callable[..., Any]:
    """The registry's ``build`` for an offline agent class ``cls(cfg, obs_dim, act_dim, device, seed)``."""

    def build(cfg: Any, observation_space: Any, action_space: Any, device: torch.device, seed: int) -> Any:
        agent = cls(cfg, flat_dim(observation_space), flat_dim(action_space), device, seed)
        agent.observation_space, agent.action_space = observation_space, action_space
        return agent

    return build


class IQL:
    """IQL agent: ``learn_offline(data, steps)``, ``learn_online(env_id, steps)``, ``act(obs)``."""

    algo = "iql"

    def __init__(self, cfg: IQLConfig, obs_dim: int, act_dim: int, device: str | torch.device = "cpu", seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.cfg, self.device = cfg, resolve_device(device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = GaussianPolicy(obs_dim, act_dim, cfg.hidden_sizes).to(self.device)
        self.q = _Twin(obs_dim, act_dim, cfg.hidden_sizes).to(self.device)
        self.q_target = _Twin(obs_dim, act_dim, cfg.hidden_sizes).to(self.device)
        self.q_target.load_state_dict(self.q.state_dict())
        self.q_target.requires_grad_(False)
        self.v = MLP(obs_dim, 1, cfg.hidden_sizes).to(self.device)
        self.actor_opt, self.q_opt, self.v_opt = adam(self.actor.parameters(), cfg.learning_rate), adam(self.q.parameters(), cfg.learning_rate), adam(self.v.parameters(), cfg.learning_rate)
        self.generator = torch.Generator().manual_seed(seed)
        self.data: OfflineData | None = None
        self.steps = 0
        self._sched: torch.optim.lr_scheduler.LRScheduler | None = None
        self._offline_end = 0

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One step on the value, the critics and the policy; returns the losses."""
        stats, adv = self.update_critics(batch)
        pi_loss = awr_policy_loss(self.actor.log_prob(batch["obs"], batch["act"]), adv, self.cfg.beta, self.cfg.max_weight)
        self.actor_opt.zero_grad(set_to_none=True)
        pi_loss.backward()
        self.actor_opt.step()
        self.steps += 1
        return {**stats, "actor_loss": float(pi_loss.detach())}

    def update_critics(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], torch.Tensor]:
        """One step on the value and the critics; returns the losses and the advantages
        ``Q_target(s, a) - V(s)`` ``(B,)`` (no gradient) that the policy step weights by."""
        cfg = self.cfg
        with torch.no_grad():
            tq = torch.minimum(*self.q_target(batch["obs"], batch["act"]))
            next_v = self.v(batch["next_obs"]).squeeze(-1)
        v = self.v(batch["obs"]).squeeze(-1)
        v_loss = expectile_loss(tq - v, cfg.expectile)
        self.v_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        self.v_opt.step()
        q1, q2 = self.q(batch["obs"], batch["act"])
        q_loss = iql_q_loss(q1, q2, batch["rew"], batch["term"], next_v, cfg.gamma)
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        soft_update(self.q_target, self.q, cfg.tau)
        return {"value_loss": float(v_loss.detach()), "q_loss": float(q_loss.detach())}, (tq - v).detach()

    def set_data(self, arrays: dict[str, np.ndarray], low: np.ndarray, high: np.ndarray) -> None:
        self.data = OfflineData(arrays, low, high, self.device, self.cfg.normalize_reward)

    def learn_offline(self, steps: int, total_steps: int | None = None, log: Callable[[int, dict[str, float]], None] | None = None,
                      log_every: int = 1000) -> None:
        """``steps`` updates on the dataset (set with :meth:`set_data`). The actor's lr follows one cosine
        decay over ``total_steps`` (default ``steps``; pass the phase's total when calling in chunks) and
        returns to the base rate when the phase ends, for online fine-tuning."""
        if self.data is None:
            raise RuntimeError("call set_data(dataset arrays, action low, action high) before learn_offline.")
        if self._sched is None:
            self._offline_end = self.steps + (total_steps or steps)
            self._sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_opt, max(1, total_steps or steps))
        for i in range(steps):
            stats = self.update(self.data.sample(self.cfg.batch_size, self.generator))
            self._sched.step()
            if log is not None and (i + 1) % log_every == 0:
                log(i + 1, stats)
        if self.steps >= self._offline_end:
            for g in self.actor_opt.param_groups:
                g["lr"] = self.cfg.learning_rate

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True) -> np.ndarray | torch.Tensor:
        """Env-unit actions ``(B, act)`` for raw observations ``(B, obs)`` (a tensor for a tensor, an array for an array)."""
        assert self.data is not None, "set_data or load_state_dict first"
        o = self.data.norm_obs(obs)
        a = self.actor(o) if deterministic else self.actor.sample(o, None)
        return as_array_in(obs, self.data.unscale_action(a).astype(np.float32), self.device)

    def deploy_module(self) -> nn.Module:
        """``obs (B, obs) -> actions (B, act)`` (the deterministic actor with the data statistics inside), for export."""
        assert self.data is not None, "set_data or load_state_dict first"
        return ScaledPolicy(self.data, self.actor).eval()

    def learn_online(self, env_id: str, steps: int, seed: int = 0, total_steps: int | None = None,
                     log: Callable[[int, dict[str, float]], None] | None = None, log_every: int = 1000) -> list[float]:
        """``steps`` env steps with the stochastic policy, one update per step on dataset + new data;
        returns the finished episodes' returns. Truncations bootstrap (only terminations cut).
        ``total_steps`` is accepted for the common interface (IQL's online phase has no schedule)."""
        import gymnasium as gym

        assert self.data is not None
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        returns, ep_ret = [], 0.0
        for i in range(steps):
            a = self.act(obs[None], deterministic=False)[0]
            nxt, r, term, trunc, _ = env.step(a)
            self.data.add({"observations": obs[None], "actions": a[None], "rewards": np.array([r]), "next_observations": nxt[None],
                           "terminals": np.array([term])})
            ep_ret += float(r)
            obs = nxt
            if term or trunc:
                returns.append(ep_ret)
                ep_ret = 0.0
                obs, _ = env.reset()
            stats = self.update(self.data.sample(self.cfg.batch_size, self.generator))
            if log is not None and (i + 1) % log_every == 0:
                log(i + 1, {**stats, "episode_return": returns[-1] if returns else float("nan")})
        env.close()
        return returns

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, the sampling generator and the dataset statistics the networks were
        trained with; :meth:`load_state_dict` restores all but the statistics (they come from the data)."""
        assert self.data is not None
        return {"actor": self.actor.state_dict(), "q": self.q.state_dict(), "q_target": self.q_target.state_dict(),
                "v": self.v.state_dict(), "obs_mean": torch.as_tensor(self.data.mean), "obs_std": torch.as_tensor(self.data.std),
                "action_low": torch.as_tensor(self.data.low), "action_high": torch.as_tensor(self.data.high),
                "reward_scale": torch.tensor(self.data.reward_scale), "steps": torch.tensor(self.steps),
                "optim": {"actor": self.actor_opt.state_dict(), "q": self.q_opt.state_dict(), "v": self.v_opt.state_dict()},
                "generator": self.generator.get_state(),
                # the offline phase's cosine schedule, so a run killed half-way resumes on the same learning rates
                "schedule": {"offline_end": self._offline_end, "sched": self._sched.state_dict() if self._sched else {}}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (call :meth:`set_data` with the same dataset first), e.g. to
        fine-tune online from a finished offline phase. Without data the saved statistics are used:
        the agent can act and export, not train."""
        if self.data is None:
            self.data = OfflineData.from_state(state, self.device)
        check_same_data(self.data, state)
        self.actor.load_state_dict(state["actor"])
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.v.load_state_dict(state["v"])
        self.steps = int(state["steps"])
        schedule = state.get("schedule", {})
        self._offline_end, self._sched = int(schedule.get("offline_end", 0)), None
        if schedule.get("sched"):  # made before the optimizer's state is loaded: making it resets the lr
            self._sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_opt, int(schedule["sched"]["T_max"]))
            self._sched.load_state_dict(schedule["sched"])
        for opt, key in ((self.actor_opt, "actor"), (self.q_opt, "q"), (self.v_opt, "v")):
            opt.load_state_dict(state["optim"][key])
        self.generator.set_state(state["generator"])


AGENTS.register("iql", AgentSpec(
    name="iql", config_cls=IQLConfig, agent_cls=IQL, learns_from="dataset", build=offline_build(IQL),
    summary="Implicit Q-Learning: offline on a dataset, then online fine-tuning",
))
