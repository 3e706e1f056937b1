"""Benchmark: stepping many MuJoCo envs on a CPU (Hopper-v5, Ant-v5), several ways, at equal dynamics.

For ``N`` envs and random actions (seeded, the same for every path), env steps per second of:

- ``gym-sync``: Gymnasium's ``SyncVectorEnv`` of the registered env (what the suite's adapter wraps today);
- ``gym-async``: Gymnasium's ``AsyncVectorEnv`` (one process per env, shared memory);
- ``mjdata-loop``: ``N`` ``MjData`` of one ``MjModel`` stepped in a Python loop: ``ctrl = action``, then
  ``mj_step(model, data, nstep=frame_skip)`` (what Gymnasium's ``MujocoEnv.do_simulation`` does), observations
  built from ``qpos``/``qvel`` in Hopper's layout (for every env); no reward, termination or reset logic (bodies that
  fell over go on being stepped);
- ``mj-rollout``: ``mujoco.rollout.rollout`` (C++ thread pool, one ``MjData`` per thread) advancing all ``N``
  states ``frame_skip`` physics steps per call, one call per vector step (closed loop: the actions of the next
  step are only known after it).
- ``suite-adapter``: ``make_vec_env(env_id, N, mujoco_backend="gymnasium")``, the whole env: Gymnasium's
  ``SyncVectorEnv`` behind ``GymVecAdapter`` (torch actions in, torch tensors out, resets of finished envs);
- ``suite-batched``: ``make_vec_env(env_id, N, mujoco_backend="batched")`` (what the default ``auto`` picks), the suite's ``MujocoBatchedVecEnv``:
  the MjData loop with the env's observation, reward, termination, time limit and resets (same numbers as
  ``suite-adapter``), torch tensors out; ``suite-batched-threads``: the same with ``num_threads=--threads``.

Parity: from the same initial ``qpos``/``qvel`` and actions, the ``mjdata-loop`` and ``mj-rollout`` states after
``--parity-steps`` vector steps against the Gymnasium env's own ``MjData`` (max absolute difference of ``qpos`` and
``qvel``); and the largest difference of observations and rewards between ``suite-batched`` and ``suite-adapter``
(8 envs, same seed and actions, resets included) over those steps. Results: docs/benchmarks/mujoco_stepping.csv and the ``mujoco_stepping`` block of docs/benchmarks.md.

Usage:
    python scripts/bench/mujoco_stepping.py                         # Hopper-v5 and Ant-v5, N in 8 and 32
    python scripts/bench/mujoco_stepping.py --envs Hopper-v5 --num-envs 16 --steps 500
    python scripts/bench/mujoco_stepping.py --paths gym-sync suite-adapter suite-batched
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import torch
from benchlib import MD_PATH, ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)
from mujoco import rollout as mj_rollout

from rlsuite.core.vec_env import make_vec_env

CSV_PATH = ROOT / "docs" / "benchmarks" / "mujoco_stepping.csv"
BLOCK = "mujoco_stepping"
TITLE = "MuJoCo stepping on a CPU: Gymnasium vector envs, an MjData loop and mujoco.rollout"
PATHS = ("gym-sync", "gym-async", "mjdata-loop", "mj-rollout", "suite-adapter", "suite-batched", "suite-batched-threads")


def _unwrapped(env_id: str) -> gym.Env:
    return gym.make(env_id).unwrapped


def _actions(env_id: str, n: int, steps: int, seed: int) -> np.ndarray:
    space = gym.make(env_id).action_space
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, size=(steps, n, space.shape[0])).astype(np.float64)


def time_gym(env_id: str, n: int, actions: np.ndarray, asynchronous: bool) -> float:
    cls = gym.vector.AsyncVectorEnv if asynchronous else gym.vector.SyncVectorEnv
    env = cls([lambda: gym.make(env_id) for _ in range(n)])
    env.reset(seed=0)
    env.step(actions[0])  # untimed: the first step (and the processes' start for async)
    t0 = time.perf_counter()
    for a in actions[1:]:
        env.step(a)
    seconds = time.perf_counter() - t0
    env.close()
    return n * (len(actions) - 1) / seconds


def time_mjdata_loop(env_id: str, n: int, actions: np.ndarray) -> float:
    base = _unwrapped(env_id)
    model, skip = base.model, base.frame_skip
    datas = [mujoco.MjData(model) for _ in range(n)]
    for d in datas:
        mujoco.mj_resetData(model, d)
        mujoco.mj_forward(model, d)
    t0 = time.perf_counter()
    for a in actions[1:]:
        for d, act in zip(datas, a, strict=True):
            d.ctrl[:] = act
            mujoco.mj_step(model, d, nstep=skip)
        np.stack([np.concatenate([d.qpos[1:], d.qvel]) for d in datas])  # what an observation costs (Hopper's layout)
    return n * (len(actions) - 1) / (time.perf_counter() - t0)


def time_rollout(env_id: str, n: int, actions: np.ndarray, threads: int) -> float:
    base = _unwrapped(env_id)
    model, skip = base.model, base.frame_skip
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    datas = [mujoco.MjData(model) for _ in range(threads)]
    d0 = mujoco.MjData(model)
    mujoco.mj_forward(model, d0)
    state = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, d0, state, spec)
    states = np.tile(state, (n, 1))
    out = np.empty((n, skip, states.shape[1]))
    t0 = time.perf_counter()
    for a in actions[1:]:
        mj_rollout.rollout(model, datas, states, a[:, None, :], nstep=skip, state=out, persistent_pool=True)
        states = out[:, -1, :].copy()
    seconds = time.perf_counter() - t0
    mj_rollout.shutdown_persistent_pool()
    return n * (len(actions) - 1) / seconds


def time_suite(env_id: str, n: int, actions: np.ndarray, backend: str, threads: int = 1) -> float:
    """The suite's whole env (``make_vec_env``): float32 torch actions in, torch tensors out, resets included."""
    extra = {"num_threads": threads} if backend == "batched" else {}
    env = make_vec_env(env_id, n, device="cpu", seed=0, mujoco_backend=backend, **extra)
    acts = [torch.as_tensor(a, dtype=torch.float32) for a in actions]
    env.reset()
    env.step(acts[0])  # untimed, as for the other paths
    t0 = time.perf_counter()
    for a in acts[1:]:
        env.step(a)
    seconds = time.perf_counter() - t0
    env.close()
    return n * (len(actions) - 1) / seconds


def suite_parity(env_id: str, steps: int, seed: int, n: int = 8) -> float:
    """Largest |difference| of observations, final observations and rewards, ``suite-batched`` vs ``suite-adapter``."""
    envs = [make_vec_env(env_id, n, seed=seed, mujoco_backend=b) for b in ("gymnasium", "batched")]
    worst = max(float((envs[0].reset()[0] - envs[1].reset()[0]).abs().max()), 0.0)
    for a in _actions(env_id, n, steps, seed + 1):
        act = torch.as_tensor(a, dtype=torch.float32)
        (o0, r0, *_, i0), (o1, r1, *_, i1) = envs[0].step(act), envs[1].step(act)
        worst = max(worst, float((o0 - o1).abs().max()), float((r0 - r1).abs().max()),
                    float((i0["final_obs"] - i1["final_obs"]).abs().max()))
    return worst


def parity(env_id: str, steps: int, seed: int) -> dict[str, float]:
    """Max |qpos, qvel| difference after ``steps`` steps: the Gymnasium env vs the MjData loop vs mujoco.rollout."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    base = env.unwrapped
    model, skip = base.model, base.frame_skip
    loop = mujoco.MjData(model)
    loop.qpos[:], loop.qvel[:] = base.data.qpos, base.data.qvel
    mujoco.mj_forward(model, loop)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, loop, state, spec)
    acts = _actions(env_id, 1, steps, seed + 1)[:, 0]
    data = [mujoco.MjData(model)]
    for a in acts:
        base.do_simulation(a, skip)  # the env's own physics step (no termination: a fixed number of steps)
        loop.ctrl[:] = a
        mujoco.mj_step(model, loop, nstep=skip)
        state = mj_rollout.rollout(model, data, state[None], a[None, None, :], nstep=skip)[0][0, -1]
    ro = mujoco.MjData(model)
    mujoco.mj_setState(model, ro, state, spec)
    ref = np.concatenate([base.data.qpos, base.data.qvel])
    return {"loop_max_abs_diff": float(np.abs(np.concatenate([loop.qpos, loop.qvel]) - ref).max()),
            "rollout_max_abs_diff": float(np.abs(np.concatenate([ro.qpos, ro.qvel]) - ref).max()),
            "batched_max_abs_diff": suite_parity(env_id, steps, seed)}


def _fmt(v: object) -> str:
    return "-" if v in (None, "") else f"{float(v):.3g}"


def render(rows: list[dict]) -> str:
    out = ["Random actions, env steps per second (medians over the repeats), one process (`gym-async`: one more per "
           "env); `x sync` is the rate over `gym-sync`'s. `mjdata-loop` and `mj-rollout` step the physics only (no reward, "
           "termination or reset), so they are upper bounds of what a path behind the adapter could give. `suite-adapter` "
           "and `suite-batched` are whole envs as agents get them (`make_vec_env`, torch tensors out; `mujoco_backend` "
           "`gymnasium` and `batched`); `suite-batched-threads` steps blocks of envs on `rollout_threads` threads.", "",
           "| env | N | path | env steps/s | x sync |", "|---|---|---|---|---|"]
    for env_id in sorted({r["env"] for r in rows if r.get("part") == "speed"}):
        for n in sorted({int(r["num_envs"]) for r in rows if r.get("env") == env_id and r.get("part") == "speed"}):
            rs = [r for r in rows if r.get("part") == "speed" and r["env"] == env_id and int(r["num_envs"]) == n]
            med = {p: statistics.median(float(r["sps"]) for r in rs if r["path"] == p) for p in {r["path"] for r in rs}}
            for p in [p for p in PATHS if p in med]:
                ratio = f"{med[p] / med['gym-sync']:.2f}" if "gym-sync" in med else "-"
                out.append(f"| {env_id} | {n} | {p} | {med[p]:,.0f} | {ratio} |")
    par = [r for r in rows if r.get("part") == "parity"]
    if par:
        out += ["", "Parity with the Gymnasium env's own physics from the same state and actions (max |difference| of qpos and "
                "qvel), and of `suite-batched`'s observations and rewards with `suite-adapter`'s (8 envs, resets included):", "",
                "| env | steps | MjData loop | mujoco.rollout | suite-batched |", "|---|---|---|---|---|"]
        out += [f"| {r['env']} | {r['steps']} | {float(r['loop_max_abs_diff']):.3g} | {float(r['rollout_max_abs_diff']):.3g} | "
                f"{_fmt(r.get('batched_max_abs_diff'))} |" for r in par]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=["Hopper-v5", "Ant-v5"])
    p.add_argument("--num-envs", nargs="+", type=int, default=[8, 32])
    p.add_argument("--steps", type=int, default=300, help="vector steps per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2,
                   help="threads of mj-rollout (MjData count) and of suite-batched-threads (num_threads)")
    p.add_argument("--parity-steps", type=int, default=200)
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS, help="paths to time (default: all)")
    p.add_argument("--csv", default=str(CSV_PATH))
    p.add_argument("--md", default=str(MD_PATH))
    a = p.parse_args()
    torch.set_num_threads(1)  # the suite paths' tensors are tiny; one thread, as the other paths
    meta = {"commit": git_commit(), "machine": machine("cpu")}
    rows = []
    for env_id in a.envs:
        rows.append({**meta, "part": "parity", "env": env_id, "steps": a.parity_steps, **parity(env_id, a.parity_steps, 0)})
        print(rows[-1], flush=True)
        for n in a.num_envs:
            acts = _actions(env_id, n, a.steps + 1, 0)
            for repeat in range(a.repeats):
                for path in [p for p in PATHS if p in a.paths]:
                    if path.startswith("gym"):
                        sps = time_gym(env_id, n, acts, asynchronous=path == "gym-async")
                    elif path == "mjdata-loop":
                        sps = time_mjdata_loop(env_id, n, acts)
                    elif path == "mj-rollout":
                        sps = time_rollout(env_id, n, acts, a.threads)
                    elif path == "suite-adapter":
                        sps = time_suite(env_id, n, acts, "gymnasium")
                    else:
                        sps = time_suite(env_id, n, acts, "batched", a.threads if path == "suite-batched-threads" else 1)
                    threaded = path in ("mj-rollout", "suite-batched-threads")
                    rows.append({**meta, "part": "speed", "env": env_id, "num_envs": n, "path": path, "repeat": repeat,
                                 "sps": round(sps, 1), "rollout_threads": a.threads if threaded else None})
                    print(f"{env_id} N={n} {path} #{repeat}: {sps:,.0f} env steps/s", flush=True)
    ran = {r["env"] for r in rows}
    old = [r for r in read_rows(Path(a.csv)) if r.get("env") not in ran]
    write_results(Path(a.csv), [*old, *rows], {}, BLOCK, render([*old, *rows]), TITLE, md_path=Path(a.md))
    print(render([*old, *rows]))


if __name__ == "__main__":
    main()
