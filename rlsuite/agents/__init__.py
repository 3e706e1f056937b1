"""Agents, one file per algorithm; each registers itself in :data:`AGENTS` on import."""

from __future__ import annotations

import importlib

from rlsuite.agents.registry import AGENTS, MODULES, AgentSpec, build_agent, preset_config

for _module in MODULES:
    importlib.import_module(f"rlsuite.agents.{_module}")

__all__ = ["AGENTS", "AgentSpec", "build_agent", "preset_config"]
