"""Run every learning test's measurement over seeds and torch thread counts, and record the distribution.

A learning test (training reaches a threshold, or a method improves) holds on one seed on one machine by
luck unless its threshold sits below the worst case over seeds and over floating-point orders. Another
CPU changes the order of reductions much as another thread count does, so each measurement here runs for
every seed x thread count, each in a fresh subprocess whose first torch call is ``torch.set_num_threads``.

Each measurement is the function that the test itself calls (``tests/...:function(seed, workdir)``), and
each threshold is read from the test module, so the script and the test cannot drift apart.

Usage (from the repository root)::

    .venv/bin/python scripts/check_seeds.py                         # all, seeds 0-4, threads 1 and 2
    .venv/bin/python scripts/check_seeds.py --only ppo_cartpole --seeds 0-9 --threads 1,2
    .venv/bin/python scripts/check_seeds.py --list

Writes ``docs/learning_tests.csv`` (one row per measurement, seed, thread count and metric;
rows of measurements not run this time are kept) and the generated table of ``docs/learning_tests.md``
(between its ``check_seeds`` markers). Runs are sequential: one process at a time.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV_PATH = ROOT / "docs" / "learning_tests.csv"
MD_PATH = ROOT / "docs" / "learning_tests.md"
BEGIN, END = "<!-- check_seeds.py: begin -->", "<!-- check_seeds.py: end -->"
FIELDS = ["measurement", "metric", "seed", "threads", "value", "op", "threshold", "seconds", "commit", "machine", "torch"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One asserted quantity of a measurement."""

    key: str
    """Key in the dict the measurement returns."""
    op: str
    """The test's comparison: value ``op`` threshold must hold (>=, >, <=, <)."""
    threshold: str
    """Name of the constant in the test module that holds the threshold."""
    median_of: int = 1
    """1: the test asserts it for one seed; k > 1: the test asserts the median over k seeds (the table then
    also shows the worst median over every k-subset of the seeds measured)."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    name: str
    test: str
    """The pytest node id(s) that call the function."""
    func: str
    """``module:function``; called as ``function(seed, workdir, **kwargs)``."""
    metrics: tuple[Metric, ...]
    kwargs: tuple[tuple[str, object], ...] = ()


MEASUREMENTS = [
    Measurement("ppo_cartpole", "tests/agents/test_ppo.py::test_ppo_solves_cartpole", "tests.agents.test_ppo:cartpole_return",
                (Metric("eval_mean_return", ">=", "CARTPOLE_MIN_RETURN"),)),
    Measurement("ppo_batched_pendulum", "tests/agents/test_ppo.py::test_ppo_solves_batched_pendulum",
                "tests.agents.test_ppo:batched_pendulum_return", (Metric("eval_mean_return", ">=", "PENDULUM_MIN_RETURN"),)),
    Measurement("sac_pendulum", "tests/agents/test_sac.py::test_sac_solves_pendulum", "tests.agents.test_sac:pendulum_return",
                (Metric("eval_mean_return", ">=", "PENDULUM_MIN_RETURN"),)),
    Measurement("fast_td3_pendulum", "tests/agents/test_fast_td3.py::test_fast_td3_solves_batched_pendulum",
                "tests.agents.test_fast_td3:pendulum_return", (Metric("eval_mean_return", ">=", "PENDULUM_MIN_RETURN"),)),
    Measurement("tgpo_reach_avoid", "tests/agents/test_tgpo.py::test_tgpo_satisfies_a_reach_avoid_task_on_linear",
                "tests.agents.test_tgpo:reach_avoid_success",
                (Metric("success_before", "<", "REACH_AVOID_MAX_BEFORE"), Metric("success_after", ">=", "REACH_AVOID_MIN_AFTER"))),
    Measurement("bq_nco_tsp20", "tests/agents/test_bq_nco.py::test_a_few_minutes_of_imitation_on_tsp20_beat_nearest_neighbour",
                "tests.agents.test_bq_nco:tsp20_imitation",
                (Metric("loss_ratio", "<", "TSP20_MAX_LOSS_RATIO"), Metric("gap_closed", ">", "TSP20_MIN_GAP_CLOSED"))),
    Measurement("bc_linear_expert", "tests/agents/test_iql_bc.py::test_bc_fits_a_linear_expert", "tests.agents.test_iql_bc:bc_linear_expert",
                (Metric("mse_ratio", "<", "BC_MAX_MSE_RATIO"), Metric("mse_after", "<", "BC_MAX_MSE"))),
    Measurement("iql_bandit", "tests/agents/test_iql_bc.py::test_iql_prefers_the_better_action_in_a_bandit",
                "tests.agents.test_iql_bc:bandit_actions",
                (Metric("iql_action", ">", "IQL_MIN_ACTION"), Metric("bc_abs_action", "<", "BC_MAX_ABS_ACTION"))),
    Measurement("dynamics_linear", "tests/agents/test_uni_o4.py::test_dynamics_ensemble_learns_a_linear_system",
                "tests.agents.test_uni_o4:dynamics_fit",
                (Metric("elite_holdout_mse", "<", "DYNAMICS_MAX_HOLDOUT_MSE"), Metric("rel_state_mse", "<", "DYNAMICS_MAX_REL_STATE_MSE"),
                 Metric("reward_abs_err", "<", "DYNAMICS_MAX_REWARD_ERR"))),
    Measurement("uni_o4_offline", "tests/offline/test_uni_o4_learning.py::test_uni_o4_offline_beats_bc",
                "tests.offline.test_uni_o4_learning:offline_o4_vs_bc",
                (Metric("bc_score", "<", "BC_MAX_SCORE"), Metric("o4_minus_bc", ">", "O4_MIN_MARGIN_OVER_BC"))),
    Measurement("uni_o4_online", "tests/offline/test_uni_o4_learning.py::test_uni_o4_online_phase_improves_on_the_offline_policy",
                "tests.offline.test_uni_o4_learning:online_gain",
                (Metric("online_minus_offline", ">", "ONLINE_MIN_MEDIAN_GAIN", median_of=3),)),
    Measurement("expo_two_mode_bandit", "tests/offline/test_expo_learning.py::test_expo_picks_the_paying_mode_of_a_two_mode_dataset",
                "tests.offline.test_expo_learning:expo_bandit",
                (Metric("expo_score", ">=", "EXPO_MIN_SCORE"), Metric("selection_gain", ">=", "MIN_SELECTION_GAIN"))),
    Measurement("subpo_coverage", "tests/agents/test_subpo.py::test_subpo_beats_modpo_on_coverage", "tests.agents.test_subpo:subpo_vs_modpo",
                (Metric("subpo_F", ">=", "SUBPO_MIN_F"), Metric("modpo_F", "<=", "MODPO_MAX_F"), Metric("subpo_gain", ">", "SUBPO_MIN_GAIN"))),
    Measurement("dr_rpo_linear_mdp", "tests/agents/test_dr_rpo.py::test_dr_rpo_is_more_robust_than_lsvi_ucb_on_the_linear_mdp",
                "tests.agents.test_dr_rpo:worst_case_returns",
                (Metric("dr_rpo_worst", ">=", "DR_RPO_MIN_WORST"), Metric("lsvi_worst", "<=", "LSVI_MAX_WORST"),
                 Metric("dr_rpo_rho0_worst", "<=", "DR_RPO_RHO0_MAX_WORST"))),
    Measurement("robust_mbrl_greenhouse", "tests/envs/greenhouse/test_learning.py::test_robust_mbrl_learns_within_two_thousand_real_steps",
                "tests.envs.greenhouse.test_learning:robust_mbrl_greenhouse",
                (Metric("return_over_random", ">=", "MBRL_MIN_RETURN_OVER_RANDOM"),
                 Metric("return_over_zero_input", ">=", "MBRL_MIN_RETURN_OVER_ZERO"))),
    Measurement("ppo_profit_greenhouse",
                "tests/envs/greenhouse/test_learning.py::test_ppo_trained_on_profit_beats_the_rule_based_controllers_profit",
                "tests.envs.greenhouse.test_learning:ppo_profit_greenhouse",
                (Metric("profit_over_rule", ">=", "PPO_MIN_PROFIT_OVER_RULE"),)),
    Measurement("ospo_dispatch", "tests/agents/test_ospo.py::test_ospo_beats_random_and_approaches_greedy",
                "tests.agents.test_ospo:ospo_vs_baselines", (Metric("gap_closed", ">=", "MIN_GAP_CLOSED"),)),
    Measurement("llm_dataset_reset", "tests/llm/test_trainer.py::test_dataset_reset_rollouts_continue_answer_prefixes",
                "tests.llm.test_trainer:dataset_reset_reward_gain", (Metric("reward_gain", ">", "DATASET_RESET_MIN_REWARD_GAIN"),)),
]
for _method in ("grpo", "remax", "dpo"):
    MEASUREMENTS.append(Measurement(
        f"llm_{_method}", f"tests/llm/test_trainer.py::test_method_learns_over_three_seeds[{_method}]",
        "tests.llm.test_trainer:method_gain", (Metric("gain", ">=", f"{_method.upper()}_MIN_MEDIAN_GAIN", median_of=3),
                                               Metric("train_reward_gain", ">=", f"{_method.upper()}_MIN_MEDIAN_TRAIN_REWARD_GAIN",
                                                      median_of=3)),
        (("method", _method),)))
MEASUREMENTS.append(Measurement("llm_grpo_smoke", "tests/llm/test_trainer.py::test_a_few_grpo_steps_raise_the_training_reward",
                                "tests.llm.test_trainer:grpo_smoke", (Metric("train_reward_gain", ">", "SMOKE_MIN_TRAIN_REWARD_GAIN"),)))
BY_NAME = {m.name: m for m in MEASUREMENTS}


# ---- one run, in a fresh process ----------------------------------------------------------------------

def worker(name: str, seed: int, threads: int, out: Path) -> None:
    import torch  # the first torch call of this process: nothing has run with another thread count

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT))
    m = BY_NAME[name]
    module, fn = m.func.split(":")
    func = getattr(importlib.import_module(module), fn)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"check_seeds_{name}_") as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # stray files (runs/, MUJOCO_LOG.TXT) stay out of the repository
        try:
            values = func(seed, Path(tmp), **dict(m.kwargs))
        finally:
            os.chdir(cwd)
    out.write_text(json.dumps({"values": {k: float(v) for k, v in values.items()}, "seconds": time.perf_counter() - t0,
                               "torch": torch.__version__, "threads": torch.get_num_threads()}))


def run_one(name: str, seed: int, threads: int, timeout: float | None) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = {**os.environ, "PYTHONHASHSEED": "0", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
               "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        # PASSIVE: idle OpenMP threads sleep instead of spinning, which only matters (for speed, not for the
        # results) when the CPU is shared with other work.
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--seed", str(seed), "--threads", str(threads),
               "--out", str(out)]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"    timed out after {timeout} s", flush=True)
            return None
        if proc.returncode != 0 or not out.exists():
            print(f"    failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", flush=True)
            return None
        return json.loads(out.read_text())


# ---- bookkeeping ---------------------------------------------------------------------------------------

def machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def threshold_of(m: Measurement, metric: Metric) -> float:
    sys.path.insert(0, str(ROOT))
    return float(getattr(importlib.import_module(m.func.split(":")[0]), metric.threshold))


def passes(value: float, op: str, threshold: float) -> bool:
    return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold, "<": value < threshold}[op]


def margin(value: float, op: str, threshold: float) -> float:
    """How far ``value`` is on the passing side of ``threshold`` (negative: it fails)."""
    return value - threshold if op in (">=", ">") else threshold - value


def read_rows() -> list[dict]:
    if not CSV_PATH.exists():
        return []
    with CSV_PATH.open() as f:
        return list(csv.DictReader(f))


def write_rows(rows: list[dict]) -> None:
    CSV_PATH.parent.mkdir(parents=True, exist_ok=True)
    order = {m.name: i for i, m in enumerate(MEASUREMENTS)}
    rows = sorted(rows, key=lambda r: (order.get(r["measurement"], 99), r["metric"], int(r["threads"]), int(r["seed"])))
    tmp = CSV_PATH.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(CSV_PATH)


def with_current_thresholds(rows: list[dict]) -> list[dict]:
    """The rows with the thresholds the test modules hold now (a threshold may have been set after the run)."""
    current = {(m.name, mt.key): (mt.op, threshold_of(m, mt)) for m in MEASUREMENTS for mt in m.metrics}
    out = []
    for r in rows:
        if (r["measurement"], r["metric"]) in current:
            op, thr = current[(r["measurement"], r["metric"])]
            r = {**r, "op": op, "threshold": repr(thr)}
        out.append(r)
    return out


def fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"


def table(rows: list[dict]) -> str:
    """The Markdown table: one line per measurement and metric."""
    lines = ["| test | metric | assertion | runs (seeds x threads) | by threads: min / median / max | worst | margin | holds |",
             "|---|---|---|---|---|---|---|---|"]
    for m in MEASUREMENTS:
        for metric in m.metrics:
            rs = [r for r in rows if r["measurement"] == m.name and r["metric"] == metric.key]
            if not rs:
                continue
            op, thr = rs[0]["op"], float(rs[0]["threshold"])
            vals = [float(r["value"]) for r in rs]
            seeds = sorted({int(r["seed"]) for r in rs})
            threads = sorted({int(r["threads"]) for r in rs})
            per_t = []
            for t in threads:
                v = sorted(float(r["value"]) for r in rs if int(r["threads"]) == t)
                per_t.append(f"{t}: {fmt(v[0])} / {fmt(statistics.median(v))} / {fmt(v[-1])}")
            lower_is_worse = op in (">=", ">")
            if metric.median_of > 1:
                stats = []
                for t in threads:
                    by_seed = {int(r["seed"]): float(r["value"]) for r in rs if int(r["threads"]) == t}
                    k = min(metric.median_of, len(by_seed))  # fewer seeds measured than the test uses: all of them
                    stats += [statistics.median(c) for c in itertools.combinations(by_seed.values(), k)]
                worst = min(stats) if lower_is_worse else max(stats)
                assertion = f"median of {metric.median_of} seeds {op} {fmt(thr)}"
                worst_txt = f"{fmt(worst)} (worst median of any {metric.median_of} seeds)"
            else:
                worst = min(vals) if lower_is_worse else max(vals)
                assertion = f"{op} {fmt(thr)}"
                worst_txt = fmt(worst)
            held = "yes" if passes(worst, op, thr) else "**no**"
            test = m.test.split("::")[-1]
            lines.append(f"| `{m.name}` ({test}) | {metric.key} | {assertion} | {len(vals)} ({len(seeds)} x {len(threads)}) | "
                         f"{'; '.join(per_t)} | {worst_txt} | {fmt(margin(worst, op, thr))} | {held} |")
    return "\n".join(lines)


def write_markdown(rows: list[dict]) -> None:
    machines = sorted({r["machine"] for r in rows})
    torches = sorted({r["torch"] for r in rows})
    commits = sorted({r["commit"] for r in rows})
    body = (f"{BEGIN}\nGenerated by `scripts/check_seeds.py` from `docs/learning_tests.csv` "
            f"(machine: {', '.join(machines)}; torch {', '.join(torches)}; commits {', '.join(commits)}).\n"
            f"\n{table(rows)}\n{END}")
    text = MD_PATH.read_text() if MD_PATH.exists() else "# Learning tests over seeds and thread counts\n\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    MD_PATH.write_text(text)


def parse_ints(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=None,
                   help="a measurement name (repeatable, or comma-separated); see --list")
    p.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,3,7 (default 0-4)")
    p.add_argument("--threads", default="1,2", help="torch thread counts (default 1,2)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per run (default: none)")
    p.add_argument("--no-write", action="store_true", help="print only; leave the CSV and the Markdown as they are")
    p.add_argument("--table-only", action="store_true", help="regenerate docs/learning_tests.md's table from the CSV")
    p.add_argument("--list", action="store_true", help="list the measurements and the tests that call them")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker, a.seed, int(a.threads), a.out)
        return 0
    if a.list:
        for m in MEASUREMENTS:
            print(f"{m.name:20s} {m.test}")
        return 0
    if a.table_only:
        rows = with_current_thresholds(read_rows())
        write_rows(rows)
        write_markdown(rows)
        return 0
    names = [n for o in (a.only or [",".join(BY_NAME)]) for n in o.split(",") if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown measurement(s) {unknown}; known: {', '.join(BY_NAME)}")
    seeds, threads = parse_ints(a.seeds), parse_ints(a.threads)
    total, done = len(names) * len(seeds) * len(threads), 0
    mach, com = machine(), commit()
    rows = read_rows()
    failed = 0
    for name in names:
        m = BY_NAME[name]
        thresholds = {mt.key: threshold_of(m, mt) for mt in m.metrics}
        for t, seed in itertools.product(threads, seeds):
            done += 1
            print(f"[{done}/{total}] {name} seed={seed} threads={t} ...", flush=True)
            res = run_one(name, seed, t, a.timeout)
            if res is None:
                failed += 1
                continue
            shown = []
            rows = [r for r in rows if not (r["measurement"] == name and int(r["seed"]) == seed and int(r["threads"]) == t)]
            for mt in m.metrics:
                v = res["values"][mt.key]
                ok = passes(v, mt.op, thresholds[mt.key]) or mt.median_of > 1
                shown.append(f"{mt.key}={fmt(v)}{'' if ok else ' (FAILS ' + mt.op + ' ' + fmt(thresholds[mt.key]) + ')'}")
                rows.append({"measurement": name, "metric": mt.key, "seed": seed, "threads": t, "value": repr(v), "op": mt.op,
                             "threshold": repr(thresholds[mt.key]), "seconds": f"{res['seconds']:.1f}", "commit": com,
                             "machine": mach, "torch": res["torch"]})
            print(f"    {', '.join(shown)}  [{res['seconds']:.0f} s]", flush=True)
            if not a.no_write:  # after every run, so an interrupted sweep keeps what it measured
                write_rows(rows)
    if not a.no_write:
        rows = with_current_thresholds(read_rows())
        write_rows(rows)
        write_markdown(rows)
    print(table([r for r in read_rows() if r["measurement"] in names]) if not a.no_write else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
