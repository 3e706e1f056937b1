"""The agent registry: one spec per algorithm, whatever it learns from.

Every algorithm file registers an :class:`AgentSpec` in :data:`AGENTS`. The spec says what the
algorithm learns from (``learns_from``):

- ``"env"``: an environment (PPO, SAC, TGPO, ...): ``agent.learn(env, total_steps, run, seed)``;
- ``"dataset"``: a dataset, then optionally an environment (BC, IQL, Uni-O4):
  ``agent.set_data(arrays, low, high)``, ``agent.learn_offline(steps)``, ``agent.learn_online(env_id, steps)``;
- ``"instances"``: sets of combinatorial instances solved by a reference solver (BQ-NCO):
  ``agent.prepare_data(instances, solutions)`` then
  ``agent.learn(data, total_steps, on_checkpoint, checkpoint_every, on_log, time_limit_s)``.

Whatever the source, every agent is built the same way (:func:`build_agent`) and implements:

- ``act(obs, deterministic=...)``: actions for a batch of observations (instance solvers: ``solve``);
- ``state_dict()`` / ``load_state_dict(state)``: everything training needs to continue bit for bit;
  ``load_state_dict`` on a freshly built agent is enough to act (no dataset or env needed);
- ``deploy_module()`` and ``obs_dim`` where the policy is a network over observations (what
  ``rlsuite export`` writes); ``export_unavailable`` (a sentence) where it is not;
- optionally, for env agents: ``remote_envs = True`` on the class when ``learn`` uses its env through the
  batched-env contract alone (it then trains on rollout workers, ``--workers``), and
  ``learn_async(rollouts, total_steps, run, seed)`` for asynchronous rollout workers (``--async-rollouts``;
  :mod:`rlsuite.core.rollout_workers`).

The drivers that run each kind (``rlsuite.agents.train`` for envs, ``rlsuite.offline.train`` for
datasets, ``rlsuite.envs.cop.train`` for instance sets) and ``rlsuite.runs`` (train / load / evaluate /
export any run directory) rely on nothing else, so a new algorithm touches its own file only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch

from rlsuite.core.registry import Registry

LEARNS_FROM = ("env", "dataset", "instances")


def _default_build(spec: AgentSpec, config: Any, observation_space: gym.Space, action_space: gym.Space,
                   device: torch.device, seed: int) -> Any:
    return spec.agent_cls(config, observation_space, action_space, device)


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """How to build and train one algorithm.

    Attributes:
        name: registry key (``ppo``).
        config_cls: the frozen config dataclass.
        agent_cls: the agent class.
        summary: one line for ``rlsuite list``.
        learns_from: ``env``, ``dataset`` or ``instances`` (see the module docstring).
        presets: per-env-id overrides of config defaults (tuned hyper-parameters).
        default_env: the env used when ``--env`` is not given (``env`` agents).
        build: ``build(config, observation_space, action_space, device, seed) -> agent``; default
            ``agent_cls(config, observation_space, action_space, device)``. Spaces are single-env spaces
            (instance solvers: ``None``).
        env_kwargs: ``env_kwargs(config) -> dict``: keyword arguments of the env the agent trains on
            (e.g. TGPO's task); default none.
        num_envs: ``num_envs(config) -> int``: parallel envs (default ``config.num_envs``).
    """

    name: str
    config_cls: type
    agent_cls: type
    summary: str
    learns_from: str = "env"
    presets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    default_env: str = ""
    build: Callable[..., Any] | None = None
    env_kwargs: Callable[[Any], dict[str, Any]] | None = None
    num_envs: Callable[[Any], int] | None = None

    def __post_init__(self) -> None:
        if self.learns_from not in LEARNS_FROM:
            raise ValueError(f"agent {self.name!r}: learns_from={self.learns_from!r}; allowed: {', '.join(LEARNS_FROM)}.")


AGENTS: Registry[AgentSpec] = Registry("agent")

# the algorithm modules; importing one registers its spec (rlsuite.agents.__init__ imports them all)
MODULES = ("ppo", "sac", "tgpo", "bc", "iql", "uni_o4", "bq_nco", "subpo", "dr_rpo", "lsvi_ucb", "robust_mbrl", "ospo", "dispatch", "rlpd", "expo", "fast_td3")


def preset_config(spec: AgentSpec, env_id: str) -> Any:
    """The config with ``spec``'s preset for ``env_id`` applied (plain defaults when there is none)."""
    return spec.config_cls(**spec.presets.get(env_id, {}))


def build_agent(spec: AgentSpec, config: Any, observation_space: gym.Space | None, action_space: gym.Space | None,
                device: str | torch.device = "cpu", seed: int = 0) -> Any:
    """A fresh agent of ``spec`` for these single-env spaces (``None`` for instance solvers)."""
    from rlsuite.core.seeding import resolve_device

    device = resolve_device(device)
    if spec.build is not None:
        return spec.build(config, observation_space, action_space, device, seed)
    return _default_build(spec, config, observation_space, action_space, device, seed)


def env_kwargs_of(spec: AgentSpec, config: Any) -> dict[str, Any]:
    """The env keyword arguments ``spec``'s agent trains with (empty for most)."""
    return dict(spec.env_kwargs(config)) if spec.env_kwargs is not None else {}


def num_envs_of(spec: AgentSpec, config: Any) -> int:
    """How many parallel envs ``spec``'s agent trains on."""
    return int(spec.num_envs(config)) if spec.num_envs is not None else int(config.num_envs)
