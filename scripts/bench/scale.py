"""Benchmark: scale-out (rollout workers, DDP learners, sweeps against Ray Tune) and a paper-scale projection.

Four parts (``--parts``), each measured in one run of this script, interleaved over ``--repeats``:

- ``rollouts``: PPO on Hopper-v5 (8 envs x 256 steps, 8 minibatches, 10 epochs, 1 torch thread) through
  ``rlsuite train ppo`` in a fresh process per run, locally (``--workers 0``), with 1 and 2 Ray rollout workers
  (synchronous) and with 2 asynchronous workers (``--async-rollouts``). Per run: env steps per second of the
  training iterations after the first (their steps over their summed durations, from ``time/sps``: Ray's and the
  workers' start are left out), of the collection alone (``time/collect_seconds``) and the command's wall-clock.
- ``ddp``: PPO on CartPole-v1 at its preset, 16,384 env steps in all, one process against ``torchrun
  --nproc-per-node 2`` (8,192 steps per rank); env steps per second of the whole run (rank 0's median
  ``time/sps`` after the first iteration, times the ranks) and the wall-clock.
- ``sweep``: the same trials (PPO on CartPole-v1, a grid of 2 learning rates x ``--sweep-seeds`` seeds,
  ``--sweep-steps`` env steps each, 1 CPU per trial, at most 2 at once) run by ``rlsuite sweep`` and by Ray
  Tune's own runner (``Tuner`` over a grid of the trials' indices, each calling the function ``rlsuite sweep``'s
  Ray tasks call, :func:`rlsuite.sweep.run_trial`), each in a fresh process that starts its own local Ray.
  Trials per hour from the command's wall-clock (Ray's start included), and whether the two runners' trials
  scored the same (PPO with one thread is deterministic, so they must). The multi-seed table of the scores is
  ``rlsuite report``'s (:func:`rlsuite.report.make_report`) over each runner's trials.
- ``project``: the cost of one update of IQL, RLPD and EXPO at the papers' sizes (``PAPER`` of each agent
  module; IQL's defaults are its paper's) on a synthetic Hopper-sized dataset (11-dim observations, 3-dim
  actions), median of ``--project-repeats`` timed calls after one untimed; from it, the CPU-hours of a
  5-seed x 4-dataset x 3-algorithm table at the papers' budgets and how many machines finish it in 24 hours.

Results: docs/benchmarks/scale.csv (rows of the parts that ran replace that part's earlier rows) and the tables
between the ``scale`` markers of docs/benchmarks.md (``--csv`` / ``--md`` to write elsewhere). Needs the
``bench`` extra (``ray[tune]``): ``pip install -e '.[dev,bench]'``.

Usage:
    python scripts/bench/scale.py                                  # all parts, 3 repeats (about 15 min on 2 cores)
    python scripts/bench/scale.py --parts rollouts --repeats 2
    python scripts/bench/scale.py --parts project --project-repeats 3
    python scripts/bench/scale.py --render-only
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import MD_PATH, ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

CSV_PATH = ROOT / "docs" / "benchmarks" / "scale.csv"
BLOCK = "scale"
TITLE = "Scale-out: rollout workers, DDP learners, sweeps against Ray Tune, paper-scale projection"
PARTS = ("rollouts", "ddp", "sweep", "project")
PPO_COMMON = ["--device", "cpu", "--torch-threads", "1", "--eval-episodes", "0", "--no-tensorboard", "--no-progress", "--overwrite"]
#: rollout variant -> extra flags of ``rlsuite train ppo``
ROLLOUT_VARIANTS = {"local": [], "1 worker": ["--workers", "1"], "2 workers": ["--workers", "2"],
                    "2 workers async": ["--workers", "2", "--async-rollouts"]}
#: per-trial budgets of the projection: algorithm -> (updates per trial, what they are)
BUDGETS = {"iql": (2_000_000, "1M offline updates + 1M online env steps at 1 update each (IQL's fine-tuning)"),
           "rlpd": (300_000, "300k online env steps at UTD 20 (one `update_step` each)"),
           "expo": (300_000, "300k online env steps at UTD 20 (one `update_step` each; EXPO's AntMaze length)")}
TABLE_TRIALS = {"seeds": 5, "datasets": 4}
HOURS = 24


# ----------------------------------------------------------------------------- helpers


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _iteration_rates(run_dir: Path) -> tuple[float, float | None]:
    """(env steps/s of the training iterations after the first, of their collection alone or ``None``)."""
    rows = [r for r in _metrics(run_dir) if r.get("time/sps")]
    steps = [int(float(r["step"])) for r in rows]
    sizes = [b - a for a, b in zip([0, *steps[:-1]], steps, strict=True)]
    later = list(zip(sizes, rows, strict=True))[1:]
    if not later:
        raise RuntimeError(f"{run_dir}: fewer than 2 iterations logged time/sps; raise the step budget")
    seconds = sum(n / float(r["time/sps"]) for n, r in later)
    collect = [float(r["time/collect_seconds"]) for _, r in later if r.get("time/collect_seconds")]
    rate_collect = sum(n for n, _ in later) / sum(collect) if len(collect) == len(later) else None
    return sum(n for n, _ in later) / seconds, rate_collect


def _run(argv: list[str], what: str) -> float:
    """Run a command; its wall-clock in seconds (exits with its output when it fails)."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall


def _rlsuite() -> list[str]:
    return [sys.executable, "-m", "rlsuite"]


# ----------------------------------------------------------------------------- parts


def rollouts(a: argparse.Namespace) -> list[dict]:
    rows = []
    for repeat in range(a.repeats):
        for variant, flags in ROLLOUT_VARIANTS.items():
            run_dir = Path(a.run_root) / "rollouts" / f"{variant.replace(' ', '-')}-{repeat}"
            argv = [*_rlsuite(), "train", "ppo", "--env", "Hopper-v5", "--num-envs", "8", "--num-steps", "256",
                    "--num-minibatches", "8", "--total-steps", str(a.rollout_steps), "--seed", "0", *PPO_COMMON,
                    "--run-dir", str(run_dir), *flags]
            wall = _run(argv, f"rollouts {variant}")
            sps, collect = _iteration_rates(run_dir)
            rows.append({"part": "rollouts", "variant": variant, "repeat": repeat, "env": "Hopper-v5", "steps": a.rollout_steps,
                         "sps": round(sps, 1), "collect_sps": round(collect, 1) if collect else None, "wall_s": round(wall, 2)})
            print(f"rollouts {variant} #{repeat}: {sps:,.0f} env steps/s, collection {collect or float('nan'):,.0f}, wall {wall:.1f} s", flush=True)
    return rows


def ddp(a: argparse.Namespace) -> list[dict]:
    rows = []
    torchrun = str(Path(sys.executable).parent / "torchrun")
    for repeat in range(a.repeats):
        for ranks in (1, 2):
            run_dir = Path(a.run_root) / "ddp" / f"ranks{ranks}-{repeat}"
            tail = ["train", "ppo", "--env", "CartPole-v1", "--total-steps", str(a.ddp_steps // ranks), "--seed", "0",
                    *PPO_COMMON, "--run-dir", str(run_dir)]
            argv = [*_rlsuite(), *tail] if ranks == 1 else [torchrun, "--nproc-per-node", "2", "-m", "rlsuite", *tail]
            wall = _run(argv, f"ddp {ranks} ranks")
            per_rank = statistics.median(float(r["time/sps"]) for r in _metrics(run_dir)[1:] if r.get("time/sps"))
            rows.append({"part": "ddp", "variant": f"{ranks} process{'es' if ranks > 1 else ''}", "repeat": repeat, "env": "CartPole-v1",
                         "steps": a.ddp_steps, "sps": round(per_rank * ranks, 1), "wall_s": round(wall, 2)})
            print(f"ddp {ranks} ranks #{repeat}: {per_rank * ranks:,.0f} env steps/s, wall {wall:.1f} s", flush=True)
    return rows


def _sweep_spec(a: argparse.Namespace) -> dict[str, Any]:
    return {"algo": "ppo", "env": "CartPole-v1", "total_steps": a.sweep_steps, "seeds": a.sweep_seeds,
            "grid": {"learning_rate": [1.0e-3, 3.0e-4]}, "args": {"eval_episodes": 10, "tensorboard": False},
            "cpus_per_trial": 1}


def tune_child(spec_path: str, out: str) -> None:
    """Run a sweep spec's trials with Ray Tune's runner (``Tuner``), 2 at once, on a local Ray started as the suite
    starts it; each trial calls :func:`rlsuite.sweep.run_trial`, the function of ``rlsuite sweep``'s Ray tasks."""
    import ray
    from ray import tune

    from rlsuite.core.ray_setup import init_ray
    from rlsuite.sweep import expand_trials, load_spec, run_trial, score_of

    spec = load_spec(spec_path)
    trials = [(t.run, t.config, str(Path(out) / "logs" / f"{t.name}.log")) for t in expand_trials(spec, out)]
    algo, metric = spec.algo, spec.metric

    def trainable(config: dict[str, Any]) -> None:
        run, cfg, log_path = trials[config["index"]]
        result = run_trial(algo, run, cfg, log_path, 1)
        tune.report({"steps": result["steps"], "score": score_of(run["run_dir"], metric)})

    init_ray(ray, None, 2)
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": spec.cpus_per_trial}),
                       param_space={"index": tune.grid_search(list(range(len(trials))))},
                       tune_config=tune.TuneConfig(max_concurrent_trials=2),
                       run_config=tune.RunConfig(storage_path=str(Path(out).absolute() / "tune"), name="trials", verbose=0))
    results = tuner.fit()
    errors = [r.error for r in results if r.error]
    ray.shutdown()
    if errors:
        raise SystemExit(f"{len(errors)} Tune trial(s) failed: {errors[0]}")


def sweep(a: argparse.Namespace) -> list[dict]:
    import yaml

    from rlsuite.report import make_report
    from rlsuite.sweep import expand_trials, score_of, spec_from_dict

    root = Path(a.run_root) / "sweep"
    root.mkdir(parents=True, exist_ok=True)
    spec_path = root / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_sweep_spec(a)))
    spec = spec_from_dict(_sweep_spec(a))
    rows = []
    for repeat in range(a.repeats):
        outs = {}
        for runner in ("rlsuite sweep", "ray tune"):
            out = root / f"{runner.replace(' ', '-')}-{repeat}"
            shutil.rmtree(out, ignore_errors=True)
            if runner == "rlsuite sweep":
                argv = [*_rlsuite(), "sweep", str(spec_path), "--out", str(out), "--max-concurrent", "2", "--no-report"]
            else:
                argv = [sys.executable, str(Path(__file__).resolve()), "--tune-child", str(spec_path), str(out)]
            wall = _run(argv, runner)
            trials = expand_trials(spec, out)
            scores = [score_of(t.run_dir, spec.metric) for t in trials]
            outs[runner] = scores
            report = make_report([out], reps=a.report_reps, out=out / "report-bench", overwrite=True)
            rows.append({"part": "sweep", "variant": runner, "repeat": repeat, "env": "CartPole-v1", "trials": len(trials),
                         "steps": a.sweep_steps, "wall_s": round(wall, 2), "trials_per_hour": round(len(trials) * 3600 / wall, 1),
                         "scores": json.dumps([None if s is None else round(s, 3) for s in scores]),
                         "report": "\n\n".join(t for t in (report["tables"]["aggregates"], report["tables"]["improvement"]) if t)
                         if repeat == 0 and runner == "rlsuite sweep" else None})
            print(f"sweep {runner} #{repeat}: {len(trials)} trials in {wall:.1f} s = {len(trials) * 3600 / wall:.0f} trials/hour", flush=True)
        same = outs["rlsuite sweep"] == outs["ray tune"]
        for r in rows[-2:]:
            r["same_scores"] = same
    return rows


def _synthetic(obs_dim: int, act_dim: int, n: int, seed: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    return {"observations": obs, "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32), "next_observations": obs + 0.01 * rng.normal(size=obs.shape).astype(np.float32),
            "terminals": rng.random(n) < 0.01, "timeouts": np.arange(1, n + 1) % 1000 == 0}


def project(a: argparse.Namespace) -> list[dict]:
    import numpy as np
    import torch

    from rlsuite.agents import expo as expo_mod
    from rlsuite.agents import rlpd as rlpd_mod
    from rlsuite.agents.iql import IQL, IQLConfig

    torch.set_num_threads(1)
    data = _synthetic(11, 3, 100_000, 0)
    low, high = -np.ones(3, np.float32), np.ones(3, np.float32)
    agents = {"iql": IQL(IQLConfig(), 11, 3, "cpu", 0),
              "rlpd": rlpd_mod.RLPD(rlpd_mod.RLPDConfig(**rlpd_mod.PAPER), 11, 3, "cpu", 0),
              "expo": expo_mod.EXPO(expo_mod.EXPOConfig(**expo_mod.PAPER), 11, 3, "cpu", 0)}
    rows = []
    for name, agent in agents.items():
        agent.set_data(data, low, high)
        if name == "iql":
            step = lambda agent=agent: agent.update(agent.data.sample(agent.cfg.batch_size, agent.generator))  # noqa: E731
        else:
            step = agent.update_step
        step()  # untimed: allocations, first-call costs
        times = []
        for _ in range(a.project_repeats if name == "expo" else a.project_repeats * 20):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        s = statistics.median(times)
        updates, what = BUDGETS[name]
        trials = TABLE_TRIALS["seeds"] * TABLE_TRIALS["datasets"]
        hours = trials * updates * s / 3600
        rows.append({"part": "project", "variant": name, "s_per_update": round(s, 5), "timed_calls": len(times),
                     "updates_per_trial": updates, "budget": what, "trials": trials, "cpu_hours": round(hours, 1),
                     "torch_threads": 1})
        print(f"project {name}: {s * 1e3:.2f} ms per update, {trials} trials x {updates:,} updates = {hours:,.1f} CPU-hours", flush=True)
    return rows


# ----------------------------------------------------------------------------- rendering


def _med(rows: list[dict], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return statistics.median(vals) if vals else None


def _fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def render(rows: list[dict]) -> str:
    by = lambda part: [r for r in rows if r.get("part") == part]  # noqa: E731
    out = []
    roll = by("rollouts")
    if roll:
        local = _med([r for r in roll if r["variant"] == "local"], "sps")
        out += ["PPO on Hopper-v5 (8 envs x 256 steps, 8 minibatches, 10 epochs, 1 torch thread), "
                f"{roll[0]['steps']:,} env steps per run, medians over {len({r['repeat'] for r in roll})} interleaved runs "
                "(env steps/s of the iterations after the first; the wall-clock includes Ray's and the workers' start):", "",
                "| rollouts | env steps/s | x local | collection, env steps/s | wall-clock s |", "|---|---|---|---|---|"]
        for variant in ROLLOUT_VARIANTS:
            rs = [r for r in roll if r["variant"] == variant]
            if rs:
                sps = _med(rs, "sps")
                out.append(f"| {variant} | {_fmt(sps)} | {sps / local:.2f} | {_fmt(_med(rs, 'collect_sps'))} | {_fmt(_med(rs, 'wall_s'), 1)} |")
        out.append("")
    dd = by("ddp")
    if dd:
        one = _med([r for r in dd if r["variant"] == "1 process"], "sps")
        out += [f"PPO on CartPole-v1 at its preset, {dd[0]['steps']:,} env steps in all, medians over "
                f"{len({r['repeat'] for r in dd})} interleaved runs (env steps/s: rank 0's median `time/sps` times the ranks):", "",
                "| learners | env steps/s | x one process | wall-clock s |", "|---|---|---|---|"]
        for variant in ("1 process", "2 processes"):
            rs = [r for r in dd if r["variant"] == variant]
            if rs:
                sps = _med(rs, "sps")
                out.append(f"| {variant} | {_fmt(sps)} | {sps / one:.2f} | {_fmt(_med(rs, 'wall_s'), 1)} |")
        out.append("")
    sw = by("sweep")
    if sw:
        ours = _med([r for r in sw if r["variant"] == "rlsuite sweep"], "trials_per_hour")
        out += [f"Sweeps: {sw[0]['trials']} PPO trials on CartPole-v1 ({sw[0]['steps']:,} env steps each, 2 learning rates x "
                f"{sw[0]['trials'] // 2} seeds, 1 CPU each, 2 at once), each runner in a fresh process with its own local Ray "
                f"(its start included), medians over {len({r['repeat'] for r in sw})} interleaved runs:", "",
                "| runner | trials per hour | x rlsuite sweep | wall-clock s | same trial scores as the other runner |",
                "|---|---|---|---|---|"]
        for variant in ("rlsuite sweep", "ray tune"):
            rs = [r for r in sw if r["variant"] == variant]
            if rs:
                tph = _med(rs, "trials_per_hour")
                same = all(str(r.get("same_scores")) == "True" for r in rs)
                out.append(f"| {variant} | {_fmt(tph)} | {tph / ours:.2f} | {_fmt(_med(rs, 'wall_s'), 1)} | {'yes' if same else 'no'} |")
        rep = next((r["report"] for r in sw if r.get("variant") == "rlsuite sweep" and r.get("report")), None)
        if rep:
            out += ["", "The trials' final evaluation returns (10 episodes each), as `rlsuite report` aggregates them (first "
                    "repeat, rlsuite sweep's trials; 95% stratified bootstrap intervals; P(X > Y) is the probability of improvement):", "", rep]
        out.append("")
    pj = by("project")
    if pj:
        total = sum(float(r["cpu_hours"]) for r in pj)
        out += [f"Paper-scale projection: a table of {TABLE_TRIALS['seeds']} seeds x {TABLE_TRIALS['datasets']} datasets x "
                f"{len(pj)} algorithms ({len(pj) * TABLE_TRIALS['seeds'] * TABLE_TRIALS['datasets']} trials), one trial per core "
                "at 1 torch thread, the per-update cost measured here on a synthetic Hopper-sized dataset at the papers' network "
                "sizes (median of the timed calls; env stepping and evaluation left out: they are small next to the updates):", "",
                "| algorithm | s per update | updates per trial | budget | trials | CPU-hours |", "|---|---|---|---|---|---|"]
        for r in pj:
            out.append(f"| {r['variant']} | {float(r['s_per_update']):.4g} | {int(r['updates_per_trial']):,} | {r['budget']} | "
                       f"{r['trials']} | {float(r['cpu_hours']):,.0f} |")
        out += ["", f"In all {total:,.0f} CPU-hours: {math.ceil(total / (2 * HOURS)):,} machines like this one (2 cores) or "
                f"{math.ceil(total / (32 * HOURS)):,} machines of 32 such cores finish it within {HOURS} hours "
                "(`rlsuite sweep --address auto` on a Ray cluster of them)."]
    return "\n".join(out).rstrip()


# ----------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--tune-child":
        tune_child(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs of every variant (rollouts, ddp, sweep)")
    p.add_argument("--rollout-steps", type=int, default=16_384)
    p.add_argument("--ddp-steps", type=int, default=16_384)
    p.add_argument("--sweep-steps", type=int, default=16_384)
    p.add_argument("--sweep-seeds", type=int, default=4)
    p.add_argument("--report-reps", type=int, default=2000, help="bootstrap resamples of the sweep's report")
    p.add_argument("--project-repeats", type=int, default=3, help="timed EXPO updates (IQL and RLPD: 20x as many)")
    p.add_argument("--run-root", default=str(ROOT / "runs" / "scale-bench"))
    p.add_argument("--csv", default=str(CSV_PATH))
    p.add_argument("--md", default=str(MD_PATH))
    p.add_argument("--render-only", action="store_true")
    a = p.parse_args()
    csv_path = Path(a.csv)
    rows: list[dict] = []
    if not a.render_only:
        for part in a.parts:
            rows += globals()[part](a)
    kept = read_rows(csv_path, keep_parts=set(PARTS) - (set() if a.render_only else set(a.parts)))
    meta = {"commit": git_commit(), "machine": machine("cpu")}
    old = [r for r in kept if r.get("part") in PARTS]
    write_results(csv_path, [*old, *[{**meta, **r} for r in rows]] if rows else old, {}, BLOCK, render([*old, *rows]), TITLE,
                  md_path=Path(a.md))
    print(render([*old, *rows]))


if __name__ == "__main__":
    main()
