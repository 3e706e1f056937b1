"""Offline (then online) training on a local Minari dataset with normalised-score logging.

``train_offline("iql", "rlsuite/hopper/medium-v0", offline_steps, online_steps)`` loads the dataset,
checks that its spaces match the env it names, trains offline with evaluations every ``eval_every``
updates (Uni-O4: then its policy-improvement updates), then (IQL, Uni-O4) fine-tunes online, and writes ``metrics.csv`` (phase, step, return, normalised
score), ``curve.png`` and checkpoints (``checkpoints/offline`` and ``checkpoints/online``, safetensors
+ JSON) into the run directory. No return from the real environment is used to select anything
during the offline phase: evaluations are only logged.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlsuite.offline.datasets import DatasetError, dataset_arrays, load_dataset, mean_return, normalized_score

OFFLINE_ALGOS = ("bc", "iql", "uni-o4")


def _config(cls, overrides: dict[str, Any] | None):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise DatasetError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}.")
    return cls(**(overrides or {}))


def _make_agent(algo: str, env_id: str, obs_dim: int, act_dim: int, device: str, seed: int, overrides: dict[str, Any] | None):
    if algo == "bc":
        from rlsuite.agents.bc import BC, BCConfig

        return BC(_config(BCConfig, overrides), obs_dim, act_dim, device, seed)
    if algo == "iql":
        from rlsuite.agents.iql import IQL, IQLConfig

        return IQL(_config(IQLConfig, overrides), obs_dim, act_dim, device, seed)
    if algo == "uni-o4":
        from rlsuite.agents.uni_o4 import UniO4, UniO4Config
        from rlsuite.envs.termination import termination_fn

        try:
            term = termination_fn(env_id)
        except KeyError as e:
            raise DatasetError(str(e.args[0])) from None
        return UniO4(_config(UniO4Config, overrides), obs_dim, act_dim, device, seed, termination=term)
    raise DatasetError(f"unknown offline algorithm {algo!r}; choose one of {', '.join(OFFLINE_ALGOS)}.")


def evaluate(agent, env_id: str, episodes: int, seed: int) -> float:
    """Mean undiscounted return of the agent's deterministic policy over ``episodes`` episodes."""
    return mean_return(env_id, lambda obs: agent.act(obs[None])[0], episodes, seed)


def train_offline(algo: str, ds_id: str, offline_steps: int, online_steps: int = 0, seed: int = 0, eval_every: int = 5000,
                  eval_episodes: int = 5, run_dir: str | os.PathLike | None = None, root: Path | None = None, device: str = "cpu",
                  log: Callable[[str], None] | None = None, config: dict[str, Any] | None = None, resume: bool = False) -> dict[str, Any]:
    """See the module docstring; returns the final offline and online normalised scores and the
    wall-clock seconds of each phase. ``config``: overrides of the algorithm's config dataclass.
    Uni-O4's offline phase is ``offline_steps`` supervised updates followed by ``improve_steps``
    (its config) policy-improvement updates; its evaluations are numbered on after the first part.

    ``resume=True`` continues the run in ``run_dir`` whose offline phase finished (its
    ``checkpoints/offline`` exists) but whose online phase did not: the agent, its optimizers and the
    random generators are restored from that checkpoint, the offline rows of ``metrics.csv`` are kept
    and the online phase runs from its start (``online_steps`` may differ from the first call). The
    other arguments must match the first call. An online phase interrupted half-way starts again."""
    import gymnasium as gym

    import rlsuite.envs  # noqa: F401
    from rlsuite.core.checkpoint import atomic_write_json, save_checkpoint

    log = log or (lambda m: None)
    if algo not in OFFLINE_ALGOS:
        raise DatasetError(f"unknown offline algorithm {algo!r}; choose one of {', '.join(OFFLINE_ALGOS)}.")
    if algo == "bc" and online_steps > 0:
        raise DatasetError("BC has no online phase; use --online-steps 0 (or train iql).")
    ds = load_dataset(ds_id, root)
    md = ds.storage.metadata
    desc = json.loads(md.get("description") or "{}")
    env_id = desc.get("env") or md["env_spec"]
    env = gym.make(env_id)
    if ds.observation_space != env.observation_space or ds.action_space != env.action_space:
        raise DatasetError(f"dataset {ds_id} has observation space {ds.observation_space} and action space {ds.action_space}, "
                           f"but {env_id} has {env.observation_space} and {env.action_space}; the dataset was made for another "
                           "version of the env: collect it again.")
    ref_min, ref_max = float(md["ref_min_score"]), float(md["ref_max_score"])
    arrays = dataset_arrays(ds)
    if arrays["observations"].shape[1:] != env.observation_space.shape or arrays["actions"].shape[1:] != env.action_space.shape:
        raise DatasetError(f"dataset {ds_id} holds observations of shape {arrays['observations'].shape[1:]} and actions of shape "
                           f"{arrays['actions'].shape[1:]}, but {env_id} has {env.observation_space.shape} and "
                           f"{env.action_space.shape}: collect it again for this env.")
    obs_dim, act_dim = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    agent = _make_agent(algo, env_id, obs_dim, act_dim, device, seed, config)
    agent.set_data(arrays, env.action_space.low, env.action_space.high)
    run = Path(run_dir or f"runs/{ds_id.replace('/', '_')}__{algo}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}")
    run_config = {"algo": algo, "dataset": ds_id, "env": env_id, "offline_steps": offline_steps, "online_steps": online_steps,
                  "seed": seed, "reference": [ref_min, ref_max], "config": dataclasses.asdict(agent.cfg)}
    rows: list[dict[str, Any]] = []
    restored_seconds = float("nan")
    if resume:
        if run_dir is None:
            raise DatasetError("resume needs the run directory of the interrupted run (run_dir / --run-dir).")
        rows, restored_seconds = _restore_offline_phase(run, run_config, agent, device)
        log(f"resumed {run}: offline phase restored from checkpoints/offline ({len(rows)} evaluations kept)")
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "config.json", {**run_config, "config": _jsonable(run_config["config"])})

    def record(phase: str, step: int, ret: float) -> float:
        score = float(normalized_score(ret, ref_min, ref_max))
        rows.append({"phase": phase, "step": step, "return": ret, "normalized_score": score})
        _write_metrics(run, rows, curve=False)  # after every evaluation: a crash keeps the curve so far
        log(f"{phase} step {step}: return {ret:.1f}, normalized score {score:.1f}")
        return score

    t0 = time.perf_counter()
    done = offline_steps if resume else 0
    while done < offline_steps:
        chunk = min(eval_every, offline_steps - done)
        agent.learn_offline(chunk, total_steps=offline_steps)
        done += chunk
        record("offline", done, evaluate(agent, env_id, eval_episodes, seed + 100_000))
    if algo == "uni-o4" and not resume:
        agent.start_improvement(log)
        k_total, k = agent.cfg.improve_steps, 0
        while k < k_total:
            chunk = min(eval_every, k_total - k)
            agent.improve(chunk, total_steps=k_total)
            k += chunk
            best = max(g.best for g in agent.gates)
            log(f"improvement step {k}: AM-Q best {best:.2f}, accepted {sum(g.accepted for g in agent.gates)}, "
                f"rejected {sum(g.rejected for g in agent.gates)}, selected member {agent.selected}")
            record("offline", offline_steps + k, evaluate(agent, env_id, eval_episodes, seed + 100_000))
    offline_seconds = restored_seconds if resume else time.perf_counter() - t0
    offline_end = offline_steps + (agent.cfg.improve_steps if algo == "uni-o4" else 0)
    offline_score = rows[-1]["normalized_score"] if rows else float("nan")
    if not resume:
        # the agent plus torch's global generator (online sampling draws from it): resuming is exact
        save_checkpoint(run / "checkpoints" / "offline", {"agent": agent.state_dict(), "torch_rng": torch.get_rng_state()},
                        {"algo": algo, "phase": "offline", "dataset": ds_id, "seconds": offline_seconds})
    online_score = None
    t1 = time.perf_counter()
    if online_steps > 0:
        done = 0
        while done < online_steps:
            chunk = min(eval_every, online_steps - done)
            agent.learn_online(env_id, chunk, seed=seed + done, total_steps=online_steps)
            done += chunk
            record("online", offline_end + done, evaluate(agent, env_id, eval_episodes, seed + 100_000))
        online_score = rows[-1]["normalized_score"]
        save_checkpoint(run / "checkpoints" / "online", {"agent": agent.state_dict()}, {"algo": algo, "phase": "online", "dataset": ds_id})
    online_seconds = time.perf_counter() - t1
    _write_metrics(run, rows)
    return {"run_dir": str(run), "offline_score": offline_score, "online_score": online_score, "rows": rows,
            "offline_seconds": offline_seconds, "online_seconds": online_seconds}


def _jsonable(obj: Any) -> Any:
    """Tuples as lists, so that a config read back from JSON compares equal to a fresh one."""
    return json.loads(json.dumps(obj))


def _restore_offline_phase(run: Path, run_config: dict[str, Any], agent: Any, device: str) -> tuple[list[dict[str, Any]], float]:
    """Load ``run/checkpoints/offline`` into ``agent`` (and torch's global generator) after checking
    that ``run/config.json`` describes the same offline phase; returns the offline rows of metrics.csv
    and the offline phase's wall-clock seconds."""
    from rlsuite.core.checkpoint import CheckpointError, load_checkpoint

    if (run / "checkpoints" / "online").exists():
        raise DatasetError(f"{run} finished its online phase (checkpoints/online exists): nothing to resume; "
                           "start a new run with another --run-dir.")
    if not (run / "checkpoints" / "offline").exists():
        raise DatasetError(f"nothing to resume in {run}: its offline phase did not finish (no checkpoints/offline) and an "
                           "offline phase is not checkpointed half-way; run it again without --resume.")
    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"cannot read {run / 'config.json'} ({e}); the run directory is damaged.") from None
    mine = {**run_config, "config": _jsonable(run_config["config"])}
    diff = [k for k in ("algo", "dataset", "env", "offline_steps", "seed", "reference", "config") if saved.get(k) != mine[k]]
    if diff:
        detail = "; ".join(f"{k}: run has {saved.get(k)!r}, received {mine[k]!r}" for k in diff)
        raise DatasetError(f"cannot resume {run} with other settings ({detail}); pass the settings of the first call.")
    try:
        state, meta = load_checkpoint(run / "checkpoints" / "offline", device)
    except CheckpointError as e:
        raise DatasetError(str(e)) from None
    if "agent" not in state or "torch_rng" not in state:
        raise DatasetError(f"{run / 'checkpoints' / 'offline'} was written by an rlsuite without resume support; "
                           "run again without --resume.")
    agent.load_state_dict(state["agent"])
    torch.set_rng_state(state["torch_rng"].cpu())
    rows: list[dict[str, Any]] = []
    if (run / "metrics.csv").exists():
        with open(run / "metrics.csv", newline="") as f:
            rows = [{"phase": r["phase"], "step": int(r["step"]), "return": float(r["return"]),
                     "normalized_score": float(r["normalized_score"])} for r in csv.DictReader(f) if r["phase"] == "offline"]
    return rows, float(meta.get("seconds", float("nan")))


def _write_metrics(run: Path, rows: list[dict[str, Any]], curve: bool = True) -> None:
    tmp = run / "metrics.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["phase", "step", "return", "normalized_score"])
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, run / "metrics.csv")
    if not curve:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for phase, color in (("offline", "tab:blue"), ("online", "tab:orange")):
            pts = [(r["step"], r["normalized_score"]) for r in rows if r["phase"] == phase]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", color=color, label=phase)
        ax.set_xlabel("updates (offline) / + env steps (online)")
        ax.set_ylabel("normalized score")
        ax.legend()
        fig.tight_layout()
        fig.savefig(run / "curve.png", dpi=100)
        plt.close(fig)
    except Exception:  # noqa: BLE001 - the curve is a convenience; the CSV holds the numbers
        pass
