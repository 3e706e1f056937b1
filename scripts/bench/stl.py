"""Benchmark: STL robustness vs rtamt, STL env throughput, and success rates of TGPO, TGPO* and the PPO
baselines on generated tasks.

(a) Robustness: the formulas of generated tasks (every family) on random traces of 64 steps; rtamt's
    discrete-time offline monitor evaluates one trace at a time (its per-trace median time is used), ours
    evaluates a batch; traces per second for both, the ratio, and the largest difference between the two.
(b) Env throughput: steps per second of rlsuite/STL-{Linear,Unicycle,Quadrotor,Panda}-v0 at 1, 64, 1024, 4096
    envs (the MuJoCo Ant at 1 and 64) with random actions (terminal reward mode).
(c) Success: for each family, ``--tasks`` generated tasks (task seeds 0..), each method trained for
    ``--steps`` env steps with 64 envs at seed 0, then success rate (hard robustness > 0) on 64 fresh starts.

Writes docs/benchmarks/stl.csv and the tables between the ``stl`` markers of docs/benchmarks.md.

Usage:
    python scripts/bench/stl.py                 # all parts
    python scripts/bench/stl.py --only robustness,throughput
    python scripts/bench/stl.py --quick         # small sizes (a smoke run)

Needs rtamt (dev and bench extras).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from benchlib import ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

from rlsuite.agents.ppo import PPO
from rlsuite.agents.tgpo import TGPO, TGPOConfig
from rlsuite.envs.stl.envs import STLVecEnv, make_stl_vec_env
from rlsuite.envs.stl.robustness import robustness
from rlsuite.envs.stl.spec import to_text
from rlsuite.envs.stl.tasks import FAMILIES, sample_task

CSV_PATH = ROOT / "docs" / "benchmarks" / "stl.csv"


def rtamt_monitor(text: str, names: list[str]):
    import rtamt

    spec = rtamt.StlDiscreteTimeSpecification()
    for n in names:
        spec.declare_var(n, "float")
    spec.spec = text
    spec.parse()
    return spec


def bench_robustness(rows: list[dict], quick: bool, devices: list[str]) -> None:
    horizon, batch = 64, (256 if quick else 1024)
    per_family = 2 if quick else 5
    for family in FAMILIES:
        for seed in range(per_family):
            task = sample_task(family, seed, horizon)
            names = task.signal_names
            g = torch.Generator().manual_seed(seed)
            points = torch.rand(batch, horizon, 2, generator=g, dtype=torch.float64) * 10 - 5
            d = torch.linalg.vector_norm(points.unsqueeze(2) - task.centers.double().view(1, 1, -1, 2), dim=-1)
            x = torch.cat([points, d], -1)
            text = to_text(task.formula, style="rtamt")
            spec = rtamt_monitor(text, names)
            n_rt = 10 if quick else 30
            times, rt_vals = [], []
            for b in range(n_rt):
                data = {"time": list(range(horizon)), **{n: x[b, :, i].tolist() for i, n in enumerate(names)}}
                t0 = time.perf_counter()
                out = spec.evaluate(data)
                times.append(time.perf_counter() - t0)
                rt_vals.append(out[0][1])
            rt_per_trace = statistics.median(times)
            for device in devices:
                xd = x.to(device)
                ours = robustness(task.formula, xd[:n_rt], names)[:, 0].cpu().numpy()
                diff = float(np.max(np.abs(ours - np.array(rt_vals))))
                samples = []
                for _ in range(5):
                    if device == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    robustness(task.formula, xd.float(), names)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    samples.append(time.perf_counter() - t0)
                ours_tps = batch / statistics.median(samples)
                rows.append({"part": "robustness", "family": family, "task_seed": seed, "device": device,
                             "ours_traces_per_s": ours_tps, "rtamt_traces_per_s": 1.0 / rt_per_trace,
                             "ratio": ours_tps * rt_per_trace, "max_abs_diff": diff})
                print(f"robustness {family} {seed} {device}: ours {ours_tps:,.0f}/s rtamt {1 / rt_per_trace:,.0f}/s "
                      f"ratio {ours_tps * rt_per_trace:,.0f}x diff {diff:.1e}", flush=True)


def bench_throughput(rows: list[dict], quick: bool, devices: list[str]) -> None:
    for device in devices:
        for dyn in ("Linear", "Unicycle", "Quadrotor", "Panda", "Ant"):
            for n in (1, 64) if dyn == "Ant" else (1, 64, 1024, 4096):  # the Ant's MuJoCo simulators step one by one
                env = STLVecEnv(dyn, num_envs=n, device=device, family="chain", task_seed=0, horizon=64)
                env.reset(seed=0)
                act = torch.rand(n, env.dyn.action_dim, device=device) * 2 - 1
                steps = 63 if quick else 126
                for _ in range(5):
                    env.step(act)
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(steps):
                    env.step(act)
                if device == "cuda":
                    torch.cuda.synchronize()
                sps = n * steps / (time.perf_counter() - t0)
                rows.append({"part": "throughput", "env": dyn, "num_envs": n, "device": device, "steps_per_s": sps})
                print(f"throughput {dyn} {n} {device}: {sps:,.0f} steps/s", flush=True)


def bench_success(rows: list[dict], quick: bool, steps: int, tasks: int, dynamics: list[str]) -> None:
    cfg = TGPOConfig()
    for dyn in dynamics:
        for family in FAMILIES:
            for task_seed in range(tasks):
                for method in ("tgpo", "tgpo*", "ppo-terminal", "ppo-dense"):
                    torch.manual_seed(0)
                    mode = {"ppo-dense": "dense", "ppo-terminal": "terminal"}.get(method, "tgpo")
                    env = make_stl_vec_env(dyn, num_envs=64, family=family, task_seed=task_seed, horizon=64, reward_mode=mode)
                    t0 = time.perf_counter()
                    if method.startswith("tgpo"):
                        agent = TGPO(TGPOConfig(sampler="mh" if method == "tgpo*" else "uniform"), env.single_observation_space,
                                     env.single_action_space, seed=0)
                        agent.learn(env, steps, seed=0)
                        success = float(agent.solve(seed=10_000)["success"].float().mean())
                    else:
                        agent = PPO(cfg.ppo, env.single_observation_space, env.single_action_space)
                        agent.learn(env, steps, seed=0)
                        obs, _ = env.reset(seed=10_000)
                        for _ in range(63):
                            obs, _, _, _, info = env.step(agent.act(obs, deterministic=True))
                        success = float(info["success"].float().mean())
                    rows.append({"part": "success", "env": dyn, "family": family, "task_seed": task_seed, "method": method,
                                 "steps": steps, "success": success, "seconds": time.perf_counter() - t0})
                    print(f"success {dyn} {family} {task_seed} {method}: {success:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)


def render(rows: list[dict], meta: dict) -> str:
    out = [f"Measured {meta['date']} on {meta['machine']}, commit {meta['commit']}, torch {meta['torch']}, rtamt {meta['rtamt']}.", ""]
    rob = [r for r in rows if r["part"] == "robustness"]
    if rob:
        out += ["Robustness of generated task formulas on random 64-step traces (traces per second; ours batched, rtamt one "
                "trace at a time; median over the tasks of each family):", "",
                "| family | device | ours (traces/s) | rtamt (traces/s) | ours / rtamt | max abs diff |", "|---|---|---|---|---|---|"]
        for fam in FAMILIES:
            for dev in sorted({r["device"] for r in rob}):
                rs = [r for r in rob if r["family"] == fam and r["device"] == dev]
                if rs:
                    med = lambda k: statistics.median(r[k] for r in rs)  # noqa: B023, E731
                    out.append(f"| {fam} | {dev} | {med('ours_traces_per_s'):,.0f} | {med('rtamt_traces_per_s'):,.0f} | "
                               f"{med('ratio'):,.0f}x | {max(r['max_abs_diff'] for r in rs):.1e} |")
        out.append("")
    thr = [r for r in rows if r["part"] == "throughput"]
    if thr:
        ns = sorted({r["num_envs"] for r in thr})
        out += ["Env steps per second (random actions, a chain task, terminal reward):", "",
                "| env | device | " + " | ".join(f"{n} envs" for n in ns) + " |", "|---|---|" + "---|" * len(ns)]
        for dyn in ("Linear", "Unicycle", "Quadrotor", "Panda", "Ant"):
            for dev in sorted({r["device"] for r in thr}):
                vals = {r["num_envs"]: r["steps_per_s"] for r in thr if r["env"] == dyn and r["device"] == dev}
                if vals:
                    out.append(f"| {dyn} | {dev} | " + " | ".join(f"{vals[n]:,.0f}" if n in vals else "-" for n in ns) + " |")
        out.append("")
    suc = [r for r in rows if r["part"] == "success"]
    if suc:
        methods = ["tgpo", "tgpo*", "ppo-terminal", "ppo-dense"]
        steps = suc[0]["steps"]
        out += [f"Success rate (hard robustness > 0 on 64 fresh starts) after {steps:,} env steps (64 envs, seed 0), mean over "
                f"{len({r['task_seed'] for r in suc})} generated tasks per family:", "",
                "| env | family | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
        for dyn in sorted({r["env"] for r in suc}):
            for fam in [*FAMILIES, "all"]:
                cells = []
                for m in methods:
                    rs = [r["success"] for r in suc if r["env"] == dyn and r["method"] == m and (fam == "all" or r["family"] == fam)]
                    cells.append(f"{statistics.mean(rs):.2f}" if rs else "-")
                out.append(f"| {dyn} | {fam} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="robustness,throughput,success")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=100_000, help="env steps per training run (success part)")
    ap.add_argument("--tasks", type=int, default=2, help="generated tasks per family (success part)")
    ap.add_argument("--envs", default="Linear,Unicycle", help="dynamics for the success part")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    import rtamt

    meta = {"date": time.strftime("%Y-%m-%d"), "machine": " / ".join(machine(d) for d in devices), "commit": git_commit(),
            "torch": torch.__version__, "rtamt": getattr(rtamt, "__version__", "0.4")}
    rows: list[dict] = []
    if "robustness" in parts:
        bench_robustness(rows, args.quick, devices)
    if "throughput" in parts:
        bench_throughput(rows, args.quick, devices)
    if "success" in parts:
        bench_success(rows, args.quick, 20_000 if args.quick else args.steps, 1 if args.quick else args.tasks, args.envs.split(","))
    rows = read_rows(CSV_PATH, keep_parts={"robustness", "throughput", "success"} - parts) + rows  # keep the parts not rerun
    write_results(CSV_PATH, rows, meta, "stl", render(rows, meta), "STL: robustness vs rtamt, env throughput, TGPO success")
    print(render(rows, meta))


if __name__ == "__main__":
    main()
