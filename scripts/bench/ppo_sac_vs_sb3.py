"""Benchmark: rlsuite PPO/SAC vs Stable-Baselines3, and rlsuite/Pendulum-v0 vs Gymnasium Pendulum-v1.

Runs everything side by side in one process (ours and the anchor alternate, seed by seed) on the same
machine, with the same hyper-parameters, network sizes and env-step budgets, and writes

    docs/benchmarks/ppo_sac_vs_sb3.csv     one row per measurement (commit, machine, device, figures)
    docs/benchmarks/ppo_sac_vs_sb3.png     wall-clock per step and return, ours vs SB3; env throughput
    docs/benchmarks.md                     the tables (between the ppo_sac_vs_sb3 markers)

Usage:
    python scripts/bench/ppo_sac_vs_sb3.py                  # full: 3 seeds, budgets below
    python scripts/bench/ppo_sac_vs_sb3.py --quick          # 1 seed, small budgets (a smoke run)
    python scripts/bench/ppo_sac_vs_sb3.py --only envsteps   # one part: learning | scaling | envsteps

Needs the bench extra: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import rlsuite  # noqa: F401
from rlsuite.agents.ppo import PPO, PPOConfig
from rlsuite.agents.sac import SAC, SACConfig
from rlsuite.core.evaluate import evaluate_policy
from rlsuite.core.seeding import seed_everything
from rlsuite.core.vec_env import make_vec_env

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "docs" / "benchmarks"
CSV_PATH = OUT_DIR / "ppo_sac_vs_sb3.csv"
MD_PATH = ROOT / "docs" / "benchmarks.md"
EVAL_SEED = 10_000
EVAL_EPISODES = 10

# Same hyper-parameters on both sides. PPO CartPole: rl-baselines3-zoo; SAC: SB3 defaults;
# PPO Hopper: CleanRL MuJoCo defaults with observation normalisation (VecNormalize on the SB3 side).
TASKS = {
    "ppo-CartPole-v1": dict(algo="ppo", env="CartPole-v1", steps=100_000, quick=20_000,
                            ours=dict(num_envs=8, num_steps=32, num_minibatches=1, update_epochs=20, gamma=0.98,
                                      gae_lambda=0.8, learning_rate=1e-3)),
    "sac-Pendulum-v1": dict(algo="sac", env="Pendulum-v1", steps=10_000, quick=2_000, ours=dict()),
    "ppo-Hopper-v5": dict(algo="ppo", env="Hopper-v5", steps=100_000, quick=8_192, ours=dict(normalize_obs=True)),
}


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"commit": commit or "unknown", "machine": f"{cpu} x{os.cpu_count()}", "device": dev,
            "torch_threads": str(torch.get_num_threads())}


# ----------------------------------------------------------------------------- learning runs


def run_ours(task: dict, seed: int, steps: int) -> tuple[float, float]:
    seed_everything(seed)
    spec_cfg = (PPOConfig if task["algo"] == "ppo" else SACConfig)(**task["ours"])
    env = make_vec_env(task["env"], spec_cfg.num_envs, seed=seed)
    cls = PPO if task["algo"] == "ppo" else SAC
    agent = cls(spec_cfg, env.single_observation_space, env.single_action_space, "cpu")
    t0 = time.perf_counter()
    agent.learn(env, steps, seed=seed)
    wall = time.perf_counter() - t0
    env.close()
    ret = evaluate_policy(lambda o: agent.act(o, deterministic=True), task["env"], EVAL_EPISODES, seed=EVAL_SEED).mean()
    return wall / agent.global_step, float(ret)


def run_sb3(task: dict, seed: int, steps: int) -> tuple[float, float]:
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecNormalize

    o = task["ours"]
    vecnorm = None
    if task["algo"] == "ppo":
        cfg = PPOConfig(**o)
        env = sb3_make_vec_env(task["env"], n_envs=cfg.num_envs, seed=seed)
        if cfg.normalize_obs:
            env = vecnorm = VecNormalize(env, norm_obs=True, norm_reward=False, clip_obs=10.0)
        lr = cfg.learning_rate
        model = sb3.PPO(
            "MlpPolicy", env, seed=seed, device="cpu", verbose=0,
            n_steps=cfg.num_steps, batch_size=cfg.minibatch_size, n_epochs=cfg.update_epochs, gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_coef, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
            max_grad_norm=cfg.max_grad_norm, learning_rate=(lambda f: lr * f) if cfg.anneal_lr else lr,
            policy_kwargs=dict(net_arch=dict(pi=list(cfg.hidden_sizes), vf=list(cfg.hidden_sizes)), activation_fn=torch.nn.Tanh),
        )
    else:
        cfg = SACConfig(**o)
        env = sb3_make_vec_env(task["env"], n_envs=cfg.num_envs, seed=seed)
        model = sb3.SAC(
            "MlpPolicy", env, seed=seed, device="cpu", verbose=0, buffer_size=cfg.buffer_size, batch_size=cfg.batch_size,
            learning_starts=cfg.learning_starts, gamma=cfg.gamma, tau=cfg.tau, learning_rate=cfg.actor_lr,
            policy_kwargs=dict(net_arch=list(cfg.hidden_sizes)),
        )
    model.set_logger(configure(tempfile.mkdtemp(prefix="sb3-bench-"), []))
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0

    def act(obs: torch.Tensor) -> torch.Tensor:
        x = obs.numpy()
        if vecnorm is not None:
            x = vecnorm.normalize_obs(x)
        a, _ = model.predict(x, deterministic=True)
        return torch.as_tensor(a)

    ret = evaluate_policy(act, task["env"], EVAL_EPISODES, seed=EVAL_SEED).mean()
    return wall / model.num_timesteps, float(ret)


def bench_learning(seeds: list[int], quick: bool, rows: list[dict]) -> None:
    for name, task in TASKS.items():
        steps = task["quick"] if quick else task["steps"]
        for seed in seeds:
            # alternate which side runs first, so slow drift of the machine hits both equally
            order = [("rlsuite", run_ours), ("sb3", run_sb3)]
            if seed % 2:
                order.reverse()
            for who, fn in order:
                sec_per_step, ret = fn(task, seed, steps)
                row = dict(part="learning", task=name, impl=who, seed=seed, steps=steps,
                           us_per_step=round(sec_per_step * 1e6, 2), eval_return=round(ret, 2))
                print(json.dumps(row), flush=True)
                rows.append(row)


# ----------------------------------------------------------------------------- scaling with num_envs


def bench_scaling(quick: bool, rows: list[dict]) -> None:
    steps = 8_192 if quick else 32_768
    for env_id in ("CartPole-v1", "rlsuite/Pendulum-v0"):
        for n in (1, 4, 16, 64):
            num_steps = max(8, 256 // n)
            cfg = PPOConfig(num_envs=n, num_steps=num_steps, num_minibatches=4, update_epochs=4)
            seed_everything(0)
            env = make_vec_env(env_id, n, seed=0)
            agent = PPO(cfg, env.single_observation_space, env.single_action_space, "cpu")
            agent.learn(env, cfg.batch_size, seed=0)  # warm-up iteration
            t0 = time.perf_counter()
            agent.learn(env, cfg.batch_size + steps, seed=0)
            sps = (agent.global_step - cfg.batch_size) / (time.perf_counter() - t0)
            row = dict(part="scaling", task=f"ppo-{env_id}", impl="rlsuite", num_envs=n, steps=steps, steps_per_s=round(sps, 1))
            print(json.dumps(row), flush=True)
            rows.append(row)


# ----------------------------------------------------------------------------- raw env throughput


def _time_ours(n: int, device: str, vec_steps: int, actions: torch.Tensor) -> float:
    env = gym.make_vec("rlsuite/Pendulum-v0", num_envs=n, vectorization_mode="vector_entry_point", device=device)
    env.reset(seed=0)
    for i in range(10):
        env.step(actions[i % len(actions)])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(vec_steps):
        env.step(actions[i % len(actions)])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n * vec_steps / (time.perf_counter() - t0)


def _time_gym_single(steps: int, actions: np.ndarray) -> float:
    env = gym.make("Pendulum-v1")
    env.reset(seed=0)
    t0 = time.perf_counter()
    for i in range(steps):
        _, _, te, tr, _ = env.step(actions[i % len(actions)])
        if te or tr:
            env.reset()
    return steps / (time.perf_counter() - t0)


def _time_gym_sync(n: int, vec_steps: int, actions: np.ndarray) -> float:
    env = gym.make_vec("Pendulum-v1", num_envs=n, vectorization_mode="sync")
    env.reset(seed=0)
    a = np.broadcast_to(actions[:1], (n, 1)).copy()
    t0 = time.perf_counter()
    for _ in range(vec_steps):
        env.step(a)
    dt = time.perf_counter() - t0
    env.close()
    return n * vec_steps / dt


def bench_envsteps(quick: bool, rows: list[dict], rounds: int) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rng = np.random.default_rng(0)
    np_actions = rng.uniform(-2, 2, (256, 1)).astype(np.float32)
    budget = 20_000 if quick else 100_000  # env steps per measurement (total over envs)
    for n in (1, 64, 1024, 4096):
        vec_steps = max(20, budget // n)
        results: dict[str, list[float]] = {}
        for _ in range(rounds):  # interleave ours and Gymnasium, median over rounds
            for device in devices:
                acts = torch.as_tensor(rng.uniform(-2, 2, (16, n, 1)), dtype=torch.float32, device=device)
                results.setdefault(f"rlsuite-{device}", []).append(_time_ours(n, device, vec_steps if device == "cpu" else vec_steps * 4, acts))
            results.setdefault("gymnasium-single", []).append(_time_gym_single(min(budget, 50_000), np_actions))
            results.setdefault("gymnasium-sync", []).append(_time_gym_sync(n, max(5, min(vec_steps, 20_000 // n)), np_actions))
        for impl, vals in results.items():
            row = dict(part="envsteps", task="Pendulum", impl=impl, num_envs=n if impl != "gymnasium-single" else 1,
                       steps_per_s=round(statistics.median(vals), 1), rounds=rounds)
            print(json.dumps(row), flush=True)
            rows.append(row)


# ----------------------------------------------------------------------------- report


def _parse(key: str, value: str) -> object:
    if key in ("us_per_step", "eval_return", "steps_per_s"):
        return float(value)
    if key in ("seed", "num_envs", "steps", "rounds"):
        return int(value)
    return value


def previous_rows(parts_run: set[str]) -> list[dict]:
    """Rows of the parts not run this time, from the newest earlier run that measured them (for the tables)."""
    if not CSV_PATH.exists():
        return []
    with open(CSV_PATH, newline="") as f:
        old = list(csv.DictReader(f))
    out: list[dict] = []
    for part in ("learning", "scaling", "envsteps"):
        if part in parts_run:
            continue
        mine = [r for r in old if r["part"] == part]
        if not mine:
            continue
        commit = mine[-1]["commit"]
        for r in mine:
            if r["commit"] == commit:
                out.append({k: _parse(k, v) for k, v in r.items() if v != ""})
    return out


def write_outputs(rows: list[dict], meta: dict[str, str]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    parts_run = {r["part"] for r in rows}
    fields = ["commit", "machine", "device", "torch_threads", "part", "task", "impl", "seed", "num_envs", "steps",
              "us_per_step", "eval_return", "steps_per_s", "rounds"]
    new = not CSV_PATH.exists()
    with open(CSV_PATH, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({**meta, **r})
    rows = [{**meta, **r} for r in rows]
    shown = previous_rows(parts_run) + rows
    md = render_markdown(shown, meta)
    plot(shown)
    text = MD_PATH.read_text() if MD_PATH.exists() else "# Benchmarks\n"
    begin, end = "<!-- BEGIN ppo_sac_vs_sb3 -->", "<!-- END ppo_sac_vs_sb3 -->"
    block = f"{begin}\n{md}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    MD_PATH.write_text(text)


def render_markdown(rows: list[dict], meta: dict[str, str]) -> str:
    commits = {r.get("commit", meta["commit"]) for r in rows}
    out = [f"Measured at commit(s) `{'`, `'.join(sorted(commits))}` on {meta['machine']}, device {meta['device']}, "
           f"torch threads {meta['torch_threads']}, {time.strftime('%Y-%m-%d')}. Generated by "
           "`scripts/bench/ppo_sac_vs_sb3.py`; raw rows in `docs/benchmarks/ppo_sac_vs_sb3.csv`.", ""]
    learn = [r for r in rows if r["part"] == "learning"]
    if learn:
        out += ["### Ours vs Stable-Baselines3 (same hyper-parameters, networks and env-step budget)", "",
                "| task | steps | seeds | ours us/step (median) | SB3 us/step (median) | wall-clock ratio SB3/ours | ours return (median, per seed) | SB3 return (median, per seed) |",
                "|---|---|---|---|---|---|---|---|"]
        for task in dict.fromkeys(r["task"] for r in learn):
            ours = [r for r in learn if r["task"] == task and r["impl"] == "rlsuite"]
            sb3 = [r for r in learn if r["task"] == task and r["impl"] == "sb3"]
            if not ours or not sb3:
                continue
            ratios = [b["us_per_step"] / a["us_per_step"] for a, b in zip(ours, sb3, strict=False)]
            def fmt(rs: list[dict]) -> str:
                per_seed = ", ".join(f"{r['eval_return']:.0f}" for r in rs)
                return f"{statistics.median(r['eval_return'] for r in rs):.1f} ({per_seed})"
            out.append(f"| {task} | {ours[0]['steps']} | {len(ours)} | {statistics.median(r['us_per_step'] for r in ours):.0f} | "
                       f"{statistics.median(r['us_per_step'] for r in sb3):.0f} | {statistics.median(ratios):.2f}x | {fmt(ours)} | {fmt(sb3)} |")
        out += ["", "Wall-clock covers `learn()` only (evaluation excluded); returns are the mean over 10 deterministic "
                "evaluation episodes with the same seeds on both sides. The ratio is the median over seeds of SB3's time "
                "divided by ours on the same seed, measured back to back.", ""]
    scal = [r for r in rows if r["part"] == "scaling"]
    if scal:
        out += ["### Our PPO training throughput as num_envs grows (env steps per second, CPU)", "",
                "| task | " + " | ".join(f"{n} envs" for n in (1, 4, 16, 64)) + " |", "|---|---|---|---|---|"]
        for task in dict.fromkeys(r["task"] for r in scal):
            vals = {r["num_envs"]: r["steps_per_s"] for r in scal if r["task"] == task}
            out.append(f"| {task} | " + " | ".join(f"{vals.get(n, float('nan')):.0f}" for n in (1, 4, 16, 64)) + " |")
        out.append("")
    envs = [r for r in rows if r["part"] == "envsteps"]
    if envs:
        ns = (1, 64, 1024, 4096)
        out += ["### Env steps per second: rlsuite/Pendulum-v0 (batched torch) vs Gymnasium Pendulum-v1", "",
                "| implementation | " + " | ".join(f"{n} envs" for n in ns) + " |", "|---|---|---|---|---|"]
        for impl in dict.fromkeys(r["impl"] for r in envs):
            vals = {r["num_envs"]: r["steps_per_s"] for r in envs if r["impl"] == impl and r["num_envs"] in ns}
            if impl == "gymnasium-single":
                single = statistics.median([r["steps_per_s"] for r in envs if r["impl"] == impl])
                out.append(f"| gymnasium single env (`gym.make`) | {single:.0f} | - | - | - |")
                continue
            out.append(f"| {impl} | " + " | ".join(f"{vals[n]:.0f}" if n in vals else "-" for n in ns) + " |")
        ours = {r["num_envs"]: r["steps_per_s"] for r in envs if r["impl"] == "rlsuite-cpu"}
        sync = {r["num_envs"]: r["steps_per_s"] for r in envs if r["impl"] == "gymnasium-sync"}
        out.append("| ratio rlsuite-cpu / gymnasium-sync | " + " | ".join(f"{ours[n] / sync[n]:.1f}x" if n in ours and n in sync else "-" for n in ns) + " |")
        out += ["", f"Median of {envs[0]['rounds']} interleaved rounds; actions pre-generated (no sampling cost on either side).", ""]
    out.append("![ours vs SB3](benchmarks/ppo_sac_vs_sb3.png)")
    return "\n".join(out)


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=100)
    learn = [r for r in rows if r["part"] == "learning"]
    tasks = list(dict.fromkeys(r["task"] for r in learn))
    x = np.arange(len(tasks))
    for _k, (who, off) in enumerate((("rlsuite", -0.2), ("sb3", 0.2))):
        us = [statistics.median([r["us_per_step"] for r in learn if r["task"] == t and r["impl"] == who] or [np.nan]) for t in tasks]
        rets = [statistics.median([r["eval_return"] for r in learn if r["task"] == t and r["impl"] == who] or [np.nan]) for t in tasks]
        axes[0].bar(x + off, us, width=0.4, label=who)
        axes[1].bar(x + off, rets, width=0.4, label=who)
    for ax, title in ((axes[0], "wall-clock per env step (us, lower is better)"), (axes[1], "final eval return (median over seeds)")):
        ax.set_xticks(x, tasks, rotation=15)
        ax.set_title(title)
        ax.legend()
    envs = [r for r in rows if r["part"] == "envsteps" and r["impl"] != "gymnasium-single"]
    for impl in dict.fromkeys(r["impl"] for r in envs):
        pts = sorted((r["num_envs"], r["steps_per_s"]) for r in envs if r["impl"] == impl)
        axes[2].plot(*zip(*pts, strict=False), marker="o", label=impl)
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("num_envs")
    axes[2].set_title("Pendulum env steps per second")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(OUT_DIR / "ppo_sac_vs_sb3.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 seed and small budgets")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the env-throughput part")
    p.add_argument("--only", choices=["learning", "scaling", "envsteps"], action="append")
    a = p.parse_args()
    parts = a.only or ["learning", "scaling", "envsteps"]
    seeds = list(range(1 if a.quick else a.seeds))
    meta = machine()
    print(json.dumps(meta), flush=True)
    rows: list[dict] = []
    if "envsteps" in parts:
        bench_envsteps(a.quick, rows, 2 if a.quick else a.rounds)
    if "scaling" in parts:
        bench_scaling(a.quick, rows)
    if "learning" in parts:
        bench_learning(seeds, a.quick, rows)
    write_outputs(rows, meta)
    print(f"wrote {CSV_PATH.relative_to(ROOT)}, {MD_PATH.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
