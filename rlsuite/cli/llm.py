"""``rlsuite llm list|sft|train|eval`` on the synthetic tasks with a tiny local model."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any, Literal

from rlsuite.cli.args import above, at_least, parse, within

log = logging.getLogger("rlsuite")

# rlsuite.llm.tasks.TASKS, spelt out so that --help needs no torch import (tests/cli/test_cli_args.py checks it)
Task = Literal["addition", "sorting", "countdown", "scratchpad", "tool", "filler"]


@dataclasses.dataclass(frozen=True)
class LLMArgs:
    """The options every ``rlsuite llm`` command shares."""

    task: Task = "addition"
    """synthetic task"""
    seed: int = 0
    """seed of the model, the training split and sampling (the held-out split uses seed + 1)"""
    eval_examples: int = 200
    """held-out examples scored by exact match"""

    def __post_init__(self) -> None:
        at_least(self, 1, "eval_examples")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SftArgs(LLMArgs):
    """Supervised fine-tuning of a tiny local model on a synthetic task."""

    steps: int = 500
    """optimizer steps"""
    out: str
    """checkpoint directory to write"""

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "steps")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainArgs(LLMArgs):
    """Policy optimisation (online RL or online preference optimisation) from a checkpoint."""

    method: str = "grpo"
    """online method (grpo, dr_grpo, rloo, ngrpo, bapo, gspo, sapo, cispo, remax, zero_advantage) or preference loss (dpo, ipo, rso)"""
    init: str
    """checkpoint to start from (e.g. from rlsuite llm sft)"""
    steps: int = 150
    """training steps"""
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
    out: str
    """checkpoint directory to write"""

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "steps", "group_size", "prompts_per_step", "inner_epochs", "micro_batch_size")
        at_least(self, 0, "beta")
        above(self, 0, "learning_rate", "temperature")
        within(self, "dataset_reset_prob", 0, 1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalArgs(LLMArgs):
    """Exact match of a checkpoint on held-out examples."""

    checkpoint: str
    """checkpoint directory (from rlsuite llm sft or train)"""


ARGS = {"sft": SftArgs, "train": TrainArgs, "eval": EvalArgs}


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
    a = parse(ARGS[sub], rest, f"rlsuite llm {sub}", positional=("checkpoint",) if sub == "eval" else ())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from rlsuite.llm.model import tiny_causal_lm
    from rlsuite.llm.tasks import CharTokenizer, make_split
    from rlsuite.llm.trainer import (
        OnlineConfig,
        OnlineTrainer,
        PreferenceConfig,
        PreferenceTrainer,
        exact_match,
        load_model,
        run_steps,
        save_model,
        sft,
    )

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
    run_steps(trainer, a.steps, on_log=lambda i, m: log.info("step %d %s", i, " ".join(f"{k}={v:.3g}" for k, v in m.items())))
    save_model(model, a.out, {"task": a.task, "method": a.method, "steps": a.steps})
    print(f"checkpoint {a.out}")
    print(f"exact_match={exact_match(model, tok, test):.4f}")
    return 0
