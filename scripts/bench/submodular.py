"""Benchmark: SubPO-M, SubPO-NM, ModPO and PPO on the submodular grid tasks (F(tau) / normaliser
against updates, ratio to the greedy planner), and set-function evaluation throughput against a naive
per-trajectory Python loop (the reference implementation's style).

(a) Learning: for each task (``--tasks``: coverage, gp-ipp, items), ``--instances`` generated instances
    (0..) and ``--seeds`` seeds, four methods trained through the library (``agent.learn`` with an
    in-memory recorder, no run directory), all on the marginal-gain env of rlsuite.envs.submodular:
      - SubPO-M: ``subpo`` on the Markov observation (position, time);
      - SubPO-NM: ``subpo`` on the history observation (the visited cells);
      - ModPO: ``modpo`` (the modular reward F({s}), which counts revisits), Markov observation;
      - PPO: ``ppo`` on the marginal gains (Markov observation, gamma 1, one rollout = one batch of
        whole episodes, 4 epochs x 4 minibatches per batch).
    Every method gets the same budget: ``--num-envs`` whole episodes per update, for the authors'
    number of updates per task (coverage 50, gp-ipp 140, items 150; SubPO and ModPO take one gradient
    step per update, PPO 16). Every ``--eval-every`` updates the stochastic policy is evaluated on
    ``--eval-episodes`` fresh episodes: mean F(tau) / env.normaliser (the authors' F/MAX_Ret) and mean
    F(tau) / F(greedy plan) (rlsuite.envs.submodular.planners.greedy_plan, the myopic planner that
    knows F).
(b) Throughput: trajectories per second of rlsuite's batched set functions (WeightedCoverage on the
    30x30 grid with the 2x2 disc and bimodal weights, H = 80; ItemCollection on 7x15 with 6 item types,
    H = 40) against a naive per-trajectory Python loop over the visited cells building a set, on the
    same random-walk trajectories; both "from the trajectory" (scatter the visits into a mask, then
    ``value``) and "incremental" (``init_state`` then ``add`` step by step, what the env does). The
    largest difference between our F and the loop's is reported.

Writes docs/benchmarks/submodular.csv (+ submodular.png, the learning curves), the tables between the
``submodular`` markers of docs/benchmarks.md and of docs/submodular.md. The load average of the machine
during the run is recorded (shared machines: figures measured under load are slower, not different).

Usage:
    python scripts/bench/submodular.py --quick          # 2 instances, 1 seed, a fifth of the updates (~1 min)
    python scripts/bench/submodular.py                  # 10 instances, 1 seed each, 100 episodes per update (~15 min)
    python scripts/bench/submodular.py --num-envs 500 --seeds 3   # the authors' batch, several seeds (hours on 2 cores)
    python scripts/bench/submodular.py --only throughput
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections import defaultdict

import torch
from benchlib import ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

import rlsuite.agents  # noqa: F401  (registers the agents)
from rlsuite.agents.ppo import PPO, PPOConfig
from rlsuite.agents.registry import AGENTS, build_agent, preset_config
from rlsuite.core.atomic import atomic_write_text
from rlsuite.envs.submodular import ItemCollection, WeightedCoverage, bimodal_weights, disc_footprint
from rlsuite.envs.submodular.grid import SubmodularGridVecEnv
from rlsuite.envs.submodular.planners import greedy_plan

CSV_PATH = ROOT / "docs" / "benchmarks" / "submodular.csv"
PNG_PATH = ROOT / "docs" / "benchmarks" / "submodular.png"
DOC_PATH = ROOT / "docs" / "submodular.md"
BLOCK = "submodular"
TITLE = "Submodular RL: SubPO vs ModPO vs PPO, set-function throughput"

# task -> (registered env id, whose agent presets apply; updates, the authors' "epochs")
TASKS = {"coverage": ("rlsuite/Coverage-Grid-v0", 50), "gp-ipp": ("rlsuite/IPP-GP-v0", 140),
         "items": ("rlsuite/ItemCollection-v0", 150), "coverage-bimodal": ("rlsuite/Coverage-Bimodal-v0", 50),
         "biodiversity": ("rlsuite/Biodiversity-v0", 140), "two-rooms": ("rlsuite/TwoRooms-v0", 140)}
METHODS = ("SubPO-M", "SubPO-NM", "ModPO", "PPO")


class Recorder:
    """The ``run`` an agent's ``learn`` logs into (``run.logger.log``, ``run.step_done``), kept in memory."""

    def __init__(self) -> None:
        self.logger = self
        self.rows: list[tuple[int, dict]] = []

    def log(self, step: int, metrics: dict) -> None:
        self.rows.append((step, dict(metrics)))

    def step_done(self, agent, env) -> None:
        pass


def make_env(task: str, instance: int, observation: str, num_envs: int) -> SubmodularGridVecEnv:
    return SubmodularGridVecEnv(num_envs=num_envs, device="cpu", task=task, instance=instance, observation=observation)


def build(method: str, task: str, num_envs: int, horizon: int, seed: int, env: SubmodularGridVecEnv):
    env_id = TASKS[task][0]
    if method == "PPO":
        cfg = PPOConfig(num_envs=num_envs, num_steps=horizon, learning_rate=1e-3, anneal_lr=False, gamma=1.0, gae_lambda=0.95,
                        num_minibatches=4, update_epochs=4, hidden_sizes=(64, 32), ent_coef=0.0)
        torch.manual_seed(seed)
        return PPO(cfg, env.single_observation_space, env.single_action_space, "cpu")
    spec = AGENTS.get("modpo" if method == "ModPO" else "subpo")
    cfg = dataclasses.replace(preset_config(spec, env_id), num_envs=num_envs,
                              observation="history" if method == "SubPO-NM" else "markov")
    torch.manual_seed(seed)
    return build_agent(spec, cfg, env.single_observation_space, env.single_action_space, "cpu", seed)


@torch.no_grad()
def evaluate(agent, env: SubmodularGridVecEnv, seed: int) -> float:
    """Mean F(tau) of one batch of fresh episodes with the stochastic policy."""
    obs, _ = env.reset(seed=seed)
    for _ in range(env.horizon):
        obs, _, _, _, info = env.step(agent.act(obs, deterministic=False))
    return float(info["episode_F"].float().mean())


def bench_learning(rows: list[dict], tasks: list[str], instances: int, seeds: int, num_envs: int, eval_episodes: int,
                   eval_every: int, update_scale: float) -> None:
    for task in tasks:
        updates = max(1, round(TASKS[task][1] * update_scale))
        for instance in range(instances):
            probe = make_env(task, instance, "markov", 1)
            horizon, normaliser = probe.horizon, float(probe.normaliser)
            t0 = time.perf_counter()
            _, greedy_F = greedy_plan(task=task, instance=instance)
            greedy_F = float(greedy_F)
            rows.append({"part": "greedy", "task": task, "instance": instance, "greedy_F": greedy_F, "normaliser": normaliser,
                         "greedy_F_normalised": greedy_F / normaliser, "seconds": time.perf_counter() - t0})
            for seed_index in range(seeds):
                seed = 100 * instance + seed_index  # a distinct seed for every run of a method
                for method in METHODS:  # interleaved: every method sees the same load
                    obs_kind = "history" if method == "SubPO-NM" else "markov"
                    env = make_env(task, instance, obs_kind, num_envs)
                    eval_env = make_env(task, instance, obs_kind, eval_episodes)
                    agent = build(method, task, num_envs, horizon, seed, env)
                    rec = Recorder()
                    t0 = time.perf_counter()
                    points = sorted({0, *range(eval_every, updates, eval_every), updates})
                    done = 0
                    for u in points:
                        if u > done:
                            agent.learn(env, u * num_envs * horizon, rec, seed=seed)
                            done = u
                        F = evaluate(agent, eval_env, seed=10_000 + seed)
                        rows.append({"part": "learning", "task": task, "instance": instance, "seed": seed_index, "run_seed": seed,
                                     "method": method,
                                     "update": u, "updates": updates, "num_envs": num_envs, "F": F, "F_normalised": F / normaliser,
                                     "ratio_to_greedy": F / greedy_F if greedy_F > 0 else float("nan"),
                                     "seconds": time.perf_counter() - t0})
                    print(f"learning {task} inst {instance} seed {seed_index} {method}: F/norm {F / normaliser:.3f}, "
                          f"F/greedy {F / greedy_F:.3f} ({time.perf_counter() - t0:.1f} s)", flush=True)


# ---------------------------------------------------------------------------------------------- throughput
def random_walks(height: int, width: int, batch: int, horizon: int, start: int, seed: int) -> torch.Tensor:
    """long ``(batch, horizon + 1)``: cells of uniform random walks (stay/up/down/left/right, clipped to the grid)."""
    g = torch.Generator().manual_seed(seed)
    moves = torch.tensor([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]])
    a = torch.randint(0, 5, (batch, horizon), generator=g)
    xy = torch.empty(batch, horizon + 1, 2, dtype=torch.long)
    xy[:, 0] = torch.tensor([start % width, start // width])
    for t in range(horizon):
        nxt = xy[:, t] + moves[a[:, t]]
        xy[:, t + 1, 0] = nxt[:, 0].clamp(0, width - 1)
        xy[:, t + 1, 1] = nxt[:, 1].clamp(0, height - 1)
    return xy[..., 1] * width + xy[..., 0]


def naive_coverage(trajs: list[list[int]], footprint: list[list[int]], weights: list[float]) -> list[float]:
    """The reference code's style: per trajectory, a Python loop over the visited cells building the covered set."""
    out = []
    for traj in trajs:
        covered = set()
        for s in traj:
            for c in footprint[s]:
                if c >= 0:
                    covered.add(c)
        out.append(sum(weights[c] for c in covered))
    return out


def naive_items(trajs: list[list[int]], items: list[set[int]], thresholds: list[float]) -> list[float]:
    out = []
    for traj in trajs:
        visited = set(traj)
        out.append(sum(min(len(visited & it), d) for it, d in zip(items, thresholds, strict=True)))
    return out


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_throughput(rows: list[dict], quick: bool) -> None:
    g = torch.Generator().manual_seed(0)
    h, w = 7, 15
    sizes, thresholds = (18, 14, 13, 16, 18, 14), (3, 2, 3, 4, 6, 3)
    perm = [torch.randperm(h * w, generator=g)[:k] for k in sizes]
    items = torch.full((6, max(sizes)), -1, dtype=torch.long)
    for k, p in enumerate(perm):
        items[k, : len(p)] = p
    cases = {
        "coverage 30x30 (2x2 disc, bimodal weights), H=80": (
            WeightedCoverage(bimodal_weights(30, 30), disc_footprint(30, 30, "2x2")), 30, 30, 80,
            lambda f, tr: naive_coverage(tr, f.footprint.tolist(), f.weights.tolist())),
        "items 7x15 (6 types), H=40": (
            ItemCollection(items, thresholds, h * w), h, w, 40,
            lambda f, tr: naive_items(tr, [set(int(c) for c in row if c >= 0) for row in f.items], f.thresholds.tolist())),
    }
    batches = (500,) if quick else (500, 4096)
    repeats = 3 if quick else 5
    for name, (fn, hh, ww, horizon, naive) in cases.items():
        for batch in batches:
            trajs = random_walks(hh, ww, batch, horizon, start=min(34, hh * ww - 1), seed=batch)
            n_naive = min(batch, 500)
            as_lists = trajs[:n_naive].tolist()

            def from_trajectory(trajs=trajs, fn=fn):
                visited = torch.zeros(trajs.shape[0], fn.n, dtype=torch.bool).scatter_(1, trajs, True)
                return fn.value(visited)

            def incremental(trajs=trajs, fn=fn):
                state = fn.init_state(trajs.shape[0])
                total = torch.zeros(trajs.shape[0])
                for t in range(trajs.shape[1]):
                    state, gain = fn.add(state, trajs[:, t])
                    total += gain
                return total

            ours = from_trajectory()
            inc = incremental()
            ref = torch.tensor(naive(fn, as_lists), dtype=torch.float64)
            diff = max(float((ours[:n_naive].double() - ref).abs().max()), float((inc[:n_naive].double() - ref).abs().max()))
            t_ours = median_time(from_trajectory, repeats)
            t_inc = median_time(incremental, repeats)
            t_naive = median_time(lambda: naive(fn, as_lists), repeats) / n_naive  # noqa: B023
            row = {"part": "throughput", "function": name, "batch": batch, "horizon": horizon, "device": "cpu",
                   "ours_traj_per_s": batch / t_ours, "ours_incremental_traj_per_s": batch / t_inc,
                   "naive_traj_per_s": 1.0 / t_naive, "ratio": t_naive * batch / t_ours,
                   "ratio_incremental": t_naive * batch / t_inc, "max_abs_diff": diff}
            rows.append(row)
            print(f"throughput {name} B={batch}: ours {row['ours_traj_per_s']:,.0f}/s, incremental "
                  f"{row['ours_incremental_traj_per_s']:,.0f}/s, naive {row['naive_traj_per_s']:,.0f}/s, ratio {row['ratio']:,.0f}x "
                  f"({row['ratio_incremental']:,.1f}x incremental), max diff {diff:.1e}", flush=True)


# ---------------------------------------------------------------------------------------------- output
def _x(ratio: float) -> str:
    return f"{ratio:,.1f}x" if ratio < 10 else f"{ratio:,.0f}x"


def _q(values: list[float]) -> str:
    """median [min, max]"""
    if not values:
        return "-"
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def _measured(rs: list[dict]) -> str:
    m = rs[0]
    return (f"Measured {m['date']} on {m['machine']}, commit {m['commit']}, torch {m['torch']}, {m['torch_threads']} torch "
            f"thread(s), {m['wall_seconds']} s; load average (1, 5, 15 min) {m['load_before']} before and {m['load_after']} after "
            f"the run, on {os.cpu_count()} cores: above ~1 per core the machine was shared with other work, which slows the "
            "timings." + (" A --quick run." if m.get("quick") else ""))


def render(rows: list[dict]) -> str:
    """The tables of ``rows`` (each carrying its run's meta: date, machine, commit, load, ...)."""
    out: list[str] = []
    learn = [r for r in rows if r["part"] == "learning"]
    greedy = {(r["task"], int(r["instance"])): r for r in rows if r["part"] == "greedy"}
    if learn:
        out += [_measured(learn), ""]
        tasks = list(dict.fromkeys(r["task"] for r in learn))
        inst = len({(r["task"], r["instance"]) for r in learn}) // max(1, len(tasks))
        seeds = len({r["seed"] for r in learn})
        seed_note = " (a distinct seed per run)" if seeds == 1 and inst > 1 else ""
        num_envs = learn[0]["num_envs"]
        out += [f"F(tau) / normaliser of the stochastic policy after training (mean over fresh episodes), median [min, max] over "
                f"{inst} generated instances x {seeds} seed(s) per task{seed_note}; {num_envs} episodes per update (one gradient step "
                "for SubPO and ModPO, 4 epochs x 4 minibatches for PPO); the ratio to the greedy "
                "planner's F on the same instance (the myopic planner knows F; a learned policy can beat it); the normaliser is the "
                "env's: the authors' 2(H+1) on coverage, elsewhere an upper bound of F over H+1 cells.", "",
                "| task | updates | method | F / normaliser (start) | F / normaliser (end) | F / greedy (end) | greedy F / normaliser | seconds per run |",
                "|---|---|---|---|---|---|---|---|"]
        for task in tasks:
            g = [greedy[k]["greedy_F_normalised"] for k in greedy if k[0] == task]
            for m in METHODS:
                rs = [r for r in learn if r["task"] == task and r["method"] == m]
                if not rs:
                    continue
                updates = rs[0]["updates"]
                start = [r["F_normalised"] for r in rs if r["update"] == 0]
                end = [r for r in rs if r["update"] == updates]
                out.append(f"| {task} | {updates} | {m} | {_q(start)} | {_q([r['F_normalised'] for r in end])} | "
                           f"{_q([r['ratio_to_greedy'] for r in end])} | {_q(g)} | "
                           f"{statistics.median(r['seconds'] for r in end):.1f} |")
        out += ["", f"Learning curves: ![submodular learning curves](benchmarks/{PNG_PATH.name}) (`docs/benchmarks/{PNG_PATH.name}`).", ""]
    thr = [r for r in rows if r["part"] == "throughput"]
    if thr:
        out += [_measured(thr), ""]
        out += ["Set-function evaluation (trajectories per second, CPU): ours batched from the trajectories (scatter the visits, "
                "then `value`) and incremental (`add` step by step, as the env does), against a naive per-trajectory Python "
                "loop over the visited cells building a set (the reference code's style), on the same random walks:", "",
                "| function | batch | ours (traj/s) | ours incremental (traj/s) | naive loop (traj/s) | ours / naive | incremental / naive | max abs diff |",
                "|---|---|---|---|---|---|---|---|"]
        for r in thr:
            out.append(f"| {r['function']} | {r['batch']} | {r['ours_traj_per_s']:,.0f} | {r['ours_incremental_traj_per_s']:,.0f} | "
                       f"{r['naive_traj_per_s']:,.0f} | {_x(r['ratio'])} | {_x(r['ratio_incremental'])} | {r['max_abs_diff']:.1e} |")
    return "\n".join(out).rstrip()


def plot(rows: list[dict]) -> None:
    learn = [r for r in rows if r["part"] == "learning"]
    if not learn:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in learn))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for m in METHODS:
            by_u: dict[int, list[float]] = defaultdict(list)
            for r in learn:
                if r["task"] == task and r["method"] == m:
                    by_u[int(r["update"])].append(r["F_normalised"])
            if by_u:
                us = sorted(by_u)
                med = [statistics.median(by_u[u]) for u in us]
                ax.plot(us, med, label=m)
                ax.fill_between(us, [min(by_u[u]) for u in us], [max(by_u[u]) for u in us], alpha=0.15)
        greedy = [r["greedy_F_normalised"] for r in rows if r["part"] == "greedy" and r["task"] == task]
        if greedy:
            ax.axhline(statistics.median(greedy), color="k", lw=0.8, ls="--", label="greedy plan")
        ax.set_title(task)
        ax.set_xlabel("updates (batches of episodes)")
        ax.set_ylabel("F(tau) / normaliser")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PNG_PATH, dpi=90)
    plt.close(fig)


def write_doc(rendered: str) -> None:
    """The tables between the ``submodular`` markers of docs/submodular.md (left alone when it has none)."""
    if not DOC_PATH.exists():
        return
    text = DOC_PATH.read_text()
    begin, end = f"<!-- BEGIN {BLOCK} -->", f"<!-- END {BLOCK} -->"
    if begin in text and end in text:
        # docs/submodular.md sits beside docs/benchmarks.md: the figure's relative link is the same
        atomic_write_text(DOC_PATH, text[: text.index(begin)] + f"{begin}\n{rendered}\n{end}" + text[text.index(end) + len(end):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="learning,throughput")
    ap.add_argument("--quick", action="store_true", help="2 instances, 1 seed, 100 episodes per update, a fifth of the updates")
    ap.add_argument("--tasks", default="coverage,gp-ipp,items", help=f"comma-separated, from {', '.join(TASKS)}")
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=1, help="seeds per instance (each run gets its own seed: 100 * instance + i)")
    ap.add_argument("--num-envs", type=int, default=100, help="episodes per update (the authors: 500; 100 keeps the run near 15 min on 2 cores)")
    ap.add_argument("--updates-scale", type=float, default=1.0, help="multiplies the authors' number of updates per task")
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--render", action="store_true", help="rewrite the tables, the figure and the docs from the CSV; measure nothing")
    ap.add_argument("--torch-threads", type=int, default=1, help="1: on a shared 2-core machine 2 threads stall for milliseconds per op")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    if args.render:
        rows = read_rows(CSV_PATH)
        rendered = render(rows)
        plot(rows)
        write_results(CSV_PATH, rows, {}, BLOCK, rendered, TITLE)
        write_doc(rendered)
        print(rendered)
        return
    torch.set_num_threads(args.torch_threads)
    if args.quick:
        args.instances, args.seeds, args.num_envs, args.updates_scale, args.eval_episodes = 2, 1, 100, 0.2, 100
    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    rows: list[dict] = []
    if "throughput" in parts:
        bench_throughput(rows, args.quick)
    if "learning" in parts:
        bench_learning(rows, tasks, args.instances, args.seeds, args.num_envs, args.eval_episodes, args.eval_every, args.updates_scale)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine("cpu"), "commit": git_commit(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_before": load_before,
            "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()), "quick": int(args.quick),
            "wall_seconds": round(time.perf_counter() - t0)}
    kept = {"learning", "greedy", "throughput"} - (parts | ({"greedy"} if "learning" in parts else set()))
    rows = read_rows(CSV_PATH, keep_parts=kept) + [{**meta, **r} for r in rows]  # keep the parts not rerun
    rendered = render(rows)
    plot(rows)
    write_results(CSV_PATH, rows, meta, BLOCK, rendered, TITLE)
    write_doc(rendered)
    print(rendered)
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
