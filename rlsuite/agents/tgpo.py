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

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.ppo import PPO, PPOConfig
from rlsuite.agents.registry import AGENTS, AgentSpec
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
    task_family: str = "reach"
    """Generated task family (reach, andor, chain, until, mixed) when no spec is given."""
    task_seed: int = 0
    """Seed of the generated task."""
    spec: str | None = None
    """An STL formula over x, y (z) and d0, d1, ... instead of a generated task, e.g. "F[10,40](d0 <= 1) & G(d1 >= 1)"."""
    objects: str = ""
    """Discs for spec: 'cx,cy,r;cx,cy,r' (d0, d1, ... are the distances to them)."""
    horizon: int = 64
    """Episode length in steps (set ppo's num_steps to horizon - 1 for one episode per rollout)."""
    ppo: PPOConfig = PPOConfig(num_envs=64, num_steps=63, num_minibatches=4, update_epochs=10, learning_rate=3e-4,
                               gamma=0.99, gae_lambda=0.95, ent_coef=0.0, anneal_lr=False)
    """The PPO underneath (num_steps = horizon - 1 gives one episode per rollout)."""

    def __post_init__(self) -> None:
        if self.sampler not in ("uniform", "mh"):
            raise ValueError(f"unknown allocation sampler {self.sampler!r}; allowed: uniform, mh.")
        if self.mh_steps < 0 or self.mh_proposal_std <= 0 or self.mh_temperature <= 0 or self.num_allocations < 1:
            raise ValueError("mh_steps >= 0, mh_proposal_std > 0, mh_temperature > 0 and num_allocations >= 1 are required.")
        if self.horizon < 2:
            raise ValueError(f"horizon must be >= 2 steps, got {self.horizon}.")
        parse_objects(self.objects)


def parse_objects(text: str) -> list[tuple[float, float, float]]:
    """``'cx,cy,r;cx,cy,r'`` -> discs ``[(cx, cy, r), ...]``; a clear error for anything else."""
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        try:
            cx, cy, r = (float(v) for v in part.split(","))
        except ValueError:
            raise ValueError(f"objects takes 'cx,cy,r;cx,cy,r;...' (discs d0, d1, ...), got {part!r}.") from None
        out.append((cx, cy, r))
    return out


def tgpo_env_kwargs(config: TGPOConfig) -> dict[str, Any]:
    """The grounded STL env's keyword arguments for ``config``'s task (for ``make_vec_env``)."""
    return {"reward_mode": "tgpo", "family": config.task_family, "task_seed": config.task_seed, "spec": config.spec,
            "objects": parse_objects(config.objects), "horizon": config.horizon}


REQUIRED = ("grounding", "set_allocation", "start_obs_for", "uniform_allocations", "allocation_sampler")


class TGPO:
    """TGPO / TGPO* on one STL task (see the module docstring).

    Args:
        config: settings (the task is part of it: ``task_family``, ``spec``, ``objects``, ...).
        observation_space, action_space: the grounded env's single-env spaces.
        device: where the networks live.
        seed: seeds the allocation draws of the MH chains and of inference.

    The env is given to :meth:`learn` (or :meth:`attach`): a grounded STL env (``reward_mode="tgpo"``), e.g.
    ``make_vec_env("rlsuite/STL-Linear-v0", 64, **tgpo_env_kwargs(config))``.
    """

    algo = "tgpo"

    def __init__(self, config: TGPOConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        self.config = config
        self.observation_space, self.action_space = observation_space, action_space
        self.rng = np.random.default_rng(seed)
        self.ppo = PPO(config.ppo, observation_space, action_space, device)
        self.device, self.obs_dim = self.ppo.device, self.ppo.obs_dim
        self.env: TorchVecEnv | None = None

    @property
    def global_step(self) -> int:
        return self.ppo.global_step

    def attach(self, env: TorchVecEnv) -> None:
        """Use ``env`` (a grounded STL env) for training and :meth:`solve`; TGPO* hooks its sampler."""
        missing = [name for name in REQUIRED if not hasattr(env, name)]
        if missing:
            raise TypeError(f"TGPO needs a grounded STL env (made with reward_mode='tgpo'); {type(env).__name__} lacks {missing}.")
        if env.num_envs != self.config.ppo.num_envs:
            raise ValueError(f"the env has {env.num_envs} parallel envs but the config's ppo.num_envs is "
                             f"{self.config.ppo.num_envs}; make them equal.")
        self.env = env
        if self.config.sampler == "mh":
            env.allocation_sampler = self._mh_allocations

    def _require_env(self) -> TorchVecEnv:
        if self.env is None:
            raise RuntimeError("TGPO has no env yet: call learn(env, ...) or attach(env) first.")
        return self.env

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions ``(B, act)`` for grounded observations ``(B, obs)`` (the low-level PPO policy)."""
        return self.ppo.act(obs, deterministic)

    def deploy_module(self) -> torch.nn.Module:
        """The low-level policy over grounded observations, for export."""
        return self.ppo.deploy_module()

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
        env = self._require_env()
        u = env.u.clone()
        v = self._value(env.start_obs_for(base_obs, u))
        for _ in range(self.config.mh_steps):
            prop = self._proposal(u)
            vp = self._value(env.start_obs_for(base_obs, prop))
            acc = self._accept(vp, v)
            u, v = torch.where(acc[:, None], prop, u), torch.where(acc, vp, v)
        return u

    def budget_note(self, total_steps: int) -> str | None:
        """The PPO underneath trains whole rollouts: the sentence saying how far ``total_steps`` is rounded up, or None."""
        return self.ppo.budget_note(total_steps)

    def learn(self, env: TorchVecEnv, total_steps: int, run: Any = None, seed: int = 0) -> TGPO:
        """Train the PPO policy on the grounded ``env`` until ``total_steps`` env steps (continues a restored run)."""
        self.attach(env)
        self.ppo.learn(env, total_steps, _AsOwner(run, self) if run is not None else None, seed=seed)
        return self

    def success_rate(self, seed: int = 10_000) -> float:
        """Share of fresh starts (one per parallel env) on which :meth:`solve` satisfies the formula."""
        out = float(self.solve(seed=seed)["success"].float().mean())
        self.ppo._obs = None  # solve() used the env: training continues from a fresh reset
        return out

    @torch.no_grad()
    def solve(self, seed: int = 0, sampler: str | None = None) -> dict[str, torch.Tensor]:
        """One episode per env from fresh starts: pick an allocation by the critic, roll out the
        deterministic policy. Returns ``robustness`` and ``success`` ``(N,)`` and the chosen ``allocation``."""
        env, cfg = self._require_env(), self.config
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

    def training_state(self, env: TorchVecEnv) -> dict[str, Any]:
        """What exact resume needs beyond :meth:`state_dict`: the env (allocations included), its current
        observation and the MH chains' random state."""
        st = self.rng.bit_generator.state
        rng = {"state": str(st["state"]["state"]), "inc": str(st["state"]["inc"]), "has_uint32": int(st["has_uint32"]),
               "uinteger": int(st["uinteger"])}
        return {"ppo": self.ppo.training_state(env), "rng": rng}

    def load_training_state(self, state: dict[str, Any], env: TorchVecEnv) -> None:
        self.attach(env)
        self.ppo.load_training_state(state["ppo"], env)
        r = state["rng"]
        self.rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": int(r["state"]), "inc": int(r["inc"])},
                                        "has_uint32": int(r["has_uint32"]), "uinteger": int(r["uinteger"])}


class _AsOwner:
    """Forwards the PPO loop's per-iteration hook to the run with the TGPO agent as the one to checkpoint."""

    def __init__(self, run: Any, owner: TGPO) -> None:
        self.run, self.owner, self.logger = run, owner, run.logger

    def step_done(self, agent: Any, env: TorchVecEnv) -> None:
        self.run.step_done(self.owner, env)


AGENTS.register("tgpo", AgentSpec(
    name="tgpo", config_cls=TGPOConfig, agent_cls=TGPO, learns_from="env",
    summary="TGPO / TGPO* (sampler mh) on a Signal Temporal Logic task (rlsuite/STL-*-v0 envs)",
    default_env="rlsuite/STL-Linear-v0",
    build=lambda cfg, obs_space, act_space, device, seed: TGPO(cfg, obs_space, act_space, device, seed),
    env_kwargs=tgpo_env_kwargs, num_envs=lambda cfg: cfg.ppo.num_envs,
))
