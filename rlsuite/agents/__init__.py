"""Agents, one file per algorithm; each registers itself in :data:`AGENTS` on import."""

from __future__ import annotations

from rlsuite.agents import ppo as _ppo  # noqa: F401
from rlsuite.agents import sac as _sac  # noqa: F401
from rlsuite.agents.registry import AGENTS, AgentSpec, preset_config

__all__ = ["AGENTS", "AgentSpec", "preset_config"]
