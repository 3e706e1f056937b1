"""Benchmark: wall-clock and env steps to a solved task, rlsuite's configurations against Stable-Baselines3's.

For each task a return threshold and an env-step budget; for each contender (one of ours, or SB3 with RL Zoo's
tuned settings for that task) and seed, training runs in chunks of ``eval_every`` env steps, and after each chunk
the deterministic policy plays ``--eval-episodes`` episodes of the task's Gymnasium env (seeds from 10,000, the
same for every contender). A run stops at the first evaluation whose mean return reaches the threshold, or at
the budget. Its time to solve is the training wall-clock up to that evaluation: evaluation time is left out,
agent and env construction too; everything else (env stepping, updates, SB3's callbacks) is in. Contenders
and seeds are interleaved (seed 0 of every contender, then seed 1, ...), all on 1 torch thread in this process.

Tasks and contenders (``TASKS``):

- ``pendulum`` (Pendulum-v1, threshold -200, budget 20,000 env steps: RL Zoo's for SAC): SB3 SAC with RL Zoo's
  settings (learning rate 1e-3, otherwise SB3's defaults); our SAC with the same settings; our PPO on our batched
  torch port ``rlsuite/Pendulum-v0`` at its preset (128 envs, reward scaling; budget 300,000 env steps); our FastTD3
  on the torch port at its preset (64 envs, batch 1,024, 4 updates per vector step; budget 100,000). Policies
  trained on the torch port are evaluated on Gymnasium's Pendulum-v1 like the others.
- ``invertedpendulum`` (InvertedPendulum-v5, threshold 950, budget 15,000 env steps for SAC, 200,000 for PPO): RL Zoo
  has no tuned entry for it, so SB3's SAC runs at SB3's defaults; our SAC at the same defaults; our PPO at its preset
  (CleanRL's MuJoCo settings with observation normalisation).
- ``cartpole`` (CartPole-v1, threshold 475, budget 100,000): SB3 PPO with RL Zoo's settings (8 envs x 32 steps,
  minibatch 256, 20 epochs, gamma 0.98, lambda 0.8, linearly decayed learning rate 1e-3 and clip 0.2); our PPO at
  its CartPole-v1 preset, and with RL Zoo's settings (its clip range stays 0.2: ours has no clip schedule).
- ``hopper`` (Hopper-v5, threshold 2500, 420 s of training per run): RL Zoo's best there is off-policy (SAC with
  10,000 random steps first), which runs about 100 env steps per second on this CPU, so every contender gets the same
  wall-clock and the table's last column says how far each got; ours: PPO at its Hopper-v5 preset with 8 envs x 256.
- ``stl-linear`` (rlsuite/STL-Linear-v0's default reach-avoid task, success rate 0.9 on 64 fresh starts; zero actions
  score 0.05, uniform random ones 0.08): SB3 PPO at its defaults on the dense-robustness reward (no RL Zoo entry);
  TGPO at its defaults; our PPO with TGPO's PPO settings on the same dense reward (64 envs).
- ``quadruped`` (rlsuite/Quadruped-Balance-v0, return 250 over 10-s episodes; holding the default pose scores about
  173; 300 s of training per run): SB3 PPO at its defaults (no RL Zoo entry) against our PPO preset (16 envs) and
  our PPO at SB3's default settings.

Writes docs/benchmarks/time_to_solve.csv (one row per run; rows of tasks not run this time are kept) and the table
between the ``time_to_solve`` markers of docs/benchmarks.md. Needs the ``bench`` extra (stable-baselines3).

Usage:
    python scripts/bench/time_to_solve.py                        # every task, seeds 0-4
    python scripts/bench/time_to_solve.py --tasks pendulum --seeds 0 1 2 3 4 5 6 7 8 9
    python scripts/bench/time_to_solve.py --contenders ours-ppo-batched sb3-sac-zoo
    python scripts/bench/time_to_solve.py --render-only
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from benchlib import MD_PATH, ROOT, git_commit, machine, read_rows, write_results  # noqa: E402  (scripts/bench on sys.path)

CSV_PATH = ROOT / "docs" / "benchmarks" / "time_to_solve.csv"
BLOCK = "time_to_solve"
TITLE = "Time to solve: wall-clock and env steps to a return threshold, rlsuite vs Stable-Baselines3"
EVAL_SEED = 10_000


@dataclasses.dataclass(frozen=True)
class Contender:
    """One way of solving a task.

    Attributes:
        name: its label in the table (``ours-...`` or ``sb3-...``).
        side: ``ours`` or ``sb3``.
        algo: ``ppo`` or ``sac``.
        env: the env it trains on.
        config: our config's fields (ours), or SB3's keyword arguments (sb3; ``n_envs`` is the env count).
        eval_every: env steps between evaluations.
        preset: ours only: start from the registered preset of ``env`` (``config`` overrides it).
        budget: its env-step budget when not the task's.
        env_kwargs: keyword arguments of the env it trains on (e.g. an STL env's ``reward_mode``).
    """

    name: str
    side: str
    algo: str
    env: str
    config: dict[str, Any]
    eval_every: int
    preset: bool = False
    budget: int | None = None
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Task:
    """A task: its evaluation env, threshold and budgets.

    Attributes:
        env: the env the policies are scored on.
        threshold: the score that counts as solved.
        budget: env-step budget of a run (a contender may have its own).
        contenders: ours and SB3's.
        metric: ``return`` (mean evaluation return) or ``success`` (share of 64 fresh starts of an STL env whose
            trace satisfies the formula; TGPO picks its time allocation by its critic as in ``rlsuite train tgpo``).
        seconds_budget: training wall-clock budget of a run (stops at the first evaluation past it), or None.
    """

    env: str
    threshold: float
    budget: int
    contenders: tuple[Contender, ...]
    metric: str = "return"
    seconds_budget: float | None = None


ZOO_SAC_PENDULUM = {"learning_rate": 1e-3}
STL_ENV = "rlsuite/STL-Linear-v0"
STL_EPISODES = 64
# TGPO's PPO (TGPOConfig().ppo): 64 envs, one 63-step episode per rollout, constant learning rate.
STL_PPO = {"num_envs": 64, "num_steps": 63, "num_minibatches": 4, "update_epochs": 10, "learning_rate": 3e-4, "gamma": 0.99,
           "gae_lambda": 0.95, "ent_coef": 0.0, "anneal_lr": False}
TASKS = {
    "pendulum": Task("Pendulum-v1", -200.0, 20_000, (
        Contender("sb3-sac-zoo", "sb3", "sac", "Pendulum-v1", ZOO_SAC_PENDULUM, 1000),
        Contender("ours-sac", "ours", "sac", "Pendulum-v1", {"actor_lr": 1e-3, "critic_lr": 1e-3, "alpha_lr": 1e-3}, 1000),
        Contender("ours-ppo-batched", "ours", "ppo", "rlsuite/Pendulum-v0", {}, 8192, preset=True, budget=300_000),
        Contender("ours-fast-td3-batched", "ours", "fast-td3", "rlsuite/Pendulum-v0", {}, 2048, preset=True, budget=100_000),
    )),
    "invertedpendulum": Task("InvertedPendulum-v5", 950.0, 15_000, (
        Contender("sb3-sac-defaults", "sb3", "sac", "InvertedPendulum-v5", {}, 1000),
        Contender("ours-sac-defaults", "ours", "sac", "InvertedPendulum-v5", {}, 1000),
        Contender("ours-ppo-preset", "ours", "ppo", "InvertedPendulum-v5", {}, 4096, preset=True, budget=200_000),
    )),
    "cartpole": Task("CartPole-v1", 475.0, 100_000, (
        Contender("sb3-ppo-zoo", "sb3", "ppo", "CartPole-v1",
                  {"n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
                   "learning_rate": ("lin", 1e-3), "clip_range": ("lin", 0.2)}, 4096),
        Contender("ours-ppo-preset", "ours", "ppo", "CartPole-v1", {}, 4096, preset=True),
        Contender("ours-ppo-zoo-settings", "ours", "ppo", "CartPole-v1",
                  {"num_envs": 8, "num_steps": 32, "num_minibatches": 1, "update_epochs": 20, "gamma": 0.98, "gae_lambda": 0.8,
                   "learning_rate": 1e-3, "ent_coef": 0.0}, 4096),
    )),
    # RL Zoo's best on Hopper is an off-policy agent (SAC, TD3, TQC: about 3,000 at 1M steps), far beyond this CPU's
    # budget for several seeds (SB3's SAC runs about 100 env steps per second here): every contender gets the same
    # wall-clock budget and the table says how far each got. Our PPO: its Hopper-v5 preset (CleanRL's MuJoCo settings,
    # observation normalisation) with 8 envs x 256 steps (the same 2,048-step batch, cheaper to step).
    "hopper": Task("Hopper-v5", 2500.0, 5_000_000, (
        Contender("sb3-sac-zoo", "sb3", "sac", "Hopper-v5", {"learning_starts": 10_000}, 10_000),
        Contender("ours-ppo-8envs", "ours", "ppo", "Hopper-v5", {"num_envs": 8, "num_steps": 256}, 65_536, preset=True),
    ), seconds_budget=420.0),
    # The default STL-Linear task (a reach-avoid formula, 63 steps); no RL Zoo entry: SB3's PPO at its defaults on the
    # dense-robustness reward (the better of the two PPO baselines in the STL benchmark), against TGPO at its defaults
    # and our PPO with TGPO's PPO settings on the same dense reward.
    "stl-linear": Task(STL_ENV, 0.9, 300_000, (
        Contender("sb3-ppo-defaults", "sb3", "ppo", STL_ENV, {}, 8192, env_kwargs={"reward_mode": "dense"}),
        Contender("ours-tgpo", "ours", "tgpo", STL_ENV, {}, 8064),
        Contender("ours-ppo-dense", "ours", "ppo", STL_ENV, STL_PPO, 8064, env_kwargs={"reward_mode": "dense"}),
    ), metric="success"),
    # Our quadruped (10-s episodes, at most 500): holding the default pose scores about 173; 250 is steady standing
    # through the pushes on most starts. No RL Zoo entry: SB3's PPO at its defaults against our PPO preset.
    "quadruped": Task("rlsuite/Quadruped-Balance-v0", 250.0, 5_000_000, (
        Contender("sb3-ppo-defaults", "sb3", "ppo", "rlsuite/Quadruped-Balance-v0", {}, 32_768),
        Contender("ours-ppo-preset", "ours", "ppo", "rlsuite/Quadruped-Balance-v0", {}, 32_768, preset=True),
        # SB3's PPO defaults are CleanRL's (1 env x 2048, minibatch 64, 10 epochs, lr 3e-4) without the lr decay
        Contender("ours-ppo-sb3-settings", "ours", "ppo", "rlsuite/Quadruped-Balance-v0", {"anneal_lr": False}, 32_768),
    ), seconds_budget=300.0),
}


# ----------------------------------------------------------------------------- one run


class _Clock:
    """Training seconds: wall-clock with the evaluations taken out."""

    def __init__(self) -> None:
        self.start, self.paused = time.perf_counter(), 0.0

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.paused


def _evaluate(act: Callable[[torch.Tensor], torch.Tensor], env_id: str, episodes: int) -> float:
    from rlsuite.core.evaluate import evaluate_policy

    return float(evaluate_policy(act, env_id, episodes, seed=EVAL_SEED).mean())


@torch.no_grad()
def _stl_success(act: Callable[[torch.Tensor], torch.Tensor], env_id: str) -> float:
    """Share of ``STL_EPISODES`` fresh starts (seed ``EVAL_SEED``) of the STL env whose trace satisfies its formula
    under the deterministic ``act`` (the env ends every episode together and reports ``info["success"]``)."""
    from rlsuite.core.vec_env import make_vec_env

    env = make_vec_env(env_id, STL_EPISODES, seed=EVAL_SEED, reward_mode="dense")
    obs, _ = env.reset(seed=EVAL_SEED)
    for _ in range(10_000):
        obs, _, _, _, info = env.step(act(obs))
        if "success" in info:
            env.close()
            return float(info["success"].float().mean())
    raise RuntimeError(f"{env_id}: no episode end within 10,000 steps")


def _score(task: Task, act: Callable[[torch.Tensor], torch.Tensor], episodes: int, agent: Any = None) -> float:
    """The task's evaluation figure for a policy (TGPO scores itself: its policy acts on grounded observations)."""
    if task.metric == "return":
        return _evaluate(act, task.env, episodes)
    if agent is not None and hasattr(agent, "success_rate"):
        return agent.success_rate(seed=EVAL_SEED)
    return _stl_success(act, task.env)


def _out_of_time(task: Task, clock: _Clock) -> bool:
    return task.seconds_budget is not None and clock.train_seconds() >= task.seconds_budget


def run_ours(task: Task, c: Contender, seed: int, episodes: int) -> dict[str, Any]:
    from rlsuite.agents import AGENTS
    from rlsuite.agents.registry import build_agent, env_kwargs_of, num_envs_of, preset_config
    from rlsuite.core.seeding import seed_everything
    from rlsuite.core.vec_env import make_vec_env

    spec = AGENTS.get(c.algo)
    cfg = preset_config(spec, c.env) if c.preset else spec.config_cls()
    cfg = dataclasses.replace(cfg, **c.config)
    seed_everything(seed)
    env = make_vec_env(c.env, num_envs_of(spec, cfg), seed=seed, **{**env_kwargs_of(spec, cfg), **c.env_kwargs})
    agent = build_agent(spec, cfg, env.single_observation_space, env.single_action_space, "cpu", seed)
    act = lambda o: agent.act(o, deterministic=True)  # noqa: E731
    budget = c.budget or task.budget
    clock, evals = _Clock(), []
    while agent.global_step < budget:
        target = min(budget, agent.global_step + c.eval_every)
        if c.algo == "ppo":
            agent.learn(env, target, seed=seed, anneal_steps=budget)
        else:
            agent.learn(env, target, seed=seed)
        t = time.perf_counter()
        score = _score(task, act, episodes, agent)
        clock.paused += time.perf_counter() - t
        evals.append((agent.global_step, clock.train_seconds(), score))
        if score >= task.threshold or _out_of_time(task, clock):
            break
    env.close()
    return _result(task, evals)


def _zoo_value(v: Any) -> Any:
    if isinstance(v, tuple) and v[0] == "lin":
        return lambda progress, v0=v[1]: progress * v0
    return v


def run_sb3(task: Task, c: Contender, seed: int, episodes: int) -> dict[str, Any]:
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.logger import configure

    kwargs = {k: _zoo_value(v) for k, v in c.config.items() if k != "n_envs"}
    env = sb3_make_vec_env(c.env, n_envs=c.config.get("n_envs", 1), seed=seed, env_kwargs=c.env_kwargs or None)
    model = getattr(sb3, c.algo.upper())("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    model.set_logger(configure(tempfile.mkdtemp(prefix="sb3-tts-"), []))

    def act(obs: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(model.predict(obs.numpy(), deterministic=True)[0])

    evals: list[tuple[int, float, float]] = []

    on_policy = c.algo == "ppo"

    class EvalStop(BaseCallback):
        """Evaluates once ``eval_every`` env steps have been trained on, then stops at the threshold: for PPO at the
        start of the next rollout (``_on_rollout_start`` runs after ``train()``, while ``_on_step`` runs as the rollout
        is collected, before the update on it), so that SB3's PPO is scored after the same updates as ours; for SAC at
        the env step (``_on_step`` runs just before that step's update: one update of thousands short)."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval, self.stop = c.eval_every, False

        def _check(self) -> None:
            if self.num_timesteps < self.next_eval:
                return
            self.next_eval += c.eval_every
            t = time.perf_counter()
            score = _score(task, act, episodes)
            clock.paused += time.perf_counter() - t
            evals.append((self.num_timesteps, clock.train_seconds(), score))
            self.stop = score >= task.threshold or _out_of_time(task, clock)

        def _on_rollout_start(self) -> None:
            if on_policy:
                self._check()

        def _on_step(self) -> bool:
            if not on_policy:
                self._check()
            return not self.stop

    clock = _Clock()
    model.learn(total_timesteps=c.budget or task.budget, callback=EvalStop())
    if not evals or (evals[-1][2] < task.threshold and evals[-1][0] < model.num_timesteps):
        t = time.perf_counter()
        score = _score(task, act, episodes)
        clock.paused += time.perf_counter() - t
        evals.append((model.num_timesteps, clock.train_seconds(), score))
    env.close()
    return _result(task, evals)


def _result(task: Task, evals: list[tuple[int, float, float]]) -> dict[str, Any]:
    hit = next((e for e in evals if e[2] >= task.threshold), None)
    return {"solved": hit is not None, "steps_to_solve": hit[0] if hit else None, "seconds_to_solve": round(hit[1], 2) if hit else None,
            "final_steps": evals[-1][0], "final_seconds": round(evals[-1][1], 2), "final_return": round(evals[-1][2], 3),
            "best_score": round(max(e[2] for e in evals), 3),
            "curve": [[s, round(t, 2), round(r, 3)] for s, t, r in evals]}


# ----------------------------------------------------------------------------- table


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}"


def render(rows: list[dict]) -> str:
    out = []
    for name, task in TASKS.items():
        rs = [r for r in rows if r.get("task") == name]
        if not rs:
            continue
        seeds = sorted({int(r["seed"]) for r in rs})
        scored = (f"success rate on {STL_EPISODES} fresh starts" if task.metric == "success"
                  else f"mean return of {rs[0].get('eval_episodes', 10)} episodes of {task.env}")
        budget = f"{task.budget:,} env steps (unless the row says)"
        if task.seconds_budget is not None:
            budget += f" or {task.seconds_budget:.0f} s of training, whichever comes first"
        out += [f"**{task.env}**: threshold {task.threshold:g} ({scored}), budget {budget}, seeds {seeds[0]}-{seeds[-1]} "
                f"({len(seeds)}), evaluation after every chunk; machine {rs[-1].get('machine', '?')}, 1 torch thread. Times and "
                "steps: medians over the seeds that reached the threshold; best score: median over seeds of each run's best "
                "evaluation.", "",
                "| contender | trains on | budget | solved | env steps to solve | seconds to solve | SB3 seconds / ours | best score |",
                "|---|---|---|---|---|---|---|---|"]
        sb3 = [float(r["seconds_to_solve"]) for r in rs if str(r["side"]) == "sb3" and str(r["solved"]) == "True"]
        sb3_med = statistics.median(sb3) if sb3 else None
        for c in task.contenders:
            cr = [r for r in rs if r["contender"] == c.name]
            if not cr:
                continue
            ok = [r for r in cr if str(r["solved"]) == "True"]
            steps = statistics.median(int(r["steps_to_solve"]) for r in ok) if ok else None
            secs = statistics.median(float(r["seconds_to_solve"]) for r in ok) if ok else None
            best = statistics.median(float(r.get("best_score") or r["final_return"]) for r in cr)
            ratio = "-" if c.side == "sb3" or secs is None or sb3_med is None else f"{sb3_med / secs:.2f}"
            sb3_ran = any(str(r["side"]) == "sb3" for r in rs)
            if c.side == "ours" and secs is not None and sb3_med is None and sb3_ran and task.seconds_budget is not None:
                ratio = f"> {task.seconds_budget / secs:.1f} (SB3 unsolved)"  # SB3 needs more than the whole budget
            out.append(f"| {c.name} | {c.env} | {(c.budget or task.budget):,} | {len(ok)}/{len(cr)} | {'-' if steps is None else f'{steps:,.0f}'} | "
                       f"{'-' if secs is None else f'{secs:.1f}'} | {ratio} | {_fmt(best)} |")
        out.append("")
    return "\n".join(out).rstrip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--contenders", nargs="+", default=None, help="names of contenders to run (default: all of each task)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--csv", default=str(CSV_PATH))
    p.add_argument("--md", default=str(MD_PATH))
    p.add_argument("--render-only", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    csv_path = Path(a.csv)
    rows: list[dict] = []
    meta = {"commit": git_commit(), "machine": machine("cpu")}
    known = {c.name for t in TASKS.values() for c in t.contenders}
    unknown = sorted(set(a.contenders or ()) - known)
    if unknown:
        raise SystemExit(f"--contenders: unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not a.render_only:
        for seed in a.seeds:
            for name in a.tasks:
                task = TASKS[name]
                for c in task.contenders:
                    if a.contenders and c.name not in a.contenders:
                        continue
                    res = (run_ours if c.side == "ours" else run_sb3)(task, c, seed, a.eval_episodes)
                    rows.append({**meta, "task": name, "contender": c.name, "side": c.side, "algo": c.algo, "env": c.env, "seed": seed,
                                 "threshold": task.threshold, "budget": c.budget or task.budget, "eval_episodes": a.eval_episodes,
                                 "torch_threads": 1, **{k: v for k, v in res.items() if k != "curve"}, "curve": str(res["curve"])})
                    print(f"{name} {c.name} seed {seed}: solved={res['solved']} steps={res['steps_to_solve']} "
                          f"seconds={res['seconds_to_solve']} final={res['final_return']}", flush=True)
    ran = {(r["task"], r["contender"], r["seed"]) for r in rows}
    old = [r for r in read_rows(csv_path) if (r.get("task"), r.get("contender"), r.get("seed")) not in ran]
    write_results(csv_path, [*old, *rows], {}, BLOCK, render([*old, *rows]), TITLE, md_path=Path(a.md))
    print(render([*old, *rows]))


if __name__ == "__main__":
    main()
