"""``rlsuite llm list|sft|train|eval`` on the synthetic tasks with a tiny local model."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

log = logging.getLogger("rlsuite")


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
