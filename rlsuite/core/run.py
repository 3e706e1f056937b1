"""Run directories: resolved config, metrics, checkpoints, evaluation and the learning curve.

Layout of ``runs/<env>__<algo>__<seed>__<time>/`` (or the ``--run-dir`` given)::

    config.json          the resolved configuration (algorithm + run options) and versions
    metrics.csv          one row per log event, one column per metric
    tb/                  TensorBoard event files
    checkpoints/
        step_000010000/  a checkpoint (see rlsuite.core.checkpoint)
        final/           the checkpoint written when training ends
        latest.json      pointer to the newest checkpoint (what --resume and eval load)
    curve.png            learning curve, written at the end

An agent's ``learn`` calls :meth:`Run.step_done` after each iteration; the run decides when to
evaluate and checkpoint, so every agent gets the same behaviour.

In a data-parallel run (:mod:`rlsuite.core.distributed`) every rank has a ``Run``; only rank 0's writes
(config, metrics, TensorBoard, evaluations, checkpoints, curve). At each checkpoint the other ranks send
rank 0 what their exact resume needs (their env and buffer state and RNG states), which the checkpoint
keeps under ``ranks.<r>``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.atomic import atomic_path
from rlsuite.core.checkpoint import (
    CheckpointError,
    atomic_write_json,
    find_latest,
    first_difference,
    load_checkpoint,
    save_checkpoint,
    write_latest,
)
from rlsuite.core.config import config_to_dict
from rlsuite.core.distributed import DataParallel
from rlsuite.core.evaluate import evaluate_policy, policy_of
from rlsuite.core.logger import Logger
from rlsuite.core.seeding import get_rng_state, set_rng_state
from rlsuite.core.vec_env import TorchVecEnv, describe_space, first_space_difference

log = logging.getLogger("rlsuite")


class Agent(Protocol):
    """What the run machinery needs from an agent (every agent in ``rlsuite.agents`` provides it)."""

    algo: str
    config: Any
    observation_space: gym.Space
    action_space: gym.Space
    device: torch.device
    global_step: int

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor: ...
    def state_dict(self) -> dict[str, Any]: ...  # {"weights": ..., "optim": ..., "counters": ...}
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def training_state(self, env: TorchVecEnv) -> dict[str, Any]: ...
    def load_training_state(self, state: dict[str, Any], env: TorchVecEnv) -> None: ...


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Options shared by every ``rlsuite train <algo>`` command."""

    env: str = "CartPole-v1"
    """Gymnasium environment id (any registered id; rlsuite's own start with 'rlsuite/')."""
    seed: int = 0
    """Random seed (Python, NumPy, torch and the environments)."""
    total_steps: int = 100_000
    """Environment steps to train for (summed over parallel envs); agents that train whole batches round it up and say so at the start (PPO, TGPO: num_envs*num_steps; SubPO, ModPO: num_envs episodes of the env's horizon; SAC: num_envs)."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    run_dir: str | None = None
    """Run directory; default runs/<env>__<algo>__<seed>__<time>."""
    resume: str | None = None
    """Run directory to resume from its latest checkpoint (its config is reused; flags given override)."""
    overwrite: bool = False
    """Allow training into a run directory that already holds a run (it is replaced)."""
    checkpoint_every: int = 0
    """Checkpoint every N env steps (0: ten checkpoints over the run)."""
    keep_checkpoints: int = 3
    """Periodic checkpoints kept on disk (older ones are deleted; 0 keeps all)."""
    eval_every: int = 0
    """Evaluate every N env steps (0: only at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation (0: no evaluation, the summary's return is then nan)."""
    progress: bool = True
    """Show the progress bar (otherwise log lines)."""
    tensorboard: bool = True
    """Write TensorBoard event files."""
    torch_threads: int = 0
    """torch intra-op threads (0 keeps torch's default)."""
    deterministic: bool = False
    """Ask torch for deterministic kernels (slower on GPU)."""
    domain_rand: str | None = None
    """Domain randomisation: draw every training episode's physics from this uncertainty set (e.g. hopper-mass-friction, or name=low:high,...; docs/robust.md); evaluation stays nominal."""
    env_kwargs: str | None = None
    """Env constructor arguments as a JSON object, e.g. '{"season_days": 10}'; kept in the run and used again by eval, export and --resume."""
    workers: int = 0
    """Rollout workers: Ray actors that step the envs, num_envs split evenly over them (0: the envs run in this process). Synchronous: a Gymnasium env gives the same run as without workers. Needs pip install 'rlsuite[distributed]' (docs/scale.md)."""
    ray_address: str | None = None
    """With --workers: the Ray cluster to place the workers on, auto or ray://HOST:PORT (None: Ray started in this process)."""
    async_rollouts: bool = False
    """With --workers: asynchronous rollouts (IMPALA-style): every worker acts with its own copy of the policy, maybe some updates old, and the learner trains on each worker's batch as it comes, corrected with V-trace (PPO; not bit-reproducible; resume restarts the episodes)."""

    def __post_init__(self) -> None:
        for name in ("total_steps", "checkpoint_every", "keep_checkpoints", "eval_every", "eval_episodes", "torch_threads", "workers"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}.")
        if self.ray_address and not self.workers:
            raise ValueError(f"--ray-address {self.ray_address} places rollout workers; add --workers N (N >= 1), or leave it out.")
        if self.async_rollouts and not self.workers:
            raise ValueError("--async-rollouts runs the envs on asynchronous rollout workers; add --workers N (N >= 1), or leave it out.")
        parse_env_kwargs(self.env_kwargs)


def parse_env_kwargs(text: str | None) -> dict[str, Any]:
    """The dict of ``--env-kwargs`` (a JSON object; ``None`` or empty: ``{}``).

    Raises:
        ValueError: ``text`` is not JSON or not an object.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--env-kwargs must be a JSON object such as '{{\"season_days\": 10}}'; got {text!r} ({e.msg} at "
                         f"character {e.pos}). Quote it for the shell with single quotes.") from None
    if not isinstance(value, dict):
        raise ValueError(f"--env-kwargs must be a JSON object (keyword: value), got {type(value).__name__} {text!r}; "
                         "e.g. '{\"season_days\": 10}'.")
    return value


def code_version() -> dict[str, str]:
    """rlsuite/torch/gymnasium versions and, when run from a git checkout, the commit."""
    try:
        version = importlib.metadata.version("rlsuite")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    info = {
        "rlsuite": version,
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
        "python": platform.python_version(),
    }
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
        )
        if out.returncode == 0:
            info["git_commit"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


class NothingToDo(Exception):
    """A resumed run has already done its whole budget: nothing was run and no file was touched.

    The CLI prints the message and exits 0 (resuming a finished run is not an error, only a no-op)."""


def check_resume_budget(done: int, total: int, run_dir: str | Path, flag: str = "--total-steps",
                        eval_command: str = "rlsuite eval") -> None:
    """Refuse to resume a run that has nothing left to do.

    Args:
        done: steps the checkpoint has already done.
        total: the budget asked for (``flag`` on the command line, or the saved one).
        run_dir: the run (named in the message).
        flag: the budget's command-line flag.
        eval_command: the command that evaluates such a run (named in the message).

    Raises:
        NothingToDo: ``done == total`` (the run is finished).
        ValueError: ``done > total`` (a budget below the run's step).
    """
    if done == total:
        raise NothingToDo(f"{run_dir} has already finished ({done} of {flag} {total}); nothing to do. "
                          f"To train further, resume with a larger {flag}.")
    if done > total:
        raise ValueError(f"{run_dir} is already at step {done}, past {flag} {total}. "
                         f"Resume with {flag} above {done} to train further (or evaluate it with {eval_command} {run_dir}).")


def claim_run_dir(run_dir: str | Path, overwrite: bool) -> Path:
    """``run_dir`` for a new run: refused when it already holds a run (the message gives the fixes), emptied
    first with ``overwrite``."""
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"run directory {str(run_dir)!r} already holds a run. Continue it with --resume {run_dir}, "
                "pick another --run-dir, or pass --overwrite to replace it."
            )
        shutil.rmtree(run_dir)
    return run_dir


def default_run_dir(env_id: str, algo: str, seed: int) -> Path:
    """``runs/<env>__<algo>__<seed>__<YYYYmmdd-HHMMSS>`` (``/`` in the env id becomes ``_``)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{env_id.replace('/', '_')}__{algo}__{seed}__{stamp}"


class Run:
    """One training run on disk: logger, periodic evaluation and checkpoints, final artefacts.

    Args:
        run_dir: the run directory (created).
        run_config: the shared run options.
        algo_config: the algorithm's config dataclass (written into ``config.json``).
        algo: the agent's registry name.
        start_step: env steps already done (a resumed run).
        env_kwargs: keyword arguments the env was built with (reused for evaluation).
        parallel: the data-parallel agent of a multi-process run (None: one process). Ranks other than 0
            write nothing; their checkpoint state goes to rank 0.
    """

    def __init__(
        self,
        run_dir: str | Path,
        run_config: RunConfig,
        algo_config: Any,
        algo: str,
        start_step: int = 0,
        env_kwargs: dict[str, Any] | None = None,
        parallel: DataParallel | None = None,
    ) -> None:
        self.dir = Path(run_dir)
        self.parallel = parallel
        self.ctx = parallel.ctx if parallel is not None else None
        self.writes = self.ctx is None or self.ctx.is_root
        self._sync_checks = 0
        self.cfg = run_config
        self.algo = algo
        self.algo_config = algo_config
        self.env_kwargs = env_kwargs or {}
        self.ckpt_dir = self.dir / "checkpoints"
        self.config_doc = {
            "algo": algo,
            "run": config_to_dict(run_config),
            "config": config_to_dict(algo_config),
            "env_kwargs": self.env_kwargs,
            "versions": code_version(),
        }
        if self.ctx is not None:
            self.config_doc["distributed"] = {"world_size": self.ctx.world_size, "backend": self.ctx.backend}
        if self.writes:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.dir / "config.json", self.config_doc)
        total = run_config.total_steps
        self.checkpoint_every = run_config.checkpoint_every or max(1, total // 10)
        self.eval_every = run_config.eval_every
        self._next_ckpt = (start_step // self.checkpoint_every + 1) * self.checkpoint_every
        self._next_eval = (
            (start_step // self.eval_every + 1) * self.eval_every if self.eval_every and run_config.eval_episodes > 0 else None
        )
        if self.writes:
            self.logger = Logger(self.dir, total, start_step, tensorboard=run_config.tensorboard, progress=run_config.progress)
        else:  # another rank: metrics are rank 0's to write
            self.logger = Logger(None, total, start_step, tensorboard=False, progress=False, lines=False)
        self.last_eval: float | None = None

    # ------------------------------------------------------------------ per-iteration hook
    def step_done(self, agent: Agent, env: TorchVecEnv) -> None:
        """Called by an agent after each iteration: evaluates and checkpoints when their time has come."""
        step = agent.global_step
        self.logger.update(step)
        # an agent that drifts apart fails at once, not at its first checkpoint: check after the first iteration and
        # after the first one with an optimiser step (SAC's first iterations collect data only)
        if self.parallel is not None and self._sync_checks < 2 and (self._sync_checks == 0 or self.parallel.steps_taken):
            self.parallel.check_in_sync()
            self._sync_checks += 1
        if self._next_eval is not None and step >= self._next_eval:
            if self.writes:
                self.evaluate(agent)
            self._next_eval = (step // self.eval_every + 1) * self.eval_every
        if step >= self._next_ckpt:
            self.save(agent, env, f"step_{step:09d}")
            self._next_ckpt = (step // self.checkpoint_every + 1) * self.checkpoint_every

    def evaluate(self, agent: Agent) -> float:
        """Evaluate the deterministic policy on ``eval_episodes`` fresh episodes; logs ``eval/*``."""
        t0 = time.perf_counter()
        returns = evaluate_policy(
            policy_of(agent, deterministic=True),
            self.cfg.env,
            episodes=self.cfg.eval_episodes,
            seed=self.cfg.seed + 10_000,
            device=agent.device,
            env_kwargs=self.env_kwargs,
        )
        self.last_eval = float(np.mean(returns))
        self.logger.log(
            agent.global_step,
            {"eval/mean_return": self.last_eval, "eval/std_return": float(np.std(returns)), "time/eval_seconds": time.perf_counter() - t0},
        )
        return self.last_eval

    def save(self, agent: Agent, env: TorchVecEnv, name: str) -> Path | None:
        """Write a complete checkpoint (weights, optimizers, env and buffer state, RNG) and point latest at it.

        In a data-parallel run every rank calls it: the ranks' weights are checked to be identical, the other
        ranks' env, buffer and RNG states go to rank 0, which writes them all; the other ranks return None.
        """
        rng_tensors, rng_meta = get_rng_state()
        train = agent.training_state(env)
        others: dict[str, Any] = {}
        if self.parallel is not None and self.ctx is not None:
            self.parallel.check_in_sync()
            gathered = self.ctx.gather_states({"train": train, "rng": rng_tensors, "rng_meta": rng_meta})
            if gathered is None:
                return None
            others = {str(r): s for r, s in enumerate(gathered) if r > 0}
        state = {"agent": agent.state_dict(), "train": train, "rng": rng_tensors}
        if others:
            state["ranks"] = others
        meta = {
            **self.config_doc,
            "step": agent.global_step,
            "observation_space": describe_space(agent.observation_space),
            "action_space": describe_space(agent.action_space),
            "rng": rng_meta,
        }
        path = save_checkpoint(self.ckpt_dir / name, state, meta)
        write_latest(self.ckpt_dir, name, agent.global_step)
        if self.cfg.keep_checkpoints > 0:
            for old in sorted(self.ckpt_dir.glob("step_*"))[: -self.cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        return path

    def finish(self, agent: Agent, env: TorchVecEnv) -> dict[str, Any]:
        """Final checkpoint, final evaluation, learning-curve PNG; returns a summary dict (on every rank of a
        data-parallel run, with rank 0's evaluation; ``checkpoint`` and ``curve`` None on the other ranks)."""
        ckpt = self.save(agent, env, "final")
        mean_return = self.evaluate(agent) if self.writes and self.cfg.eval_episodes > 0 else float("nan")
        if self.ctx is not None:
            mean_return = self.ctx.broadcast_float(mean_return)
        self.logger.close()
        if not self.writes:
            return {"run_dir": str(self.dir), "checkpoint": None, "curve": None, "eval_mean_return": mean_return}
        curve = plot_learning_curve(self.dir / "metrics.csv", self.dir / "curve.png", title=f"{self.algo} on {self.cfg.env}")
        return {"run_dir": str(self.dir), "checkpoint": str(ckpt), "curve": str(curve), "eval_mean_return": mean_return}

    def close(self) -> None:
        self.logger.close()


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (-> its latest checkpoint) or a checkpoint directory -> the checkpoint path."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    if (path / "checkpoints").is_dir():
        return find_latest(path / "checkpoints")
    raise CheckpointError(f"{str(path)!r} is neither a run directory (with checkpoints/) nor a checkpoint directory.")


def check_world_size(meta: dict[str, Any], world_size: int, checkpoint: str | Path) -> None:
    """Refuse to resume a checkpoint with another number of processes than the run that wrote it (exact
    resume needs every rank's env and RNG state, and only those ranks' are in it).

    Args:
        meta: the checkpoint's caller metadata (``meta.json``'s ``meta``).
        world_size: processes of this run (1 without torchrun).
        checkpoint: the checkpoint (named in the message).
    """
    saved = int((meta.get("distributed") or {}).get("world_size", 1))
    if saved != world_size:
        how = "in one process (without torchrun)" if saved == 1 else f"with torchrun --nproc-per-node {saved} (or {saved} ranks in all)"
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} was written by a run of {saved} process(es); this run has {world_size}. "
                              f"Exact resume needs every rank's env and RNG state, which only the ranks that wrote it have: "
                              f"resume it {how}.")


def restore_training(agent: Agent, env: TorchVecEnv, checkpoint: str | Path, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """Load a full training checkpoint into ``agent`` and ``env`` (weights, optimizers, env, buffers, RNG).

    Args:
        rank, world_size: this process's rank and the number of ranks of a data-parallel run; rank ``r``
            restores the weights (the same on every rank) and its own env, buffer and RNG states.

    Raises:
        CheckpointError: the spaces, tensor shapes or number of processes differ (the message names the
            first difference).
    """
    state, meta = load_checkpoint(checkpoint, device=agent.device)
    check_world_size(meta, world_size, checkpoint)
    check_spaces(agent, meta, checkpoint)
    diff = first_difference(agent.state_dict()["weights"], state["agent"]["weights"])
    if diff:
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} does not fit this agent: {diff}.")
    agent.load_state_dict(state["agent"])
    if rank == 0:
        train, rng, rng_meta = state["train"], state["rng"], meta["rng"]
    else:
        own = state["ranks"][str(rank)]
        train, rng, rng_meta = own["train"], own["rng"], own["rng_meta"]
    agent.load_training_state(train, env)
    set_rng_state(rng, rng_meta)
    return meta


def check_spaces(agent: Agent, meta: dict[str, Any], checkpoint: str | Path) -> None:
    """Refuse a checkpoint whose observation or action space differs from the agent's."""
    for name, space in (("observation", agent.observation_space), ("action", agent.action_space)):
        diff = first_space_difference(describe_space(space), meta[f"{name}_space"], name)
        if diff:
            raise CheckpointError(f"checkpoint {str(checkpoint)!r} does not match: {diff}.")


DEFAULT_CURVE = (("rollout/ep_return", "training episodes"), ("eval/mean_return", "evaluation (deterministic)"))


def plot_learning_curve(
    metrics_csv: str | Path,
    out_png: str | Path,
    title: str = "",
    series: tuple[tuple[str, str], ...] = DEFAULT_CURVE,
    xlabel: str = "environment steps",
    ylabel: str = "episode return",
) -> Path:
    """Plot columns of a ``metrics.csv`` against its ``step`` column into a PNG (written atomically).

    Args:
        metrics_csv: the run's metrics file (missing: an empty, titled figure).
        out_png: where the figure goes.
        title: the figure's title (say what ran on what).
        series: ``(column, legend label)`` pairs, all in the unit of ``ylabel``; ``eval/`` columns get markers.
        xlabel, ylabel: axis labels (one unit per axis).
    """
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    if Path(metrics_csv).is_file():
        with open(metrics_csv, newline="") as f:
            rows = list(csv.DictReader(f))

    def column(key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for r in rows:
            v = r.get(key, "")
            if v not in ("", "nan"):
                xs.append(float(r["step"]))
                ys.append(float(v))
        return xs, ys

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key, label in series:
        xs, ys = column(key)
        if xs:
            ax.plot(xs, ys, marker="o" if key.startswith("eval") else None, ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return out_png


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run directory."""
    p = Path(run_dir) / "config.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{str(run_dir)!r} has no config.json; is it a run directory?") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{str(p)!r} is corrupted: {e}.") from None
