"""Offline (then online) training on a local Minari dataset with normalised-score logging.

``train_offline("iql", "rlsuite/hopper/medium-v0", offline_steps, online_steps)`` loads the dataset,
checks that its spaces match the env it names, trains offline with evaluations every ``eval_every``
updates (Uni-O4: then its policy-improvement updates; EXPO: base pretraining), then learns online (IQL,
Uni-O4: fine-tuning; RLPD, EXPO: online RL with the dataset in every minibatch). The run
directory has the layout of every rlsuite run: ``config.json``, ``metrics.csv`` and TensorBoard events in
``tb/`` (losses in ``train/*``, evaluations in ``eval/mean_return`` and ``eval/normalized_score``,
``train/phase`` 0 offline / 1 online), ``curve.png`` and checkpoints (``checkpoints/offline_partial``,
``offline``, ``online_partial`` (agents whose state holds their online replay, after every online
evaluation) and ``online``, safetensors + JSON, ``latest.json``). No return from the real environment
is used to select anything during the offline phase: evaluations are only logged.
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

OFFLINE_ALGOS = ("bc", "iql", "uni-o4", "rlpd", "expo")
DEFAULT_OFFLINE_STEPS = 100_000
"""Offline updates when ``--offline-steps`` is not given, unless the agent declares its own
``default_offline_steps`` (RLPD and EXPO: 0, they learn online with the dataset in every minibatch)."""


@dataclasses.dataclass(frozen=True)
class OfflineRunConfig:
    """Options of ``rlsuite train <algo>`` for an agent that learns from a dataset (then an env)."""

    dataset: str = ""
    """Dataset id, e.g. rlsuite/hopper/medium-v0 (see rlsuite data list)."""
    data_dir: str | None = None
    """Where datasets live (default $RLSUITE_DATA_DIR or ~/.local/share/rlsuite)."""
    offline_steps: int | None = None
    """Offline updates (Uni-O4: of the BC ensemble, critics and value, then its improve_steps; EXPO: base pretraining). Default: 100000, or 0 for agents without an offline phase (RLPD, EXPO)."""
    online_steps: int = 0
    """Env steps online after the offline phase (IQL, Uni-O4: fine-tuning; RLPD, EXPO: their training, required)."""
    seed: int = 0
    """Random seed (networks, minibatches, env)."""
    eval_every: int = 5000
    """Updates (offline) / env steps (online) between evaluations."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    run_dir: str | None = None
    """Run directory; default runs/<dataset>__<algo>__<seed>__<time>."""
    resume: str | None = None
    """A run directory (or one of its checkpoints) to continue: mid-offline from the last evaluation, the online phase after a finished offline one, or (RLPD, EXPO) mid-online from the last evaluation; its settings are reused."""
    overwrite: bool = False
    """Allow training into a run directory that already holds a run (it is replaced)."""

    def __post_init__(self) -> None:
        for name in ("offline_steps", "online_steps", "eval_episodes"):
            if (getattr(self, name) or 0) < 0:
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


def default_offline_steps(algo: str) -> int:
    """The offline updates of ``algo`` when none are asked (see :data:`DEFAULT_OFFLINE_STEPS`)."""
    from rlsuite.agents import AGENTS

    return int(getattr(AGENTS.get(algo).agent_cls, "default_offline_steps", DEFAULT_OFFLINE_STEPS))


def check_budgets(algo: str, offline_steps: int, online_steps: int, config: Any = None) -> None:
    """Refuse budgets ``algo`` cannot train with, before anything is loaded or written: none at all, an online
    phase for BC, offline updates for an agent without an offline phase (RLPD), or, for an agent whose online
    replay is in its state (RLPD, EXPO) without an offline phase, online steps not past its uniformly random
    warm-up (``start_training`` of ``config``: the config dataclass or overrides of it).

    Raises:
        DatasetError: the message names the flags to change.
    """
    from rlsuite.agents import AGENTS

    if offline_steps == 0 and online_steps == 0:
        raise DatasetError(f"nothing to train: received --offline-steps 0 and --online-steps 0 for {algo}; pass --online-steps N "
                           "(and/or --offline-steps N for agents with an offline phase).")
    if algo == "bc" and online_steps > 0:
        raise DatasetError("BC has no online phase; use --online-steps 0 (or train iql).")
    spec = AGENTS.get(algo)
    if offline_steps > 0 and getattr(spec.agent_cls, "offline_phase", True) is False:
        raise DatasetError(f"{algo} has no offline phase (it learns online with the dataset in every minibatch); received "
                           f"--offline-steps {offline_steps}: use --offline-steps 0 and --online-steps N.")
    if getattr(spec.agent_cls, "online_resumable", False) and offline_steps == 0 and online_steps > 0:
        warmup = int(getattr(_config(spec.config_cls, config), "start_training", 0))
        if online_steps <= warmup:
            raise DatasetError(f"--online-steps {online_steps} is not more than --start-training {warmup} (uniformly random steps "
                               f"before the first update): {algo} would not learn; pass more online steps or a smaller --start-training.")


def evaluate(agent, env_id: str, episodes: int, seed: int) -> float:
    """Mean undiscounted return of the agent's deterministic policy over ``episodes`` episodes."""
    return mean_return(env_id, lambda obs: agent.act(obs[None])[0], episodes, seed)


PHASES = ("offline", "online")
"""The values of ``train/phase`` in metrics.csv: 0 offline (Uni-O4: its improvement updates too), 1 online."""
PROGRESS_SECONDS = 5.0
"""Longest silence between two progress lines of a long phase."""


def read_evaluations(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The evaluations logged in a dataset run's ``metrics.csv``, in order: ``{"phase", "step", "return",
    "normalized_score"}`` per evaluation (``phase``: offline | online)."""
    from rlsuite.core.logger import read_metrics

    return [{"phase": PHASES[int(float(r["train/phase"]))], "step": int(float(r["step"])), "return": float(r["eval/mean_return"]),
             "normalized_score": float(r["eval/normalized_score"])}
            for r in read_metrics(Path(run_dir) / "metrics.csv") if r.get("eval/normalized_score", "") != ""]


def _metric_key(name: str) -> str:
    """An agent's stat name as a metrics.csv key (names with a namespace keep it)."""
    if "/" in name:
        return name
    return "rollout/ep_return" if name == "episode_return" else f"train/{name}"


class _Progress:
    """Passes a line to ``say`` when ``PROGRESS_SECONDS`` have passed since the last one."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.last = say, time.perf_counter()

    def __call__(self, line: str) -> None:
        if time.perf_counter() - self.last >= PROGRESS_SECONDS:
            self.last = time.perf_counter()
            self.say(line)


def train_offline(algo: str, ds_id: str, offline_steps: int, online_steps: int = 0, seed: int = 0, eval_every: int = 5000,
                  eval_episodes: int = 10, run_dir: str | os.PathLike | None = None, root: Path | None = None, device: str = "cpu",
                  log: Callable[[str], None] | None = None, config: dict[str, Any] | None = None, resume: bool = False,
                  overwrite: bool = False, tensorboard: bool = True) -> dict[str, Any]:
    """See the module docstring; returns the final offline and online normalised scores, the evaluations
    (``rows``: phase, step, return, normalized_score) and the wall-clock seconds of each phase.
    ``config``: overrides of the algorithm's config dataclass. Uni-O4's offline phase is ``offline_steps``
    supervised updates followed by ``improve_steps`` (its config) policy-improvement updates; its
    evaluations are numbered on after the first part.

    ``metrics.csv`` (through :class:`rlsuite.core.logger.Logger`, with TensorBoard events in ``tb/``) has
    one ``step`` axis: offline updates, then (online) the offline updates plus the env steps done online.
    Losses go into ``train/*`` every 100 updates (every ``eval_every`` when smaller), evaluations into
    ``eval/mean_return`` and ``eval/normalized_score``, and ``train/phase`` says which phase a row is from
    (see :data:`PHASES`). A progress line goes to ``log`` at least every :data:`PROGRESS_SECONDS` of a phase.

    A new run refuses a ``run_dir`` that already holds files unless ``overwrite`` (it is emptied).
    ``resume=True`` continues the interrupted run in ``run_dir``: from ``checkpoints/offline`` when its
    offline phase finished (the online phase then runs from its start; ``online_steps`` may differ
    from the first call), else from ``checkpoints/offline_partial``, written after every offline
    evaluation (the offline phase continues where that evaluation left it). The agent, its optimizers
    and the random generators are restored, so the result is what an unbroken run gives; the rows of
    ``metrics.csv`` up to the checkpoint are kept. The other arguments must match the first call.

    Raises:
        NothingToDo: ``resume`` of a run whose phases are done for the budgets asked (no file touched).
        DatasetError: bad arguments, a dataset that does not fit its env, a resume with other settings,
            below what the run has done, or past a finished online phase (no file touched).
    """
    import gymnasium as gym

    import rlsuite.envs  # noqa: F401
    from rlsuite.core.checkpoint import atomic_write_json, save_checkpoint, write_latest
    from rlsuite.core.config import config_to_dict
    from rlsuite.core.logger import Logger
    from rlsuite.core.run import claim_run_dir, code_version
    from rlsuite.core.vec_env import describe_space

    say = log or (lambda m: None)
    for name, value in (("offline_steps", offline_steps), ("online_steps", online_steps), ("eval_episodes", eval_episodes)):
        if value < 0:
            raise DatasetError(f"{name} must be >= 0, got {value}.")
    if eval_every < 1:
        raise DatasetError(f"eval_every must be >= 1, got {eval_every}.")
    check_budgets(algo, offline_steps, online_steps, config)
    if resume and run_dir is None:
        raise DatasetError("resume needs the run directory of the interrupted run (run_dir / --run-dir).")
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
    say(f"dataset {ds_id}: {len(arrays['rewards'])} transitions, {int(ends.sum())} episodes, mean episode return "
        f"{float(arrays['rewards'].sum()) / max(1, int(ends.sum())):.1f}; reference returns: random {ref_min:.1f}, expert {ref_max:.1f}")
    agent, spec = _make_agent(algo, env, env_id, device, seed, config)
    resumable = bool(getattr(agent, "online_resumable", False))  # its state holds the online replay
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
    offline_end = offline_steps + (agent.cfg.improve_steps if hasattr(agent, "improve") else 0)

    def save(phase: str, step: int, state: dict[str, Any], extra: dict[str, Any]) -> None:
        save_checkpoint(run / "checkpoints" / phase, state, {**ckpt_meta, "phase": phase, "step": step, **extra})
        write_latest(run / "checkpoints", phase, step)
    rows: list[dict[str, Any]] = []
    restored_seconds, offline_finished, done, k, online_done, online_restored_seconds = 0.0, False, 0, 0, 0, 0.0
    if resume:  # every check before the first write: a refused resume leaves the run as it was
        _check_settings(run, run_config)
        check_resumable(run, algo, offline_steps, online_steps)
        rows, meta = _restore_offline_phase(run, agent, agent.device, online_steps)
        offline_finished = meta["phase"] in ("offline", "online_partial")
        restored_seconds = float(meta.get("seconds", 0.0))
        done, k = int(meta.get("offline_done", offline_steps)), int(meta.get("improve_done", 0))
        online_done, online_restored_seconds = int(meta.get("online_done", 0)), float(meta.get("online_seconds", 0.0))
        say(f"resumed {run} from checkpoints/{meta['phase']} (offline update {done}, improvement update {k}, online env step "
            f"{online_done}; {len(rows)} evaluations kept)")
    else:
        claim_run_dir(run, overwrite)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "config.json", {**run_config, "config": _jsonable(run_config["config"])})
    start_step = (offline_end + online_done if offline_finished else done + k) if resume else 0
    logger = Logger(run, offline_end + online_steps, start_step, tensorboard=tensorboard, progress=False, lines=False, resume=resume)  # this driver logs its own lines
    progress = _Progress(say)

    def record(phase: str, step: int) -> float:
        t_eval = time.perf_counter()
        ret = evaluate(agent, env_id, eval_episodes, seed + 100_000)
        score = float(normalized_score(ret, ref_min, ref_max))
        rows.append({"phase": phase, "step": step, "return": ret, "normalized_score": score})
        logger.log(step, {"eval/mean_return": ret, "eval/normalized_score": score, "train/phase": PHASES.index(phase),
                          "time/eval_seconds": time.perf_counter() - t_eval})
        say(f"{phase} step {step}: return {ret:.1f}, normalized score {score:.1f}")
        return score

    t0 = time.perf_counter()

    def save_partial() -> None:  # after every evaluation of the offline phase: a kill loses at most one interval
        save("offline_partial", done + k, {"agent": agent.state_dict(), "torch_rng": torch.get_rng_state()},
             {"offline_done": done, "improve_done": k, "seconds": restored_seconds + time.perf_counter() - t0})

    chunk_start = {"step": 0, "time": 0.0}  # where the running chunk began (read by the callbacks)

    def on_offline(i: int, stats: dict[str, float]) -> None:
        step, per_s = chunk_start["step"] + i, i / max(time.perf_counter() - chunk_start["time"], 1e-9)
        logger.log(step, {**{_metric_key(n): v for n, v in stats.items()}, "train/phase": 0, "time/updates_per_second": per_s})
        progress(f"offline update {step}/{offline_steps}: " + ", ".join(f"{n} {v:.3g}" for n, v in stats.items())
                 + f" ({1000 / per_s:.1f} ms/update)")

    def on_improve(i: int, stats: dict[str, float]) -> None:
        logger.log(offline_steps + i, {**{_metric_key(n): v for n, v in stats.items()}, "train/phase": 0})
        progress(f"improvement update {i}/{agent.cfg.improve_steps}: policy loss {stats['policy_loss']:.3g}, "
                 f"AM-Q max {stats['am_q_max']:.2f}, accepted {stats['accepted']:.0f}")

    def on_online(i: int, stats: dict[str, Any]) -> None:
        steps = chunk_start["step"] + i
        logger.log(offline_end + steps, {**{_metric_key(n): v for n, v in stats.items()}, "train/phase": 1})
        progress(f"online env step {steps}/{online_steps} ({time.perf_counter() - chunk_start['time']:.0f} s into this interval)")

    log_every = max(1, min(100, eval_every))
    online_score = None
    try:
        while done < offline_steps:
            chunk = min(eval_every, offline_steps - done)
            chunk_start.update(step=done, time=time.perf_counter())
            agent.learn_offline(chunk, total_steps=offline_steps, log_every=log_every, log=on_offline)
            done += chunk
            record("offline", done)
            save_partial()
        if hasattr(agent, "improve") and not offline_finished:  # Uni-O4's offline policy improvement
            say(f"offline updates: {time.perf_counter() - t0:.0f} s")
            t_improve = time.perf_counter()
            if agent.reference is None:
                agent.start_improvement(say)
                say(f"dynamics fit and first AM-Q: {time.perf_counter() - t_improve:.0f} s")
            k_total = agent.cfg.improve_steps
            while k < k_total:
                chunk = min(eval_every, k_total - k)
                agent.improve(chunk, total_steps=k_total, log=on_improve)
                k += chunk
                best = max(g.best for g in agent.gates)
                say(f"improvement step {k}: AM-Q best {best:.2f}, accepted {sum(g.accepted for g in agent.gates)}, "
                    f"rejected {sum(g.rejected for g in agent.gates)}, selected member {agent.selected}")
                record("offline", offline_steps + k)
                save_partial()
        offline_seconds = restored_seconds if offline_finished else restored_seconds + time.perf_counter() - t0
        offline_score = next((r["normalized_score"] for r in reversed(rows) if r["phase"] == "offline"), float("nan"))
        if not offline_finished:
            # the agent plus torch's global generator (online sampling draws from it): resuming is exact
            save("offline", offline_end, {"agent": agent.state_dict(), "torch_rng": torch.get_rng_state()}, {"seconds": offline_seconds})
        t1 = time.perf_counter()
        if online_steps > 0:
            done = online_done
            while done < online_steps:
                chunk = min(eval_every, online_steps - done)
                chunk_start.update(step=done, time=time.perf_counter())
                agent.learn_online(env_id, chunk, seed=seed + done, total_steps=online_steps, log=on_online,
                                   log_every=log_every)
                done += chunk
                record("online", offline_end + done)
                spent = time.perf_counter() - t1
                say(f"online: {done}/{online_steps} env steps in {spent:.0f} s, about "
                    f"{spent / (done - online_done) * (online_steps - done):.0f} s left")
                if resumable and done < online_steps:  # a kill loses at most one evaluation interval
                    save("online_partial", offline_end + done, {"agent": agent.state_dict(), "torch_rng": torch.get_rng_state()},
                         {"offline_done": offline_steps, "improve_done": k, "online_done": done, "seconds": offline_seconds,
                          "online_seconds": online_restored_seconds + time.perf_counter() - t1})
            online_score = rows[-1]["normalized_score"]
            save("online", offline_end + online_steps, {"agent": agent.state_dict()}, {})
            if (run / "checkpoints" / "online_partial").exists():  # superseded (it holds a second copy of the replay)
                import shutil

                shutil.rmtree(run / "checkpoints" / "online_partial")
        online_seconds = online_restored_seconds + time.perf_counter() - t1
    finally:
        logger.close()
    curve = _plot_curve(run, rows, f"{algo} on {ds_id}")
    return {"run_dir": str(run), "agent": agent, "offline_score": offline_score, "online_score": online_score, "rows": rows,
            "offline_seconds": offline_seconds, "online_seconds": online_seconds, "curve": str(curve),
            "checkpoint": str(run / "checkpoints" / ("online" if online_steps > 0 else "offline"))}


def _jsonable(obj: Any) -> Any:
    """Tuples as lists, so that a config read back from JSON compares equal to a fresh one."""
    return json.loads(json.dumps(obj))


def _check_settings(run: Path, run_config: dict[str, Any]) -> None:
    """Refuse to resume ``run`` with settings other than its ``config.json``'s (the online budget may differ)."""
    try:
        saved = json.loads((run / "config.json").read_text())
    except FileNotFoundError:
        raise DatasetError(f"nothing to resume in {run}: it has no config.json (is it a run directory?).") from None
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"cannot read {run / 'config.json'} ({e}); the run directory is damaged.") from None
    mine = {**run_config, "config": _jsonable(run_config["config"])}
    diff = [k for k in ("algo", "dataset", "env", "offline_steps", "seed", "reference", "config") if saved.get(k) != mine.get(k)]
    if (run / "checkpoints" / "online_partial").exists() and saved.get("run", {}).get("eval_every") != mine["run"]["eval_every"]:
        diff.append("eval_every")  # the online chunks (and their episode resets) are cut at the evaluations
        saved.setdefault("eval_every", saved["run"].get("eval_every"))
        mine = {**mine, "eval_every": mine["run"]["eval_every"]}
    if diff:
        detail = "; ".join(f"{k}: run has {saved.get(k)!r}, received {mine[k]!r}" for k in diff)
        raise DatasetError(f"cannot resume {run} with other settings ({detail}); pass the settings of the first call.")


def check_resumable(run: Path, algo: str, offline_steps: int, online_steps: int) -> None:
    """Refuse to resume a run whose phases are done for the budgets asked (its settings already checked);
    returns when a resume of ``run`` with these budgets has work left (``rlsuite sweep`` asks it of its trials).

    Raises:
        NothingToDo: the offline phase is done and no online phase is asked, or the online phase is done
            with ``online_steps`` env steps.
        DatasetError: the online phase is done with another number of env steps (an online phase is not
            continued: its env and, for IQL, its replay data are not checkpointed).
    """
    from rlsuite.core.checkpoint import CheckpointError, read_checkpoint_meta
    from rlsuite.core.run import NothingToDo

    ck = run / "checkpoints"
    if (ck / "online_partial").exists() and not (ck / "online").exists():
        try:
            saved_online = int(read_checkpoint_meta(ck / "online_partial")["meta"]["run"]["online_steps"])
        except (CheckpointError, KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"cannot read {ck / 'online_partial'} ({e}); the run directory is damaged.") from None
        if online_steps != saved_online:
            raise DatasetError(f"{run} stopped in its online phase of {saved_online} env steps; resume it with --online-steps "
                               f"{saved_online} (received {online_steps}): the replay was sized and the episodes seeded for it.")
        return
    if (ck / "online").exists():
        try:
            saved_online = int(read_checkpoint_meta(ck / "online")["meta"]["run"]["online_steps"])
        except (CheckpointError, KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"cannot read {ck / 'online'} ({e}); the run directory is damaged.") from None
        if online_steps == saved_online:
            raise NothingToDo(f"{run} has already finished (offline {offline_steps} updates, online {saved_online} env steps); "
                              f"nothing to do. Evaluate it with: rlsuite eval {run}")
        if online_steps < saved_online:
            raise DatasetError(f"{run} finished its online phase after {saved_online} env steps, past --online-steps {online_steps}. "
                               f"Evaluate it with rlsuite eval {run}, or train a new run (another --run-dir, or --overwrite).")
        raise DatasetError(f"{run} finished its online phase after {saved_online} env steps; a finished online phase is not "
                           f"continued (its schedules and, for BC/IQL/Uni-O4, its replay data end with it), so --online-steps "
                           f"{online_steps} needs a new run: another --run-dir, or --overwrite to replace this one.")
    if (ck / "offline").exists() and online_steps == 0:
        more = "" if algo == "bc" else f" To fine-tune it online, resume with --online-steps N (rlsuite train {algo} --resume {run} --online-steps N)."
        raise NothingToDo(f"{run} has already finished its offline phase ({offline_steps} updates) and no online phase is asked; "
                          f"nothing to do.{more}")


def _restore_offline_phase(run: Path, agent: Any, device: str, online_steps: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Load the latest resumable checkpoint of ``run`` into ``agent`` and torch's global generator:
    ``online_partial`` (the last online evaluation of an agent whose state holds its online replay, when
    online env steps are asked), else ``offline`` (a finished offline phase), else ``offline_partial`` (the
    last evaluation of an interrupted offline phase). Returns the evaluations of metrics.csv up to that
    point and the checkpoint's meta (``phase``, ``offline_done``, ``improve_done``, ``online_done``, ``seconds``)."""
    from rlsuite.core.checkpoint import CheckpointError, load_checkpoint

    names = (("online_partial",) if online_steps > 0 else ()) + ("offline", "offline_partial")
    name = next((n for n in names if (run / "checkpoints" / n).exists()), None)
    if name is None:
        raise DatasetError(f"nothing to resume in {run}: it has no checkpoint yet (the first is written at the first "
                           "evaluation); run it again without --resume (with --overwrite).")
    try:
        state, meta = load_checkpoint(run / "checkpoints" / name, device)
    except CheckpointError as e:
        raise DatasetError(str(e)) from None
    if "agent" not in state or "torch_rng" not in state:
        raise DatasetError(f"{run / 'checkpoints' / name} was written by an rlsuite without resume support; "
                           "run again without --resume.")
    agent.load_state_dict(state["agent"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if name == "online_partial":
        upto = int(meta["step"])
        rows = [r for r in read_evaluations(run) if r["step"] <= upto]
    else:
        upto = int(meta.get("offline_done", 0)) + int(meta.get("improve_done", 0)) if name == "offline_partial" else None
        rows = [r for r in read_evaluations(run) if r["phase"] == "offline" and (upto is None or r["step"] <= upto)]
    return rows, {"phase": name, **meta}


def _plot_curve(run: Path, rows: list[dict[str, Any]], title: str) -> Path:
    """``run/curve.png``: the normalised score of the evaluations, one curve per phase (offline against
    updates, online against the updates plus env steps), drawn by :func:`rlsuite.core.run.plot_learning_curve`."""
    import tempfile

    from rlsuite.core.run import plot_learning_curve

    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "scores.csv"
        with open(table, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", *(f"eval/{p}" for p in PHASES)])
            for r in rows:
                w.writerow([r["step"], *(r["normalized_score"] if r["phase"] == p else "" for p in PHASES)])
        online = any(r["phase"] == "online" for r in rows)
        return plot_learning_curve(table, run / "curve.png", title,
                                   series=(("eval/offline", "offline evaluations (x: updates)"),
                                           ("eval/online", "online evaluations (x: updates + env steps)")),
                                   xlabel="offline updates, then online env steps" if online else "offline updates",
                                   ylabel="normalized score (0 random, 100 expert)")
