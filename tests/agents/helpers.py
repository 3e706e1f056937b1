"""Helpers for agent tests: train through the production entry point, optionally crashing mid-run."""

from __future__ import annotations

import dataclasses

import torch

import rlsuite.agents.train as train_mod
from rlsuite.agents import AGENTS
from rlsuite.agents.train import load_agent, train
from rlsuite.core.run import RunConfig


class SimulatedCrash(RuntimeError):
    pass


def train_run(monkeypatch, algo_name, run_dir, crash_after_steps=None, **run_kwargs):
    """Run ``rlsuite train`` programmatically; with ``crash_after_steps`` the env raises mid-run.

    ``monkeypatch`` may be None (as in ``scripts/check_seeds.py``) when ``crash_after_steps`` is None."""
    algo_overrides = run_kwargs.pop("algo", {})
    spec = AGENTS.get(algo_name)
    run_cfg = RunConfig(run_dir=str(run_dir), progress=False, tensorboard=False, **run_kwargs)
    cfg = dataclasses.replace(spec.config_cls(**spec.presets.get(run_cfg.env, {})), **algo_overrides)
    if crash_after_steps is not None:
        if monkeypatch is None:
            raise ValueError("crash_after_steps needs pytest's monkeypatch fixture to undo the patched env factory.")
        real = train_mod.make_vec_env

        def crashing(*a, **k):
            env = real(*a, **k)
            inner_step, count = env.step, [0]

            def step(action):
                count[0] += 1
                if count[0] > crash_after_steps:
                    raise SimulatedCrash("simulated crash")
                return inner_step(action)

            env.step = step
            return env

        monkeypatch.setattr(train_mod, "make_vec_env", crashing)
    try:
        return train(spec, run_cfg, cfg)
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()


def params_of(run_dir):
    agent, _ = load_agent(run_dir)
    return {k: v.clone() for k, v in agent.state_dict()["weights"].items() for k, v in _flat(k, v)}


def _flat(prefix, obj):
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    out = []
    for k, v in obj.items():
        out += _flat(f"{prefix}.{k}", v)
    return out


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"
