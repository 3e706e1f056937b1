"""Benchmark: Uni-O4 vs IQL vs BC on locally made D4RL-style datasets (offline, then 100k online steps).

For each env (Hopper-v5, HalfCheetah-v5), level (medium, medium-replay), algorithm and seed: the
dataset is collected once (behaviour SAC and datasets cached under ``--data-dir``), the algorithm is
trained offline, evaluated (``--eval-episodes`` deterministic episodes, D4RL-normalised), fine-tuned
online for ``--online-steps`` env steps (Uni-O4: PPO from the offline actor and value; IQL: the same
updates on dataset + new data; BC has no online phase) and evaluated again. Wall-clock of each phase
is recorded. Each finished cell is appended to docs/benchmarks/offline_to_online.csv at once, and cells
already there are skipped, so the benchmark resumes across sittings; ``--redo`` reruns them. A cell
stopped during its online phase continues from its offline checkpoint (``train_offline(resume=True)``).

Writes the table between the ``offline-to-online`` markers of docs/benchmarks.md and the learning curves
(mean normalised score over seeds) to docs/benchmarks/offline_to_online.png.

Usage:
    python scripts/bench/offline_to_online.py                                # everything, resumable
    python scripts/bench/offline_to_online.py --envs Hopper-v5 --seeds 0     # one part
    python scripts/bench/offline_to_online.py --render-only                  # table and curves from the CSV
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import statistics
from pathlib import Path

from benchlib import ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

from rlsuite.offline import datasets as D
from rlsuite.offline.train import train_offline

CSV_PATH = ROOT / "docs" / "benchmarks" / "offline_to_online.csv"
PNG_PATH = ROOT / "docs" / "benchmarks" / "offline_to_online.png"
# Uni-O4's offline D4RL -v2 scores (paper, Table 1) for the same task names; our datasets differ.
PAPER = {("hopper", "medium"): 104.4, ("halfcheetah", "medium"): 52.6, ("hopper", "medium-replay"): 103.2,
         ("halfcheetah", "medium-replay"): 44.3}


def key(r: dict) -> tuple:
    return (r["env"], r["level"], r["algo"], int(r["seed"]))


def run_cell(env_id: str, level: str, algo: str, seed: int, a: argparse.Namespace) -> dict:
    root = Path(a.data_dir)
    ds_id = D.dataset_id(env_id, level)
    if not (root / ds_id).exists():
        D.collect(env_id, level, a.dataset_steps, seed=0, behaviour_steps=a.behaviour_steps, root=root, log=print)
    config = {"improve_steps": a.improve_steps, "ope_horizon": a.ope_horizon, "ope_every": a.ope_every,
              "dynamics_max_epochs": a.dynamics_epochs} if algo == "uni-o4" else None
    online = 0 if algo == "bc" else a.online_steps
    run_dir = Path(a.run_root) / f"{D.env_name(env_id)}-{level}" / f"{algo}-seed{seed}"
    log = lambda m: print(f"  [{algo} {D.env_name(env_id)}-{level} s{seed}] {m}", flush=True)  # noqa: E731
    kw = dict(seed=seed, eval_every=a.eval_every, eval_episodes=a.eval_episodes, run_dir=run_dir, root=root, device=a.device, log=log,
              config=config)
    out = None
    if online > 0 and (run_dir / "checkpoints" / "offline").exists() and not (run_dir / "checkpoints" / "online").exists():
        try:  # the offline phase finished in an earlier sitting: continue from its checkpoint
            out = train_offline(algo, ds_id, a.offline_steps, online, resume=True, **kw)
        except D.DatasetError as e:
            log(f"cannot resume ({e}); running the cell from the start")
    if out is None:
        out = train_offline(algo, ds_id, a.offline_steps, online, overwrite=True, **kw)  # a cell left unfinished starts over
    return {"env": env_id, "level": level, "algo": algo, "seed": seed, "offline_score": round(out["offline_score"], 2),
            "online_score": "" if out["online_score"] is None else round(out["online_score"], 2),
            "offline_seconds": round(out["offline_seconds"], 1), "online_seconds": round(out["online_seconds"], 1),
            "run_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir)}


def _stat(vals: list[float]) -> str:
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.1f} (1 seed)"
    return f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f}" + ("" if len(vals) >= 3 else f" ({len(vals)} seeds)")


def render(rows: list[dict], meta: dict) -> str:
    machines = sorted({str(r.get("machine", meta["machine"])) for r in rows})
    lines = [f"Machines: {', '.join(machines)} (the machine column says which ran each row; wall-clock compares only within one "
             f"machine). Commits: {', '.join(sorted({str(r.get('commit', meta['commit'])) for r in rows}))}. Our datasets: behaviour SAC {meta['behaviour_steps']} steps, "
             f"{meta['dataset_steps']} transitions (D4RL: 1M-step SAC, 1M transitions); offline {meta['offline_steps']} updates "
             f"(Uni-O4: plus {meta['improve_steps']} improvement updates, AM-Q horizon {meta['ope_horizon']}, dynamics "
             f"{meta['dynamics_epochs']} epochs at most), online "
             f"{meta['online_steps']} env steps, {meta['eval_episodes']} evaluation episodes. Mean ± std over seeds of the "
             "D4RL-normalised score (D4RL's constants; our envs are Gymnasium -v5). The paper column is Uni-O4's offline "
             "score on D4RL's own -v2 datasets: compare rankings, not values.",
             "",
             "| dataset | algorithm | offline | after online | offline s | online s | machine | paper (Uni-O4, D4RL offline) |",
             "|---|---|---|---|---|---|---|---|"]
    cells = sorted({(r["env"], r["level"], r["algo"]) for r in rows}, key=lambda c: (c[0], c[1], ["uni-o4", "iql", "bc"].index(c[2])))
    for env, level, algo in cells:
        rs = [r for r in rows if (r["env"], r["level"], r["algo"]) == (env, level, algo)]
        where = ", ".join(sorted({str(r.get("machine", "?")) for r in rs}))
        off = [float(r["offline_score"]) for r in rs]
        on = [float(r["online_score"]) for r in rs if r.get("online_score", "") != ""]
        secs = lambda k, rs=rs: f"{statistics.median(float(r[k]) for r in rs):.0f}"  # noqa: E731
        paper = PAPER.get((D.env_name(env), level), "") if algo == "uni-o4" else ""
        lines.append(f"| {D.env_name(env)}-{level} | {algo} | {_stat(off)} | {_stat(on) if on else 'n/a'} | {secs('offline_seconds')} | "
                     f"{secs('online_seconds') if on else '-'} | {where} | {paper} |")
    return "\n".join(lines)


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["env"], r["level"]) for r in rows})
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, (env, level) in zip(axes[0], panels, strict=True):
        for algo, color in (("uni-o4", "tab:red"), ("iql", "tab:blue"), ("bc", "tab:gray")):
            curves = []
            for r in rows:
                if (r["env"], r["level"], r["algo"]) == (env, level, algo) and (ROOT / r["run_dir"] / "metrics.csv").exists():
                    with open(ROOT / r["run_dir"] / "metrics.csv", newline="") as f:
                        curves.append([(int(m["step"]), float(m["normalized_score"])) for m in csv.DictReader(f)])
            if curves:
                n = min(len(c) for c in curves)
                xs = [c[0] for c in curves[0][:n]]
                ys = [statistics.mean(c[i][1] for c in curves) for i in range(n)]
                label = f"{algo} ({len(curves)} seeds)"
                if n == 1:  # an offline score only (BC): a level line, so that it can be read against the curves
                    ax.axhline(ys[0], color=color, linestyle="--", label=label + ", offline")
                else:
                    ax.plot(xs, ys, color=color, marker="o", markersize=2, label=label)
        ax.set_title(f"{D.env_name(env)}-{level}")
        ax.set_xlabel("offline updates, then + online env steps")
        ax.set_ylabel("normalised score")
        ax.legend(fontsize=8)
    fig.tight_layout()
    PNG_PATH.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PNG_PATH, dpi=90)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    p.add_argument("--levels", nargs="+", default=["medium", "medium-replay"])
    p.add_argument("--algos", nargs="+", default=["uni-o4", "iql", "bc"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--data-dir", default=str(ROOT / "runs" / "offline-bench" / "data"))
    p.add_argument("--run-root", default=str(ROOT / "runs" / "offline-bench" / "runs"))
    p.add_argument("--behaviour-steps", type=int, default=100_000)
    p.add_argument("--dataset-steps", type=int, default=100_000)
    p.add_argument("--offline-steps", type=int, default=5_000)
    p.add_argument("--improve-steps", type=int, default=1_000)
    p.add_argument("--ope-horizon", type=int, default=100)
    p.add_argument("--ope-every", type=int, default=100)
    p.add_argument("--dynamics-epochs", type=int, default=8)
    p.add_argument("--online-steps", type=int, default=100_000)
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--device", default="cpu", help="torch device of the learner (envs step on the CPU)")
    p.add_argument("--redo", action="store_true", help="rerun cells that are already in the CSV")
    p.add_argument("--render-only", action="store_true")
    a = p.parse_args()
    meta = {"machine": machine(a.device), "device": a.device, "commit": git_commit(), **{k: getattr(a, k) for k in (
        "behaviour_steps", "dataset_steps", "offline_steps", "improve_steps", "ope_horizon", "dynamics_epochs", "online_steps",
        "eval_episodes")}}
    rows = read_rows(CSV_PATH)
    if not a.render_only:
        for env_id in a.envs:
            for level in a.levels:
                for seed in a.seeds:
                    for algo in a.algos:
                        k = (env_id, level, algo, seed)
                        rows = read_rows(CSV_PATH)
                        if any(key(r) == k for r in rows) and not a.redo:
                            continue
                        row = {**run_cell(env_id, level, algo, seed, a), "part": "cell"}
                        print(f"{env_id} {level} {algo} seed {seed}: offline {row['offline_score']}, online {row['online_score']} "
                              f"({row['offline_seconds']} s + {row['online_seconds']} s)", flush=True)
                        # several processes may share the CSV (e.g. one per env): merge under a lock
                        Path(a.run_root).mkdir(parents=True, exist_ok=True)
                        with open(Path(a.run_root) / "bench.lock", "w") as lock:
                            fcntl.flock(lock, fcntl.LOCK_EX)
                            rows = [r for r in read_rows(CSV_PATH) if key(r) != k] + [{**meta, **row}]
                            write_results(CSV_PATH, rows, meta, "offline-to-online", render(rows, meta),
                                          "Offline-to-online: Uni-O4 vs IQL vs BC on generated datasets")
                            plot(rows)
    if a.render_only:
        write_results(CSV_PATH, rows, meta, "offline-to-online", render(rows, meta), "Offline-to-online: Uni-O4 vs IQL vs BC on generated datasets")
        plot(rows)


if __name__ == "__main__":
    main()
