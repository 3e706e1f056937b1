"""Benchmark: EXPO vs RLPD (and EXPO's ablations) on locally made datasets, online RL with offline data.

For each task (PointMaze UMaze / Medium with the ``waypoint-noisy`` dataset, Hopper with ``medium``), seed
and variant, ``train_offline(algo, dataset, offline_steps=0, online_steps=N)`` learns online with the
dataset in every minibatch (no offline phase) and evaluates every ``--eval-every`` env steps
(``--eval-episodes`` deterministic episodes; normalised score: 100 x success rate on the mazes, D4RL's on
Hopper). Variants: ``rlpd``; ``expo``; ``expo-no-edit`` (``use_edit=False``: candidates are base samples
only); ``expo-no-otf`` (``otf_backup=False``: the TD target uses one edited base sample, no argmax). With
``--pretrain-steps P`` the variants named by ``--pretrain-variants`` (default ``expo``) also run in the
offline-to-online setting: ``P`` denoising updates of the base on the dataset first (cells marked
``pretrain_steps=P``; their curve starts with the pretrained policy at env step 0).

``--config`` is a JSON object of overrides given to every variant whose config has the field (so RLPD and
EXPO run at the same update ratio, batch and warm-up); ``--expo-config`` / ``--rlpd-config`` override one
algorithm. The ablation switch of a variant is applied last.

Each finished cell is merged into docs/benchmarks/expo.csv at once (under a lock, so that several processes,
e.g. one per task, can share it) and cells already there are skipped: the benchmark resumes across
sittings (``--redo`` reruns them). A cell stopped during its online phase continues from its last
evaluation (``train_offline(resume=True)``; RLPD and EXPO checkpoint their online replay). Per cell the CSV
keeps the final score, the score curve (from the run's metrics.csv), online seconds, evaluation seconds
(``time/eval_seconds``) and training seconds per env step (online seconds less evaluation; env stepping and
checkpoint writes are included), and the torch threads.

``--micro`` measures the dominant cost instead: EXPO's on-the-fly selection ``EXPO.select`` on a batch of
``--micro-batch`` next states (one TD target's worth) with the configured sizes and with the paper's
(``rlsuite.agents.expo.PAPER``: denoiser 256 x 3 blocks, time features 128, 8 + 8 candidates, critics
3 x 256), against RLPD's target computation (actor sample + critic ensemble) on the same states; median
of ``--micro-repeats`` timed calls after ``--micro-warmup`` untimed ones. Rows with ``part=micro``.

Writes the tables between the ``expo`` markers of docs/benchmarks.md and the curves (mean normalised score
over seeds with min-max shading, one panel per task) to docs/benchmarks/expo.png. ``--csv`` and ``--md``
write elsewhere (smoke runs); the PNG goes beside the CSV.

Usage:
    python scripts/bench/expo.py                                         # mazes, all variants, 3 seeds, resumable
    python scripts/bench/expo.py --tasks pointmaze-umaze --seeds 0       # one part (one process per task can share the CSV)
    python scripts/bench/expo.py --tasks hopper-medium --behaviour-steps 100000
    python scripts/bench/expo.py --pretrain-steps 20000                  # also EXPO with base pretraining
    python scripts/bench/expo.py --config '{"utd": 1, "batch_size": 128, "start_training": 1000}'
    python scripts/bench/expo.py --micro                                 # the selection's cost vs RLPD's target
    python scripts/bench/expo.py --micro --device cuda                   # the same on a GPU
    python scripts/bench/expo.py --render-only                           # tables and curves from the CSV
    python scripts/bench/expo.py ... --csv /tmp/x/expo.csv --md /tmp/x/benchmarks.md   # leave docs/ alone
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchlib import MD_PATH, ROOT, git_commit, machine, read_rows, report_tables, write_results  # noqa: E402  (scripts/bench on sys.path)

from rlsuite.offline import datasets as D
from rlsuite.offline.train import read_evaluations, train_offline

CSV_PATH = ROOT / "docs" / "benchmarks" / "expo.csv"
BLOCK = "expo"
TITLE = "Online RL with offline data: EXPO vs RLPD on generated datasets"
#: task -> (env id, dataset level)
TASKS = {"pointmaze-umaze": ("rlsuite/PointMaze-UMaze-v0", "waypoint-noisy"),
         "pointmaze-medium": ("rlsuite/PointMaze-Medium-v0", "waypoint-noisy"),
         "hopper-medium": ("Hopper-v5", "medium")}
#: variant -> (registered algorithm, the config fields that make it)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {"rlpd": ("rlpd", {}), "expo": ("expo", {}),
                                                   "expo-no-edit": ("expo", {"use_edit": False}),
                                                   "expo-no-otf": ("expo", {"otf_backup": False})}
COLORS = {"rlpd": "tab:blue", "expo": "tab:red", "expo-no-edit": "tab:orange", "expo-no-otf": "tab:purple"}
PAPER_UTD = 20


# ----------------------------------------------------------------------------- configs


def config_fields(algo: str) -> dict[str, Any]:
    """The fields of ``algo``'s config dataclass and their defaults."""
    from rlsuite.agents import AGENTS

    return {f.name: f.default for f in dataclasses.fields(AGENTS.get(algo).config_cls)}


def _fix(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # JSON lists for tuple fields (hidden_sizes)


def overrides_for(variant: str, a: argparse.Namespace) -> dict[str, Any]:
    """The config overrides of ``variant``: the shared ``--config`` (fields its config has), then the
    algorithm's own, then the variant's switch."""
    algo, switch = VARIANTS[variant]
    fields = config_fields(algo)
    own = a.expo_config if algo == "expo" else a.rlpd_config
    unknown = sorted(set(own) - set(fields))
    if unknown:
        raise SystemExit(f"--{algo}-config: unknown {algo} config field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}")
    out = {k: _fix(v) for k, v in a.config.items() if k in fields}
    out.update({k: _fix(v) for k, v in own.items()})
    out.update(switch)
    return out


def check_shared_config(a: argparse.Namespace) -> None:
    known = set(config_fields("rlpd")) | set(config_fields("expo"))
    unknown = sorted(set(a.config) - known)
    if unknown:
        raise SystemExit(f"--config: field(s) {', '.join(unknown)} are in neither RLPD's nor EXPO's config")
    utd = {algo: {**config_fields(algo), **{k: v for k, v in a.config.items() if k in config_fields(algo)},
                  **(a.expo_config if algo == "expo" else a.rlpd_config)}["utd"] for algo in ("rlpd", "expo")}
    if utd["rlpd"] != utd["expo"]:
        print(f"note: RLPD runs at UTD {utd['rlpd']} and EXPO at {utd['expo']}; pass --config '{{\"utd\": k}}' for an equal ratio")


# ----------------------------------------------------------------------------- locks and data


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive lock named by ``name`` (a path), shared by every process on this machine."""
    path = Path(tempfile.gettempdir()) / f"rlsuite-bench-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_dataset(task: str, a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The task's dataset id (collected under ``--data-dir`` when missing) and what its metadata says."""
    env_id, level = TASKS[task]
    root = Path(a.data_dir)
    ds_id = D.dataset_id(env_id, level)
    with file_lock(str((root / ds_id).resolve())):  # two processes never collect the same dataset at once
        if not (root / ds_id).exists():
            D.collect(env_id, level, a.dataset_steps, seed=0, behaviour_steps=a.behaviour_steps, root=root, log=print)
    desc = json.loads(D.load_dataset(ds_id, root).storage.metadata.get("description") or "{}")
    info = {"dataset": ds_id, "dataset_transitions": desc.get("transitions", ""), "dataset_episodes": desc.get("episodes", "")}
    if "success_rate" in desc:
        info["dataset_success_rate"] = round(float(desc["success_rate"]), 3)
    if "behaviour" in desc:
        info["behaviour_steps"] = desc["behaviour"].get("steps", "")
    return ds_id, info


# ----------------------------------------------------------------------------- cells


def device_kind(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else str(device)


def key(r: dict) -> tuple:
    return (r["task"], r["variant"], int(r.get("pretrain_steps", 0) or 0), int(r["seed"]), str(r.get("device", "cpu")))


def cells(a: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(variant, pretrain steps, seed) of every cell of one task, seed-major so that early results compare."""
    out = []
    for seed in a.seeds:
        for variant in a.variants:
            out.append((variant, 0, seed))
        if a.pretrain_steps > 0:
            out += [(v, a.pretrain_steps, seed) for v in a.pretrain_variants if v in a.variants]
    return out


def curve_of(run_dir: Path, offline_end: int) -> tuple[list[tuple[int, float]], float | None]:
    """The online evaluations as (env steps, normalised score) and the last offline evaluation's score
    (None without an offline phase); with pretraining the curve starts with that score at env step 0."""
    evals = read_evaluations(run_dir)
    offline = [e for e in evals if e["phase"] == "offline"]
    pre = offline[-1]["normalized_score"] if offline else None
    curve = [(0, pre)] if pre is not None else []
    curve += [(e["step"] - offline_end, e["normalized_score"]) for e in evals if e["phase"] == "online"]
    return curve, pre


def eval_seconds_of(run_dir: Path) -> float:
    """Seconds spent in online-phase evaluations (``time/eval_seconds`` of metrics.csv)."""
    from rlsuite.core.logger import read_metrics

    total = 0.0
    for r in read_metrics(run_dir / "metrics.csv"):
        if r.get("time/eval_seconds", "") != "" and int(float(r.get("train/phase") or 0)) == 1:
            total += float(r["time/eval_seconds"])
    return total


def run_cell(task: str, variant: str, pretrain: int, seed: int, a: argparse.Namespace) -> dict:
    ds_id, info = ensure_dataset(task, a)
    algo = VARIANTS[variant][0]
    overrides = overrides_for(variant, a)
    name = f"{variant}-pt{pretrain}-seed{seed}" if pretrain else f"{variant}-seed{seed}"
    run_dir = Path(a.run_root) / device_kind(a.device) / task / name
    log = lambda m: print(f"  [{task} {name}] {m}", flush=True)  # noqa: E731
    kw = dict(seed=seed, eval_every=a.eval_every, eval_episodes=a.eval_episodes, run_dir=run_dir, root=Path(a.data_dir),
              device=a.device, log=log, config=overrides)
    ck = run_dir / "checkpoints"
    out = None
    if any((ck / n).exists() for n in ("offline", "offline_partial", "online_partial")) and not (ck / "online").exists():
        try:  # an earlier sitting stopped inside this cell: continue from its last checkpoint
            out = train_offline(algo, ds_id, pretrain, a.online_steps, resume=True, **kw)
        except D.DatasetError as e:
            log(f"cannot resume ({e}); running the cell from the start")
    if out is None:
        out = train_offline(algo, ds_id, pretrain, a.online_steps, overwrite=True, **kw)
    cfg = out["agent"].cfg
    curve, pre = curve_of(run_dir, pretrain)
    online = [s for st, s in curve if st > 0]
    eval_s = eval_seconds_of(run_dir)
    train_s = max(out["online_seconds"] - eval_s, 0.0)
    row = {"task": task, "variant": variant, "algo": algo, "pretrain_steps": pretrain, "seed": seed, **info,
           "final_score": round(out["online_score"], 2), "auc": round(statistics.mean(online), 2) if online else "",
           "curve": json.dumps([[st, round(s, 2)] for st, s in curve]),
           "online_steps": a.online_steps, "eval_every": a.eval_every, "eval_episodes": a.eval_episodes,
           "online_seconds": round(out["online_seconds"], 2), "eval_seconds": round(eval_s, 2), "train_seconds": round(train_s, 2),
           "s_per_env_step": round(out["online_seconds"] / a.online_steps, 5),
           "train_ms_per_env_step": round(1000 * train_s / a.online_steps, 3),
           "utd": cfg.utd, "batch_size": cfg.batch_size, "start_training": cfg.start_training,
           "overrides": json.dumps(overrides, sort_keys=True), "torch_threads": a.threads,
           "run_dir": str(run_dir.resolve().relative_to(ROOT)) if run_dir.resolve().is_relative_to(ROOT) else str(run_dir.resolve())}
    if pretrain:
        row.update(pretrain_score=round(pre, 2) if pre is not None else "", pretrain_seconds=round(out["offline_seconds"], 2))
    return row


def settings_differ(r: dict, variant: str, a: argparse.Namespace) -> list[str]:
    """What differs between the settings of a row already in the CSV and this call's."""
    mine = {"online_steps": a.online_steps, "eval_every": a.eval_every, "eval_episodes": a.eval_episodes,
            "overrides": json.dumps(overrides_for(variant, a), sort_keys=True)}
    return [f"{k} {r.get(k)!r} there, {v!r} now" for k, v in mine.items() if str(r.get(k, "")) != str(v)]


# ----------------------------------------------------------------------------- micro


def _timed(fn, device: str, warmup: int, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    import torch

    sync = torch.cuda.synchronize if device_kind(device) == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def micro(task: str, a: argparse.Namespace) -> list[dict]:
    """EXPO's selection and RLPD's target on ``--micro-batch`` states of ``task``'s spaces, with the configured
    sizes and the paper's."""
    import gymnasium as gym
    import torch

    import rlsuite.envs  # noqa: F401
    from rlsuite.agents import expo as E
    from rlsuite.agents import rlpd as R

    env = gym.make(TASKS[task][0])
    obs_dim, act_dim = int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    env.close()
    rows = []
    settings = {"configured": (overrides_for("expo", a), overrides_for("rlpd", a)), "paper": (dict(E.PAPER), dict(R.PAPER))}
    for setting, (eo, ro) in settings.items():
        ecfg, rcfg = E.EXPOConfig(**eo), R.RLPDConfig(**ro)
        expo = E.EXPO(ecfg, obs_dim, act_dim, a.device, seed=0)
        rlpd = R.RLPD(rcfg, obs_dim, act_dim, a.device, seed=0)
        g = torch.Generator(device="cpu").manual_seed(1)
        obs = torch.randn((a.micro_batch, obs_dim), generator=g).to(expo.device)
        members = R.random_members(ecfg.num_qs, ecfg.num_min_qs, expo.generator, expo.device)

        def expo_select(expo=expo, obs=obs, members=members):
            return expo.select(obs, expo.base, members)

        @torch.no_grad()
        def rlpd_target(rlpd=rlpd, obs=obs, cfg=rcfg):
            next_a, next_logp = rlpd.actor(obs).rsample_with_log_prob()
            m = R.random_members(cfg.num_qs, cfg.num_min_qs, rlpd.generator, rlpd.device)
            return R.subset_min(rlpd.critic_target(obs, next_a), m), next_logp

        t_expo = _timed(expo_select, a.device, a.micro_warmup, a.micro_repeats)
        t_rlpd = _timed(rlpd_target, a.device, a.micro_warmup, a.micro_repeats)
        n_cand = ecfg.num_base_samples + (ecfg.num_edit_samples if ecfg.use_edit else 0)
        common = {"part": "micro", "task": task, "setting": setting, "batch": a.micro_batch, "device": device_kind(a.device),
                  "torch_threads": a.threads, "repeats": a.micro_repeats, "obs_dim": obs_dim, "act_dim": act_dim,
                  "overrides": json.dumps({"expo": eo, "rlpd": ro}, sort_keys=True)}
        rows.append({**common, "what": "expo_select", "ms": round(1000 * t_expo, 3), "candidates": n_cand,
                     "denoiser": f"{ecfg.denoiser_width}x{ecfg.denoiser_blocks}, time {ecfg.time_dim}, T {ecfg.diffusion_steps}",
                     "critics": f"{ecfg.num_qs} x {list(ecfg.hidden_sizes)}"})
        rows.append({**common, "what": "rlpd_target", "ms": round(1000 * t_rlpd, 3), "candidates": 1,
                     "critics": f"{rcfg.num_qs} x {list(rcfg.hidden_sizes)}"})
        print(f"{task} {setting}: EXPO select {1000 * t_expo:.2f} ms ({n_cand} candidates x {a.micro_batch} states), "
              f"RLPD target {1000 * t_rlpd:.2f} ms, ratio {t_expo / t_rlpd:.1f}", flush=True)
    return rows


def micro_key(r: dict) -> tuple:
    return (r["task"], r["setting"], r["what"], str(r.get("device", "cpu")), str(r.get("machine", "")))


# ----------------------------------------------------------------------------- rendering


def _f(x: float) -> str:
    return f"{x:.1f}"


def _spread(vals: list[float]) -> str:
    if not vals:
        return "-"
    if len(vals) == 1:
        return _f(vals[0])
    return f"{_f(statistics.median(vals))} [{_f(min(vals))}, {_f(max(vals))}]"


def label(variant: str, pretrain: int) -> str:
    return f"{variant} (+{pretrain} pretrain)" if pretrain else variant


def mean_curve(rs: list[dict]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps every seed evaluated at, and the mean, min and max score over seeds there."""
    curves = [dict((int(s), float(v)) for s, v in json.loads(r["curve"])) for r in rs if r.get("curve")]
    if not curves:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return (steps, [statistics.mean(c[s] for c in curves) for s in steps], [min(c[s] for c in curves) for s in steps],
            [max(c[s] for c in curves) for s in steps])


def first_reach(steps: list[int], ys: list[float], target: float) -> int | None:
    return next((s for s, y in zip(steps, ys, strict=True) if y >= target - 1e-9), None)


def _groups(rows: list[dict]) -> dict[tuple[str, str], dict[tuple[str, int], list[dict]]]:
    out: dict[tuple[str, str], dict[tuple[str, int], list[dict]]] = {}
    for r in rows:
        g = out.setdefault((r["task"], str(r.get("device", "cpu"))), {})
        g.setdefault((r["variant"], int(r.get("pretrain_steps", 0) or 0)), []).append(r)
    return out


def _order(c: tuple[str, int]) -> tuple:
    return (list(VARIANTS).index(c[0]) if c[0] in VARIANTS else 99, c[1])


def _vals(rows: list[dict], k: str) -> str:
    vs = sorted({str(r[k]) for r in rows if r.get(k, "") != ""}, key=lambda v: (len(v), v))
    return "/".join(vs) if vs else "?"


def render(rows: list[dict], meta: dict) -> str:
    cellrows = [r for r in rows if r.get("part") == "cell"]
    out = []
    if cellrows:
        utd = ", ".join(f"{algo} {_vals([r for r in cellrows if r['algo'] == algo], 'utd')}" for algo in ("rlpd", "expo")
                        if any(r["algo"] == algo for r in cellrows))
        data = ", ".join(f"{t} {_vals([r for r in cellrows if r['task'] == t], 'dataset_transitions')}"
                         for t in sorted({r["task"] for r in cellrows}))
        out += [f"Settings: {_vals(cellrows, 'online_steps')} online env steps per run (no offline phase unless marked "
                f"'+P pretrain': P denoising updates of EXPO's base first), evaluation every {_vals(cellrows, 'eval_every')} env "
                f"steps over {_vals(cellrows, 'eval_episodes')} episodes; UTD {utd} (the paper's UTD is {PAPER_UTD}), batch "
                f"{_vals(cellrows, 'batch_size')}, warm-up {_vals(cellrows, 'start_training')} random steps; dataset transitions "
                f"{data}; seeds {_vals(cellrows, 'seed')}; machine {_vals(cellrows, 'machine')}, torch threads "
                f"{_vals(cellrows, 'torch_threads')}; config overrides per variant in the CSV's `overrides` column. "
                "Score: normalised (mazes: 100 x success rate; hopper: D4RL's constants), median [min, max] over seeds. AUC: "
                "mean over the online evaluations. Steps to target: the first evaluation at which the mean-over-seeds curve "
                "reaches RLPD's final score (median over seeds); ratio: RLPD's steps / the variant's (the paper reports 2-3x "
                "for EXPO). ms/step: online wall-clock less evaluation, per env step (env stepping and checkpoints included).",
                "",
                "| task | device | variant | seeds | final score | AUC | target (RLPD final) | steps to target | RLPD steps / steps | ms/env step (train) |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for (task, device), g in sorted(_groups(cellrows).items()):
            rl = g.get(("rlpd", 0), [])
            target = statistics.median(float(r["final_score"]) for r in rl) if rl else None
            reach: dict[tuple[str, int], tuple[int | None, int]] = {}
            for c, rs in g.items():
                steps, ys, _, _ = mean_curve(rs)
                reach[c] = (first_reach(steps, ys, target) if target is not None and steps else None, steps[-1] if steps else 0)
            rl_steps, rl_last = reach.get(("rlpd", 0), (None, 0))
            for c in sorted(g, key=_order):
                rs = g[c]
                st, last = reach[c]
                if target is None:
                    steps_txt, ratio = "-", "-"
                else:
                    steps_txt = str(st) if st is not None else f"not reached ({last})"
                    if target <= 0:
                        ratio = "n/a (target 0)"
                    elif st is not None and rl_steps is not None:
                        ratio = f"{rl_steps / st:.2f}" if st > 0 else "inf (at step 0)"
                    elif st is None and rl_steps is not None and last:
                        ratio = f"< {rl_steps / last:.2f}"
                    elif st is not None and rl_steps is None and st > 0:
                        ratio = f"> {rl_last / st:.2f}"
                    else:
                        ratio = "-"
                ms = [float(r["train_ms_per_env_step"]) for r in rs if r.get("train_ms_per_env_step", "") != ""]
                ms_txt = f"{statistics.median(ms):.1f}" if ms else "-"
                out.append(f"| {task} | {device} | {label(*c)} | {len(rs)} | {_spread([float(r['final_score']) for r in rs])} | "
                           f"{_spread([float(r['auc']) for r in rs if r.get('auc', '') != ''])} | "
                           f"{_f(target) if target is not None else '-'} | {steps_txt} | {ratio} | {ms_txt} |")
        scored = [{**r, "method": label(r["variant"], int(r.get("pretrain_steps", 0) or 0)),
                   "task_device": f"{r['task']} ({r.get('device', 'cpu')})"} for r in cellrows if r.get("final_score", "") != ""]
        if any(r["method"] == "rlpd" for r in scored) and len({r["method"] for r in scored}) > 1:
            tables = report_tables(scored, "method", "task_device", "final_score", normalize=(0.0, 100.0), baseline="rlpd")
            out += ["", "Final scores over every task and seed as `rlsuite report` aggregates them (scores / 100; IQM, median "
                    "and mean with 95% stratified bootstrap intervals; each task on each device is a task; tasks with different "
                    "budgets are pooled, so read it with the table above):", "", tables["aggregates"], "", "Probability that a run of the variant scores above "
                    "a run of RLPD on the same task (ties count half):", "", tables["improvement"]]
    mrows = [r for r in rows if r.get("part") == "micro"]
    if mrows:
        out += [""] if out else []
        out += [f"Cost of one TD target on {_vals(mrows, 'batch')} next states (median of "
                f"{_vals(mrows, 'repeats')} calls after a warm-up): EXPO's on-the-fly selection (`EXPO.select`: every candidate "
                "through the T-step denoiser, then the critics) vs RLPD's (one actor sample, the critic ensemble). "
                "'configured': the sizes of the runs above; 'paper': `rlsuite.agents.expo.PAPER` / `rlsuite.agents.rlpd.PAPER`.",
                "",
                "| task | setting | device | machine | threads | EXPO candidates | EXPO denoiser | EXPO select ms | RLPD target ms | ratio |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        groups: dict[tuple, dict[str, dict]] = {}
        for r in mrows:
            groups.setdefault((r["task"], r["setting"], str(r.get("device", "")), str(r.get("machine", ""))), {})[r["what"]] = r
        for (task, setting, device, mach), g in sorted(groups.items()):
            e, rl = g.get("expo_select"), g.get("rlpd_target")
            ratio = f"{float(e['ms']) / float(rl['ms']):.1f}" if e and rl and float(rl["ms"]) > 0 else "-"
            out.append(f"| {task} | {setting} | {device} | {mach} | {(e or rl).get('torch_threads', '')} | "
                       f"{e['candidates'] if e else '-'} | {e['denoiser'] if e else '-'} | {e['ms'] if e else '-'} | "
                       f"{rl['ms'] if rl else '-'} | {ratio} |")
    return "\n".join(out) if out else "No results yet."


def plot(rows: list[dict], png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups([r for r in rows if r.get("part") == "cell"])
    if not groups:
        return
    several = len({d for _, d in groups}) > 1
    panels = sorted(groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.6), squeeze=False)
    for ax, (task, device) in zip(axes[0], panels, strict=True):
        g = groups[(task, device)]
        for c in sorted(g, key=_order):
            steps, ys, lo, hi = mean_curve(g[c])
            if not steps:
                continue
            color = COLORS.get(c[0], "tab:gray")
            style = "--" if c[1] else "-"
            ax.plot(steps, ys, color=color, linestyle=style, marker="o", markersize=2, label=f"{label(*c)} ({len(g[c])} seeds)")
            ax.fill_between(steps, lo, hi, color=color, alpha=0.15, linewidth=0)
        ax.set_title(f"{task} ({device})" if several else task)
        ax.set_xlabel("online env steps")
        ax.set_ylabel("normalised score" + (" (100 x success)" if task.startswith("pointmaze") else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def publish(csv_path: Path, md_path: Path, rows: list[dict], meta: dict) -> None:
    if not md_path.exists():
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text("# Benchmarks\n")
    write_results(csv_path, rows, meta, BLOCK, render(rows, meta), TITLE, md_path=md_path)
    plot(rows, csv_path.with_suffix(".png"))


def merge(csv_path: Path, md_path: Path, new: list[dict], keyfn, meta: dict) -> list[dict]:
    """Replace the rows of ``new``'s keys in the CSV (under a lock: several processes may share it) and publish."""
    with file_lock(str(csv_path.resolve())):
        ks = {keyfn(r) for r in new}
        rows = [r for r in read_rows(csv_path) if r.get("part") != new[0]["part"] or keyfn(r) not in ks] + new
        publish(csv_path, md_path, rows, meta)
    return rows


def _json_obj(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["pointmaze-umaze", "pointmaze-medium"], choices=list(TASKS),
                   help="hopper-medium trains a SAC behaviour agent first (expensive), so it is off by default")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--online-steps", type=int, default=100_000)
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--pretrain-steps", type=int, default=0, help="also run --pretrain-variants with this many base pretraining updates")
    p.add_argument("--pretrain-variants", nargs="+", default=["expo"], choices=[v for v in VARIANTS if v != "rlpd"])
    p.add_argument("--config", type=_json_obj, default={"utd": 2},
                   help="JSON overrides for every variant whose config has the field (default: both at EXPO's CPU UTD 2)")
    p.add_argument("--expo-config", type=_json_obj, default={}, help="JSON overrides of EXPO's config (all EXPO variants)")
    p.add_argument("--rlpd-config", type=_json_obj, default={}, help="JSON overrides of RLPD's config")
    p.add_argument("--dataset-steps", type=int, default=100_000, help="transitions of a dataset collected here")
    p.add_argument("--behaviour-steps", type=int, default=100_000, help="SAC behaviour training for hopper-medium")
    p.add_argument("--data-dir", default=str(ROOT / "runs" / "expo-bench" / "data"))
    p.add_argument("--run-root", default=str(ROOT / "runs" / "expo-bench" / "runs"))
    p.add_argument("--device", default="cpu", help="torch device of the learner (envs step on the CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (recorded in every row)")
    p.add_argument("--micro", action="store_true", help="measure the selection's cost (part=micro) instead of training")
    p.add_argument("--micro-batch", type=int, default=256)
    p.add_argument("--micro-repeats", type=int, default=20)
    p.add_argument("--micro-warmup", type=int, default=3)
    p.add_argument("--csv", default=str(CSV_PATH), help="results CSV (the PNG goes beside it)")
    p.add_argument("--md", default=str(MD_PATH), help="the Markdown file with the expo block (created when missing)")
    p.add_argument("--redo", action="store_true", help="rerun cells that are already in the CSV")
    p.add_argument("--render-only", action="store_true")
    a = p.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    csv_path, md_path = Path(a.csv).resolve(), Path(a.md).resolve()
    meta = {"machine": machine(device_kind(a.device)), "device": device_kind(a.device), "commit": git_commit(), "torch_threads": a.threads}
    if a.render_only:
        with file_lock(str(csv_path)):
            publish(csv_path, md_path, read_rows(csv_path), meta)
        return
    check_shared_config(a)
    if a.micro:
        for task in a.tasks:
            merge(csv_path, md_path, [{**meta, **r} for r in micro(task, a)], micro_key, meta)
        return
    for task in a.tasks:
        for variant, pretrain, seed in cells(a):
            k = (task, variant, pretrain, seed, device_kind(a.device))
            old = [r for r in read_rows(csv_path, {"cell"}) if key(r) == k]
            if old and not a.redo:
                diff = settings_differ(old[0], variant, a)
                if diff:
                    print(f"{task} {label(variant, pretrain)} seed {seed}: in the CSV with other settings ({'; '.join(diff)}); "
                          "kept (--redo to replace)")
                continue
            row = {**meta, **run_cell(task, variant, pretrain, seed, a), "part": "cell"}
            print(f"{task} {label(variant, pretrain)} seed {seed}: final {row['final_score']}, AUC {row['auc']} "
                  f"({row['online_seconds']} s online, {row['train_ms_per_env_step']} ms/step training)", flush=True)
            merge(csv_path, md_path, [row], key, meta)


if __name__ == "__main__":
    main()
