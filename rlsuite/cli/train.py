"""``rlsuite list``, ``rlsuite train <algo>`` (any registered agent) and ``rlsuite eval RUN``.

``train`` parses, with tyro, the options of the agent's source (:class:`rlsuite.core.run.RunConfig`
for an env, :class:`rlsuite.offline.train.OfflineRunConfig` for a dataset,
:class:`rlsuite.envs.cop.train.InstancesRunConfig` for instance sets) and the agent's own config
dataclass, with flags named after the fields and their defaults shown; ``--resume RUN`` reuses the
saved settings and lets flags override them. The drivers do the work.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import tyro

from rlsuite.cli.args import at_least, flag, parse

RUN_CONFIGS = {
    "env": ("rlsuite.core.run", "RunConfig"),
    "dataset": ("rlsuite.offline.train", "OfflineRunConfig"),
    "instances": ("rlsuite.envs.cop.train", "InstancesRunConfig"),
}


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _run_config_cls(kind: str) -> type:
    import importlib

    module, name = RUN_CONFIGS[kind]
    return getattr(importlib.import_module(module), name)


def _parse(spec: Any, argv: list[str]) -> tuple[Any, Any]:
    """``(run options, algorithm config)`` from the command line (and a resumed run's saved settings)."""
    import tyro

    from rlsuite.core.config import config_from_dict
    from rlsuite.core.run import read_run_config

    run_cls = _run_config_cls(spec.learns_from)
    resume = _flag_value(argv, "--resume")
    if resume:
        from rlsuite.agents.train import run_dir_of

        saved = read_run_config(run_dir_of(resume))
        if saved.get("algo") != spec.name:
            raise ValueError(f"{resume!r} is a {saved.get('algo')} run; resume it with: rlsuite train {saved.get('algo')} --resume {resume}")
        known = {f.name for f in dataclasses.fields(run_cls)}  # the run record may carry more (e.g. the env a dataset names)
        saved_run = {k: v for k, v in saved["run"].items() if k in known}
        run_defaults = config_from_dict(run_cls, {**saved_run, "resume": resume, "run_dir": str(run_dir_of(resume))})
        algo_defaults = config_from_dict(spec.config_cls, saved["config"])
    else:
        env_id = _flag_value(argv, "--env") or spec.default_env
        run_defaults = run_cls(env=env_id) if spec.learns_from == "env" else run_cls()
        algo_defaults = spec.config_cls(**spec.presets.get(env_id, {})) if spec.learns_from == "env" else spec.config_cls()
    shown = _shown_values(spec, resume, _flag_value(argv, "--env") or spec.default_env)
    listed = f" Envs with a preset: {', '.join(spec.presets)}." if spec.presets else ""
    Args = dataclasses.make_dataclass(
        f"Train{spec.config_cls.__name__}",
        [("run", run_cls, dataclasses.field(default_factory=run_cls)),
         ("algo", Annotated[spec.config_cls, tyro.conf.arg(help=shown)], dataclasses.field(default_factory=spec.config_cls))],
        frozen=True,
    )
    args = tyro.cli(Args, args=argv, default=Args(run=run_defaults, algo=algo_defaults), prog=f"rlsuite train {spec.name}",
                    description=f"Train {spec.name}: {spec.summary}. Learns from: {spec.learns_from}. {shown}{listed}",
                    config=(tyro.conf.OmitArgPrefixes,))
    return args.run, args.algo


def _shown_values(spec: Any, resume: str | None, env_id: str) -> str:
    """Which values the algorithm options' defaults in ``--help`` are: the resumed run's, an env's preset over
    the config's defaults, or the config's defaults (with the source its docstring names)."""
    import re

    from rlsuite.cli.presets import defaults_source

    doc = defaults_source(spec).rstrip(".")
    m = re.search(r"\(defaults?: (.+)\)$", doc)
    defaults = f"{spec.config_cls.__name__}'s defaults ({m.group(1)})" if m else f"{spec.config_cls.__name__}'s defaults: {doc}"
    if resume:
        return f"Values shown: those of the run being resumed ({resume}); flags given override them."
    if spec.learns_from != "env":
        return f"Values shown: {defaults} (no per-env presets; rlsuite presets {spec.name} lists them)."
    which = "the default env" if env_id == spec.default_env else "--env"
    if env_id in spec.presets:
        return (f"Values shown: the preset for {env_id} ({which}) over {defaults}; --env ID --help shows another env's; "
                f"rlsuite presets {spec.name} lists them.")
    return f"Values shown: {defaults}, no preset for {env_id} ({which}); rlsuite presets {spec.name} lists the presets."


def _new_run_dir(run_cfg: Any, default: Path) -> Path:
    from rlsuite.core.run import claim_run_dir

    return claim_run_dir(run_cfg.run_dir or default, run_cfg.overwrite)


def train_from_argv(argv: list[str]) -> tuple[Any, dict[str, Any]]:
    """Parse ``<algo> [options]`` and run the algorithm's driver; returns ``(spec, summary)`` (the summary
    holds the trained ``agent`` too)."""
    from rlsuite.agents import AGENTS

    spec = AGENTS.get(argv[0])
    run_cfg, algo_cfg = _parse(spec, argv[1:])
    if spec.learns_from == "env":
        from rlsuite.agents.train import train

        return spec, train(spec, run_cfg, algo_cfg)
    if spec.learns_from == "dataset":
        return spec, _train_dataset(spec, run_cfg, algo_cfg)
    return spec, _train_instances(spec, run_cfg, algo_cfg)


def cmd_train(argv: list[str]) -> int:
    from rlsuite.agents import AGENTS

    if not argv or argv[0].startswith("-"):
        kinds = ", ".join(f"{n} ({AGENTS.get(n).learns_from})" for n in AGENTS.names())
        print(f"usage: rlsuite train <algo> [options]; algos: {kinds}\n"
              "rlsuite train <algo> --help lists its options with their defaults; rlsuite presets <algo> its tuned values")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    spec, s = train_from_argv(argv)
    if s.get("rank", 0):  # another rank of a data-parallel run (torchrun): rank 0 prints the run's summary
        return 0
    if spec.learns_from == "env":
        print(f"run directory: {s['run_dir']}\ncheckpoint:    {s['checkpoint']}\ncurve:         {s['curve']}")
        extra = f" success_rate={s['success_rate']:.4f}" if "success_rate" in s else ""
        print(f"steps={s['steps']} eval_mean_return={s['eval_mean_return']:.2f}{extra}")
    elif spec.learns_from == "dataset":
        last = {r["phase"]: r for r in s["rows"]}
        print(f"run directory: {s['run_dir']} (metrics.csv, curve.png, checkpoints/)")
        for phase in ("offline", "online"):
            if phase in last:
                r = last[phase]
                print(f"{phase}: return {r['return']:.1f}, normalized score {r['normalized_score']:.1f} ({s[f'{phase}_seconds']:.0f} s)")
        online = f" online_score={s['online_score']:.3f}" if s["online_score"] is not None else ""
        print(f"offline_score={s['offline_score']:.3f}{online}")
    else:
        print(f"run directory: {s['run_dir']}\ncheckpoint:    {s['checkpoint']}")
        print(f"on {s['eval_instances']} fresh instances: greedy mean cost {s['greedy_cost']:.4f}, nearest neighbour {s['nn_cost']:.4f}")
        print(f"steps={s['steps']} greedy_cost={s['greedy_cost']:.6g}")
    return 0


def _train_dataset(spec: Any, run_cfg: Any, algo_cfg: Any) -> dict[str, Any]:
    from rlsuite.offline.train import default_offline_steps, train_offline

    if not run_cfg.dataset:
        raise ValueError(f"rlsuite train {spec.name} needs --dataset ID (see rlsuite data list; make one with rlsuite data collect).")
    run_dir = run_cfg.run_dir
    if not run_cfg.resume:
        default = Path("runs") / f"{run_cfg.dataset.replace('/', '_')}__{spec.name}__{run_cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = str(_new_run_dir(run_cfg, default))
    offline_steps = default_offline_steps(spec.name) if run_cfg.offline_steps is None else run_cfg.offline_steps
    return train_offline(spec.name, run_cfg.dataset, offline_steps, run_cfg.online_steps, run_cfg.seed, run_cfg.eval_every,
                         run_cfg.eval_episodes, run_dir, Path(run_cfg.data_dir) if run_cfg.data_dir else None, run_cfg.device,
                         log=lambda m: print(m, flush=True), config=algo_cfg, resume=bool(run_cfg.resume))


def _train_instances(spec: Any, run_cfg: Any, algo_cfg: Any) -> dict[str, Any]:
    from rlsuite.agents import build_agent
    from rlsuite.agents.train import run_dir_of
    from rlsuite.core.run import resolve_checkpoint
    from rlsuite.core.seeding import resolve_device, seed_everything
    from rlsuite.envs.cop.train import resume_state, train_instances

    device = resolve_device(run_cfg.device)
    seed_everything(run_cfg.seed)
    agent = build_agent(spec, algo_cfg, None, None, device, run_cfg.seed)
    start = None
    if run_cfg.resume:
        run_dir = run_dir_of(run_cfg.resume)
        start = resume_state(resolve_checkpoint(run_cfg.resume), device)
    else:
        default = Path("runs") / f"{algo_cfg.problem}{run_cfg.size}__{spec.name}__{run_cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = _new_run_dir(run_cfg, default)
    return {**train_instances(agent, spec.name, run_cfg, run_dir, start, say=lambda m: print(m, flush=True)),
            "eval_instances": run_cfg.eval_instances}


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate any run (deterministic actions; instance solvers: greedy cost on fresh instances); with --robust,
    over an uncertainty set of the env's physics."""

    run_dir: str
    """run directory (its latest checkpoint) or a checkpoint directory"""
    eval_episodes: Annotated[int, tyro.conf.arg(aliases=("--episodes",))] = 10
    """episodes (instance solvers: fresh instances); --episodes is the same option"""
    seed: int = 12345
    """seed of the evaluation episodes"""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    stochastic: bool = False
    """sample actions instead of the mode"""
    video: bool = False
    """record an MP4 of episode 0 (offscreen rendering; its return is episode 0's)"""
    video_path: str | None = None
    """where to write the MP4 (None: RUN_DIR/videos/eval.mp4)"""
    robust: bool = False
    """evaluate over an uncertainty set of the env's physics: nominal, mean, worst case, CVaR 10 %, AUC, heat map (docs/robust.md)"""
    metric: str = "return"
    """--robust: the figure per episode: return, or a per-step info figure of the env summed over the episode (the greenhouse's profit)"""
    set: str | None = None
    """--robust: uncertainty set name (e.g. hopper-mass-friction) or inline name=low:high[,name=low:high] (None: the env's default set)"""
    grid: int | None = None
    """--robust: grid values per dimension (None: 10, or 5 for a 3-D set)"""
    samples: int | None = None
    """--robust: evaluate this many random points of the set instead of a grid"""

    def __post_init__(self) -> None:
        at_least(self, 1, "eval_episodes", "samples")
        at_least(self, 2, "grid")
        given = [flag(n) for n in ("set", "grid", "samples") if getattr(self, n) is not None]
        if given and not self.robust:
            raise ValueError(f"{', '.join(given)} go with --robust (a robust evaluation); add --robust.")
        if self.grid is not None and self.samples is not None:
            raise ValueError("give --grid (a grid over the set) or --samples (random points of it), not both.")
        if self.robust and (self.video or self.video_path):
            raise ValueError("--video records a nominal episode; run it without --robust.")
        if self.metric != "return" and not self.robust:
            raise ValueError(f"--metric {self.metric} goes with --robust (a robust evaluation); add --robust.")


def cmd_eval(argv: list[str]) -> int:
    import os

    a = parse(EvalArgs, argv, "rlsuite eval", positional=("run_dir",))
    if a.robust:
        return _eval_robust(a)
    video = None
    if a.video or a.video_path:
        os.environ.setdefault("MUJOCO_GL", "egl")
        video = Path(a.video_path) if a.video_path else Path(a.run_dir) / "videos" / "eval.mp4"
    from rlsuite.core.evaluate import RenderUnavailableError
    from rlsuite.runs import evaluate_run

    try:
        out = evaluate_run(a.run_dir, a.eval_episodes, a.seed, a.device, deterministic=not a.stochastic, video_path=video)
    except RenderUnavailableError as e:
        print(f"error: --video: {e}", file=sys.stderr)
        return 2
    n = a.eval_episodes
    if out["metric"] == "cost":
        print(f"{out['algo']} on {n} fresh {out['env']} instances, checkpoint step {out['step']}: "
              f"greedy mean cost {out['mean']:.4f} (nearest neighbour {out['baseline']:.4f})")
        print(f"mean_cost={out['mean']:.6g}")
        return 0
    import numpy as np

    figures = out.get("figures", {})
    print(f"{out['algo']} on {out['env']}, checkpoint step {out['step']}, {n} episodes")
    for i, r in enumerate(out["values"]):
        print(f"episode {i}: return={r:.3f}" + "".join(f" {k}={v[i]:.4g}" for k, v in figures.items()))
    if video is not None:
        print(f"video: {out['video']} (episode 0, return {out['video_return']:.3f})")
    for k, v in figures.items():
        print(f"mean_{k}={float(np.nanmean(v)):.4g}")
    print(f"mean_return={out['mean']:.4f}")
    return 0


def _eval_robust(a: EvalArgs) -> int:
    import logging

    from rlsuite.robust_eval import robust_evaluate_run, summary_line

    log = logging.getLogger("rlsuite")

    def progress(i: int, count: int, point: dict[str, float], mean: float) -> None:
        where = ", ".join(f"{k}={v:.4g}" for k, v in point.items())
        log.info("point %d/%d (%s): mean %s %.3f", i + 1, count, where, a.metric, mean)

    out = robust_evaluate_run(a.run_dir, a.set, grid=a.grid, samples=a.samples, episodes=a.eval_episodes, seed=a.seed,
                              device=a.device, deterministic=not a.stochastic, on_point=progress, metric=a.metric)
    s, r = out["summary"], out["result"]
    print(f"{out['algo']} on {out['env']}, checkpoint step {out['step']}: robust evaluation over {r.uncertainty_set.name} "
          f"({r.uncertainty_set.describe()}), {out['grid']} = {len(r.points)} points, {a.eval_episodes} episodes each")
    worst_at = ", ".join(f"{k}={v:.4g}" for k, v in out["worst_at"].items())
    nominal_at = ", ".join(f"{k}={v:.4g}" for k, v in r.nominal.items())
    print(f"nominal {a.metric:<10}{s['nominal']:.3f} ({nominal_at})")
    print(f"mean over points  {s['mean']:.3f}")
    print(f"worst case        {s['worst']:.3f} ({worst_at})")
    print(f"CVaR 10 %         {s['cvar']:.3f}")
    print(f"area under curve  {s['auc']:.3f}" + ("" if r.axes is not None else " (random points: no grid to integrate)"))
    print(f"points:  {out['points_csv']}\nfigure:  {out['figure']}\nsummary: {out['summary_csv']} (one row per robust evaluation); "
          f"{out['metrics_csv']}: {', '.join(out['keys'])}")
    print(summary_line(s, a.metric))
    return 0


def cmd_list(argv: list[str]) -> int:
    import gymnasium as gym

    from rlsuite.agents import AGENTS
    from rlsuite.envs import ENV_IDS

    print("agents (rlsuite train <name> --help):")
    for name in AGENTS.names():
        spec = AGENTS.get(name)
        where = f", default env {spec.default_env}" if spec.default_env else ""
        print(f"  {name:<8} learns from {spec.learns_from:<9} {spec.summary}{where}")
    print("environments (rlsuite):")
    width = max(len(e) for e in ENV_IDS)
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        kind = "batched torch + single" if spec.vector_entry_point else "single"
        print(f"  {env_id:<{width}} {kind}")
    print("any other Gymnasium id works too (e.g. CartPole-v1, Pendulum-v1, Hopper-v5) through the vector adapter.")
    return 0
