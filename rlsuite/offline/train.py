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

import torch

from rlsuite.offline.datasets import DatasetError, dataset_arrays, load_dataset, mean_return, normalized_score

OFFLINE_ALGOS = ("bc", "iql", "uni-o4")


@dataclasses.dataclass(frozen=True)
class OfflineRunConfig:
    """Options of ``rlsuite train <algo>`` for an agent that learns from a dataset (then an env)."""

    dataset: str = ""
    """Dataset id, e.g. rlsuite/hopper/medium-v0 (see rlsuite data list)."""
    data_dir: str | None = None
    """Where datasets live (default $RLSUITE_DATA_DIR or ~/.local/share/rlsuite)."""
    offline_steps: int = 100_000
    """Offline updates (Uni-O4: of the BC ensemble, critics and value; then its improve_steps)."""
    online_steps: int = 0
    """Env steps of online fine-tuning after the offline phase (IQL, Uni-O4)."""
    seed: int = 0
    """Random seed (networks, minibatches, env)."""
    eval_every: int = 5000
    """Updates (offline) / env steps (online) between evaluations."""
    eval_episodes: int = 5
    """Episodes per evaluation."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    run_dir: str | None = None
    """Run directory; default runs/<dataset>__<algo>__<seed>__<time>."""
    resume: str | None = None
    """A run directory (or one of its checkpoints) to continue: mid-offline from the last evaluation, or the online phase after a finished offline one (its settings are reused)."""
    overwrite: bool = False
    """Allow training into a run directory that already holds a run (it is replaced)."""

    def __post_init__(self) -> None:
        for name in ("offline_steps", "online_steps", "eval_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}.")
        if self.eval_every < 1:
            raise ValueError(f"--eval-every must be >= 1, got {self.eval_every}.")


def _config(cls, overrides: Any):
    if isinstance(overrides, cls):
        return overrides
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise DatasetError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}.")
    return cls(**(overrides or {}))


def _make_agent(algo: str, env: Any, env_id: str, device: str, seed: int, overrides: dict[str, Any] | None) -> tuple[Any, Any]:
    """The registered ``algo`` (an agent that learns from a dataset) for ``env``'s spaces, and its spec."""
    from rlsuite.agents import AGENTS, build_agent

    spec = AGENTS.get(algo)
    if spec.learns_from != "dataset":
        raise DatasetError(f"{algo} does not learn from a dataset (it learns from {spec.learns_from}); "
                           f"offline algorithms: {', '.join(n for n in AGENTS.names() if AGENTS.get(n).learns_from == 'dataset')}.")
    agent = build_agent(spec, _config(spec.config_cls, overrides), env.observation_space, env.action_space, device, seed)
    if hasattr(agent, "termination"):  # model rollouts end where the env would
        from rlsuite.envs.termination import termination_fn

        try:
            agent.termination = termination_fn(env_id)
        except KeyError as e:
            raise DatasetError(str(e.args[0])) from None
    return agent, spec


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

    ``resume=True`` continues the interrupted run in ``run_dir``: from ``checkpoints/offline`` when its
    offline phase finished (the online phase then runs from its start; ``online_steps`` may differ
    from the first call), else from ``checkpoints/offline_partial``, written after every offline
    evaluation (the offline phase continues where that evaluation left it). The agent, its optimizers
    and the random generators are restored, so the result is what an unbroken run gives; the rows of
    ``metrics.csv`` up to the checkpoint are kept. The other arguments must match the first call."""
    import gymnasium as gym

    import rlsuite.envs  # noqa: F401
    from rlsuite.core.checkpoint import atomic_write_json, save_checkpoint, write_latest
    from rlsuite.core.config import config_to_dict
    from rlsuite.core.run import code_version
    from rlsuite.core.vec_env import describe_space

    log = log or (lambda m: None)
    for name, value in (("offline_steps", offline_steps), ("online_steps", online_steps), ("eval_episodes", eval_episodes)):
        if value < 0:
            raise DatasetError(f"{name} must be >= 0, got {value}.")
    if eval_every < 1:
        raise DatasetError(f"eval_every must be >= 1, got {eval_every}.")
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
    ends = arrays["terminals"] | arrays["timeouts"]
    log(f"dataset {ds_id}: {len(arrays['rewards'])} transitions, {int(ends.sum())} episodes, mean episode return "
        f"{float(arrays['rewards'].sum()) / max(1, int(ends.sum())):.1f}; reference returns: random {ref_min:.1f}, expert {ref_max:.1f}")
    agent, spec = _make_agent(algo, env, env_id, device, seed, config)
    agent.set_data(arrays, env.action_space.low, env.action_space.high)
    run = Path(run_dir or f"runs/{ds_id.replace('/', '_')}__{algo}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}")
    run_config = {"algo": algo, "dataset": ds_id, "env": env_id, "offline_steps": offline_steps, "online_steps": online_steps,
                  "seed": seed, "reference": [ref_min, ref_max], "config": dataclasses.asdict(agent.cfg),
                  "run": {"env": env_id, "seed": seed, "dataset": ds_id, "offline_steps": offline_steps, "online_steps": online_steps,
                          "eval_every": eval_every, "eval_episodes": eval_episodes, "device": str(device),
                          "data_dir": str(root) if root else None},
                  "versions": code_version()}
    ckpt_meta = {"algo": algo, "config": config_to_dict(agent.cfg), "run": run_config["run"], "dataset": ds_id,
                 "observation_space": describe_space(env.observation_space), "action_space": describe_space(env.action_space)}

    def save(phase: str, step: int, state: dict[str, Any], extra: dict[str, Any]) -> None:
        save_checkpoint(run / "checkpoints" / phase, state, {**ckpt_meta, "phase": phase, "step": step, **extra})
        write_latest(run / "checkpoints", phase, step)
    rows: list[dict[str, Any]] = []
    restored_seconds, offline_finished, done, k = 0.0, False, 0, 0
    if resume:
        if run_dir is None:
            raise DatasetError("resume needs the run directory of the interrupted run (run_dir / --run-dir).")
        rows, meta = _restore_offline_phase(run, run_config, agent, agent.device)
        offline_finished = meta["phase"] == "offline"
        restored_seconds = float(meta.get("seconds", 0.0))
        done, k = int(meta.get("offline_done", offline_steps)), int(meta.get("improve_done", 0))
        log(f"resumed {run} from checkpoints/{meta['phase']} (offline update {done}, improvement update {k}; "
            f"{len(rows)} evaluations kept)")
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "config.json", {**run_config, "config": _jsonable(run_config["config"])})

    def record(phase: str, step: int, ret: float) -> float:
        score = float(normalized_score(ret, ref_min, ref_max))
        rows.append({"phase": phase, "step": step, "return": ret, "normalized_score": score})
        _write_metrics(run, rows, curve=False)  # after every evaluation: a crash keeps the curve so far
        log(f"{phase} step {step}: return {ret:.1f}, normalized score {score:.1f}")
        return score

    t0 = time.perf_counter()

    def save_partial() -> None:  # after every evaluation of the offline phase: a kill loses at most one interval
        save("offline_partial", done + k, {"agent": agent.state_dict(), "torch_rng": torch.get_rng_state()},
             {"offline_done": done, "improve_done": k, "seconds": restored_seconds + time.perf_counter() - t0})

    progress_every = max(1, min(1000, eval_every))
    while done < offline_steps:
        chunk = min(eval_every, offline_steps - done)
        base, t_chunk = done, time.perf_counter()
        agent.learn_offline(chunk, total_steps=offline_steps, log_every=progress_every,
                            log=lambda i, st, base=base, t=t_chunk: log(  # noqa: B023 - base/t bound per chunk
                                f"offline update {base + i}/{offline_steps}: " + ", ".join(f"{k} {v:.3g}" for k, v in st.items())
                                + f" ({(time.perf_counter() - t) / i * 1000:.1f} ms/update)"))
        done += chunk
        record("offline", done, evaluate(agent, env_id, eval_episodes, seed + 100_000))
        save_partial()
    if hasattr(agent, "improve") and not offline_finished:  # Uni-O4's offline policy improvement
        log(f"offline updates: {time.perf_counter() - t0:.0f} s")
        t_improve = time.perf_counter()
        if agent.reference is None:
            agent.start_improvement(log)
            log(f"dynamics fit and first AM-Q: {time.perf_counter() - t_improve:.0f} s")
        k_total = agent.cfg.improve_steps
        while k < k_total:
            chunk = min(eval_every, k_total - k)
            agent.improve(chunk, total_steps=k_total, log=lambda i, st: log(
                f"improvement update {i}/{k_total}: policy loss {st['policy_loss']:.3g}, AM-Q max {st['am_q_max']:.2f}, "
                f"accepted {st['accepted']:.0f}"))
            k += chunk
            best = max(g.best for g in agent.gates)
            log(f"improvement step {k}: AM-Q best {best:.2f}, accepted {sum(g.accepted for g in agent.gates)}, "
                f"rejected {sum(g.rejected for g in agent.gates)}, selected member {agent.selected}")
            record("offline", offline_steps + k, evaluate(agent, env_id, eval_episodes, seed + 100_000))
            save_partial()
    offline_seconds = restored_seconds if offline_finished else restored_seconds + time.perf_counter() - t0
    offline_end = offline_steps + (agent.cfg.improve_steps if hasattr(agent, "improve") else 0)
    offline_score = next((r["normalized_score"] for r in reversed(rows) if r["phase"] == "offline"), float("nan"))
    if not offline_finished:
        # the agent plus torch's global generator (online sampling draws from it): resuming is exact
        save("offline", offline_end, {"agent": agent.state_dict(), "torch_rng": torch.get_rng_state()}, {"seconds": offline_seconds})
    online_score = None
    t1 = time.perf_counter()
    if online_steps > 0:
        done = 0
        while done < online_steps:
            chunk = min(eval_every, online_steps - done)
            agent.learn_online(env_id, chunk, seed=seed + done, total_steps=online_steps)
            done += chunk
            record("online", offline_end + done, evaluate(agent, env_id, eval_episodes, seed + 100_000))
            spent = time.perf_counter() - t1
            log(f"online: {done}/{online_steps} env steps in {spent:.0f} s, about {spent / done * (online_steps - done):.0f} s left")
        online_score = rows[-1]["normalized_score"]
        save("online", offline_end + online_steps, {"agent": agent.state_dict()}, {})
    online_seconds = time.perf_counter() - t1
    _write_metrics(run, rows)
    return {"run_dir": str(run), "agent": agent, "offline_score": offline_score, "online_score": online_score, "rows": rows,
            "offline_seconds": offline_seconds, "online_seconds": online_seconds}


def _jsonable(obj: Any) -> Any:
    """Tuples as lists, so that a config read back from JSON compares equal to a fresh one."""
    return json.loads(json.dumps(obj))


def _restore_offline_phase(run: Path, run_config: dict[str, Any], agent: Any, device: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Load ``run/checkpoints/offline`` (a finished offline phase) or else ``offline_partial`` (the last
    evaluation of an interrupted one) into ``agent`` and torch's global generator, after checking that
    ``run/config.json`` describes the same offline phase; returns the offline rows of metrics.csv up to
    that point and the checkpoint's meta (``phase``, ``offline_done``, ``improve_done``, ``seconds``)."""
    from rlsuite.core.checkpoint import CheckpointError, load_checkpoint

    if (run / "checkpoints" / "online").exists():
        raise DatasetError(f"{run} finished its online phase (checkpoints/online exists): nothing to resume; "
                           "start a new run with another --run-dir.")
    name = next((n for n in ("offline", "offline_partial") if (run / "checkpoints" / n).exists()), None)
    if name is None:
        raise DatasetError(f"nothing to resume in {run}: it has no checkpoint yet (the first is written at the first "
                           "evaluation); run it again without --resume.")
    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"cannot read {run / 'config.json'} ({e}); the run directory is damaged.") from None
    mine = {**run_config, "config": _jsonable(run_config["config"])}
    diff = [k for k in ("algo", "dataset", "env", "offline_steps", "seed", "reference", "config") if saved.get(k) != mine.get(k)]
    if diff:
        detail = "; ".join(f"{k}: run has {saved.get(k)!r}, received {mine[k]!r}" for k in diff)
        raise DatasetError(f"cannot resume {run} with other settings ({detail}); pass the settings of the first call.")
    try:
        state, meta = load_checkpoint(run / "checkpoints" / name, device)
    except CheckpointError as e:
        raise DatasetError(str(e)) from None
    if "agent" not in state or "torch_rng" not in state:
        raise DatasetError(f"{run / 'checkpoints' / name} was written by an rlsuite without resume support; "
                           "run again without --resume.")
    agent.load_state_dict(state["agent"])
    torch.set_rng_state(state["torch_rng"].cpu())
    rows: list[dict[str, Any]] = []
    if (run / "metrics.csv").exists():
        with open(run / "metrics.csv", newline="") as f:
            rows = [{"phase": r["phase"], "step": int(r["step"]), "return": float(r["return"]),
                     "normalized_score": float(r["normalized_score"])} for r in csv.DictReader(f) if r["phase"] == "offline"]
    upto = int(meta.get("offline_done", 0)) + int(meta.get("improve_done", 0)) if name == "offline_partial" else None
    rows = [r for r in rows if upto is None or r["step"] <= upto]
    return rows, {"phase": name, **meta}


def _write_metrics(run: Path, rows: list[dict[str, Any]], curve: bool = True) -> None:
    from rlsuite.core.atomic import atomic_path

    with atomic_path(run / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["phase", "step", "return", "normalized_score"])
        w.writeheader()
        w.writerows(rows)
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
        with atomic_path(run / "curve.png") as tmp_png:
            fig.savefig(tmp_png, dpi=100)
        plt.close(fig)
    except Exception:  # noqa: BLE001 - the curve is a convenience; the CSV holds the numbers
        pass
