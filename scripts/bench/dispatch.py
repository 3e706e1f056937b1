"""Benchmark: ride-sharing order dispatch. OSPO against GRPO, PPO with a critic (IPPO-style), greedy
nearest-vehicle dispatch and random dispatch on ``rlsuite/Dispatch-Manhattan-v0`` at three demand levels;
and the simulator's throughput against the fleet size.

(a) ``agents``: three settings of the env (synthetic Manhattan, 69 zones, evening peak from 19:00, 30
    one-minute steps, capacity 3; only the fleet and the demand change):
    - ``default``: the env's defaults, 1,000 vehicles and 150 orders per minute (the paper's scenario size);
    - ``low``: 500 vehicles, 50 orders per minute (more vehicles per order: pickup time decides);
    - ``high``: 1,500 vehicles, 300 orders per minute (fewer vehicles per order: many orders are lost).
    Every learner (``ospo``, ``grpo-dispatch``, ``ppo-dispatch``) trains at its preset for the env
    (``rlsuite presets ALGO --env rlsuite/Dispatch-Manhattan-v0``; ``--config`` overrides fields of all three)
    for ``--episodes`` iterations of ``num_envs`` episodes each (env steps = episodes x 30 x num_envs), seeds
    0 .. ``--seeds``-1 on ``default`` and 0 .. ``--other-seeds``-1 on the others, 1 torch thread. Then its
    deterministic policy (the scorer's mean scores), the greedy policy and the random policy (seeded with each
    training seed) run the same ``--eval-episodes`` evaluation episodes (episode seeds ``EVAL_SEED`` +
    0, 1, ...) through ``rlsuite.core.evaluate.evaluate_episodes``, which gives the env's per-episode figures:
    served and lost orders, mean pickup, delivery, detour and confirmation minutes, the total reward and the
    fleet's reward spread (std over vehicles of their cumulative reward). Per run: the means over the
    evaluation episodes, the training wall-clock (snapshot evaluations included) and the env steps.
(b) ``throughput``: vehicle-steps per second (num_envs x num_vehicles per second of ``env.step`` with
    greedy scores; the scores are computed outside the timed call) for fleets of 100, 300, 1,000 and 3,000
    vehicles, demand scaled with the fleet (0.15 orders per vehicle per minute, the default's ratio), at
    num_envs 1 and 8, on the CPU (and on CUDA when there is one); median of 3 runs of one 30-minute episode
    each, from the same reset.

Every learner is trained in process the way ``rlsuite train`` trains it (``seed_everything``, the env from
``make_vec_env(..., seed=seed, **env_kwargs)``, ``build_agent``, ``agent.learn``) without a run directory.
Writes docs/benchmarks/dispatch.csv and the tables between the ``dispatch`` markers of docs/benchmarks.md;
rows of the parts not rerun are kept (a full run drops the rows of an earlier --quick run).

Usage:
    python scripts/bench/dispatch.py --quick --no-write        # tiny budgets, 1 seed: a smoke run (about a minute)
    python scripts/bench/dispatch.py --parts throughput         # a few minutes
    python scripts/bench/dispatch.py --parts agents             # about 35 minutes on one core (200 episodes per run)
    python scripts/bench/dispatch.py --render                   # rewrite the tables from the CSV
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from benchlib import ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

import rlsuite  # noqa: F401  (registers the envs and agents)
from rlsuite.agents.registry import AGENTS, build_agent, env_kwargs_of, num_envs_of, preset_config
from rlsuite.core.evaluate import evaluate_episodes, policy_of
from rlsuite.core.seeding import seed_everything
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.dispatch import ENV_ID, greedy_policy, random_policy

CSV_PATH = ROOT / "docs" / "benchmarks" / "dispatch.csv"
BLOCK, TITLE = "dispatch", "Ride-sharing dispatch: OSPO vs GRPO, PPO-critic, greedy and random; simulator throughput"
PARTS = ("agents", "throughput")
#: the env settings of part (a): name -> env kwargs (the rest at the env's defaults)
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "low": {"num_vehicles": 500, "orders_per_minute": 50.0},
    "high": {"num_vehicles": 1500, "orders_per_minute": 300.0},
}
LEARNERS = (("OSPO", "ospo"), ("GRPO", "grpo-dispatch"), ("PPO-critic", "ppo-dispatch"))
EVAL_SEED = 10_000
#: the figures of a run, in table order: (column, header, format)
FIGURES = (("served", "served", ",.0f"), ("lost", "lost", ",.0f"), ("pickup_min", "pickup min", ".2f"),
           ("delivery_min", "delivery min", ".2f"), ("detour_min", "detour min", ".2f"),
           ("confirmation_min", "confirm. min", ".2f"), ("return", "total reward", ",.0f"),
           ("reward_spread", "reward spread", ".2f"))
FLEETS = (100, 300, 1000, 3000)
NUM_ENVS = (1, 8)
ORDERS_PER_VEHICLE = 0.15  # orders per vehicle per minute: the default scenario's 150 / 1,000
#: the paper's default scenario (NYC TLC data, July 2024, 19:00; Zhao & Li 2025): the reference for the ranking
PAPER = {"OSPO": {"served": 3700, "pickup_min": 6.76}, "GRPO": {"served": 3643, "pickup_min": 6.97}}


def env_kwargs(setting: str) -> dict[str, Any]:
    return dict(SETTINGS[setting])


def setting_of(setting: str) -> dict[str, Any]:
    """The fleet and demand of a setting, as the env builds it (defaults filled in)."""
    kw = env_kwargs(setting)
    return {"num_vehicles": int(kw.get("num_vehicles", 1000)), "orders_per_minute": float(kw.get("orders_per_minute", 150.0))}


# ---------------------------------------------------------------------------------------------- agents
def train_agent(algo: str, overrides: dict[str, Any], episodes: int, seed: int, kwargs: dict[str, Any]) -> tuple[Any, float, int]:
    """Train ``algo`` as ``rlsuite train`` does, without a run directory, for ``episodes`` iterations of
    ``num_envs`` episodes: ``(agent, seconds, num_envs)``."""
    spec = AGENTS.get(algo)
    cfg = dataclasses.replace(preset_config(spec, ENV_ID), **overrides)
    seed_everything(seed)
    n = num_envs_of(spec, cfg)
    env = make_vec_env(ENV_ID, n, device="cpu", seed=seed, **{**env_kwargs_of(spec, cfg), **kwargs})
    agent = build_agent(spec, cfg, env.single_observation_space, env.single_action_space, "cpu", seed)
    if hasattr(agent, "check_env"):
        agent.check_env(env)
    t0 = time.perf_counter()
    agent.learn(env, episodes * env.horizon * n, None, seed=seed)
    seconds = time.perf_counter() - t0
    env.close()
    return agent, seconds, n


def evaluate(act: Callable[..., torch.Tensor], kwargs: dict[str, Any], episodes: int) -> dict[str, float]:
    """Means over the fixed evaluation episodes (seeds ``EVAL_SEED`` + i) of the return and the env's figures."""
    returns, figures = evaluate_episodes(act, ENV_ID, episodes=episodes, seed=EVAL_SEED, env_kwargs=kwargs)
    out = {"return": float(np.mean(returns)), "return_std": float(np.std(returns))}
    out.update({name: float(np.mean(v)) for name, v in figures.items()})
    return out


def _line(label: str, setting: str, figs: dict[str, float], extra: str = "") -> str:
    return (f"{setting} {label}{extra}: served {figs['served']:,.0f} lost {figs['lost']:,.0f} pickup {figs['pickup_min']:.2f} min "
            f"reward {figs['return']:,.0f} spread {figs['reward_spread']:.2f}")


def bench_agents(rows: list[dict], settings: list[str], seeds: int, other_seeds: int, episodes: int, eval_episodes: int,
                 overrides: dict[str, Any]) -> None:
    config = json.dumps(overrides, sort_keys=True)
    for setting in settings:
        kwargs = env_kwargs(setting)
        common = {"part": "agents", "setting": setting, **setting_of(setting), "eval_episodes": eval_episodes, "eval_seed": EVAL_SEED}
        n_seeds = seeds if setting == "default" else other_seeds
        t0 = time.perf_counter()
        figs = evaluate(greedy_policy(), kwargs, eval_episodes)
        rows.append({**common, "method": "greedy", "algo": "greedy", "train_steps": 0, "eval_seconds": round(time.perf_counter() - t0, 2), **figs})
        print(_line("greedy", setting, figs), flush=True)
        for seed in range(n_seeds):
            t0 = time.perf_counter()
            figs = evaluate(random_policy(seed), kwargs, eval_episodes)
            rows.append({**common, "method": "random", "algo": "random", "seed": seed, "train_steps": 0,
                         "eval_seconds": round(time.perf_counter() - t0, 2), **figs})
            print(_line("random", setting, figs, f" seed {seed}"), flush=True)
            for label, algo in LEARNERS:
                agent, secs, n = train_agent(algo, overrides, episodes, seed, kwargs)
                t0 = time.perf_counter()
                figs = evaluate(policy_of(agent, deterministic=True), kwargs, eval_episodes)
                rows.append({**common, "method": label, "algo": algo, "seed": seed, "num_envs": n, "iterations": agent.iteration,
                             "train_episodes": agent.iteration * n, "train_steps": agent.global_step, "train_seconds": round(secs, 1),
                             "eval_seconds": round(time.perf_counter() - t0, 2), "config": config, **figs})
                print(_line(label, setting, figs, f" seed {seed}") + f" ({agent.global_step:,} env steps, {secs:.0f} s)", flush=True)


# ---------------------------------------------------------------------------------------------- throughput
@torch.no_grad()
def bench_throughput(rows: list[dict], quick: bool) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    fleets, nums, repeats = (FLEETS[:2], (1, 2), 1) if quick else (FLEETS, NUM_ENVS, 3)
    act = greedy_policy()
    for device in devices:
        for n in nums:
            for fleet in fleets:
                opm = ORDERS_PER_VEHICLE * fleet
                max_open = max(2048, math.ceil(8 * opm))  # the pool holds every order of the patience window with room to spare
                env = make_vec_env(ENV_ID, n, device=device, seed=0, num_vehicles=fleet, orders_per_minute=opm,
                                   max_open_orders=max_open)
                horizon = env.horizon
                times = []
                for _ in range(repeats):
                    obs, _ = env.reset(seed=0)
                    spent = 0.0
                    for _ in range(horizon):
                        scores = act(obs)
                        if device == "cuda":
                            torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        obs, *_ = env.step(scores)
                        if device == "cuda":
                            torch.cuda.synchronize()
                        spent += time.perf_counter() - t0
                    times.append(spent)
                env.close()
                secs = statistics.median(times)
                vsps = n * fleet * horizon / secs
                rows.append({"part": "throughput", "device": device, "machine_device": machine(device), "num_envs": n,
                             "num_vehicles": fleet, "orders_per_minute": opm, "max_open_orders": max_open, "repeats": repeats,
                             "step_ms": round(1000 * secs / horizon, 2), "vehicle_steps_per_second": round(vsps),
                             "env_steps_per_second": round(n * horizon / secs, 1)})
                print(f"throughput {device} num_envs {n} fleet {fleet}: {vsps:,.0f} vehicle-steps/s "
                      f"({1000 * secs / horizon:.1f} ms per step)", flush=True)


# ---------------------------------------------------------------------------------------------- tables
def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}, {format(max(values), fmt)}]"


def _median(rows: list[dict], method: str, key: str) -> float | None:
    vals = [r[key] for r in rows if r["method"] == method and key in r]
    return statistics.median(vals) if vals else None


def _ranking(rows: list[dict]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = sorted(methods, key=lambda m: -(_median(rows, m, "served") or 0.0))
    return ", ".join(f"{m} {_median(rows, m, 'served'):,.0f} ({_median(rows, m, 'pickup_min'):.2f} min)" for m in by)


def _paper_reading(rows: list[dict]) -> str:
    """Whether OSPO ranks above GRPO in the default setting as in the paper (more served, shorter pickup), from the medians,
    and whether the seed ranges separate them."""
    per = {m: {k: [r[k] for r in rows if r["method"] == m and k in r] for k in ("served", "pickup_min")} for m in ("OSPO", "GRPO")}
    if not all(per[m][k] for m in per for k in per[m]):
        return ""
    o, g = ({k: statistics.median(v) for k, v in per[m].items()} for m in ("OSPO", "GRPO"))
    served = "more" if o["served"] > g["served"] else ("as many" if o["served"] == g["served"] else "fewer")
    pickup = "shorter" if o["pickup_min"] < g["pickup_min"] else ("the same" if o["pickup_min"] == g["pickup_min"] else "longer")
    agrees = [o["served"] > g["served"], o["pickup_min"] < g["pickup_min"]]
    verdict = {(True, True): "agrees on both", (True, False): "agrees on served orders, not on pickup",
               (False, True): "agrees on pickup, not on served orders", (False, False): "does not agree"}[tuple(agrees)]
    apart = [min(per["OSPO"]["served"]) > max(per["GRPO"]["served"]) or max(per["OSPO"]["served"]) < min(per["GRPO"]["served"]),
             min(per["OSPO"]["pickup_min"]) > max(per["GRPO"]["pickup_min"]) or max(per["OSPO"]["pickup_min"]) < min(per["GRPO"]["pickup_min"])]
    n = len(per["OSPO"]["served"])
    spread = ("the seed ranges of both figures are apart" if all(apart) else "the seed ranges overlap on " +
              " and ".join(name for name, a in zip(("served orders", "pickup"), apart, strict=True) if not a))
    p = PAPER
    return (f"The paper's ranking on its default scenario (NYC TLC data): OSPO above GRPO, {p['OSPO']['served']:,} against "
            f"{p['GRPO']['served']:,} served orders and {p['OSPO']['pickup_min']} against {p['GRPO']['pickup_min']} min mean pickup "
            "(the reference for the order, not for the values: our city and demand are synthetic and the budgets far smaller). "
            f"Here, on `default`, OSPO's median serves {served} orders ({o['served']:,.1f} against {g['served']:,.1f}) with a "
            f"{pickup} mean pickup ({o['pickup_min']:.3f} against {g['pickup_min']:.3f} min): the ranking {verdict}; "
            f"over {n} seed{'s' if n != 1 else ''}, {spread}.")


def render(rows: list[dict]) -> str:
    out = []
    agents = [r for r in rows if r["part"] == "agents"]
    settings = [s for s in dict.fromkeys(r["setting"] for r in agents)]
    if agents:
        learned = [r for r in agents if r["algo"] not in ("greedy", "random")]
        eval_eps = agents[0]["eval_episodes"]
        configs = sorted({r.get("config", "{}") for r in learned})
        out.append(f"`{ENV_ID}` (synthetic Manhattan, 69 zones, from 19:00, 30 one-minute steps, capacity 3); settings differ only in "
                   "fleet and demand. Learners at their preset" + (f" with {', '.join(c for c in configs if c != '{}')}"
                                                                    if any(c != "{}" for c in configs) else "")
                   + ", 1 torch thread, trained for the env steps shown; then every policy (learners: deterministic scores) runs "
                   f"the same {eval_eps} evaluation episodes (seeds {EVAL_SEED}..{EVAL_SEED + int(eval_eps) - 1}). A run's figure is "
                   "its mean over those episodes; cells: median [min, max] over training seeds (random: over its own seeds; greedy "
                   "is deterministic). Minutes are means over the episode's orders (pickup: matched ETA; delivery and detour: "
                   "delivered orders; confirmation: appearance to match); total reward: the episode's summed vehicle rewards; "
                   "reward spread: std over vehicles of their cumulative reward.\n")
        for setting in settings:
            sel = [r for r in agents if r["setting"] == setting]
            seeds = sorted({int(r["seed"]) for r in sel if "seed" in r and r["algo"] not in ("greedy", "random")})
            out.append(f"**{setting}**: {int(sel[0]['num_vehicles']):,} vehicles, {sel[0]['orders_per_minute']:g} orders per minute at "
                       f"19:00; seeds {', '.join(map(str, seeds)) or '-'}.\n")
            out.append("| method | env steps | train s | " + " | ".join(h for _, h, _ in FIGURES) + " |")
            out.append("|---|---|---|" + "---|" * len(FIGURES))
            for method in dict.fromkeys(r["method"] for r in sel):
                rs = [r for r in sel if r["method"] == method]
                steps = sorted({int(r["train_steps"]) for r in rs})
                secs = [r["train_seconds"] for r in rs if "train_seconds" in r]
                cells = [_cell([r[k] for r in rs if k in r], f) for k, _, f in FIGURES]
                out.append(f"| {method} | {'/'.join(f'{s:,}' for s in steps)} | {_cell(secs, '.0f')} | " + " | ".join(cells) + " |")
            out.append(f"\nBy median served orders: {_ranking(sel)}.\n")
        default = [r for r in agents if r["setting"] == "default"]
        reading = _paper_reading(default)
        if reading:
            out.append(reading + "\n")
    tp = [r for r in rows if r["part"] == "throughput"]
    if tp:
        out.append("Simulator throughput: vehicle-steps per second (num_envs x vehicles per second of `env.step`, greedy scores computed "
                   "outside the timed call), demand 0.15 orders per vehicle per minute, one 30-minute episode per run, median of "
                   f"{int(tp[0].get('repeats', 3))} runs, 1 torch thread:\n")
        cols = list(dict.fromkeys((r["device"], int(r["num_envs"])) for r in tp))
        names = {d: next(r["machine_device"] for r in tp if r["device"] == d) for d, _ in cols}
        out.append("| vehicles | orders / min | " + " | ".join(f"{d} ({names[d]}), num_envs {n}" for d, n in cols) + " |")
        out.append("|---|---|" + "---|" * len(cols))
        for fleet in sorted({int(r["num_vehicles"]) for r in tp}):
            opm = next(r["orders_per_minute"] for r in tp if int(r["num_vehicles"]) == fleet)
            cells = [next((f"{int(r['vehicle_steps_per_second']):,} ({r['step_ms']:.1f} ms/step)" for r in tp
                           if (r["device"], int(r["num_envs"]), int(r["num_vehicles"])) == (d, n, fleet)), "-") for d, n in cols]
            out.append(f"| {fleet:,} | {opm:g} | " + " | ".join(cells) + " |")
    return "\n".join(out).rstrip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"agents: comma-separated, from {', '.join(SETTINGS)}")
    ap.add_argument("--quick", action="store_true", help="tiny budgets, 1 seed: a smoke run")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 on the default setting")
    ap.add_argument("--other-seeds", type=int, default=2, help="training seeds 0..N-1 on the other settings")
    ap.add_argument("--episodes", type=int, default=200, help="training iterations of num_envs episodes per run")
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument("--config", default="{}", help="JSON object of config fields set for every learner, e.g. '{\"learning_rate\": 1e-4}'")
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
    settings = [s for s in args.settings.split(",") if s]
    unknown = [p for p in parts if p not in PARTS] + [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown part(s) or setting(s) {unknown}; parts: {', '.join(PARTS)}; settings: {', '.join(SETTINGS)}")
    overrides = json.loads(args.config)
    if not isinstance(overrides, dict):
        raise SystemExit(f"--config must be a JSON object of config fields, got {args.config!r}")
    torch.set_num_threads(args.torch_threads)
    if args.quick:
        args.seeds, args.other_seeds, args.episodes, args.eval_episodes = 1, 1, 2, 2
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    t_all = time.perf_counter()
    new: list[dict] = []
    for part in parts:
        rows: list[dict] = []
        if part == "agents":
            bench_agents(rows, settings, args.seeds, args.other_seeds, args.episodes, args.eval_episodes, overrides)
        else:
            bench_throughput(rows, args.quick)
        new += rows
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine("cpu"), "commit": git_commit(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_before": load_before, "quick": int(args.quick)}
    # rows of the parts not rerun, and of the settings not rerun when the agents part runs for some of them
    kept = [r for r in read_rows(CSV_PATH) if (r.get("part") not in parts or (r["part"] == "agents" and r.get("setting") not in settings))
            and (args.quick or not r.get("quick"))]
    rows = kept + [{**meta, **r} for r in new]
    rendered = render(rows)
    if not args.no_write:
        write_results(CSV_PATH, rows, meta, BLOCK, rendered, TITLE)
    print(rendered)
    print(f"wall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
