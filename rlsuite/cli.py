"""The ``rlsuite`` command.

    rlsuite list
    rlsuite train <algo> --env ID --seed 0 --total-steps N [--run-dir DIR] [--resume DIR] [...]
    rlsuite eval DIR --episodes 10 [--video]

``rlsuite train <algo> --help`` lists every option of that algorithm (built from its config).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.core.registry import UnknownNameError

log = logging.getLogger("rlsuite")


def _setup_logging(verbose: bool = False) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)],
        force=True,
    )


def _train_args_class(spec: Any) -> type:
    """A frozen dataclass with the run options and the algorithm's config (flags without prefixes)."""
    from rlsuite.core.run import RunConfig

    return dataclasses.make_dataclass(
        f"Train{spec.config_cls.__name__}",
        [("run", RunConfig, dataclasses.field(default_factory=RunConfig)), ("algo", spec.config_cls, dataclasses.field(default_factory=spec.config_cls))],
        frozen=True,
    )


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _parse_objects(text: str | None) -> list[tuple[float, float, float]]:
    if not text:
        return []
    out = []
    for part in text.split(";"):
        try:
            cx, cy, r = (float(v) for v in part.split(","))
        except ValueError:
            raise ValueError(f"--objects takes 'cx,cy,r;cx,cy,r;...' (discs d0, d1, ...), got {part!r}.") from None
        out.append((cx, cy, r))
    return out


def cmd_train_tgpo(argv: list[str]) -> int:
    """``rlsuite train tgpo``: TGPO / TGPO* (or a PPO baseline) on one STL task."""
    import torch

    from rlsuite.agents.ppo import PPO
    from rlsuite.agents.tgpo import TGPO, TGPOConfig
    from rlsuite.core.checkpoint import load_checkpoint, save_checkpoint
    from rlsuite.core.config import config_to_dict
    from rlsuite.core.seeding import get_rng_state, resolve_device, set_rng_state
    from rlsuite.envs.stl.envs import make_stl_vec_env
    from rlsuite.envs.stl.tasks import FAMILIES

    envs = {"rlsuite/STL-Linear-v0": "Linear", "rlsuite/STL-Unicycle-v0": "Unicycle", "rlsuite/STL-Quadrotor-v0": "Quadrotor",
            "rlsuite/STL-Panda-v0": "Panda", "rlsuite/STL-Ant-v0": "Ant"}
    p = argparse.ArgumentParser(prog="rlsuite train tgpo", description="TGPO on a Signal Temporal Logic task.")
    p.add_argument("--env", default="rlsuite/STL-Linear-v0", choices=list(envs))
    task = p.add_mutually_exclusive_group()
    task.add_argument("--spec", help='STL formula over x, y (z) and d0, d1, ... e.g. "F[10,40](d0 <= 1) & G(d1 >= 1)"')
    task.add_argument("--task-family", choices=[*FAMILIES, "mixed"], help="a generated task instead of --spec")
    p.add_argument("--objects", help="discs for --spec: 'cx,cy,r;cx,cy,r' (d0, d1, ... are the distances to them)")
    p.add_argument("--task-seed", type=int, default=0)
    p.add_argument("--horizon", type=int, default=64)
    p.add_argument("--sampler", default="uniform", choices=["uniform", "mh"], help="uniform = TGPO, mh = TGPO*")
    p.add_argument("--baseline", choices=["ppo-terminal", "ppo-dense"], help="train a PPO baseline instead")
    p.add_argument("--total-steps", type=int, default=300_000)
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--run-dir", default=None, help="where to save the checkpoint (default runs/tgpo-<env>-<seed>)")
    p.add_argument("--checkpoint-every", type=int, default=50_000, help="env steps between checkpoints (TGPO)")
    p.add_argument("--resume", action="store_true", help="continue the TGPO run in --run-dir from its checkpoint (same options)")
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    family = a.task_family or "reach"
    reward_mode = {"ppo-dense": "dense", "ppo-terminal": "terminal"}.get(a.baseline or "", "tgpo")
    env = make_stl_vec_env(envs[a.env], num_envs=a.num_envs, device=device, family=family, task_seed=a.task_seed, spec=a.spec,
                           objects=_parse_objects(a.objects), horizon=a.horizon, reward_mode=reward_mode)
    task = env.base.task if reward_mode == "tgpo" else env.task
    print(f"task: {task.text}")
    torch.manual_seed(a.seed)
    cfg = TGPOConfig(sampler=a.sampler)
    ppo_cfg = dataclasses.replace(cfg.ppo, num_envs=a.num_envs, num_steps=a.horizon - 1)
    cfg = dataclasses.replace(cfg, ppo=ppo_cfg)
    name = a.baseline or ("tgpo-star" if a.sampler == "mh" else "tgpo")
    run_dir = Path(a.run_dir or f"runs/{name}-{envs[a.env].lower()}-{a.seed}")
    if not a.resume and ((run_dir / "checkpoint").exists() or (run_dir / "final").exists()):
        raise FileExistsError(f"{run_dir} already holds a run; continue it with --resume (same options) or pick another --run-dir.")
    if a.resume and not (run_dir / "checkpoint").exists():
        raise ValueError(f"nothing to resume in {run_dir}: it has no checkpoint/ directory.")

    @torch.no_grad()
    def success_of_baseline(agent: PPO) -> float:
        obs, _ = env.reset(seed=10_000)
        for _ in range(a.horizon - 1):
            obs, _, _, _, info = env.step(agent.act(obs, deterministic=True))
        return float(info["success"].float().mean())

    if a.baseline:
        if a.resume:
            raise ValueError("--resume is for TGPO runs; a baseline run trains in one go.")
        agent = PPO(ppo_cfg, env.single_observation_space, env.single_action_space, device)
        before = success_of_baseline(agent)
        agent.learn(env, a.total_steps, seed=a.seed)
        after = success_of_baseline(agent)
        state = agent.state_dict()
    meta = {"algo": name, "env": a.env, "task": task.text, "objects": task.centers.tolist(),
            "radii": task.radii.tolist(), "horizon": a.horizon, "config": config_to_dict(cfg)}
    if not a.baseline:
        tg = TGPO(cfg, env, device, seed=a.seed)
        before = float("nan")
        if a.resume:
            saved, saved_meta = load_checkpoint(run_dir / "checkpoint", device=device)
            if saved_meta.get("task") != task.text or saved_meta.get("algo") != name:
                raise ValueError(f"{run_dir} holds a {saved_meta.get('algo')} run on {saved_meta.get('task')!r}; resume it with "
                                 "the options it was started with.")
            tg.load_state_dict(saved["agent"])
            tg.load_training_state(saved["training"])
            set_rng_state(saved["rng"], saved_meta["rng"])
            print(f"resumed at step {tg.ppo.global_step}")
        else:
            before = float(tg.solve(seed=10_000)["success"].float().mean())
            tg.ppo._obs = None  # solve() used the env: start training from a fresh reset
        while tg.ppo.global_step < a.total_steps:  # checkpoints on the way, so a crash loses at most one interval
            tg.learn(min(a.total_steps, tg.ppo.global_step + a.checkpoint_every), seed=a.seed)
            rng_tensors, rng_meta = get_rng_state()
            save_checkpoint(run_dir / "checkpoint", {"agent": tg.state_dict(), "training": tg.training_state(), "rng": rng_tensors},
                            {**meta, "rng": rng_meta, "global_step": tg.ppo.global_step})
            log.info("step %d: checkpoint %s", tg.ppo.global_step, run_dir / "checkpoint")
        after = float(tg.solve(seed=10_000)["success"].float().mean())
        state = tg.state_dict()
    path = save_checkpoint(run_dir / "final", {"agent": state}, meta)
    print(f"success rate on {a.num_envs} fresh starts: before {before:.3f}, after {after:.3f}")
    print(f"checkpoint: {path}")
    print(f"success_rate={after:.4f}")
    return 0


def cmd_train(algo: str, argv: list[str]) -> int:
    import tyro

    from rlsuite.agents import AGENTS
    from rlsuite.agents.train import train
    from rlsuite.core.config import config_from_dict
    from rlsuite.core.run import RunConfig, read_run_config

    spec = AGENTS.get(algo)
    Args = _train_args_class(spec)
    resume = _flag_value(argv, "--resume")
    if resume:
        saved = read_run_config(resume)
        if saved["algo"] != spec.name:
            raise ValueError(f"{resume!r} is a {saved['algo']} run; resume it with: rlsuite train {saved['algo']} --resume {resume}")
        run_defaults = config_from_dict(RunConfig, {**saved["run"], "resume": resume, "run_dir": resume})
        algo_defaults = config_from_dict(spec.config_cls, saved["config"])
    else:
        env_id = _flag_value(argv, "--env") or spec.default_env
        run_defaults = RunConfig(env=env_id)
        algo_defaults = spec.config_cls(**spec.presets.get(env_id, {}))
    args = tyro.cli(
        Args,
        args=argv,
        default=Args(run=run_defaults, algo=algo_defaults),
        prog=f"rlsuite train {spec.name}",
        description=f"Train {spec.name}: {spec.summary}. Per-env presets: {', '.join(spec.presets) or 'none'}.",
        config=(tyro.conf.OmitArgPrefixes,),
    )
    summary = train(spec, args.run, args.algo)
    print(f"run directory: {summary['run_dir']}")
    print(f"checkpoint:    {summary['checkpoint']}")
    print(f"curve:         {summary['curve']}")
    print(f"steps={summary['steps']} eval_mean_return={summary['eval_mean_return']:.2f}")
    return 0


def cmd_eval(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rlsuite eval", description="Evaluate a trained agent (deterministic actions).")
    p.add_argument("run_dir", help="run directory (its latest checkpoint) or a checkpoint directory")
    p.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the evaluation episodes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    p.add_argument("--video", action="store_true", help="record an MP4 of the first episode (offscreen rendering)")
    p.add_argument("--video-path", default=None, help="where to write the MP4 (default RUN_DIR/videos/eval.mp4)")
    a = p.parse_args(argv)
    if a.video:
        os.environ.setdefault("MUJOCO_GL", "egl")
    from rlsuite.agents.train import load_agent
    from rlsuite.core.evaluate import evaluate_policy, record_video
    from rlsuite.core.seeding import resolve_device

    device = resolve_device(a.device)
    agent, meta = load_agent(a.run_dir, device)
    env_id = meta["run"]["env"]
    env_kwargs = meta.get("env_kwargs", {})

    def act(o):
        return agent.act(o, deterministic=not a.stochastic)

    returns = evaluate_policy(act, env_id, episodes=a.episodes, seed=a.seed, device=device, env_kwargs=env_kwargs)
    print(f"{meta['algo']} on {env_id}, checkpoint step {meta['step']}, {a.episodes} episodes")
    for i, r in enumerate(returns):
        print(f"episode {i}: return={r:.3f}")
    if a.video:
        path = Path(a.video_path) if a.video_path else Path(a.run_dir) / "videos" / "eval.mp4"
        rets = record_video(act, env_id, path, seed=a.seed, device=device, env_kwargs=env_kwargs)
        print(f"video: {path} (return {rets[0]:.2f})")
    print(f"mean_return={float(returns.mean()):.4f}")
    return 0


def cmd_list() -> int:
    import gymnasium as gym

    from rlsuite.agents import AGENTS
    from rlsuite.envs import ENV_IDS

    print("agents:")
    for name in AGENTS.names():
        spec = AGENTS.get(name)
        print(f"  {name:<10} {spec.summary} (default env {spec.default_env})")
    print("  tgpo       TGPO / TGPO* on STL tasks (rlsuite train tgpo --help)")
    print("  uni-o4, iql, bc  offline (then online) on a local Minari dataset (rlsuite train uni-o4 --dataset ID)")
    print("  bq-nco     neural combinatorial optimisation (rlsuite cop train --problem tsp|cvrp)")
    print("environments (rlsuite):")
    width = max(len(e) for e in ENV_IDS)
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        kind = "batched torch + single" if spec.vector_entry_point else "single"
        print(f"  {env_id:<{width}} {kind}")
    print("any other Gymnasium id works too (e.g. CartPole-v1, Pendulum-v1, Hopper-v5) through the vector adapter.")
    return 0


def cmd_llm(argv: list[str]) -> int:
    """``rlsuite llm list | sft | train | eval`` on the synthetic tasks with a tiny local model."""
    from rlsuite.llm import registered_methods

    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "list":
        for key in sorted(registered_methods()):
            print(key)
        return 0
    if sub not in ("sft", "train", "eval"):
        from rlsuite.core.registry import unknown_name_message

        print(f"error: {unknown_name_message('llm subcommand', sub, ['list', 'sft', 'train', 'eval'])}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from rlsuite.llm.model import tiny_causal_lm
    from rlsuite.llm.tasks import TASKS, CharTokenizer, make_split
    from rlsuite.llm.trainer import (
        METHODS,
        OnlineConfig,
        OnlineTrainer,
        PreferenceConfig,
        PreferenceTrainer,
        exact_match,
        load_model,
        save_model,
        sft,
    )

    p = argparse.ArgumentParser(prog=f"rlsuite llm {sub}")
    p.add_argument("--task", default="addition", choices=TASKS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-examples", type=int, default=200)
    if sub == "sft":
        p.add_argument("--steps", type=int, default=500)
        p.add_argument("--out", required=True, help="checkpoint directory to write")
    elif sub == "train":
        p.add_argument("--method", default="grpo", help=f"one of {', '.join([*METHODS, 'dpo', 'ipo', 'rso'])}")
        p.add_argument("--init", required=True, help="checkpoint to start from (e.g. from rlsuite llm sft)")
        p.add_argument("--steps", type=int, default=150)
        p.add_argument("--group-size", type=int, default=8)
        p.add_argument("--prompts-per-step", type=int, default=32)
        p.add_argument("--learning-rate", type=float, default=1e-3)
        p.add_argument("--beta", type=float, default=None, help="KL coefficient (online methods, default 0) or DPO beta (default 0.1)")
        p.add_argument("--kl-in-reward", action="store_true", help="online methods: subtract beta * KL from the reward instead")
        p.add_argument("--inner-epochs", type=int, default=1, help="online methods: optimizer steps per batch")
        p.add_argument("--micro-batch-size", type=int, default=None, help="online methods: completions per forward (default: all)")
        p.add_argument("--temperature", type=float, default=1.0, help="online methods: sampling temperature")
        p.add_argument("--prompt-sampler", default="uniform", choices=["uniform", "vade"], help="online methods: prompt selection")
        p.add_argument("--dataset-reset-prob", type=float, default=0.0, help="online methods: DR-PO dataset reset share")
        p.add_argument("--out", required=True)
    else:
        p.add_argument("checkpoint")
    a = p.parse_args(rest)
    tok = CharTokenizer()
    test = make_split(a.task, a.eval_examples, seed=a.seed + 1, held_out=True)
    if sub == "eval":
        model, _ = load_model(a.checkpoint)
        print(f"exact_match={exact_match(model, tok, test):.4f}")
        return 0
    train = make_split(a.task, 2000, seed=a.seed, held_out=False)
    if sub == "sft":
        model = tiny_causal_lm(tok.vocab_size, seed=a.seed)
        losses = sft(model, tok, train, a.steps, seed=a.seed)
        save_model(model, a.out, {"task": a.task, "sft_steps": a.steps})
        print(f"final loss {losses[-1]:.4f}; checkpoint {a.out}")
        print(f"exact_match={exact_match(model, tok, test):.4f}")
        return 0
    model, _ = load_model(a.init)
    if a.method in ("dpo", "ipo", "rso"):
        pcfg = PreferenceConfig(loss=a.method, task=a.task, seed=a.seed, prompts_per_step=a.prompts_per_step,
                                samples_per_prompt=a.group_size, learning_rate=a.learning_rate,
                                beta=0.1 if a.beta is None else a.beta)
        trainer: Any = PreferenceTrainer(model, tok, train, pcfg)
    else:
        cfg = OnlineConfig(method=a.method, task=a.task, seed=a.seed, group_size=a.group_size, prompts_per_step=a.prompts_per_step,
                           micro_batch_size=a.micro_batch_size or a.group_size * a.prompts_per_step,
                           learning_rate=a.learning_rate, beta=0.0 if a.beta is None else a.beta, kl_in_reward=a.kl_in_reward,
                           inner_epochs=a.inner_epochs, temperature=a.temperature, prompt_sampler=a.prompt_sampler,
                           dataset_reset_prob=a.dataset_reset_prob)
        trainer = OnlineTrainer(model, tok, train, cfg)
    print(f"before: exact_match={exact_match(model, tok, test):.4f}")
    for i in range(a.steps):
        m = trainer.step()
        if i % 25 == 0 or i == a.steps - 1:
            log.info("step %d %s", i, " ".join(f"{k}={v:.3g}" for k, v in m.items()))
    save_model(model, a.out, {"task": a.task, "method": a.method, "steps": a.steps})
    print(f"checkpoint {a.out}")
    print(f"exact_match={exact_match(model, tok, test):.4f}")
    return 0


def read_trace_csv(path: str) -> tuple[list[str], list[list[float]]]:
    """Signal names (the header) and rows of a trace CSV; bad input raises ValueError saying where."""
    import csv

    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as e:
        raise ValueError(f"cannot read trace file {path!r}: {e.strerror}.") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise ValueError(f"trace file {path!r} needs a header of signal names and at least one row of values.")
    names = [c.strip() for c in rows[0]]
    values = []
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(names):
            raise ValueError(f"{path}:{i}: {len(row)} values, but the header names {len(names)} signals.")
        try:
            values.append([float(c) for c in row])
        except ValueError:
            bad = next(c for c in row if not _is_float(c))
            raise ValueError(f"{path}:{i}: {bad!r} is not a number.") from None
    return names, values


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def cmd_stl(argv: list[str]) -> int:
    """``rlsuite stl check FORMULA --trace FILE`` and ``rlsuite stl sample --family F --seed N``."""
    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "check":
        import torch

        from rlsuite.envs.stl import ParseError, parse, robustness
        from rlsuite.envs.stl.spec import signals

        p = argparse.ArgumentParser(prog="rlsuite stl check", description="Robustness of an STL formula on a trace.")
        p.add_argument("formula", help='STL text, e.g. "G[0,10](x > 1)" or "always[0:10](x > 1)"')
        p.add_argument("--trace", required=True, help="CSV: a header of signal names, then one row per time step")
        p.add_argument("--mode", default="hard", choices=["hard", "smooth"])
        p.add_argument("--temperature", type=float, default=0.1, help="smooth mode: log-sum-exp temperature")
        a = p.parse_args(rest)
        try:
            f = parse(a.formula)
        except ParseError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        names, values = read_trace_csv(a.trace)
        missing = sorted(signals(f) - set(names))
        if missing:
            raise ValueError(f"the formula reads {missing}, which the trace's header {names} does not name.")
        rho = robustness(f, torch.tensor([values], dtype=torch.float64), names, mode=a.mode, temperature=a.temperature)
        value = float(rho[0, 0])
        print(f"{len(values)} steps, signals {', '.join(names)}; {'satisfied' if value > 0 else 'violated'}")
        print(f"robustness={value:.6g}")
        return 0
    if sub == "sample":
        from rlsuite.envs.stl.tasks import FAMILIES, sample_task

        p = argparse.ArgumentParser(prog="rlsuite stl sample", description="Print a generated STL task.")
        p.add_argument("--family", default="mixed", choices=[*FAMILIES, "mixed"])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--horizon", type=int, default=64)
        a = p.parse_args(rest)
        print(sample_task(a.family, a.seed, a.horizon).describe())
        return 0
    from rlsuite.core.registry import unknown_name_message

    print(f"error: {unknown_name_message('stl subcommand', sub, ['check', 'sample'])}", file=sys.stderr)
    return 2


def cmd_export(argv: list[str]) -> int:
    """``rlsuite export RUN_DIR --format onnx|torchscript --out FILE``."""
    p = argparse.ArgumentParser(prog="rlsuite export", description="Export a trained policy (normaliser and action "
                                "scaling inside) and check it against the torch policy.")
    p.add_argument("run_dir", help="run directory (its latest checkpoint) or a checkpoint directory")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", required=True, help="file to write (.onnx or .pt)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    a = p.parse_args(argv)
    from rlsuite.agents.train import load_agent
    from rlsuite.robots.contract import file_sha256
    from rlsuite.robots.export import export_policy

    agent, meta = load_agent(a.run_dir, device="cpu")
    env_id = meta.get("run", {}).get("env")
    info = {"algo": meta["algo"], "env": env_id, "step": meta.get("step"), "observation_space": meta["observation_space"],
            "action_space": meta["action_space"]}
    path, diff = export_policy(agent.deploy_module(), a.out, a.format, agent.obs_dim, info, opset=a.opset)
    print(f"exported {meta['algo']} ({env_id}) to {path} [{a.format}], sha256 {file_sha256(path)}")
    print(f"parity on 256 random observations: max abs difference {diff:.3g} (limit 1e-05)")
    print(f"max_abs_diff={diff:.3g}")
    return 0


def cmd_deploy(argv: list[str]) -> int:
    """``rlsuite deploy --robot sim:<env> --policy FILE``: run an exported policy on a simulated robot."""
    p = argparse.ArgumentParser(prog="rlsuite deploy", description="Run an exported policy through contract, observation "
                                "builder, safety chain and control loop on a simulated robot (lockstep).")
    p.add_argument("--robot", required=True, help="sim:<task>: sim:InvertedPendulum-v5 or sim:quadruped")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--policy", help="an artifact from rlsuite export (.onnx or .pt)")
    src.add_argument("--remote", help="a policy server, e.g. tcp://127.0.0.1:5555 (key from --key-file or $RLSUITE_POLICY_KEY)")
    p.add_argument("--key-file", default=None)
    p.add_argument("--remote-timeout", type=float, default=None,
                   help="seconds to wait for each remote action before damping (default: one control period, at least 0.05)")
    p.add_argument("--rate", type=float, default=None, help="control rate in Hz (must match the robot's policy rate)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of simulated time per episode at most")
    p.add_argument("--episodes", type=int, default=1, help="episodes; with --compare-gym also run them in the Gymnasium env")
    p.add_argument("--compare-gym", action="store_true", help="sim-to-sim check: same start states in the Gymnasium env")
    p.add_argument("--latency-steps", type=int, default=0, help="sensor latency in control ticks")
    p.add_argument("--noise-std", type=float, default=0.0, help="Gaussian sensor noise")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if not a.robot.startswith("sim:"):
        raise ValueError(f"--robot {a.robot!r}: only simulated robots (sim:InvertedPendulum-v5, sim:quadruped) can be driven from the command line; "
                         "drive hardware from Python with your Robot driver and rlsuite.robots.loop.ControlLoop.")
    from rlsuite.robots.export import load_runner
    from rlsuite.robots.sim import run_episode, sim_task, sim_to_sim

    task = sim_task(a.robot[len("sim:") :])
    contract = task.make_contract()
    rate = 1.0 / contract.policy_dt
    if a.rate is not None and abs(a.rate - rate) > 1e-6:
        raise ValueError(f"--rate {a.rate:g} Hz does not match {task.name}'s policy rate of {rate:g} Hz (the contract's policy_dt).")
    if a.remote:
        from rlsuite.robots.transport import PolicyClient, load_key

        timeout = a.remote_timeout if a.remote_timeout is not None else max(0.05, contract.policy_dt)
        client = PolicyClient(a.remote, load_key(a.key_file), timeout_s=timeout)
        policy = lambda o: client.act(o)  # noqa: E731
    else:
        runner = load_runner(a.policy)
        policy = lambda o: runner(o[None])[0]  # noqa: E731
    ticks = int(a.duration * rate)
    if a.compare_gym:
        gym_r, sim_r = sim_to_sim(policy, task, a.episodes, a.seed, a.latency_steps, a.noise_std)
        for i, (g, r) in enumerate(zip(gym_r, sim_r, strict=True)):
            print(f"episode {i}: gymnasium return {g:.1f}, simulated robot return {r:.1f}")
        gm, sm = float(np.mean(gym_r)), float(np.mean(sim_r))
        print(f"mean return: gymnasium {gm:.2f}, simulated robot {sm:.2f} ({100 * (sm - gm) / max(abs(gm), 1e-9):+.1f}%)")
        print(f"sim_to_sim_gap={abs(sm - gm) / max(abs(gm), 1e-9):.4f}")
        return 0
    robot = task.make_robot(a.latency_steps, a.noise_std, a.seed)
    for ep in range(a.episodes):
        out = run_episode(task, robot, policy, contract, max_steps=ticks, seed=a.seed + ep)
        st = out["stats"]
        print(f"episode {ep}: return {out['return']:.1f}, ticks {st['ticks']} (lockstep, simulated clock), overruns {st['overruns']}, "
              f"jitter p99 {st['jitter_p99_ms']:.3f} ms, inference p50 {st['infer_p50_ms']:.3f} ms, safety events {len(out['events'])}")
        for e in out["events"][:10]:
            print(f"  safety {e.filter} {e.kind}: {e.detail}")
    print(f"return={out['return']:.1f}")
    return 0


def cmd_serve_policy(argv: list[str]) -> int:
    """``rlsuite serve-policy FILE --port N``: answer authenticated action requests for an exported policy."""
    p = argparse.ArgumentParser(prog="rlsuite serve-policy", description="Serve an exported policy (.onnx or .pt) over "
                                "ZeroMQ with HMAC-authenticated msgpack messages.")
    p.add_argument("file", help="an artifact from rlsuite export")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--key-file", default=None, help="file holding the shared key (else $RLSUITE_POLICY_KEY)")
    p.add_argument("--max-requests", type=int, default=None, help="stop after this many answered requests")
    a = p.parse_args(argv)
    from rlsuite.robots.export import load_runner
    from rlsuite.robots.transport import PolicyServer, load_key

    key = load_key(a.key_file)
    runner = load_runner(a.file)
    server = PolicyServer(runner, key, bind=f"tcp://{a.bind}:{a.port}", allow_remote=a.bind != "127.0.0.1")
    print(f"serving {a.file} on {server.endpoint} (HMAC-SHA256 authenticated; Ctrl-C stops)", flush=True)
    try:
        server.serve(max_requests=a.max_requests)
    finally:
        server.close()
    print(f"served={server.served} rejected={server.rx.rejected}")
    return 0


def cmd_data(argv: list[str]) -> int:
    """``rlsuite data collect|list|info``: D4RL-style datasets made locally, in the Minari format."""
    import json

    from rlsuite.offline import datasets as D

    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "collect":
        p = argparse.ArgumentParser(prog="rlsuite data collect", description="Collect a dataset with a (cached) behaviour policy.")
        p.add_argument("--env", required=True, help=f"one of {', '.join(D.ENV_NAMES)}")
        p.add_argument("--level", required=True, choices=D.LEVELS)
        p.add_argument("--steps", type=int, default=100_000, help="transitions (whole episodes: a little more)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--behaviour-steps", type=int, default=300_000, help="SAC training steps of the behaviour (expert) agent")
        p.add_argument("--data-dir", default=None, help="default $RLSUITE_DATA_DIR or ~/.local/share/rlsuite")
        p.add_argument("--overwrite", action="store_true")
        a = p.parse_args(rest)
        root = Path(a.data_dir) if a.data_dir else None
        ds_id, path = D.collect(a.env, a.level, a.steps, a.seed, a.behaviour_steps, a.overwrite, root,
                                log=lambda m: print(m, flush=True))
        print(f"wrote {ds_id} to {path}")
        print(f"dataset={ds_id}")
        return 0
    if sub == "list":
        p = argparse.ArgumentParser(prog="rlsuite data list")
        p.add_argument("--data-dir", default=None)
        a = p.parse_args(rest)
        root = Path(a.data_dir) if a.data_dir else D.data_dir()
        ids = D.list_datasets(root)
        print(f"datasets under {root}:" if ids else f"no datasets under {root}; make one with `rlsuite data collect`.")
        for i in ids:
            print(f"  {i}")
        return 0
    if sub == "info":
        p = argparse.ArgumentParser(prog="rlsuite data info")
        p.add_argument("id")
        p.add_argument("--data-dir", default=None)
        a = p.parse_args(rest)
        ds = D.load_dataset(a.id, Path(a.data_dir) if a.data_dir else None)
        meta = ds.storage.metadata
        desc = json.loads(meta.get("description") or "{}")
        print(f"{a.id}: {meta['total_episodes']} episodes, {meta['total_steps']} transitions, env {desc.get('env')}")
        print(f"reference returns: random {meta['ref_min_score']:.3f}, expert {meta['ref_max_score']:.3f} ({desc.get('reference')})")
        if "mean_return" in desc:
            score = float(D.normalized_score(desc["mean_return"], meta["ref_min_score"], meta["ref_max_score"]))
            print(f"mean episode return {desc['mean_return']:.2f} (normalized score {score:.1f})")
        if "behaviour" in desc:
            b = desc["behaviour"]
            print(f"behaviour: {b['algorithm']} {b['steps']} steps, cache {b['cache']} (sha256 {b['sha256'][:16]}...)")
        return 0
    print("usage: rlsuite data collect|list|info [options]  (rlsuite data <command> --help)", file=sys.stderr)
    return 2


def _config_overrides(pairs: list[str], cls) -> dict:
    """``KEY=VALUE`` strings to overrides of the dataclass ``cls`` (values parsed as JSON, lists as tuples)."""
    import dataclasses
    import json

    fields = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for item in pairs:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set expects KEY=VALUE with KEY one of {', '.join(sorted(fields))}; got {item!r}.")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def cmd_train_offline(algo: str, argv: list[str]) -> int:
    """``rlsuite train bc|iql|uni-o4 --dataset ID --offline-steps N [--online-steps M]``."""
    from rlsuite.offline.train import train_offline

    p = argparse.ArgumentParser(prog=f"rlsuite train {algo}", description=f"Train {algo} on a local Minari dataset "
                                "(rlsuite data collect), offline and then (IQL, Uni-O4) online, logging normalized scores.")
    p.add_argument("--dataset", required=True, help="e.g. rlsuite/hopper/medium-v0 (see rlsuite data list)")
    p.add_argument("--offline-steps", type=int, default=100_000,
                   help="offline updates (Uni-O4: of the BC ensemble, critics and value; then --improve-steps)")
    p.add_argument("--online-steps", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=5000, help="updates (offline) / env steps (online) between evaluations")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir whose offline phase finished: restore it and run the online phase (same options)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    if algo == "uni-o4":
        p.add_argument("--improve-steps", type=int, default=None, help="offline policy-improvement updates (default 10000)")
        p.add_argument("--ope-horizon", type=int, default=None, help="AM-Q model rollout length (default 1000)")
        p.add_argument("--ope-every", type=int, default=None, help="updates between AM-Q evaluations (default 100)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field (repeatable)")
    a = p.parse_args(argv)
    from rlsuite.agents.bc import BCConfig
    from rlsuite.agents.iql import IQLConfig
    from rlsuite.agents.uni_o4 import UniO4Config

    overrides = _config_overrides(a.set, {"bc": BCConfig, "iql": IQLConfig, "uni-o4": UniO4Config}[algo])
    if algo == "uni-o4":
        for flag, field in (("improve_steps", "improve_steps"), ("ope_horizon", "ope_horizon"), ("ope_every", "ope_every")):
            if getattr(a, flag) is not None:
                overrides[field] = getattr(a, flag)
    if a.resume and a.run_dir is None:
        p.error("--resume needs --run-dir: the directory of the run to continue.")
    out = train_offline(algo, a.dataset, a.offline_steps, a.online_steps, a.seed, a.eval_every, a.eval_episodes, a.run_dir,
                        Path(a.data_dir) if a.data_dir else None, a.device, log=lambda m: print(m, flush=True), config=overrides,
                        resume=a.resume)
    print(f"run directory: {out['run_dir']} (metrics.csv, curve.png, checkpoints/)")
    print(f"offline normalized score {out['offline_score']:.1f} ({out['offline_seconds']:.0f} s)"
          + (f", after online fine-tuning {out['online_score']:.1f} ({out['online_seconds']:.0f} s)" if out["online_score"] is not None else ""))
    print(f"offline_score={out['offline_score']:.3f}" + (f" online_score={out['online_score']:.3f}" if out["online_score"] is not None else ""))
    return 0


PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def cmd_cop(argv: list[str]) -> int:
    """``rlsuite cop generate|label|train|solve``: combinatorial optimisation (see docs/cop.md)."""
    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    handlers = {"generate": _cop_generate, "label": _cop_label, "train": _cop_train, "solve": _cop_solve}
    if sub not in handlers:
        print("usage: rlsuite cop generate|label|train|solve [options]  (rlsuite cop <command> --help)", file=sys.stderr)
        return 2
    return handlers[sub](rest)


def _cop_generate(argv: list[str]) -> int:
    from rlsuite.envs.cop.dataset import save_instances
    from rlsuite.envs.cop.problems import PROBLEMS, generate

    p = argparse.ArgumentParser(prog="rlsuite cop generate", description="Write random instances (safetensors + JSON).")
    p.add_argument("--problem", required=True, choices=PROBLEMS)
    p.add_argument("--size", type=int, required=True, help="nodes (TSP, ATSP), clients (CVRP, OP) or items (KP)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    inst = generate(a.problem, a.count, a.size, a.seed)
    d = save_instances(a.out, a.problem, inst, {"seed": a.seed, "generator": "rlsuite.envs.cop.problems.generate"}, a.overwrite)
    print(f"wrote {a.count} {a.problem}{a.size} instances (seed {a.seed}) to {d}")
    return 0


def _cop_label(argv: list[str]) -> int:
    import time

    from rlsuite.envs.cop.dataset import load_instances, save_labels
    from rlsuite.envs.cop.problems import cost, validate
    from rlsuite.envs.cop.solvers import SOLVERS, solve

    p = argparse.ArgumentParser(prog="rlsuite cop label", description="Solve every instance of a set with a reference solver.")
    p.add_argument("dir")
    p.add_argument("--solver", required=True, choices=list(SOLVERS))
    p.add_argument("--time-limit", type=float, default=1.0, help="seconds per instance (pyvrp, ortools; LKH: 10 x restarts)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    problem, inst, meta = load_instances(a.dir)
    B = meta["count"]
    sols: list[list[int]] = []
    t0 = time.monotonic()
    chunk = max(1, B // 10)
    for i in range(0, B, chunk):
        part = {k: v[i : i + chunk] for k, v in inst.items()}
        sols += solve(problem, part, a.solver, a.time_limit, a.seed)
        print(f"labelled {len(sols)}/{B} with {a.solver} ({time.monotonic() - t0:.0f} s)", flush=True)
    validate(problem, inst, sols)
    costs = cost(problem, inst, sols).double()
    save_labels(a.dir, sols, costs, {"solver": a.solver, "time_limit": a.time_limit, "seconds": time.monotonic() - t0})
    print(f"mean cost {float(costs.mean()):.4f} over {B} instances; labels in {a.dir}")
    print(f"mean_cost={float(costs.mean()):.6g}")
    return 0


def _cop_train(argv: list[str]) -> int:
    import time

    from rlsuite.agents.bq_nco import BQNCO, BQNCOConfig, fit, imitation_data
    from rlsuite.core.seeding import resolve_device
    from rlsuite.envs.cop.dataset import load_instances, load_labels
    from rlsuite.envs.cop.env import COPEnv
    from rlsuite.envs.cop.problems import cost, generate
    from rlsuite.envs.cop.solvers import solve

    p = argparse.ArgumentParser(prog="rlsuite cop train", description="Train BQ-NCO by imitation of solved instances.")
    p.add_argument("--problem", required=True, choices=["tsp", "cvrp"])
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--data", default=None, help="a labelled instance set (rlsuite cop generate + label); "
                   "without it, --instances are generated and solved first")
    p.add_argument("--instances", type=int, default=2000, help="instances to generate and label when --data is not given")
    p.add_argument("--solver", default=None, help="labelling solver when --data is not given (default lkh / pyvrp)")
    p.add_argument("--label-time-limit", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--time-limit", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--ff", type=int, default=512)
    p.add_argument("--lr", type=float, default=7.5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--eval-instances", type=int, default=100)
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    if a.data:
        problem, inst, meta = load_instances(a.data)
        if problem != a.problem or meta["size"] != a.size:
            raise ValueError(f"{a.data} holds {problem}{meta['size']} instances; --problem {a.problem} --size {a.size} asked for.")
        sols, _, info = load_labels(a.data)
        print(f"training on {len(sols)} instances labelled by {info.get('solver')}")
    else:
        solver = a.solver or ("lkh" if a.problem == "tsp" else "pyvrp")
        inst = generate(a.problem, a.instances, a.size, a.seed)
        t0 = time.monotonic()
        sols = solve(a.problem, inst, solver, a.label_time_limit, a.seed)
        print(f"labelled {a.instances} {a.problem}{a.size} instances with {solver} in {time.monotonic() - t0:.0f} s", flush=True)
    cfg = BQNCOConfig(problem=a.problem, dim=a.dim, layers=a.layers, heads=a.heads, ff=a.ff, learning_rate=a.lr,
                      batch_size=a.batch_size)
    agent = BQNCO(cfg, device, seed=a.seed)
    data = imitation_data(a.problem, inst, sols)
    t0 = time.monotonic()
    fit(agent, data, a.steps, a.seed, a.time_limit,
        on_log=lambda i, loss: print(f"step {i}: imitation loss {loss:.4f} ({time.monotonic() - t0:.0f} s)", flush=True))
    agent.save(a.out)
    test = {k: v.to(device) for k, v in generate(a.problem, a.eval_instances, a.size, a.seed + 1_000_000).items()}
    model_cost = cost(a.problem, test, agent.solve(COPEnv(a.problem, test))).mean()
    nn_cost = cost(a.problem, test, solve(a.problem, test, "nn")).mean()
    print(f"saved {a.out}; on {a.eval_instances} fresh instances: greedy mean cost {float(model_cost):.4f}, "
          f"nearest neighbour {float(nn_cost):.4f}")
    print(f"greedy_cost={float(model_cost):.6g}")
    return 0


def _cop_solve(argv: list[str]) -> int:
    import time

    import numpy as np
    import torch

    from rlsuite.agents.bq_nco import BQNCO
    from rlsuite.envs.cop.env import COPEnv
    from rlsuite.envs.cop.io import normalised_coords, read_instance
    from rlsuite.envs.cop.solvers import SOLVERS, solve

    p = argparse.ArgumentParser(prog="rlsuite cop solve", description="Solve a TSPLIB / CVRPLIB file with a BQ-NCO model "
                                "(the shipped one by default) or a reference solver; the last line is cost=<number>.")
    p.add_argument("file")
    p.add_argument("--problem", required=True, choices=["tsp", "atsp", "cvrp"])
    p.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model for the problem)")
    p.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    p.add_argument("--knn", type=int, default=None, help="feed only the K nearest remaining nodes (large instances)")
    p.add_argument("--solver", default=None, choices=list(SOLVERS))
    p.add_argument("--time-limit", type=float, default=1.0)
    p.add_argument("--optimum", type=float, default=None, help="known optimal cost: also print the gap")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    inst = read_instance(a.file)
    if inst.type.lower() != a.problem:
        raise ValueError(f"{a.file} is a {inst.type} instance but --problem {a.problem} was given.")
    t0 = time.monotonic()
    if a.solver:
        tens = {"dist": torch.as_tensor(inst.weights)[None]}
        if a.problem == "cvrp":
            xy = inst.coords if inst.coords is not None else np.zeros((inst.dimension, 2))
            tens.update(locs=torch.as_tensor(xy)[None], demand=torch.as_tensor(inst.demand)[None],
                        capacity=torch.tensor([inst.capacity]))
        sol = solve(a.problem, tens, a.solver, a.time_limit)[0]
        how = a.solver
    else:
        if a.problem == "atsp":
            raise ValueError("no BQ-NCO model for ATSP (it needs edge features); use --solver lkh or --solver nn.")
        model_dir = Path(a.model) if a.model else PRETRAINED_DIR / f"bq_nco_{a.problem}"
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(f"no model at {model_dir}; train one with `rlsuite cop train --problem {a.problem} --size 50 "
                                    f"--out DIR` and pass --model DIR, or use --solver.")
        agent = BQNCO.load(model_dir, a.device)
        xy = torch.as_tensor(normalised_coords(inst), dtype=torch.float32)[None].to(agent.device)
        tens = {"locs": xy}
        if a.problem == "cvrp":
            tens.update(demand=torch.as_tensor(inst.demand, dtype=torch.float32)[None].to(agent.device),
                        capacity=torch.tensor([inst.capacity], dtype=torch.float32, device=agent.device))
        file_cost = lambda sols: torch.tensor([inst.tour_cost(s) for s in sols])  # noqa: E731
        sol = agent.solve(COPEnv(a.problem, tens), beam=a.beam, knn=a.knn, cost_fn=file_cost)[0]
        how = f"BQ-NCO {'greedy' if a.beam <= 1 else f'beam {a.beam}'} ({model_dir})"
    value = inst.tour_cost(sol)
    print(f"{inst.name}: {inst.type} with {inst.dimension} nodes, solved by {how} in {time.monotonic() - t0:.2f} s")
    if a.optimum is not None:
        print(f"gap={100 * (value - a.optimum) / a.optimum:.3f}%")
    print(f"cost={value:g}")
    return 0


USAGE = """usage: rlsuite <command> [options]

commands:
  list                      agents and environments
  llm list                  registered language-model policy-optimisation methods, one key per line
  llm sft|train|eval        tiny-model SFT, online RL (grpo, remax, ...) and evaluation on synthetic tasks
  train <algo> [options]    train an agent (rlsuite train <algo> --help)
  train tgpo --env rlsuite/STL-Linear-v0 --spec F  TGPO on an STL task (--task-family, --sampler mh, --baseline)
  eval <run_dir> [options]  evaluate a trained agent (rlsuite eval --help)
  export RUN_DIR --format onnx|torchscript --out FILE   export a policy, parity-checked
  deploy --robot sim:ENV --policy FILE   run an exported policy sim-to-sim (--compare-gym, --remote)
  serve-policy FILE --port N            serve an exported policy on loopback (key from file or env)
  stl check FORMULA --trace FILE   robustness of a Signal Temporal Logic formula on a CSV trace
  stl sample --family F --seed N   print a generated STL task (reach, andor, chain, until, mixed)
  cop generate|label|train|solve   combinatorial problems: instances, reference solvers, BQ-NCO
  data collect|list|info    D4RL-style datasets made locally (Minari format)
  train bc|iql|uni-o4 --dataset ID --offline-steps N [--online-steps M]   offline (then online) training
"""

COMMANDS = ("list", "train", "eval", "llm", "stl", "cop", "data", "export", "serve-policy", "deploy")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    _setup_logging(verbose="--verbose" in rest)
    rest = [a for a in rest if a != "--verbose"]
    try:
        if cmd == "list":
            return cmd_list()
        if cmd == "train":
            if not rest or rest[0].startswith("-"):
                from rlsuite.agents import AGENTS

                print(f"usage: rlsuite train <algo> [options]; algos: {', '.join(AGENTS.names())}", file=sys.stderr)
                return 2
            if rest[0] == "tgpo":
                return cmd_train_tgpo(rest[1:])
            if rest[0] in ("bc", "iql", "uni-o4"):
                return cmd_train_offline(rest[0], rest[1:])
            return cmd_train(rest[0], rest[1:])
        if cmd == "eval":
            return cmd_eval(rest)
        if cmd == "llm":
            return cmd_llm(rest)
        if cmd == "stl":
            return cmd_stl(rest)
        if cmd == "cop":
            return cmd_cop(rest)
        if cmd == "data":
            return cmd_data(rest)
        if cmd == "export":
            return cmd_export(rest)
        if cmd == "serve-policy":
            return cmd_serve_policy(rest)
        if cmd == "deploy":
            return cmd_deploy(rest)
        from rlsuite.core.registry import unknown_name_message

        print(f"error: {unknown_name_message('command', cmd, COMMANDS)}", file=sys.stderr)
        return 2
    except (UnknownNameError, ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a checkpoint problem is reported, not traced
        from rlsuite.core.checkpoint import CheckpointError

        if isinstance(e, CheckpointError):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
