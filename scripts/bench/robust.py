"""Benchmark: robust RL. Return against the perturbation for DR-RPO and its baselines on the linear-feature
envs, and PPO / SAC trained nominally or under domain randomisation on MuJoCo, all scored by the suite's
robust-evaluation harness (``rlsuite.envs.robust.robust_evaluate``: nominal return, mean, worst case, CVaR
10 %, area under the curve over a grid of the env's default uncertainty set).

(a) ``linear``: ``rlsuite/LinearMDP-v0`` (H = 6). DR-RPO at rho 0, 0.1, 0.2, 0.3, LSVI-UCB and DR-LSVI-UCB
    (rho 0.2), each at its preset (``rlsuite presets ALGO --env ID``), trained for 800 and 3200 episodes
    (``--total-steps`` 4800 and 19200) on seeds 0-4, then evaluated deterministically on the 6-point grid of
    ``linear-mdp-q`` (q = 0, 0.1, ..., 0.5), 100 episodes per point. Beside them, exact values from
    ``rlsuite.core.linear_rl.robust_dp``: the optimum at each q, the all-risky (nominal-optimal) and all-safe
    policies, and the TV-robust optimum at each rho (its value V*_rho under the TV ball and its policy's
    returns over q). Only the action at the start state changes anything in this MDP, so every learned
    policy's exact return over q follows from its start action (the ``exact_*`` columns).
(b) ``put``: ``rlsuite/PutOption-v0`` (H = 20). The same six methods, 1600 episodes (``--total-steps`` 32000),
    seeds 0-4, the 5-point grid of ``put-option-p`` (p = 0.3, ..., 0.7), 500 episodes per point. Exact values
    on the binomial lattice (``PutOptionVecEnv.lattice_value``, averaged over 201 start prices evenly spread
    over [90, 110]): the optimum at each p, holding to maturity (optimal at p <= 0.5), exercising as soon as
    in the money, and the rule optimal at p = 0.7 (it attains min over p of the optimum, the best worst case
    any policy can have); each learned policy's exact return at each p (its decision at every lattice node).
(c) ``deep``: PPO and SAC on InvertedPendulum-v5 at their presets, trained nominally and with
    ``--domain-rand invertedpendulum-pole-cart-mass`` (the env's default set: pole mass 1-15 kg x cart mass
    2-30 kg, drawn per episode), SAC 15k steps and PPO 100k steps (PPO's preset reaches 1000 nominally by
    then), seeds 0 and 1, then evaluated over that set and over one not trained on
    (``invertedpendulum-gravity-gear``: gravity 4-16 x actuator gear 0.5-1.5), each on a 5 x 5 grid, 10
    episodes per point (the same episode seeds at every point). About 20 minutes on 2 cores (a SAC run
    takes about 150 s, a PPO run about 70 s, an evaluation about 16 s). ``--hopper`` adds Hopper-v5 (set
    ``hopper-mass-friction``): SAC 100k steps (preset: 10k random steps first), PPO 300k steps, the same
    grid and seeds; about 2 hours on a 2-core machine, so not run by default.

Every agent is trained in process the way ``rlsuite train`` trains it (``seed_everything(seed)``, the env
built with ``make_vec_env(..., seed=seed)`` or, with domain randomisation, ``rlsuite/Perturbed-v0`` around
it, ``build_agent``, ``agent.learn``), without a run directory; 1 torch thread by default.

Writes docs/benchmarks/robust.csv (one row per trained policy and evaluation, and one per exact reference
policy), docs/benchmarks/robust.png (median return against q over seeds per method, with the exact curves;
the put option beside it) and the tables between the ``robust`` markers of docs/benchmarks.md. Rows of the
parts not rerun are kept (a full run drops the rows of an earlier --quick run).

Usage:
    python scripts/bench/robust.py --quick                   # tiny budgets, every part, 1 seed (under a minute)
    python scripts/bench/robust.py --parts linear,put        # the linear-feature envs (a few minutes)
    python scripts/bench/robust.py --parts deep              # PPO / SAC on InvertedPendulum (about 20 min on 2 cores)
    python scripts/bench/robust.py --parts deep --hopper     # and Hopper (hours)
    python scripts/bench/robust.py --parts deep --hopper --deep-envs Hopper-v5   # Hopper only, keeping the other rows
    python scripts/bench/robust.py --render                  # rewrite tables and figure from the CSV
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections import Counter
from typing import Any

import numpy as np
import torch
from benchlib import ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

import rlsuite  # noqa: F401  (registers the envs and agents)
from rlsuite.agents.registry import AGENTS, build_agent, env_kwargs_of, num_envs_of, preset_config
from rlsuite.core.evaluate import policy_of
from rlsuite.core.linear_rl import feature_observation, robust_dp
from rlsuite.core.seeding import seed_everything
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.robust import cvar, get_uncertainty_set, grid_auc, robust_evaluate
from rlsuite.envs.robust.linear_mdp import START, LinearMDPVecEnv
from rlsuite.envs.robust.put_option import EXERCISE, PutOptionVecEnv

CSV_PATH = ROOT / "docs" / "benchmarks" / "robust.csv"
PNG_PATH = ROOT / "docs" / "benchmarks" / "robust.png"
BLOCK = "robust"
TITLE = "Robust RL: DR-RPO vs LSVI-UCB vs DR-LSVI-UCB; PPO / SAC with and without domain randomisation"
PARTS = ("linear", "put", "deep")

LINEAR_ID, PUT_ID = "rlsuite/LinearMDP-v0", "rlsuite/PutOption-v0"
LINEAR_SET, PUT_SET = "linear-mdp-q", "put-option-p"
RHOS = (0.0, 0.1, 0.2, 0.3)
# (label, registered agent, config fields over the env's preset)
LINEAR_METHODS = (*((f"DR-RPO rho={r:g}", "dr-rpo", {"rho": r}) for r in RHOS),
                  ("LSVI-UCB", "lsvi-ucb", {}), ("DR-LSVI-UCB rho=0.2", "dr-lsvi-ucb", {"rho": 0.2}))
PUT_START_PRICES = 201  # start prices of the exact lattice averages (midpoints of as many cells over [90, 110])

# deep part: env -> (the set trained on with --domain-rand, the sets evaluated on (that one first), {algo: training steps})
DEEP = {"InvertedPendulum-v5": ("invertedpendulum-pole-cart-mass", ("invertedpendulum-pole-cart-mass", "invertedpendulum-gravity-gear"),
                                {"ppo": 100_000, "sac": 15_000})}
HOPPER = {"Hopper-v5": ("hopper-mass-friction", ("hopper-mass-friction",), {"ppo": 300_000, "sac": 100_000})}


# ---------------------------------------------------------------------------------------------- training
def train_agent(algo: str, env_id: str, overrides: dict[str, Any], steps: int, seed: int,
                domain_rand: str | None = None) -> tuple[Any, Any, float]:
    """Train ``algo`` on ``env_id`` as ``rlsuite train`` does, without a run directory: ``(agent, config, seconds)``."""
    spec = AGENTS.get(algo)
    cfg = dataclasses.replace(preset_config(spec, env_id), **overrides)
    seed_everything(seed)
    env_kwargs = env_kwargs_of(spec, cfg)
    env_id_built, kwargs = env_id, env_kwargs
    if domain_rand:  # what --domain-rand does (rlsuite.agents.train)
        env_id_built, kwargs = "rlsuite/Perturbed-v0", {"env": env_id, "env_kwargs": env_kwargs, "domain_rand": domain_rand}
    env = make_vec_env(env_id_built, num_envs_of(spec, cfg), device="cpu", seed=seed, **kwargs)
    agent = build_agent(spec, cfg, env.single_observation_space, env.single_action_space, "cpu", seed)
    t0 = time.perf_counter()
    agent.learn(env, steps, None, seed=seed)
    seconds = time.perf_counter() - t0
    env.close()
    return agent, cfg, seconds


def point_text(result) -> str:
    """``q=0;q=0.1;...`` (``a=1,b=2`` per point for several dimensions)."""
    return ";".join(",".join(f"{k}={v:g}" for k, v in result.uncertainty_set.point(p).items()) for p in result.points)


def summary_columns(result) -> dict[str, Any]:
    s = result.summary()
    return {"nominal": s["nominal"], "mean": s["mean"], "worst": s["worst"], "cvar10": s["cvar"], "auc": s["auc"],
            "worst_at": ",".join(f"{k}={v:g}" for k, v in result.worst_point().items()),
            "points": point_text(result), "point_means": ";".join(f"{v:.6g}" for v in result.point_means),
            "n_points": len(result.points), "eval_episodes": int(result.returns.shape[1])}


def curve_columns(values: list[float], axis: np.ndarray) -> dict[str, float]:
    """nominal-free figures of an exact curve over a 1-D grid: mean, worst, CVaR 10 %, AUC."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "worst": float(v.min()), "cvar10": cvar(v, 0.1), "auc": grid_auc(v, (axis,))}


# ---------------------------------------------------------------------------------------------- linear MDP
def linear_exact(qs: np.ndarray) -> tuple[list[dict], dict[int, list[float]]]:
    """Exact rows of the linear MDP over the grid ``qs`` and every start action's return at each q."""
    env = LinearMDPVecEnv()
    phi, theta, H = env.phi, env.theta, env.horizon
    S = phi.shape[0]

    def value(action: int, q: float) -> float:
        policy = torch.full((H, S), action, dtype=torch.int64)  # only the start state's action matters
        return robust_dp(phi, env.factors(float(q)), theta, H, policy=policy)[1][0, START].item()

    by_action = {a: [value(a, q) for q in qs] for a in range(env.n_actions)}
    points = ";".join(f"q={q:g}" for q in qs)
    rows = []

    def row(method: str, values: list[float], **extra) -> None:
        rows.append({"part": "linear", "kind": "exact", "env": LINEAR_ID, "set": LINEAR_SET, "method": method,
                     "nominal": values[0] if qs[0] == 0 else float("nan"), **curve_columns(values, qs), "points": points,
                     "point_means": ";".join(f"{v:.6g}" for v in values), "n_points": len(qs), **extra})

    optimum = [robust_dp(phi, env.factors(float(q)), theta, H)[1][0, START].item() for q in qs]
    row("optimum at each q", optimum)
    row("all-risky (the nominal optimum)", by_action[env.n_actions - 1], start_action=env.n_actions - 1)
    row("all-safe", by_action[0], start_action=0)
    for rho in RHOS:
        Q, V = robust_dp(phi, env.factors(0.0), theta, H, rho=rho)
        a = int(Q[0, START].argmax())
        row(f"TV-robust optimum rho={rho:g}", by_action[a], rho=rho, start_action=a, v_rho=V[0, START].item())
    return rows, by_action


def start_action(agent) -> int:
    env = make_vec_env(LINEAR_ID, 1, seed=0)
    obs, _ = env.reset(seed=0)
    a = int(agent.act(obs, deterministic=True)[0])
    env.close()
    return a


def bench_linear(rows: list[dict], seeds: list[int], episodes_list: list[int], eval_episodes: int) -> None:
    qs = get_uncertainty_set(LINEAR_SET, LINEAR_ID).grid(6)[1][0]
    exact, by_action = linear_exact(qs)
    rows += exact
    H = LinearMDPVecEnv().horizon
    v_rho = {r["rho"]: r["v_rho"] for r in exact if "v_rho" in r}
    for episodes in episodes_list:
        for seed in seeds:
            for label, algo, overrides in LINEAR_METHODS:
                agent, cfg, secs = train_agent(algo, LINEAR_ID, overrides, episodes * H, seed)
                t0 = time.perf_counter()
                result = robust_evaluate(policy_of(agent, True), LINEAR_ID, LINEAR_SET, grid=6, episodes=eval_episodes,
                                         seed=1000 + seed)
                a = start_action(agent)
                ex = by_action[a]
                rho = float(getattr(cfg, "rho", 0.0))
                rows.append({"part": "linear", "kind": "policy", "env": LINEAR_ID, "set": LINEAR_SET, "method": label, "algo": algo,
                             "rho": rho, "train_episodes": episodes, "train_steps": agent.global_step, "seed": seed,
                             "train_seconds": round(secs, 3), "eval_seconds": round(time.perf_counter() - t0, 3),
                             **summary_columns(result), "start_action": a, "exact_nominal": ex[0], "exact_worst": min(ex),
                             "exact_point_means": ";".join(f"{v:.6g}" for v in ex), "v_rho": v_rho.get(rho, float("nan"))})
                r = rows[-1]
                print(f"linear {episodes} ep seed {seed} {label}: start action {a}, nominal {r['nominal']:.3f} worst {r['worst']:.3f} "
                      f"(exact {r['exact_worst']:.3f}), train {secs:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------------- put option
def start_prices(env: PutOptionVecEnv) -> np.ndarray:
    n = PUT_START_PRICES
    return env.start_low + (np.arange(n) + 0.5) / n * (env.start_high - env.start_low)


def put_value(env: PutOptionVecEnv, p: float, rule=None) -> float:
    """The exact value at ``p`` averaged over the start prices; ``rule(k, h, prices, ex, hold)`` is the decision at
    start price ``k`` (None: the optimum at ``p``)."""
    x0s = start_prices(env)
    if rule is None:
        return float(np.mean([env.lattice_value(x0, p) for x0 in x0s]))
    return float(np.mean([env.lattice_value(x0, p, lambda h, pr, ex, hold, k=k: rule(k, h, pr, ex, hold))
                          for k, x0 in enumerate(x0s)]))


def optimal_rule(env: PutOptionVecEnv, p_star: float):
    """The exercise decisions of the optimum at ``p_star`` at every lattice node, per start price, as a rule."""
    table: dict[tuple[int, int], np.ndarray] = {}
    for k, x0 in enumerate(start_prices(env)):
        def record(h, prices, ex, hold, k=k):
            table[k, h] = ex > hold
            return table[k, h]
        env.lattice_value(x0, p_star, record)
    return lambda k, h, prices, ex, hold: table[k, h]


def learned_rule(env: PutOptionVecEnv, agent):
    """The agent's deterministic decisions at every lattice node (one batched ``act`` per step), as a rule."""
    x0s = start_prices(env)
    table = {}
    for h in range(env.horizon):
        j = np.arange(h + 1)
        prices = torch.as_tensor(x0s[:, None] * env.up ** j * env.down ** (h - j), dtype=torch.float64).reshape(-1)
        exercised = torch.zeros_like(prices, dtype=torch.bool)
        obs = feature_observation(env.features(prices, exercised), env.action_rewards(prices, exercised),
                                  torch.full((prices.shape[0],), h, dtype=torch.int64))
        table[h] = (agent.act(obs, deterministic=True) == EXERCISE).numpy().reshape(len(x0s), h + 1)
    return lambda k, h, prices, ex, hold: table[h][k]


def put_exact(ps: np.ndarray) -> list[dict]:
    env = PutOptionVecEnv()
    points = ";".join(f"p={p:g}" for p in ps)
    rows = []
    nominal_i = int(np.argmin(np.abs(ps - env.perturbation_parameters["p"])))

    def row(method: str, values: list[float]) -> None:
        rows.append({"part": "put", "kind": "exact", "env": PUT_ID, "set": PUT_SET, "method": method, "nominal": values[nominal_i],
                     **curve_columns(values, ps), "points": points, "point_means": ";".join(f"{v:.6g}" for v in values),
                     "n_points": len(ps)})

    row("optimum at each p", [put_value(env, p) for p in ps])
    H = env.horizon
    row("hold to maturity (the nominal optimum)", [put_value(env, p, lambda k, h, pr, ex, hold: (h == H - 1) & (ex > 0)) for p in ps])
    row("exercise when in the money", [put_value(env, p, lambda k, h, pr, ex, hold: ex > 0) for p in ps])
    worst_p = float(ps[-1])
    rule = optimal_rule(env, worst_p)
    row(f"optimal at p={worst_p:g} (the best worst case)", [put_value(env, p, rule) for p in ps])
    return rows


def bench_put(rows: list[dict], seeds: list[int], episodes: int, eval_episodes: int) -> None:
    ps = get_uncertainty_set(PUT_SET, PUT_ID).grid(5)[1][0]
    rows += put_exact(ps)
    env = PutOptionVecEnv()
    for seed in seeds:
        for label, algo, overrides in LINEAR_METHODS:
            agent, cfg, secs = train_agent(algo, PUT_ID, overrides, episodes * env.horizon, seed)
            t0 = time.perf_counter()
            result = robust_evaluate(policy_of(agent, True), PUT_ID, PUT_SET, grid=5, episodes=eval_episodes, seed=1000 + seed)
            rule = learned_rule(env, agent)
            ex = [put_value(env, p, rule) for p in ps]
            rows.append({"part": "put", "kind": "policy", "env": PUT_ID, "set": PUT_SET, "method": label, "algo": algo,
                         "rho": float(getattr(cfg, "rho", 0.0)), "train_episodes": episodes, "train_steps": agent.global_step,
                         "seed": seed, "train_seconds": round(secs, 3), "eval_seconds": round(time.perf_counter() - t0, 3),
                         **summary_columns(result), "exact_nominal": ex[int(np.argmin(np.abs(ps - 0.5)))], "exact_worst": min(ex),
                         "exact_point_means": ";".join(f"{v:.6g}" for v in ex)})
            r = rows[-1]
            print(f"put seed {seed} {label}: nominal {r['nominal']:.3f} worst {r['worst']:.3f} (exact {r['exact_worst']:.4f}), "
                  f"train {secs:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------------- deep RL
def bench_deep(rows: list[dict], envs: dict[str, tuple[str, tuple[str, ...], dict[str, int]]], seeds: list[int], grid: int,
               eval_episodes: int) -> None:
    for env_id, (train_set, eval_sets, budgets) in envs.items():
        for seed in seeds:
            for algo, steps in budgets.items():
                for dr in (None, train_set):  # interleaved: nominal and randomised training see the same load
                    agent, cfg, secs = train_agent(algo, env_id, {}, steps, seed, domain_rand=dr)
                    for set_name in eval_sets:
                        t0 = time.perf_counter()
                        result = robust_evaluate(policy_of(agent, True), env_id, set_name, grid=grid, episodes=eval_episodes,
                                                 seed=10_000 + seed)
                        rows.append({"part": "deep", "kind": "policy", "env": env_id, "set": set_name, "algo": algo,
                                     "method": f"{algo.upper()} {'domain-rand' if dr else 'nominal'}",
                                     "training": "domain-rand" if dr else "nominal", "domain_rand": dr or "",
                                     "train_steps": agent.global_step, "seed": seed, "train_seconds": round(secs, 1),
                                     "eval_seconds": round(time.perf_counter() - t0, 1), **summary_columns(result)})
                        r = rows[-1]
                        print(f"deep {env_id} seed {seed} {r['method']} on {set_name}: nominal {r['nominal']:.1f} mean {r['mean']:.1f} "
                              f"worst {r['worst']:.1f} cvar {r['cvar10']:.1f} (train {secs:.0f} s, eval {r['eval_seconds']:.0f} s)",
                              flush=True)


# ---------------------------------------------------------------------------------------------- output
def _floats(text: Any) -> list[float]:
    return [float(x) for x in str(text).split(";")]


def _axis(text: str) -> list[float]:
    """The values of a 1-D ``points`` column (``q=0;q=0.1``)."""
    return [float(p.split("=")[1]) for p in str(text).split(";")]


def _q(values: list[float], fmt: str = ".3f") -> str:
    """median [min, max] over seeds (one number when they agree)."""
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    if f"{lo:{fmt}}" == f"{hi:{fmt}}":
        return f"{lo:{fmt}} (all)" if len(values) > 1 else f"{lo:{fmt}}"
    return f"{statistics.median(values):{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _measured(rs: list[dict], part: str) -> str:
    m = rs[0]
    return (f"Measured {m['date']} on {m['machine']}, commit {m['commit']}, torch {m['torch']}, {m['torch_threads']} torch "
            f"thread(s); this part took {m.get('part_seconds', '?')} s of wall time (training and evaluation); load average "
            f"(1, 5, 15 min) {m['load_before']} before the run." + (" A --quick run (tiny budgets)." if m.get("quick") else ""))


def _seeds(seeds: list[int]) -> str:
    """``seeds 0-4``, ``seed 0``, ``seeds 0, 2``."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return f"seeds {', '.join(map(str, seeds))}"


def _actions(actions: list[int], n_actions: int) -> str:
    names = {0: "safe", n_actions - 1: "risky"}
    c = Counter(int(a) for a in actions)
    return ", ".join(f"{names.get(a, f'a={a}')} {k}/{len(actions)}" for a, k in sorted(c.items()))


def render_linear(rows: list[dict]) -> list[str]:
    pol = [r for r in rows if r["part"] == "linear" and r["kind"] == "policy"]
    exact = [r for r in rows if r["part"] == "linear" and r["kind"] == "exact"]
    if not pol:
        return []
    qs = _axis(pol[0]["points"])
    seeds = sorted({int(r["seed"]) for r in pol})
    ev = int(pol[0]["eval_episodes"])
    out = ["### Linear MDP (`rlsuite/LinearMDP-v0`, H = 6)", "", _measured(pol, "linear"), "",
           f"Deterministic policies after training, scored by `robust_evaluate` on `linear-mdp-q` (q = "
           f"{', '.join(f'{q:g}' for q in qs)}), {ev} episodes per point (the same episode seeds at every point); median "
           f"[min, max] over {_seeds(seeds)}. With {len(qs)} points CVaR 10 % is "
           f"{0.1 * len(qs):g} of one point, so it equals the worst case. \"Start action\": the learned action in the "
           "start state, the only choice that matters (safe: 1.98 at every q; risky: 5 (0.5 - q)); \"exact worst\": that "
           "action's exact return at the worst q (`robust_dp`), free of the Monte Carlo noise of the harness' figures; "
           "V*_rho: the exact TV-robust optimal value at the method's radius (`robust_dp(..., rho)`, an adversary moving "
           "every factor within TV rho).", ""]
    for episodes in sorted({int(r["train_episodes"]) for r in pol}):
        rs = [r for r in pol if int(r["train_episodes"]) == episodes]
        out += [f"After {episodes} episodes (`--total-steps {episodes * 6}`):", "",
                "| method | start action | median return at q = " + ", ".join(f"{q:g}" for q in qs) +
                " | nominal | mean | worst | CVaR 10 % | AUC | exact worst | V*_rho | train s |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for label, _, _ in LINEAR_METHODS:
            m = [r for r in rs if r["method"] == label]
            if not m:
                continue
            curve = np.median(np.array([_floats(r["point_means"]) for r in m]), axis=0)
            out.append(f"| {label} | {_actions([r['start_action'] for r in m], 4)} | {', '.join(f'{v:.2f}' for v in curve)} | "
                       f"{_q([r['nominal'] for r in m])} | {_q([r['mean'] for r in m])} | {_q([r['worst'] for r in m])} | "
                       f"{_q([r['cvar10'] for r in m])} | {_q([r['auc'] for r in m])} | {_q([r['exact_worst'] for r in m])} | "
                       f"{m[0]['v_rho']:.3f} | {statistics.median(r['train_seconds'] for r in m):.1f} |")
        out.append("")
    if exact:
        out += ["Exact references (`rlsuite.core.linear_rl.robust_dp` on the env's kernel):", "",
                "| policy | start action | return at q = " + ", ".join(f"{q:g}" for q in qs) + " | nominal | mean | worst | AUC | V*_rho |",
                "|---|---|---|---|---|---|---|---|"]
        for r in exact:
            v_rho = f"{r['v_rho']:.3f}" if "v_rho" in r else "-"
            out.append(f"| {r['method']} | {r.get('start_action', '-')} | {', '.join(f'{v:.3f}' for v in _floats(r['point_means']))} | "
                       f"{r['nominal']:.3f} | {r['mean']:.3f} | {r['worst']:.3f} | {r['auc']:.3f} | {v_rho} |")
        best = max(r["worst"] for r in exact if r["method"] != "optimum at each q")
        out += ["", f"The best worst case over the grid any policy can reach: {best:.3f} (all-safe).", ""]
    return out


def render_put(rows: list[dict]) -> list[str]:
    pol = [r for r in rows if r["part"] == "put" and r["kind"] == "policy"]
    exact = [r for r in rows if r["part"] == "put" and r["kind"] == "exact"]
    if not pol:
        return []
    ps = _axis(pol[0]["points"])
    seeds = sorted({int(r["seed"]) for r in pol})
    ev = int(pol[0]["eval_episodes"])
    episodes = int(pol[0]["train_episodes"])
    out = ["### American put (`rlsuite/PutOption-v0`, H = 20, nominal p = 0.5)", "", _measured(pol, "put"), "",
           f"After {episodes} episodes (`--total-steps {episodes * 20}`), each method at its preset; `put-option-p` on p = "
           f"{', '.join(f'{p:g}' for p in ps)}, {ev} episodes per point; median [min, max] over {_seeds(seeds)}; CVaR 10 % of 5 points is half a point: the worst case. \"Exact worst\": the learned "
           f"policy's exact return at its worst p (its decision at every node of the binomial lattice, averaged over "
           f"{PUT_START_PRICES} start prices in [90, 110]).", "",
           "| method | median return at p = " + ", ".join(f"{p:g}" for p in ps) +
           " | nominal | mean | worst | CVaR 10 % | AUC | exact nominal | exact worst | train s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for label, _, _ in LINEAR_METHODS:
        m = [r for r in pol if r["method"] == label]
        if not m:
            continue
        curve = np.median(np.array([_floats(r["point_means"]) for r in m]), axis=0)
        out.append(f"| {label} | {', '.join(f'{v:.3f}' for v in curve)} | {_q([r['nominal'] for r in m])} | "
                   f"{_q([r['mean'] for r in m])} | {_q([r['worst'] for r in m])} | {_q([r['cvar10'] for r in m])} | "
                   f"{_q([r['auc'] for r in m])} | {_q([r['exact_nominal'] for r in m], '.4f')} | "
                   f"{_q([r['exact_worst'] for r in m], '.4f')} | {statistics.median(r['train_seconds'] for r in m):.1f} |")
    if exact:
        out += ["", f"Exact references (binomial lattice, `PutOptionVecEnv.lattice_value`, averaged over {PUT_START_PRICES} "
                "start prices in [90, 110]):", "",
                "| policy | return at p = " + ", ".join(f"{p:g}" for p in ps) + " | nominal | mean | worst | AUC |",
                "|---|---|---|---|---|---|"]
        for r in exact:
            out.append(f"| {r['method']} | {', '.join(f'{v:.4f}' for v in _floats(r['point_means']))} | {r['nominal']:.4f} | "
                       f"{r['mean']:.4f} | {r['worst']:.4f} | {r['auc']:.4f} |")
    out.append("")
    return out


def _worst_at(row: dict) -> str:
    """Where a policy's worst point is, or ``flat`` when every point has the same mean return."""
    return row["worst_at"] if row["worst"] < row["mean"] - 1e-9 else "flat"


def render_deep(rows: list[dict]) -> list[str]:
    pol = [r for r in rows if r["part"] == "deep"]
    if not pol:
        return []
    out = ["### PPO and SAC, nominal training vs domain randomisation", "", _measured(pol, "deep"), ""]
    for env_id in dict.fromkeys(r["env"] for r in pol):
        rs = [r for r in pol if r["env"] == env_id]
        train_set = next((r["domain_rand"] for r in rs if r.get("domain_rand")), None)
        seeds = sorted({int(r["seed"]) for r in rs})
        budgets = ", ".join(f"{a.upper()} {int(next(r['train_steps'] for r in rs if r['algo'] == a)):,} steps"
                            for a in dict.fromkeys(r["algo"] for r in rs))
        if train_set:
            ts = get_uncertainty_set(train_set, env_id)
            out.append(f"{env_id} ({budgets}, each at its preset; {_seeds(seeds)}): trained nominally or with `--domain-rand "
                       f"{ts.name}` ({ts.describe()}, drawn per episode), then evaluated deterministically at the nominal "
                       "parameters and on a grid of each set below (the same episode seeds at every point); median [min, max] "
                       "over seeds.")
        for set_name in dict.fromkeys(r["set"] for r in rs):
            es = [r for r in rs if r["set"] == set_name]
            uset = get_uncertainty_set(set_name, env_id)
            n, ev = int(es[0]["n_points"]), int(es[0]["eval_episodes"])
            side = round(n ** (1 / len(uset.dims)))
            role = "the training set" if set_name == train_set else "not trained on"
            out += ["", f"`{set_name}` ({uset.describe()}; {role}): {' x '.join([str(side)] * len(uset.dims))} grid, {ev} "
                    f"episodes per point; CVaR 10 % is the mean of the worst {0.1 * n:g} points.", "",
                    "| algo | training | nominal | mean | worst | CVaR 10 % | AUC | worst point per seed | train s | eval s |",
                    "|---|---|---|---|---|---|---|---|---|---|"]
            for method in dict.fromkeys(r["method"] for r in es):
                m = [r for r in es if r["method"] == method]
                out.append(f"| {m[0]['algo'].upper()} | {m[0]['training']} | {_q([r['nominal'] for r in m], '.1f')} | "
                           f"{_q([r['mean'] for r in m], '.1f')} | {_q([r['worst'] for r in m], '.1f')} | "
                           f"{_q([r['cvar10'] for r in m], '.1f')} | {_q([r['auc'] for r in m], '.1f')} | "
                           f"{'; '.join(_worst_at(r) for r in m)} | {statistics.median(r['train_seconds'] for r in m):.0f} | "
                           f"{statistics.median(r['eval_seconds'] for r in m):.0f} |")
        out.append("")
    return out


def render(rows: list[dict]) -> str:
    out = render_linear(rows) + render_put(rows) + render_deep(rows)
    if any(r["part"] in ("linear", "put") for r in rows):
        out.append(f"Return against the perturbation (median over seeds): ![robust RL curves](benchmarks/{PNG_PATH.name}) "
                   f"(`docs/benchmarks/{PNG_PATH.name}`).")
    return "\n".join(out).rstrip()


def plot(rows: list[dict]) -> None:
    panels = [("linear", b) for b in sorted({int(r["train_episodes"]) for r in rows if r["part"] == "linear" and r["kind"] == "policy"})]
    panels += [("put", b) for b in sorted({int(r["train_episodes"]) for r in rows if r["part"] == "put" and r["kind"] == "policy"})]
    if not panels:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (part, budget) in zip(axes[0], panels, strict=True):
        pol = [r for r in rows if r["part"] == part and r["kind"] == "policy" and int(r["train_episodes"]) == budget]
        # identical curves (every risky or every safe policy) would hide each other: shrinking markers and line widths
        for i, (label, _, _) in enumerate(LINEAR_METHODS):
            m = [r for r in pol if r["method"] == label]
            if m:
                ax.plot(_axis(m[0]["points"]), np.median(np.array([_floats(r["point_means"]) for r in m]), axis=0),
                        marker="os^vDx"[i], ms=9 - 1.2 * i, mfc="none", lw=3.0 - 0.4 * i, alpha=0.8,
                        label=f"{label} ({len(m)} seeds)")
        styles = {"optimum at each": ("k", "--"), "all-safe": ("0.4", ":"), "optimal at p=": ("0.4", ":")}
        for r in rows:
            if r["part"] == part and r["kind"] == "exact":
                for key, (color, ls) in styles.items():
                    if r["method"].startswith(key):
                        ax.plot(_axis(r["points"]), _floats(r["point_means"]), color=color, ls=ls, lw=1, label=f"exact: {r['method']}")
        name = "q" if part == "linear" else "p"
        ax.set_title(f"{'linear MDP' if part == 'linear' else 'American put'}, {budget} training episodes", fontsize=9)
        ax.set_xlabel(f"{name} ({LINEAR_SET if part == 'linear' else PUT_SET})")
        ax.set_ylabel("mean return (median over seeds)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    PNG_PATH.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PNG_PATH, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    ap.add_argument("--quick", action="store_true", help="tiny budgets, 1 seed, coarse grids: a smoke run")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 for every part (default: 5 for linear and put, 2 for deep)")
    ap.add_argument("--no-write", action="store_true", help="print the tables; write no file")
    ap.add_argument("--render", action="store_true", help="rewrite the tables and the figure from the CSV; measure nothing")
    ap.add_argument("--hopper", action="store_true", help="deep part: add Hopper-v5 (SAC 100k, PPO 300k steps: hours on 2 cores)")
    ap.add_argument("--deep-envs", default=None,
                    help="deep part: comma-separated env ids to (re)run; the deep rows of the other envs are kept (default: all)")
    ap.add_argument("--sac-steps", type=int, default=None, help="deep part: SAC's budget on InvertedPendulum (default 15000)")
    ap.add_argument("--ppo-steps", type=int, default=None, help="deep part: PPO's budget on InvertedPendulum (default 100000)")
    ap.add_argument("--deep-grid", type=int, default=5, help="deep part: grid values per dimension of the set")
    ap.add_argument("--deep-episodes", type=int, default=10, help="deep part: episodes per point")
    ap.add_argument("--torch-threads", type=int, default=1)
    args = ap.parse_args()
    if args.render:
        rows = read_rows(CSV_PATH)
        rendered = render(rows)
        plot(rows)
        write_results(CSV_PATH, rows, {}, BLOCK, rendered, TITLE)
        print(rendered)
        return
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; known: {', '.join(PARTS)}")
    torch.set_num_threads(args.torch_threads)
    deep = {env: (t, e, dict(b)) for env, (t, e, b) in {**DEEP, **(HOPPER if args.hopper else {})}.items()}
    if args.deep_envs:
        wanted = [e for e in args.deep_envs.split(",") if e]
        if any(e not in deep for e in wanted):
            raise SystemExit(f"--deep-envs {args.deep_envs}: allowed {', '.join(deep)} (Hopper-v5 needs --hopper)")
        deep = {e: deep[e] for e in wanted}
    if args.sac_steps and "InvertedPendulum-v5" in deep:
        deep["InvertedPendulum-v5"][2]["sac"] = args.sac_steps
    if args.ppo_steps and "InvertedPendulum-v5" in deep:
        deep["InvertedPendulum-v5"][2]["ppo"] = args.ppo_steps
    if args.quick:
        n_lin, n_deep = args.seeds or 1, args.seeds or 1
        linear_episodes, put_episodes, lin_ev, put_ev = [48, 96], 80, 20, 50
        deep = {env: (t, e, {"ppo": 2048, "sac": 300}) for env, (t, e, _) in deep.items()}
        args.deep_grid, args.deep_episodes = 2, 2
    else:
        n_lin, n_deep = args.seeds or 5, args.seeds or 2
        linear_episodes, put_episodes, lin_ev, put_ev = [800, 3200], 1600, 100, 500
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    t_all = time.perf_counter()
    new: list[dict] = []
    for part in parts:
        rows: list[dict] = []
        t0 = time.perf_counter()
        if part == "linear":
            bench_linear(rows, list(range(n_lin)), linear_episodes, lin_ev)
        elif part == "put":
            bench_put(rows, list(range(n_lin)), put_episodes, put_ev)
        else:
            bench_deep(rows, deep, list(range(n_deep)), args.deep_grid, args.deep_episodes)
        secs = round(time.perf_counter() - t0)
        print(f"part {part}: {secs} s", flush=True)
        new += [{**r, "part_seconds": secs} for r in rows]
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine("cpu"), "commit": git_commit(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_before": load_before, "quick": int(args.quick)}
    kept = [r for r in read_rows(CSV_PATH, keep_parts=set(PARTS) - set(parts)) if args.quick or not r.get("quick")]
    if "deep" in parts and args.deep_envs:  # the deep rows of the envs not rerun stay
        kept += [r for r in read_rows(CSV_PATH, keep_parts={"deep"}) if r.get("env") not in deep and (args.quick or not r.get("quick"))]
    rows = kept + [{**meta, **r} for r in new]
    rendered = render(rows)
    if not args.no_write:
        plot(rows)
        write_results(CSV_PATH, rows, meta, BLOCK, rendered, TITLE)
    print(rendered)
    print(f"wall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
