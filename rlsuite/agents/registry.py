"""The agent registry: ``rlsuite train <name>`` looks names up here."""

from __future__ import annotations

import dataclasses
from typing import Any

from rlsuite.core.registry import Registry


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """How to build and train one algorithm.

    Attributes:
        name: registry key (``ppo``).
        config_cls: the frozen config dataclass.
        agent_cls: the agent class, ``agent_cls(config, observation_space, action_space, device)``.
        presets: per-env-id overrides of config defaults (tuned hyper-parameters).
        summary: one line for ``rlsuite list``.
        default_env: the env used when ``--env`` is not given.
    """

    name: str
    config_cls: type
    agent_cls: type
    presets: dict[str, dict[str, Any]]
    summary: str
    default_env: str


AGENTS: Registry[AgentSpec] = Registry("agent")


def preset_config(spec: AgentSpec, env_id: str) -> Any:
    """The config with ``spec``'s preset for ``env_id`` applied (plain defaults when there is none)."""
    return spec.config_cls(**spec.presets.get(env_id, {}))
