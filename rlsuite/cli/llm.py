"""``rlsuite llm list|sft|train|eval`` on the synthetic tasks with a tiny local model.

``sft`` and ``train`` write a run directory (config.json, metrics.csv, tb/, curve.png, checkpoints/,
model/) through :func:`rlsuite.llm.trainer.run_training`; ``--resume RUN`` continues one from its latest
checkpoint, ``--overwrite`` replaces one. This module parses and prints; the library does the work.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

from rlsuite.cli.args import above, at_least, flag, parse, within

log = logging.getLogger("rlsuite")

# rlsuite.llm.tasks.TASKS, spelt out so that --help needs no torch import (tests/cli/test_cli_args.py checks it)
Task = Literal["addition", "sorting", "countdown", "scratchpad", "tool", "filler"]


USAGE = """usage: rlsuite llm <subcommand> [options]

Language-model policy optimisation on synthetic tasks with a tiny local model (no downloads).

subcommands:
  list     registered method keys (advantages, policy and preference losses, rewards, samplers), one per line
  sft      supervised fine-tuning from a fresh model; writes a run directory
  train    online RL (grpo, remax, ...) or online preference optimisation (dpo, ipo, rso) from an sft run
  eval     greedy exact match of a run's model on held-out examples

Run directories: config.json, metrics.csv, tb/, curve.png, checkpoints/ (continue with --resume RUN_DIR), model/.
rlsuite llm <subcommand> --help lists every option with its default.
"""

SUBCOMMANDS = ("list", "sft", "train", "eval")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunArgs:
    """The options of the commands that write a run directory (rlsuite llm sft | train)."""

    task: Task = "addition"
    """synthetic task"""
    seed: int = 0
    """seed of the training split, batch draws and sampling (sft: also of the model; the held-out split uses seed + 1)"""
    total_steps: int = 500
    """optimizer steps of the whole run (a resumed run continues up to this many)"""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    run_dir: str | None = None
    """run directory; default runs/llm-<task>__<method or sft>__<seed>__<time>"""
    resume: str | None = None
    """continue a run from its latest checkpoint (a run directory) or from one checkpoint directory of it; its saved settings are reused, and only --total-steps, --device, the evaluation and checkpoint schedule and the display may change"""
    overwrite: bool = False
    """replace what --run-dir already holds (otherwise a non-empty run directory is refused)"""
    eval_examples: int = 200
    """held-out examples scored by greedy exact match at each evaluation"""
    eval_every: int = 25
    """evaluate every N optimizer steps (0: only before and after training)"""
    checkpoint_every: int = 0
    """checkpoint every N optimizer steps (0: ten checkpoints over the run)"""
    keep_checkpoints: int = 3
    """periodic checkpoints kept on disk (older ones are deleted; 0 keeps all)"""
    progress: bool = True
    """show a progress bar on a terminal (otherwise a log line every ~5 s)"""
    tensorboard: bool = True
    """write TensorBoard event files into tb/"""

    def __post_init__(self) -> None:
        at_least(self, 1, "total_steps", "eval_examples")
        at_least(self, 0, "eval_every", "checkpoint_every", "keep_checkpoints")
        if self.resume is not None and self.overwrite:
            raise ValueError("--resume continues a run in its directory and --overwrite replaces a run: pass one of them.")


#: what a resumed run may change; every other option keeps the value the run was started with
RESUMABLE = ("total_steps", "device", "eval_every", "checkpoint_every", "keep_checkpoints", "progress", "tensorboard",
             "resume", "overwrite", "run_dir")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SftArgs(RunArgs):
    """Supervised fine-tuning of a tiny local GPT-2 (built from a config, about 0.1 M parameters) on a synthetic task."""

    total_steps: int = 500
    """optimizer steps of the whole run (a resumed run continues up to this many)"""
    batch_size: int = 64
    """examples per optimizer step"""
    learning_rate: float = 3e-3
    """Adam learning rate"""

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "batch_size")
        above(self, 0, "learning_rate")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainArgs(RunArgs):
    """Policy optimisation (online RL or online preference optimisation) starting from an sft run."""

    method: str = "grpo"
    """online method (grpo, dr_grpo, rloo, ngrpo, bapo, gspo, sapo, cispo, remax, zero_advantage) or preference loss (dpo, ipo, rso)"""
    init: str | None = None
    """the model to start from: an sft run directory (its latest checkpoint) or the model/ directory inside it (required unless --resume)"""
    total_steps: int = 150
    """optimizer steps of the whole run (a resumed run continues up to this many)"""
    group_size: int = 8
    """completions per prompt (preference losses: samples per prompt)"""
    prompts_per_step: int = 32
    """prompts per step"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    beta: float | None = None
    """KL coefficient (online methods, None: 0) or DPO beta (None: 0.1)"""
    kl_in_reward: bool = False
    """online methods: subtract beta * KL from the reward instead"""
    inner_epochs: int = 1
    """online methods: optimizer steps per batch"""
    micro_batch_size: int | None = None
    """online methods: completions per forward (None: all)"""
    temperature: float = 1.0
    """online methods: sampling temperature"""
    prompt_sampler: Literal["uniform", "vade"] = "uniform"
    """online methods: prompt selection"""
    dataset_reset_prob: float = 0.0
    """online methods: DR-PO dataset reset share"""

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "group_size", "prompts_per_step", "inner_epochs", "micro_batch_size")
        at_least(self, 0, "beta")
        above(self, 0, "learning_rate", "temperature")
        within(self, "dataset_reset_prob", 0, 1)
        if self.init is None and self.resume is None:
            raise ValueError("rlsuite llm train needs --init: the sft run directory to start from "
                             "(e.g. --init runs/llm-sft), or --resume RUN_DIR to continue a train run.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalArgs:
    """Greedy exact match of a run's model on held-out examples (last line: exact_match=<x>)."""

    run: str
    """run directory (its latest checkpoint), or its model/ or a checkpoint directory"""
    task: Task | None = None
    """synthetic task (None: the run's)"""
    seed: int = 0
    """the held-out examples are drawn with seed + 1 (the run's own evaluations use its --seed)"""
    eval_examples: int = 200
    """held-out examples scored"""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""

    def __post_init__(self) -> None:
        at_least(self, 1, "eval_examples")


ARGS = {"sft": SftArgs, "train": TrainArgs, "eval": EvalArgs}


def _quiet_third_party() -> None:
    """Keep transformers' advisories out of normal output (e.g. the attention-mask notice that its own
    ``generate`` loop triggers although we pass the mask); ``--verbose`` shows them."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module=r"transformers(\.|$)")


def _parse_run(sub: str, argv: list[str]) -> tuple[Any, Path | None]:
    """The options of ``sft`` / ``train`` and, with ``--resume``, the run directory they continue: the saved
    settings are the defaults and only :data:`RESUMABLE` options may differ from them."""
    cls = ARGS[sub]
    prog = f"rlsuite llm {sub}"
    a = parse(cls, argv, prog)
    if a.resume is None:
        return a, None
    import tyro

    from rlsuite.agents.train import run_dir_of
    from rlsuite.core.config import config_from_dict
    from rlsuite.core.run import read_run_config

    run_dir = run_dir_of(a.resume)
    saved = read_run_config(run_dir)
    if saved.get("command") != prog.removeprefix("rlsuite "):
        raise ValueError(f"{a.resume!r} is not a run of {prog} (its config.json says {saved.get('command')!r}); "
                         f"resume it with: rlsuite {saved.get('command')} --resume {a.resume}")
    base = config_from_dict(cls, {**saved["args"], "run_dir": str(run_dir), "resume": a.resume, "overwrite": False},
                            where=f"{run_dir}/config.json args")
    a = tyro.cli(cls, args=list(argv), default=base, prog=prog, description=inspect.cleandoc(cls.__doc__ or ""),
                 config=(tyro.conf.OmitArgPrefixes,))
    for f in dataclasses.fields(cls):
        if f.name not in RESUMABLE and getattr(a, f.name) != getattr(base, f.name):
            raise ValueError(f"--resume continues {run_dir} with the settings it was started with; {flag(f.name)} was "
                             f"{getattr(base, f.name)!r} there, {getattr(a, f.name)!r} here. Only {', '.join(flag(n) for n in RESUMABLE[:5])} "
                             "and the display may change; start a new run (another --run-dir) to change the rest.")
    if Path(a.run_dir).resolve() != run_dir.resolve():
        raise ValueError(f"--resume continues the run in its own directory {str(run_dir)!r}; drop --run-dir {a.run_dir}.")
    return a, run_dir


def cmd_llm(argv: list[str]) -> int:
    """``rlsuite llm list | sft | train | eval`` on the synthetic tasks with a tiny local model."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    sub, rest = argv[0], argv[1:]
    if sub == "list":
        from rlsuite.llm import registered_methods

        for key in sorted(registered_methods()):
            print(key)
        return 0
    if sub not in ARGS:
        from rlsuite.core.registry import unknown_name_message

        print(f"error: {unknown_name_message('llm subcommand', sub, SUBCOMMANDS)}", file=sys.stderr)
        return 2
    if sub == "eval":
        a, resumed = parse(EvalArgs, rest, "rlsuite llm eval", positional=("run",)), None
    else:
        a, resumed = _parse_run(sub, rest)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from rlsuite.core.seeding import resolve_device

    if sub == "eval":
        return _eval(a, resolve_device(a.device))
    start_step, ckpt = 0, None
    if resumed is not None:  # nothing is written before the budget is checked
        from rlsuite.core.checkpoint import read_checkpoint_meta
        from rlsuite.core.run import check_resume_budget, resolve_checkpoint

        ckpt = resolve_checkpoint(a.resume)
        start_step = int(read_checkpoint_meta(ckpt)["meta"]["step"])
        check_resume_budget(start_step, a.total_steps, resumed, eval_command="rlsuite llm eval")
    device = resolve_device(a.device)
    if resumed is None:
        from rlsuite.core.run import claim_run_dir, default_run_dir

        run_dir = Path(a.run_dir or default_run_dir(f"llm-{a.task}", a.method if sub == "train" else "sft", a.seed))
        if not a.overwrite:
            claim_run_dir(run_dir, overwrite=False)  # an existing run is refused at once
        log.info("llm %s on %s: %d optimizer steps into %s (device %s)", sub if sub == "sft" else a.method, a.task,
                 a.total_steps, run_dir, device)
    else:
        run_dir = resumed
        log.info("resuming %s from %s at step %d of %d", run_dir, ckpt, start_step, a.total_steps)
    _quiet_third_party()
    trainer, cfg, evaluate = _build(sub, a, device, ckpt)  # bad settings or a missing --init fail before any file changes
    if resumed is None:
        claim_run_dir(run_dir, a.overwrite)
    return _train(sub, a, run_dir, trainer, cfg, evaluate)


def _eval(a: EvalArgs, device: Any) -> int:
    from rlsuite.llm.tasks import CharTokenizer, make_split
    from rlsuite.llm.trainer import exact_match, load_model, resolve_model_dir

    _quiet_third_party()
    path = resolve_model_dir(a.run)
    model, meta = load_model(path)
    task = a.task or meta.get("task", "addition")
    test = make_split(task, a.eval_examples, seed=a.seed + 1, held_out=True)
    log.info("evaluating %s (step %s) on %d held-out %s examples", path, meta.get("step", "?"), a.eval_examples, task)
    print(f"exact_match={exact_match(model.to(device), CharTokenizer(), test):.4f}")
    return 0


def _build(sub: str, a: Any, device: Any, ckpt: Path | None) -> tuple[Any, Any, Any]:
    """``(trainer, its config, evaluate(model) -> held-out exact match)``, loading ``ckpt`` when resuming."""
    from rlsuite.core.checkpoint import load_checkpoint
    from rlsuite.llm.model import tiny_causal_lm
    from rlsuite.llm.tasks import CharTokenizer, make_split
    from rlsuite.llm.trainer import (
        OnlineConfig,
        OnlineTrainer,
        PreferenceConfig,
        PreferenceTrainer,
        SftConfig,
        SftTrainer,
        exact_match,
        load_model,
    )

    tok = CharTokenizer()
    train = make_split(a.task, 2000, seed=a.seed, held_out=False)
    test = make_split(a.task, a.eval_examples, seed=a.seed + 1, held_out=True)
    if ckpt is not None:
        model, _ = load_model(ckpt)
    elif sub == "sft":
        model = tiny_causal_lm(tok.vocab_size, seed=a.seed)
    else:
        model, init_meta = load_model(a.init)
        if init_meta.get("task", a.task) != a.task:
            log.warning("--init %s was trained on %s; this run trains it on %s.", a.init, init_meta["task"], a.task)
    model.to(device)
    trainer: Any
    if sub == "sft":
        cfg: Any = SftConfig(task=a.task, batch_size=a.batch_size, learning_rate=a.learning_rate, seed=a.seed)
        trainer = SftTrainer(model, tok, train, cfg)
    elif a.method in ("dpo", "ipo", "rso"):
        cfg = PreferenceConfig(loss=a.method, task=a.task, seed=a.seed, prompts_per_step=a.prompts_per_step,
                               samples_per_prompt=a.group_size, learning_rate=a.learning_rate,
                               beta=0.1 if a.beta is None else a.beta)
        trainer = PreferenceTrainer(model, tok, train, cfg)
    else:
        cfg = OnlineConfig(method=a.method, task=a.task, seed=a.seed, group_size=a.group_size, prompts_per_step=a.prompts_per_step,
                           micro_batch_size=a.micro_batch_size or a.group_size * a.prompts_per_step,
                           learning_rate=a.learning_rate, beta=0.0 if a.beta is None else a.beta, kl_in_reward=a.kl_in_reward,
                           inner_epochs=a.inner_epochs, temperature=a.temperature, prompt_sampler=a.prompt_sampler,
                           dataset_reset_prob=a.dataset_reset_prob)
        trainer = OnlineTrainer(model, tok, train, cfg)
    if ckpt is not None:
        trainer.load_state_dict(load_checkpoint(ckpt)[0])
    return trainer, cfg, lambda m: exact_match(m, tok, test)


def _train(sub: str, a: Any, run_dir: Path, trainer: Any, cfg: Any, evaluate: Any) -> int:
    """Run ``trainer`` into ``run_dir``; prints the summary."""
    from rlsuite.core.config import config_to_dict
    from rlsuite.core.run import code_version
    from rlsuite.llm.trainer import RL_CURVE, SFT_CURVE, RunSchedule, run_training

    args = {**config_to_dict(a), "run_dir": str(run_dir), "resume": None, "overwrite": False}
    doc = {"command": f"llm {sub}", "task": a.task, "method": a.method if sub == "train" else "sft", "args": args,
           "trainer": config_to_dict(cfg), "versions": code_version()}
    schedule = RunSchedule(total_steps=a.total_steps, eval_every=a.eval_every, checkpoint_every=a.checkpoint_every,
                           keep_checkpoints=a.keep_checkpoints, progress=a.progress, tensorboard=a.tensorboard)
    title = f"llm sft on {a.task} (seed {a.seed})" if sub == "sft" else f"llm {a.method} on {a.task} (seed {a.seed})"
    s = run_training(trainer, run_dir, schedule, evaluate, doc, title=title,
                     curve=SFT_CURVE if sub == "sft" else RL_CURVE)
    print(f"run directory: {s['run_dir']}\nmodel:         {s['model']}\ncurve:         {s['curve']}")
    last = f"loss={s['metrics']['loss']:.4f}" if sub == "sft" else f"reward={s['metrics']['reward_mean']:.4f}"
    before = "" if s["exact_match_before"] is None else f" exact_match_before={s['exact_match_before']:.4f}"
    print(f"steps={s['step']} {last}{before} exact_match={s['exact_match']:.4f}")
    return 0
