"""The driver of agents that learn from instance sets (``learns_from="instances"``, e.g. BQ-NCO).

A run directory holds ``config.json``, ``data/`` (the generated instances and their reference
solutions, written once, so a resumed run trains on exactly the same set), ``metrics.csv`` and
TensorBoard events in ``tb/`` (``train/imitation_loss`` every 100 optimizer steps, or ten times in a
shorter run; ``eval/greedy_cost`` and ``eval/nn_cost`` at the end), ``curve.png`` (the imitation loss
against optimizer steps) and ``checkpoints/`` (safetensors + JSON, ``latest.json``), like every rlsuite
run: ``rlsuite eval RUN`` solves fresh instances with it, ``--resume`` continues it bit for bit.

The agent is passed in (envs never import agents): it needs ``cfg.problem``, ``prepare_data(inst,
solutions)``, ``learn(data, total_steps, on_checkpoint, checkpoint_every, on_log, log_every,
time_limit_s)``, ``solve(env)``, ``state_dict()`` / ``load_state_dict()`` and ``global_step``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlsuite.core.checkpoint import atomic_write_json, load_checkpoint, save_checkpoint, write_latest
from rlsuite.core.config import config_to_dict
from rlsuite.core.logger import Logger
from rlsuite.core.run import check_resume_budget, plot_learning_curve
from rlsuite.core.seeding import get_rng_state, set_rng_state
from rlsuite.envs.cop.dataset import load_instances, load_labels, save_instances, save_labels
from rlsuite.envs.cop.env import COPEnv
from rlsuite.envs.cop.problems import cost, generate
from rlsuite.envs.cop.solvers import solve

log = logging.getLogger("rlsuite")
PROGRESS_SECONDS = 5.0
"""Longest silence between two progress lines while the training set is labelled."""


@dataclasses.dataclass(frozen=True)
class InstancesRunConfig:
    """Options of ``rlsuite train <algo>`` for an agent that learns from solved instances."""

    size: int = 20
    """Nodes (TSP) or clients (CVRP) per instance."""
    instances: int = 2000
    """Training instances to generate and solve (ignored with --data)."""
    data: str | None = None
    """A labelled instance set (rlsuite cop generate + rlsuite cop label) instead of generating one."""
    solver: str | None = None
    """Reference solver for the labels (default lkh for TSP, pyvrp for CVRP)."""
    label_time_limit: float = 0.1
    """Seconds per instance for the reference solver."""
    total_steps: int = 5000
    """Optimizer steps in all (a resumed run continues up to this)."""
    seed: int = 0
    """Seed of the instances, the network and the minibatches."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    run_dir: str | None = None
    """Run directory; default runs/<problem><size>__<algo>__<seed>__<time>."""
    resume: str | None = None
    """Run directory (or one of its checkpoints) to continue; its config is reused."""
    overwrite: bool = False
    """Allow training into a run directory that already holds a run (it is replaced)."""
    checkpoint_every: int = 1000
    """Optimizer steps between checkpoints."""
    time_limit: float | None = None
    """Stop training after this many seconds (a checkpoint is written; --resume continues)."""
    eval_instances: int = 100
    """Fresh instances solved greedily at the end (mean cost beside nearest neighbour)."""

    def __post_init__(self) -> None:
        for name in ("size", "instances", "checkpoint_every", "eval_instances"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.total_steps < 0:
            raise ValueError(f"--total-steps must be >= 0, got {self.total_steps}.")
        if self.label_time_limit <= 0:
            raise ValueError(f"--label-time-limit must be > 0 seconds, got {self.label_time_limit}.")


def training_data(agent: Any, run_cfg: InstancesRunConfig, data_dir: Path, say: Callable[[str], None]) -> dict[str, torch.Tensor]:
    """The labelled set in ``data_dir`` (made there first when missing) as the agent's imitation tensors."""
    problem = agent.cfg.problem
    if not (data_dir / "labels.json").exists():
        if run_cfg.data:
            src_problem, inst, meta = load_instances(run_cfg.data)
            if src_problem != problem or meta["size"] != run_cfg.size:
                raise ValueError(f"{run_cfg.data} holds {src_problem}{meta['size']} instances; --problem {problem} "
                                 f"--size {run_cfg.size} asked for.")
            sols, costs, info = load_labels(run_cfg.data)
        else:
            solver = run_cfg.solver or ("lkh" if problem == "tsp" else "pyvrp")
            inst = generate(problem, run_cfg.instances, run_cfg.size, run_cfg.seed)
            t0 = last = time.monotonic()
            sols = []
            chunk = max(1, run_cfg.instances // 100)  # solved one by one: the chunks only pace the progress lines
            for i in range(0, run_cfg.instances, chunk):
                part = {k: v[i : i + chunk] for k, v in inst.items()}
                sols += solve(problem, part, solver, run_cfg.label_time_limit, run_cfg.seed)
                if time.monotonic() - last >= PROGRESS_SECONDS or len(sols) == run_cfg.instances:
                    last = time.monotonic()
                    say(f"labelled {len(sols)}/{run_cfg.instances} {problem}{run_cfg.size} instances with {solver} "
                        f"({last - t0:.0f} s)")
            costs, info = cost(problem, inst, sols).double(), {"solver": solver, "time_limit": run_cfg.label_time_limit}
        save_instances(data_dir, problem, inst, {"seed": run_cfg.seed, "source": run_cfg.data or "generated"}, overwrite=True)
        save_labels(data_dir, sols, costs, info)
    _, inst, _ = load_instances(data_dir)
    sols, _, _ = load_labels(data_dir)
    return agent.prepare_data(inst, sols)


def train_instances(agent: Any, algo: str, run_cfg: InstancesRunConfig, run_dir: Path, start: dict[str, Any] | None = None,
                    say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Train ``agent`` (fresh, or restored from ``start = {"state": ..., "meta": ...}``) into ``run_dir``.

    Returns:
        ``run_dir``, ``checkpoint``, ``curve``, ``steps``, ``greedy_cost`` and ``nn_cost`` (nearest
        neighbour) on ``eval_instances`` fresh instances.

    Raises:
        NothingToDo: ``start`` is at ``total_steps`` already (no file is touched).
        ValueError: ``start`` is past ``total_steps`` (no file is touched).
    """
    if start is not None:
        check_resume_budget(int(start["meta"]["step"]), run_cfg.total_steps, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_doc = {"algo": algo, "run": config_to_dict(run_cfg), "config": config_to_dict(agent.cfg)}
    atomic_write_json(run_dir / "config.json", config_doc)
    data = training_data(agent, run_cfg, run_dir / "data", say)
    if start is not None:
        agent.load_state_dict(start["state"]["agent"])
        set_rng_state(start["state"]["rng"], start["meta"]["rng"])
    first = agent.global_step
    logger = Logger(run_dir, run_cfg.total_steps, first, tensorboard=True, progress=False, lines=False)  # this driver logs its own lines

    def checkpoint(a: Any, name: str | None = None) -> Path:
        name = name or f"step_{a.global_step:09d}"
        rng_tensors, rng_meta = get_rng_state()
        path = save_checkpoint(run_dir / "checkpoints" / name, {"agent": a.state_dict(), "rng": rng_tensors},
                               {**config_doc, "step": a.global_step, "rng": rng_meta, "observation_space": None, "action_space": None})
        write_latest(run_dir / "checkpoints", name, a.global_step)
        return path

    t0 = time.monotonic()

    def on_log(step: int, loss: float) -> None:
        spent = time.monotonic() - t0
        logger.log(step, {"train/imitation_loss": loss, "time/steps_per_second": (step - first) / max(spent, 1e-9)})
        say(f"step {step}/{run_cfg.total_steps}: imitation loss {loss:.4f} ({spent:.0f} s)")

    try:
        agent.learn(data, run_cfg.total_steps, on_checkpoint=checkpoint, checkpoint_every=run_cfg.checkpoint_every, on_log=on_log,
                    log_every=max(1, min(100, run_cfg.total_steps // 10)), time_limit_s=run_cfg.time_limit)
        path = checkpoint(agent, "final")
        t_eval = time.monotonic()
        out = evaluate_instances(agent, run_cfg.size, run_cfg.eval_instances, run_cfg.seed + 1_000_000)
        logger.log(agent.global_step, {"eval/greedy_cost": out["greedy_cost"], "eval/nn_cost": out["nn_cost"],
                                       "time/eval_seconds": time.monotonic() - t_eval})
    finally:
        logger.close()
    curve = plot_learning_curve(run_dir / "metrics.csv", run_dir / "curve.png", f"{algo} on {agent.cfg.problem}{run_cfg.size}",
                                series=(("train/imitation_loss", "imitation loss (mean over the minibatches since the last point)"),),
                                xlabel="optimizer steps", ylabel="imitation loss (cross-entropy, nats)")
    return {"run_dir": str(run_dir), "checkpoint": str(path), "curve": str(curve), "steps": agent.global_step, "agent": agent, **out}


def resume_state(checkpoint: Path, device: torch.device) -> dict[str, Any]:
    """``{"state", "meta"}`` of a checkpoint written by :func:`train_instances`."""
    state, meta = load_checkpoint(checkpoint, device=device)
    return {"state": state, "meta": meta}


@torch.no_grad()
def evaluate_instances(agent: Any, size: int, count: int, seed: int) -> dict[str, float]:
    """Greedy mean cost of ``agent`` on ``count`` fresh instances, beside nearest neighbour's."""
    problem = agent.cfg.problem
    test = {k: v.to(agent.device) for k, v in generate(problem, count, size, seed).items()}
    model_cost = float(cost(problem, test, agent.solve(COPEnv(problem, test))).mean())
    nn_cost = float(cost(problem, test, solve(problem, test, "nn")).mean())
    return {"greedy_cost": model_cost, "nn_cost": nn_cost}
