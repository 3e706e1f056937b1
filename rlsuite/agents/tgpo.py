"""TGPO: Temporal Grounded Policy Optimization for Signal Temporal Logic tasks (and TGPO*).

Paper: Meng, Chen, Fan, "TGPO: Temporal Grounded Policy Optimization for Signal Temporal Logic Tasks",
2025. Its code is not public: this is a reconstruction from the paper's abstract and summaries, and
every choice the text does not fix is ours.

1. **Temporal grounding and stage-wise reward** live with the task, in the env: an STL env made with
   ``reward_mode="tgpo"`` (:class:`rlsuite.envs.stl.grounding.GroundedSTLVecEnv`) grounds the formula into
   timed reaches and invariances for an allocation ``u`` (one number in [0, 1] per F, U and or-node),
   augments the observation with the stage, deadlines and allocated times, and pays the stage-wise reward.
   This agent only needs the env's ``grounding.num_slots``, ``set_allocation(u)``,
   ``start_obs_for(base_obs, u)``, ``uniform_allocations()`` and its ``allocation_sampler`` hook.
2. **Allocation sampling.** TGPO: uniform ``u`` (the env's default). TGPO* (``sampler="mh"``): one
   Metropolis-Hastings chain per env with target ``exp(V(s_0, u) / T_mh)``, Gaussian proposals on ``u``
   clipped to [0, 1], ``mh_steps`` steps with the current critic at each episode start.
3. **Low level:** PPO (:mod:`rlsuite.agents.ppo`) on the augmented observation, conditioned on time and
   the allocation.
4. **Inference** (:meth:`TGPO.solve`): draw ``num_allocations`` allocations (uniform, or an MH chain),
   score each by the critic at the start state, roll out the deterministic policy with the best one;
   success is hard robustness > 0 of the whole formula.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from rlsuite.agents.ppo import PPO, PPOConfig
from rlsuite.core.vec_env import TorchVecEnv


@dataclasses.dataclass(frozen=True)
class TGPOConfig:
    """TGPO settings: allocation sampling, inference and the PPO underneath (the stage reward weights
    belong to the env: ``StageWeights`` in ``rlsuite.envs.stl.grounding``)."""

    sampler: str = "uniform"
    """uniform (TGPO) | mh (TGPO*: Metropolis-Hastings guided by the critic)."""
    mh_steps: int = 4
    """MH steps per chain at each episode start."""
    mh_proposal_std: float = 0.1
    """Std of the Gaussian proposal on the allocation u in [0, 1]."""
    mh_temperature: float = 1.0
    """T_mh in exp(V / T_mh)."""
    num_allocations: int = 64
    """Allocations scored by the critic at inference."""
    ppo: PPOConfig = PPOConfig(num_envs=64, num_steps=63, num_minibatches=4, update_epochs=10, learning_rate=3e-4,
                               gamma=0.99, gae_lambda=0.95, ent_coef=0.0, anneal_lr=False)
    """The PPO underneath (num_steps = horizon - 1 gives one episode per rollout)."""

    def __post_init__(self) -> None:
        if self.sampler not in ("uniform", "mh"):
            raise ValueError(f"unknown allocation sampler {self.sampler!r}; allowed: uniform, mh.")
        if self.mh_steps < 0 or self.mh_proposal_std <= 0 or self.mh_temperature <= 0 or self.num_allocations < 1:
            raise ValueError("mh_steps >= 0, mh_proposal_std > 0, mh_temperature > 0 and num_allocations >= 1 are required.")


REQUIRED = ("grounding", "set_allocation", "start_obs_for", "uniform_allocations", "allocation_sampler")


class TGPO:
    """TGPO / TGPO* on one STL task (see the module docstring).

    Args:
        config: settings.
        env: a grounded STL env (``reward_mode="tgpo"``), e.g.
            ``make_vec_env("rlsuite/STL-Linear-v0", 64, spec=..., reward_mode="tgpo")``.
        device: where the networks live.
        seed: seeds the allocation draws of the MH chains and of inference.
    """

    def __init__(self, config: TGPOConfig, env: TorchVecEnv, device: str | torch.device = "cpu", seed: int = 0) -> None:
        missing = [name for name in REQUIRED if not hasattr(env, name)]
        if missing:
            raise TypeError(f"TGPO needs a grounded STL env (made with reward_mode='tgpo'); {type(env).__name__} lacks {missing}.")
        if config.ppo.num_envs != env.num_envs:
            config = dataclasses.replace(config, ppo=dataclasses.replace(config.ppo, num_envs=env.num_envs))
        self.config, self.env = config, env
        self.rng = np.random.default_rng(seed)
        self.ppo = PPO(config.ppo, env.single_observation_space, env.single_action_space, device)
        if config.sampler == "mh":
            env.allocation_sampler = self._mh_allocations

    def _value(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.ppo.policy.value(obs.to(self.ppo.device)).float().cpu()

    def _proposal(self, u: torch.Tensor) -> torch.Tensor:
        noise = torch.tensor(self.rng.standard_normal(u.shape), dtype=torch.float32)
        return (u + self.config.mh_proposal_std * noise).clamp(0, 1)

    def _accept(self, v_new: torch.Tensor, v_old: torch.Tensor) -> torch.Tensor:
        draw = torch.tensor(self.rng.random(v_new.shape[0]), dtype=torch.float32)
        return draw < torch.exp((v_new - v_old) / self.config.mh_temperature)

    def _mh_allocations(self, base_obs: torch.Tensor) -> torch.Tensor:
        """Advance each env's chain ``mh_steps`` steps under the current critic."""
        env = self.env
        u = env.u.clone()
        v = self._value(env.start_obs_for(base_obs, u))
        for _ in range(self.config.mh_steps):
            prop = self._proposal(u)
            vp = self._value(env.start_obs_for(base_obs, prop))
            acc = self._accept(vp, v)
            u, v = torch.where(acc[:, None], prop, u), torch.where(acc, vp, v)
        return u

    def learn(self, total_steps: int, run: Any = None, seed: int = 0) -> TGPO:
        """Train the PPO policy on the grounded env for ``total_steps`` env steps."""
        self.ppo.learn(self.env, total_steps, run, seed=seed)
        return self

    @torch.no_grad()
    def solve(self, seed: int = 0, sampler: str | None = None) -> dict[str, torch.Tensor]:
        """One episode per env from fresh starts: pick an allocation by the critic, roll out the
        deterministic policy. Returns ``robustness`` and ``success`` ``(N,)`` and the chosen ``allocation``."""
        env, cfg = self.env, self.config
        mh = (sampler or cfg.sampler) == "mh"
        base_obs, _ = env.base.reset(seed=seed)
        u = env.uniform_allocations()
        v = self._value(env.start_obs_for(base_obs, u))
        best_u, best_v = u.clone(), v.clone()
        for _ in range(cfg.num_allocations - 1):
            prop = self._proposal(u) if mh else env.uniform_allocations()
            vp = self._value(env.start_obs_for(base_obs, prop))
            take = self._accept(vp, v) if mh else torch.ones_like(vp, dtype=torch.bool)
            u, v = torch.where(take[:, None], prop, u), torch.where(take, vp, v)
            better = v > best_v
            best_u, best_v = torch.where(better[:, None], u, best_u), torch.where(better, v, best_v)
        env.set_allocation(best_u)
        obs = env.observe(base_obs)
        info: dict[str, Any] = {}
        for _ in range(env.H - 1):
            obs, _, _, _, info = env.step(self.ppo.act(obs, deterministic=True))
        return {"robustness": info["robustness"], "success": info["success"], "allocation": best_u}

    def state_dict(self) -> dict[str, Any]:
        """The PPO weights, optimizer and counters."""
        return self.ppo.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ppo.load_state_dict(state)

    def training_state(self) -> dict[str, Any]:
        """What exact resume needs beyond :meth:`state_dict`: the env (allocations included), its current
        observation and the MH chains' random state."""
        st = self.rng.bit_generator.state
        rng = {"state": str(st["state"]["state"]), "inc": str(st["state"]["inc"]), "has_uint32": int(st["has_uint32"]),
               "uinteger": int(st["uinteger"])}
        return {"ppo": self.ppo.training_state(self.env), "rng": rng}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.ppo.load_training_state(state["ppo"], self.env)
        r = state["rng"]
        self.rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": int(r["state"]), "inc": int(r["inc"])},
                                        "has_uint32": int(r["has_uint32"]), "uinteger": int(r["uinteger"])}
