"""Benchmark: greenhouse climate control. Profit of robust model-based RL (sample dropout delta 0, 0.1, 0.2,
0.3) against SAC, PPO and the rule-based controller on ``rlsuite/Greenhouse-Lettuce-v0``, on the nominal
evaluation seasons and on perturbed ones; and the env's throughput against the batch size.

(a) ``agents``: every learner trains on randomly drawn seasons (start day and weather seed per episode) of
    ``--season-days`` days (default 10: a quarter of the lettuce cycle, so that a run fits a CPU budget),
    each at its preset (``rlsuite presets ALGO --env rlsuite/Greenhouse-Lettuce-v0``), for a budget of real
    env steps: robust MBRL and SAC ``--steps`` (default 5,000 = about 5 seasons of 10 days), SAC also
    ``--sac-long`` (20,000) for the model-free figure at 4x the samples, PPO ``--ppo-steps`` (300,000; its
    preset runs 16 envs). Seeds 0 .. ``--seeds``-1, 1 torch thread. Each trained policy (deterministic) and
    the rule-based controller (``rlsuite.envs.greenhouse.rules``) are then evaluated on
    - ``nominal``: the env's 12 fixed evaluation seasons (``scenario="eval"``: one starting on the first day of
      each month, with its weather seed), nominal model and weather;
    - ``perturbed``: the same 12 seasons at 9 perturbation points: the corners of ``greenhouse-weather``
      (outdoor temperature -4 / +4 degC x radiation x 0.7 / 1.3), the corners of ``greenhouse-params``
      (light use efficiency x cover heat transmission, each x 0.8 / 1.2) and ``param_noise`` 0.2 (every
      uncertain parameter x U(0.8, 1.2) per episode): 108 episodes.
    Per policy and set: mean profit (EUR m^-2 per season: crop value minus heating and CO2 costs), the worst
    episode, CVaR 10 % (mean of the worst 10 % of episodes), the mean return (profit minus comfort
    penalties) and the penalties; real env steps and training seconds.
(b) ``throughput``: env steps per second of ``GreenhouseVecEnv`` with constant mid-range actions at batch sizes 1 to
    16,384 on the CPU (and on CUDA when there is one), median of 3 runs of 200 vector steps.

Every agent is trained in process the way ``rlsuite train`` trains it (``seed_everything``, the env from
``make_vec_env(..., seed=seed, season_days=...)``, ``build_agent``, ``agent.learn``) without a run
directory. Writes docs/benchmarks/greenhouse.csv and the tables between the ``greenhouse`` markers of
docs/benchmarks.md; rows of the parts not rerun are kept.

Usage:
    python scripts/bench/greenhouse.py --quick                  # tiny budgets, 1 seed: a smoke run (about a minute)
    python scripts/bench/greenhouse.py --parts throughput       # a minute
    python scripts/bench/greenhouse.py --parts agents          # about an hour on 1 core (2 seeds)
    python scripts/bench/greenhouse.py --render                 # rewrite the tables from the CSV
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from benchlib import ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

import rlsuite  # noqa: F401  (registers the envs and agents)
from rlsuite.agents.registry import AGENTS, build_agent, preset_config
from rlsuite.core.seeding import seed_everything
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.greenhouse import ENV_ID, season_figures
from rlsuite.envs.greenhouse.rules import rule_policy
from rlsuite.envs.robust import cvar

CSV_PATH = ROOT / "docs" / "benchmarks" / "greenhouse.csv"
BLOCK, TITLE = "greenhouse", "Greenhouse climate control: robust MBRL vs SAC, PPO and the rule-based controller"
PARTS = ("agents", "throughput")
DELTAS = (0.0, 0.1, 0.2, 0.3)
# the perturbed evaluation points (each over the 12 evaluation seasons)
PERTURBED = (
    *({"temp_shift": t, "radiation_scale": r} for t in (-4.0, 4.0) for r in (0.7, 1.3)),
    *({"c_eps_scale": e, "c_ai_ou_scale": c} for e in (0.8, 1.2) for c in (0.8, 1.2)),
    {"param_noise": 0.2},
)
BATCHES = (1, 16, 256, 4096, 16384)


# ---------------------------------------------------------------------------------------------- agents
def methods(steps: int, sac_long: int, ppo_steps: int) -> list[tuple[str, str, dict[str, Any], int]]:
    """``(label, algo, config overrides, real env steps)`` of every learner."""
    out = [(f"robust MBRL delta={d:g}" + (" (MBPO)" if d == 0 else ""), "robust-mbrl", {"dropout": d}, steps) for d in DELTAS]
    out.append(("SAC", "sac", {}, steps))
    if sac_long > steps:
        out.append(("SAC", "sac", {}, sac_long))
    out.append(("PPO", "ppo", {}, ppo_steps))
    return out


def train_agent(algo: str, overrides: dict[str, Any], steps: int, seed: int, season_days: int) -> tuple[Any, float]:
    """Train ``algo`` as ``rlsuite train`` does, without a run directory: ``(agent, seconds)``."""
    spec = AGENTS.get(algo)
    cfg = dataclasses.replace(preset_config(spec, ENV_ID), **overrides)
    seed_everything(seed)
    env = make_vec_env(ENV_ID, cfg.num_envs, device="cpu", seed=seed, season_days=season_days)
    agent = build_agent(spec, cfg, env.single_observation_space, env.single_action_space, "cpu", seed)
    t0 = time.perf_counter()
    agent.learn(env, steps, None, seed=seed)
    seconds = time.perf_counter() - t0
    env.close()
    return agent, seconds


def evaluate(act: Callable[[torch.Tensor], torch.Tensor], season_days: int) -> dict[str, dict[str, float]]:
    """``{"nominal": figures, "perturbed": figures}`` (see the module docstring)."""
    out = {}
    for name, points in (("nominal", (None,)), ("perturbed", PERTURBED)):
        runs = [season_figures(act, season_days, p, seed=1000 + i) for i, p in enumerate(points)]
        profit = np.concatenate([r["profit"] for r in runs])
        out[name] = {"profit_mean": float(profit.mean()), "profit_worst": float(profit.min()), "profit_cvar10": cvar(profit, 0.1),
                     "return_mean": float(np.concatenate([r["return"] for r in runs]).mean()),
                     "penalty_mean": float(np.concatenate([r["penalty"] for r in runs]).mean()), "episodes": int(profit.size)}
    return out


def bench_agents(rows: list[dict], seeds: list[int], season_days: int, steps: int, sac_long: int, ppo_steps: int) -> None:
    t0 = time.perf_counter()
    for set_name, figs in evaluate(rule_policy(), season_days).items():
        rows.append({"part": "agents", "method": "rule-based", "algo": "rule", "set": set_name, "season_days": season_days,
                     "train_steps": 0, "eval_seconds": round(time.perf_counter() - t0, 2), **figs})
    for seed in seeds:
        for label, algo, overrides, budget in methods(steps, sac_long, ppo_steps):
            agent, secs = train_agent(algo, overrides, budget, seed, season_days)
            t0 = time.perf_counter()
            result = evaluate(lambda o, a=agent: a.act(o, deterministic=True), season_days)
            for set_name, figs in result.items():
                rows.append({"part": "agents", "method": label, "algo": algo, "set": set_name, "season_days": season_days,
                             "seed": seed, "train_steps": agent.global_step, "train_seconds": round(secs, 1),
                             "eval_seconds": round(time.perf_counter() - t0, 2), **figs})
            n, p = result["nominal"], result["perturbed"]
            print(f"seed {seed} {label} {agent.global_step} steps ({secs:.0f} s): nominal profit {n['profit_mean']:.3f} "
                  f"(return {n['return_mean']:.3f}), perturbed profit {p['profit_mean']:.3f} worst {p['profit_worst']:.3f} "
                  f"cvar {p['profit_cvar10']:.3f}", flush=True)


# ---------------------------------------------------------------------------------------------- throughput
@torch.no_grad()
def bench_throughput(rows: list[dict], quick: bool) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for batch in BATCHES[:3] if quick else BATCHES:
            env = make_vec_env(ENV_ID, batch, device=device, seed=0)
            env.reset(seed=0)
            action = torch.zeros((batch, env.single_action_space.shape[0]), device=device)
            vector_steps = 20 if quick else 200
            times = []
            for _ in range(3):
                env.step(action)  # warm-up
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(vector_steps):
                    env.step(action)
                if device == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            env.close()
            sps = batch * vector_steps / statistics.median(times)
            rows.append({"part": "throughput", "device": device, "machine_device": machine(device), "batch": batch,
                         "steps_per_second": round(sps), "vector_steps_per_second": round(sps / batch, 1)})
            print(f"throughput {device} batch {batch}: {sps:,.0f} env steps/s", flush=True)


# ---------------------------------------------------------------------------------------------- tables
def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def render(rows: list[dict]) -> str:
    out = []
    agents = [r for r in rows if r["part"] == "agents"]
    if agents:
        days = agents[0]["season_days"]
        seeds = sorted({int(r["seed"]) for r in agents if "seed" in r})
        out.append(f"Seasons of {days} days; every learner trained on random seasons for the real env steps shown, at its preset, "
                   f"seeds {', '.join(map(str, seeds))}; cells: median [min, max] over seeds of the per-seed figure. Profit in EUR m^-2 "
                   "per season (crop value minus heating and CO2); return = profit minus comfort penalties. Nominal: the 12 "
                   "evaluation seasons (one per month); perturbed: the same seasons at 9 weather and model perturbations (108 episodes). "
                   "Worst: the worst episode; CVaR 10 %: the mean of the worst 10 % of episodes.\n")
        out.append("| method | real env steps | train s | nominal profit | nominal return | perturbed profit mean | "
                   "perturbed worst | perturbed CVaR 10 % | perturbed return |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        keys = []
        for r in agents:
            k = (r["method"], int(r["train_steps"]))
            if k not in keys:
                keys.append(k)
        for method, steps in keys:
            sel = {s: [r for r in agents if (r["method"], int(r["train_steps"])) == (method, steps) and r["set"] == s]
                   for s in ("nominal", "perturbed")}
            secs = [r["train_seconds"] for r in sel["nominal"] if "train_seconds" in r]
            out.append(f"| {method} | {steps:,} | {statistics.median(secs):.0f} | " if secs else f"| {method} | {steps:,} | - | ")
            out[-1] += " | ".join(_fmt([r[c] for r in sel[s]]) for s, c in (
                ("nominal", "profit_mean"), ("nominal", "return_mean"), ("perturbed", "profit_mean"), ("perturbed", "profit_worst"),
                ("perturbed", "profit_cvar10"), ("perturbed", "return_mean"))) + " |"
    tp = [r for r in rows if r["part"] == "throughput"]
    if tp:
        out.append("\nEnv throughput (constant mid-range actions, median of 3 x 200 vector steps, 1 torch thread), env steps per second:\n")
        devices = sorted({r["device"] for r in tp})
        out.append("| batch | " + " | ".join(f"{d} ({next(r['machine_device'] for r in tp if r['device'] == d)})" for d in devices) + " |")
        out.append("|---|" + "---|" * len(devices))
        for b in sorted({int(r["batch"]) for r in tp}):
            cells = [next((f"{int(r['steps_per_second']):,}" for r in tp if r["device"] == d and int(r["batch"]) == b), "-") for d in devices]
            out.append(f"| {b:,} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    ap.add_argument("--quick", action="store_true", help="tiny budgets, 1 seed: a smoke run")
    ap.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    ap.add_argument("--season-days", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5_000, help="real env steps of robust MBRL and SAC")
    ap.add_argument("--sac-long", type=int, default=20_000, help="SAC's longer budget (0: none)")
    ap.add_argument("--ppo-steps", type=int, default=300_000)
    ap.add_argument("--no-write", action="store_true", help="print the tables; write no file")
    ap.add_argument("--render", action="store_true", help="rewrite the tables from the CSV; measure nothing")
    ap.add_argument("--torch-threads", type=int, default=1)
    args = ap.parse_args()
    if args.render:
        rows = read_rows(CSV_PATH)
        rendered = render(rows)
        write_results(CSV_PATH, rows, {}, BLOCK, rendered, TITLE)
        print(rendered)
        return
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; known: {', '.join(PARTS)}")
    torch.set_num_threads(args.torch_threads)
    if args.quick:
        args.seeds, args.season_days, args.steps, args.sac_long, args.ppo_steps = 1, 1, 1200, 0, 2048
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    t_all = time.perf_counter()
    new: list[dict] = []
    for part in parts:
        rows: list[dict] = []
        if part == "agents":
            bench_agents(rows, list(range(args.seeds)), args.season_days, args.steps, args.sac_long, args.ppo_steps)
        else:
            bench_throughput(rows, args.quick)
        new += rows
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine("cpu"), "commit": git_commit(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_before": load_before, "quick": int(args.quick)}
    kept = [r for r in read_rows(CSV_PATH, keep_parts=set(PARTS) - set(parts)) if args.quick or not r.get("quick")]
    rows = kept + [{**meta, **r} for r in new]
    rendered = render(rows)
    if not args.no_write:
        write_results(CSV_PATH, rows, meta, BLOCK, rendered, TITLE)
    print(rendered)
    print(f"wall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
