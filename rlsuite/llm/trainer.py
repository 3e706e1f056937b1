"""A small trainer for language-model policy optimisation on the synthetic tasks (CPU or one GPU).

One online step (``OnlineTrainer.step``):

1. draw ``prompts_per_step`` training prompts (uniformly, or by VADE's Thompson sampling), repeat each
   ``group_size`` times; with DR-PO dataset reset, some rollouts start from a prefix of the reference answer;
2. sample completions (HF ``generate``), decode, score with the task's verifier;
3. optional KL-in-reward shaping, then advantages from the registry (ReMax also decodes greedily);
4. old log-probs (only when ``inner_epochs > 1``; otherwise the detached current ones) and reference
   log-probs (a frozen copy, only when ``beta > 0``);
5. for each inner epoch, micro-batches of ``micro_batch_size`` completions: policy loss (+ KL in the
   loss), aggregated with the *whole batch's* denominators and back-propagated, then one clipped
   optimizer step per epoch, so the split into micro-batches cannot change the update (BAPO's bounds are
   likewise chosen on the whole batch);
6. health checks: every completion truncated, or every group with zero reward variance, is reported
   with a warning (the gradient is then zero or meaningless).

``SftTrainer`` (and ``sft``) warms a model up on reference answers; ``exact_match`` evaluates greedy
decoding. Every trainer has ``state_dict`` / ``load_state_dict`` holding all that its next steps depend on
(weights, Adam moments, RNG states, sampler state), so a resumed run takes the same steps as an
uninterrupted one. ``run_training`` drives a trainer inside a run directory (config.json, metrics.csv,
TensorBoard, checkpoints, model/, curve.png); checkpoints are safetensors + JSON through
``rlsuite.core.checkpoint``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from rlsuite.core.checkpoint import (
    CheckpointError,
    atomic_write_json,
    find_latest,
    first_difference,
    load_checkpoint,
    save_checkpoint,
    write_latest,
)
from rlsuite.core.config import config_to_dict
from rlsuite.core.logger import Logger
from rlsuite.core.registry import UnknownNameError, unknown_name_message
from rlsuite.core.run import plot_learning_curve
from rlsuite.llm.advantages import ADVANTAGES
from rlsuite.llm.aggregation import AGG_MODES, aggregate
from rlsuite.llm.kl import KL_ESTIMATORS, kl_estimate, kl_shaped_rewards
from rlsuite.llm.model import completion_logprobs, completion_mask_from_ids
from rlsuite.llm.policy_losses import POLICY_LOSSES, bapo_bounds
from rlsuite.llm.samplers import DatasetResetSampler, VadeSampler
from rlsuite.llm.tasks import TASKS, CharTokenizer, Example, verify

log = logging.getLogger("rlsuite")

#: method -> (advantage key, policy-loss key, aggregation mode, needs a group of >= 2, policy-loss keyword arguments)
METHODS: dict[str, tuple[str, str, str, bool, dict]] = {
    "grpo": ("grpo", "ppo_clip", "seq-mean-token-mean", True, {}),
    "dr_grpo": ("dr_grpo", "ppo_clip", "seq-mean-token-sum-norm", True, {}),
    "rloo": ("rloo", "ppo_clip", "seq-mean-token-mean", True, {}),
    "ngrpo": ("ngrpo", "ppo_clip", "seq-mean-token-mean", True, {"eps_low": 0.16, "eps_high": 0.24}),  # authors' script
    "bapo": ("grpo", "bapo", "token-mean", True, {}),
    "gspo": ("grpo", "gspo", "seq-mean-token-mean", True, {}),
    "sapo": ("grpo", "sapo", "seq-mean-token-mean", True, {}),
    "cispo": ("grpo", "cispo", "token-mean", True, {}),
    "remax": ("remax", "reinforce", "seq-mean-token-mean", False, {}),
    "zero_advantage": ("grpo", "ppo_clip", "seq-mean-token-mean", False, {}),  # control: advantages forced to 0
}


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Online policy-optimisation settings; invalid combinations fail at construction."""

    method: str = "grpo"
    """One of METHODS (grpo, dr_grpo, rloo, ngrpo, bapo, gspo, sapo, cispo, remax, zero_advantage)."""
    task: str = "addition"
    """Synthetic task (see rlsuite.llm.tasks)."""
    prompts_per_step: int = 32
    """Prompts per step."""
    group_size: int = 8
    """Completions per prompt."""
    micro_batch_size: int = 64
    """Completions per forward/backward (must divide prompts_per_step * group_size)."""
    inner_epochs: int = 1
    """Optimizer steps per batch (mu)."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    max_new_tokens: int = 6
    """Generation cap L_max."""
    temperature: float = 1.0
    """Sampling temperature."""
    beta: float = 0.0
    """KL coefficient to the reference (0: no reference model)."""
    kl_estimator: str = "k3"
    """k1 | k2 | k3."""
    kl_in_reward: bool = False
    """Subtract beta * sequence KL from the reward instead of adding it to the loss."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    prompt_sampler: str = "uniform"
    """uniform | vade (Thompson sampling of informative prompts, rlsuite.llm.samplers.VadeSampler)."""
    dataset_reset_prob: float = 0.0
    """DR-PO: share of rollouts that start from a random prefix of the reference answer (0: off)."""
    seed: int = 0
    """Seed of prompt sampling and generation."""

    def __post_init__(self) -> None:
        if self.prompt_sampler not in ("uniform", "vade"):
            raise ValueError(f"unknown prompt_sampler {self.prompt_sampler!r}; allowed: uniform, vade.")
        if not 0.0 <= self.dataset_reset_prob <= 1.0:
            raise ValueError(f"dataset_reset_prob must be in [0, 1], got {self.dataset_reset_prob}.")
        if self.method not in METHODS:
            raise UnknownNameError(unknown_name_message("llm method", self.method, METHODS))
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}.")
        if METHODS[self.method][3] and self.group_size < 2:
            raise ValueError(f"{self.method} normalises within groups and needs group_size >= 2, got {self.group_size}.")
        batch = self.prompts_per_step * self.group_size
        if self.micro_batch_size < 1 or batch % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size={self.micro_batch_size} must divide prompts_per_step * group_size = {batch}; "
                "choose a divisor."
            )
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"unknown kl_estimator {self.kl_estimator!r}; allowed: {', '.join(KL_ESTIMATORS)}.")
        if min(self.inner_epochs, self.max_new_tokens, self.prompts_per_step) < 1 or self.temperature <= 0:
            raise ValueError("inner_epochs, max_new_tokens, prompts_per_step must be >= 1 and temperature > 0.")


@torch.no_grad()
def generate(model, tok: CharTokenizer, prompts: Sequence[str], max_new_tokens: int, greedy: bool, temperature: float = 1.0):
    """Completions for ``prompts``: ``(prompt_ids, prompt_mask, completion_ids, completion_mask, truncated, texts)``."""
    device = next(model.parameters()).device
    ids, mask = tok.batch_encode(prompts)
    ids, mask = ids.to(device), mask.to(device)
    out = model.generate(
        input_ids=ids, attention_mask=mask, do_sample=not greedy, temperature=temperature if not greedy else None,
        top_k=0 if not greedy else None, top_p=1.0 if not greedy else None,
        max_new_tokens=max_new_tokens, pad_token_id=tok.pad_id, eos_token_id=tok.eos_id,
    )
    comp = out[:, ids.shape[1] :]
    if comp.shape[1] < max_new_tokens:  # every sequence stopped early: pad to a fixed width
        comp = torch.nn.functional.pad(comp, (0, max_new_tokens - comp.shape[1]), value=tok.pad_id)
    cmask, truncated = completion_mask_from_ids(comp, tok.eos_id)
    comp = torch.where(cmask.bool(), comp, torch.full_like(comp, tok.pad_id))
    texts = [tok.decode(c) for c in comp.tolist()]
    return ids, mask, comp, cmask, truncated, texts


def seeded_sample(model, tok: CharTokenizer, prompts: Sequence[str], max_new_tokens: int, temperature: float, gen: torch.Generator):
    """Sampled completions (see :func:`generate`) under a seed drawn from ``gen``, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        return generate(model, tok, prompts, max_new_tokens, False, temperature)


def teacher_forced_logprobs(model, tok: CharTokenizer, prompts: Sequence[str], completions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs ``(B, C)`` of ``completion + <eos>`` after each prompt, and the completion mask."""
    device = next(model.parameters()).device
    p_ids, p_mask = tok.batch_encode(prompts)
    c_ids, c_mask = tok.batch_encode_completions(completions)
    c_mask = c_mask.to(device)
    logp, _ = completion_logprobs(model, p_ids.to(device), p_mask.to(device), c_ids.to(device), c_mask)
    return logp, c_mask


def exact_match(model, tok: CharTokenizer, examples: Sequence[Example], max_new_tokens: int = 6) -> float:
    """Greedy exact-match rate on ``examples`` (the verifier decides)."""
    model.eval()
    *_, texts = generate(model, tok, [e.prompt for e in examples], max_new_tokens, greedy=True)
    return sum(verify(e.task, e.prompt, t) for e, t in zip(examples, texts, strict=True)) / len(examples)


@dataclasses.dataclass(frozen=True)
class SftConfig:
    """Supervised fine-tuning settings; invalid values fail at construction."""

    task: str = "addition"
    """Synthetic task (see rlsuite.llm.tasks)."""
    batch_size: int = 64
    """Examples per optimizer step (drawn with replacement)."""
    learning_rate: float = 3e-3
    """Adam learning rate."""
    seed: int = 0
    """Seed of the batch draws."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}.")
        if self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError(f"batch_size must be >= 1 and learning_rate > 0, got {self.batch_size} and {self.learning_rate}.")


class SftTrainer:
    """Teacher-forced cross-entropy on ``prompt + answer + <eos>`` (loss on the answer and EOS only), one
    batch of ``batch_size`` examples drawn with replacement per :meth:`step`.

    Args:
        model: a causal LM with the tokenizer's vocabulary.
        tok: the tokenizer.
        train_examples: the examples to fit.
        config: settings (validated at construction).
    """

    def __init__(self, model, tok: CharTokenizer, train_examples: Sequence[Example], config: SftConfig) -> None:
        self.model, self.tok, self.cfg = model, tok, config
        self.examples = list(train_examples)
        self.opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        self.rng = random.Random(config.seed)
        self.steps_done = 0

    def step(self) -> dict[str, float]:
        """One optimizer step; returns ``{"loss": mean cross-entropy per answer token (nats)}``."""
        self.model.train()
        batch = [self.rng.choice(self.examples) for _ in range(self.cfg.batch_size)]
        logp, c_mask = teacher_forced_logprobs(self.model, self.tok, [e.prompt for e in batch], [e.answer for e in batch])
        loss = -aggregate(logp, c_mask, "token-mean")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps_done += 1
        return {"loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        """Everything the next steps depend on: weights, Adam moments, the batch-draw RNG, the step count."""
        return {"model": self.model.state_dict(), "optim": self.opt.state_dict(), "rng": {"python": self.rng.getstate()},
                "steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _load_trainer_state(self, state)


def sft(model, tok: CharTokenizer, examples: Sequence[Example], steps: int, batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """``steps`` steps of :class:`SftTrainer` on ``examples``; returns the loss of every step."""
    trainer = SftTrainer(model, tok, examples, SftConfig(batch_size=batch_size, learning_rate=lr, seed=seed))
    return [trainer.step()["loss"] for _ in range(steps)]


def _load_trainer_state(trainer: Any, state: dict[str, Any]) -> None:
    """Load what a trainer's ``state_dict()`` returned into it; a state of another kind of run fails clearly.

    Raises:
        CheckpointError: the parts (reference model, VADE, dataset reset ...) or a tensor's shape differ.
    """
    expected = trainer.state_dict()
    if set(expected) != set(state):
        raise CheckpointError(
            f"this checkpoint holds {sorted(state)}, the {type(trainer).__name__} with these settings needs {sorted(expected)}; "
            "it was written by a run with other settings (e.g. --beta, --prompt-sampler, --dataset-reset-prob).")
    for key in ("model", "ref"):
        if key in state:
            diff = first_difference(expected[key], state[key])
            if diff:
                raise CheckpointError(f"the checkpoint's {key} does not fit this model: {diff}.")
    trainer.model.load_state_dict(state["model"])
    if "ref" in state:
        trainer.ref.load_state_dict(state["ref"])
    trainer.opt.load_state_dict(state["optim"])
    version, internal, gauss = state["rng"]["python"]
    trainer.rng.setstate((version, tuple(internal), gauss))
    if "torch" in state["rng"]:
        trainer.gen.set_state(state["rng"]["torch"].cpu().to(torch.uint8))
    if "vade" in state:
        trainer.vade.load_state_dict(state["vade"])
    if "dataset_reset" in state:
        trainer.reset.load_state_dict(state["dataset_reset"])
    trainer.steps_done = int(state["steps_done"])


class OnlineTrainer:
    """Online RL on a synthetic task with a method from :data:`METHODS`.

    Args:
        model: a causal LM (``tiny_causal_lm`` or any HF model with the tokenizer's vocabulary).
        tok: the tokenizer.
        train_examples: the prompts to train on.
        config: settings (validated at construction).
    """

    def __init__(self, model, tok: CharTokenizer, train_examples: Sequence[Example], config: OnlineConfig) -> None:
        self.model, self.tok, self.cfg = model, tok, config
        self.examples = list(train_examples)
        self.adv_key, self.loss_key, self.agg, _, self.loss_kwargs = METHODS[config.method]
        self.vade = VadeSampler(len(self.examples), seed=config.seed) if config.prompt_sampler == "vade" else None
        self.reset = DatasetResetSampler(config.dataset_reset_prob, seed=config.seed) if config.dataset_reset_prob > 0 else None
        self.ref = None
        if config.beta > 0:
            self.ref = copy.deepcopy(model).eval().requires_grad_(False)
        self.opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        self.rng = random.Random(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.steps_done = 0

    def _logp(self, model, batch: dict[str, torch.Tensor], idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return completion_logprobs(model, batch["p_ids"][idx], batch["p_mask"][idx], batch["c_ids"][idx], batch["c_mask"][idx],
                                   temperature=self.cfg.temperature)

    def step(self) -> dict[str, float]:
        """One rollout + update; returns metrics."""
        cfg = self.cfg
        device = next(self.model.parameters()).device
        if self.vade is not None:
            picked = self.vade.select(cfg.prompts_per_step)
            prompts_ex = [self.examples[i] for i in picked.tolist()]
        else:
            prompts_ex = [self.rng.choice(self.examples) for _ in range(cfg.prompts_per_step)]
        prompts = [e.prompt for e in prompts_ex for _ in range(cfg.group_size)]
        # DR-PO: some rollouts continue a prefix of the reference answer; the reward scores prefix + generation
        prefixes = [self.reset.prefix(e.answer) for e in prompts_ex for _ in range(cfg.group_size)] if self.reset else [""] * len(prompts)
        group_ids = torch.arange(cfg.prompts_per_step).repeat_interleave(cfg.group_size)
        self.model.eval()
        starts = [p + h for p, h in zip(prompts, prefixes, strict=True)]
        p_ids, p_mask, c_ids, c_mask, truncated, texts = seeded_sample(self.model, self.tok, starts, cfg.max_new_tokens, cfg.temperature, self.gen)
        rewards = torch.tensor([verify(cfg.task, p, h + t) for p, h, t in zip(prompts, prefixes, texts, strict=True)])
        if self.vade is not None:
            self.vade.update(picked, rewards.view(cfg.prompts_per_step, cfg.group_size).sum(1), torch.full((cfg.prompts_per_step,), cfg.group_size))
        batch = {"p_ids": p_ids, "p_mask": p_mask, "c_ids": c_ids, "c_mask": c_mask}
        B = len(prompts)
        everything = torch.arange(B, device=device)
        with torch.no_grad():
            ref_logp = self._logp(self.ref, batch, everything)[0] if self.ref is not None else None
            old_logp = self._logp(self.model, batch, everything)[0] if cfg.inner_epochs > 1 else None
        shaped = rewards.clone()
        if ref_logp is not None and cfg.kl_in_reward:
            cur = old_logp if old_logp is not None else self._logp(self.model, batch, everything)[0].detach()
            shaped = kl_shaped_rewards(rewards, cur, ref_logp, c_mask, cfg.beta, cfg.kl_estimator).cpu()
        if self.adv_key == "remax":
            uniq = [e.prompt for e in prompts_ex]
            *_, greedy_texts = generate(self.model, self.tok, uniq, cfg.max_new_tokens, greedy=True)
            greedy_r = torch.tensor([verify(cfg.task, p, t) for p, t in zip(uniq, greedy_texts, strict=True)])
            adv = ADVANTAGES.get("remax")(shaped, greedy_r.repeat_interleave(cfg.group_size))
        else:
            adv = ADVANTAGES.get(self.adv_key)(shaped, group_ids)
        if cfg.method == "zero_advantage":
            adv = torch.zeros_like(adv)
        adv = adv.to(device)
        loss_fn = POLICY_LOSSES.get(self.loss_key)
        num_tokens = c_mask.sum().clamp_min(1)
        self.model.train()
        total_loss, total_kl, clip_frac, n_micro = 0.0, 0.0, 0.0, 0
        loss_kwargs = dict(self.loss_kwargs)
        for _ in range(cfg.inner_epochs):
            if self.loss_key == "bapo":  # bounds from the whole batch, so micro-batching cannot change them
                with torch.no_grad():
                    now = self._logp(self.model, batch, everything)[0]
                ratio = torch.exp(now - (old_logp if old_logp is not None else now))
                c_lo, c_hi, _ = bapo_bounds(ratio, adv.unsqueeze(-1).expand_as(ratio), c_mask)
                loss_kwargs = {"lower": (c_lo, c_lo), "upper": (c_hi, c_hi)}
            self.opt.zero_grad(set_to_none=True)
            for idx in torch.randperm(B, generator=self.gen).to(device).split(cfg.micro_batch_size):
                logp, _ = self._logp(self.model, batch, idx)
                old = old_logp[idx] if old_logp is not None else logp.detach()
                per_tok, stats = loss_fn(logp, old, adv[idx], c_mask[idx], **loss_kwargs)
                if ref_logp is not None and not cfg.kl_in_reward:
                    kl = kl_estimate(logp, ref_logp[idx], cfg.kl_estimator)
                    per_tok = per_tok + cfg.beta * kl
                    total_kl += ((kl.detach() * c_mask[idx]).sum() / num_tokens).item()
                loss = aggregate(per_tok, c_mask[idx], self.agg, num_tokens=num_tokens, num_seqs=B, max_len=cfg.max_new_tokens)
                loss.backward()
                total_loss += loss.item()
                clip_frac += float(stats.get("clip_fraction", 0.0))
                n_micro += 1
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            self.opt.step()
        self.steps_done += 1
        std_g = rewards.view(cfg.prompts_per_step, cfg.group_size).std(1) if cfg.group_size > 1 else torch.zeros(cfg.prompts_per_step)
        metrics = {
            "reward_mean": float(rewards.mean()),
            "frac_zero_std_groups": float((std_g == 0).float().mean()),
            "frac_truncated": float(truncated.float().mean()),
            "completion_length": float(c_mask.sum(1).float().mean()),
            "loss": total_loss / cfg.inner_epochs,
            "kl": total_kl / cfg.inner_epochs,
            "clip_fraction": clip_frac / max(1, n_micro),
            "grad_norm": float(grad_norm),
            "reward_shaped_mean": float(shaped.float().mean()),
        }
        if metrics["frac_truncated"] == 1.0:
            log.warning("step %d: every completion hit max_new_tokens=%d without EOS; rewards carry no signal. "
                        "Raise max_new_tokens or warm the model up with sft.", self.steps_done, cfg.max_new_tokens)
        if metrics["frac_zero_std_groups"] == 1.0 and cfg.method != "remax":
            log.warning("step %d: every group has zero reward variance, so every advantage is 0.", self.steps_done)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Everything the next steps depend on: weights (and the frozen reference's), Adam moments, the prompt
        and sampling RNGs, VADE's posteriors, the dataset-reset RNG and the step count."""
        state: dict[str, Any] = {"model": self.model.state_dict(), "optim": self.opt.state_dict(),
                                 "rng": {"python": self.rng.getstate(), "torch": self.gen.get_state()}, "steps_done": self.steps_done}
        if self.ref is not None:
            state["ref"] = self.ref.state_dict()
        if self.vade is not None:
            state["vade"] = self.vade.state_dict()
        if self.reset is not None:
            state["dataset_reset"] = self.reset.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _load_trainer_state(self, state)

    def save(self, path: str | Path) -> Path:
        """The whole :meth:`state_dict` (safetensors) with the config (JSON)."""
        return save_checkpoint(path, self.state_dict(), {"llm_config": config_to_dict(self.cfg), "model_config": self.model.config.to_dict()})


@dataclasses.dataclass(frozen=True)
class PreferenceConfig:
    """Online preference optimisation: pairs sampled from the current policy, labelled by the verifier."""

    loss: str = "dpo"
    """A key of PREFERENCE_LOSSES taking (policy_chosen, policy_rejected, ref_chosen, ref_rejected): dpo, ipo, rso."""
    task: str = "addition"
    """Synthetic task."""
    prompts_per_step: int = 32
    """Prompts per step."""
    samples_per_prompt: int = 8
    """Completions sampled per prompt to find a correct and a wrong one."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    beta: float = 0.1
    """DPO beta (IPO tau, RSO gamma)."""
    max_new_tokens: int = 6
    """Generation cap."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    seed: int = 0
    """Seed of prompt sampling and generation."""

    def __post_init__(self) -> None:
        if self.loss not in ("dpo", "ipo", "rso"):
            raise ValueError(f"unsupported preference loss {self.loss!r} for this trainer; allowed: dpo, ipo, rso.")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}.")
        if self.samples_per_prompt < 2:
            raise ValueError(f"samples_per_prompt must be >= 2 to form pairs, got {self.samples_per_prompt}.")


class PreferenceTrainer:
    """Online DPO-family training: each step samples ``samples_per_prompt`` completions per prompt from
    the current policy, pairs correct with wrong ones (the verifier labels them), and takes one step on
    the preference loss against a frozen reference (the model at construction)."""

    def __init__(self, model, tok: CharTokenizer, train_examples: Sequence[Example], config: PreferenceConfig) -> None:
        self.model, self.tok, self.cfg = model, tok, config
        self.examples = list(train_examples)
        self.ref = copy.deepcopy(model).eval().requires_grad_(False)
        self.opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        self.rng = random.Random(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.steps_done = 0

    def state_dict(self) -> dict[str, Any]:
        """Weights, the frozen reference's weights, Adam moments, the prompt and sampling RNGs, the step count."""
        return {"model": self.model.state_dict(), "ref": self.ref.state_dict(), "optim": self.opt.state_dict(),
                "rng": {"python": self.rng.getstate(), "torch": self.gen.get_state()}, "steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _load_trainer_state(self, state)

    def _seq_logp(self, model, prompts: list[str], completions: list[str]) -> torch.Tensor:
        return teacher_forced_logprobs(model, self.tok, prompts, completions)[0].sum(1)

    def step(self) -> dict[str, float]:
        """Sample, label, one preference update; returns metrics (``pairs`` = 0 means no update)."""
        cfg = self.cfg
        from rlsuite.llm.preference_losses import PREFERENCE_LOSSES
        from rlsuite.llm.tasks import preference_pairs

        prompts = [self.rng.choice(self.examples).prompt for _ in range(cfg.prompts_per_step)]
        flat = [p for p in prompts for _ in range(cfg.samples_per_prompt)]
        self.model.eval()
        *_, texts = seeded_sample(self.model, self.tok, flat, cfg.max_new_tokens, 1.0, self.gen)
        groups = [texts[i * cfg.samples_per_prompt : (i + 1) * cfg.samples_per_prompt] for i in range(cfg.prompts_per_step)]
        pairs = preference_pairs(prompts, groups, lambda p, c: verify(cfg.task, p, c))
        reward_mean = sum(verify(cfg.task, p, t) for p, t in zip(flat, texts, strict=True)) / len(flat)
        self.steps_done += 1
        if not pairs:
            log.warning("step %d: no (correct, wrong) pair among the samples; no update.", self.steps_done)
            return {"pairs": 0.0, "reward_mean": reward_mean, "loss": float("nan")}
        ps, cs, rs = (list(x) for x in zip(*pairs, strict=True))
        self.model.train()
        pol_c, pol_r = self._seq_logp(self.model, ps, cs), self._seq_logp(self.model, ps, rs)
        with torch.no_grad():
            ref_c, ref_r = self._seq_logp(self.ref, ps, cs), self._seq_logp(self.ref, ps, rs)
        fn = PREFERENCE_LOSSES.get(cfg.loss)
        kw = {"beta": cfg.beta} if cfg.loss == "dpo" else {"tau": cfg.beta} if cfg.loss == "ipo" else {"gamma": cfg.beta}
        loss_vec, _ = fn(pol_c, pol_r, ref_c, ref_r, **kw)
        loss = loss_vec.mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.opt.step()
        return {"pairs": float(len(pairs)), "reward_mean": reward_mean, "loss": loss.item()}


@dataclasses.dataclass(frozen=True)
class RunSchedule:
    """When a run (``rlsuite llm sft | train``) evaluates and checkpoints, and how it shows progress."""

    total_steps: int
    """Optimizer steps of the whole run (a resumed run continues up to this many)."""
    eval_every: int = 25
    """Evaluate every N optimizer steps (0: only before and after training)."""
    checkpoint_every: int = 0
    """Checkpoint every N optimizer steps (0: ten checkpoints over the run)."""
    keep_checkpoints: int = 3
    """Periodic checkpoints kept on disk (older ones are deleted; 0 keeps all)."""
    progress: bool = True
    """Show the progress bar on a terminal (otherwise a log line every ~5 s)."""
    tensorboard: bool = True
    """Write TensorBoard event files into tb/."""

    def __post_init__(self) -> None:
        if self.total_steps < 1 or min(self.eval_every, self.checkpoint_every, self.keep_checkpoints) < 0:
            raise ValueError(f"total_steps must be >= 1 and eval_every, checkpoint_every, keep_checkpoints >= 0; got {self}.")


#: (``metrics.csv`` columns with their legend labels, y-axis label) of the learning curve of each kind of run
SFT_CURVE = ((("train/loss", "training batches"),), "cross-entropy (nats per answer token)")
RL_CURVE = ((("train/reward", "sampled completions, training prompts"), ("eval/exact_match", "greedy exact match, held-out prompts")),
            "reward / exact match (fraction correct)")
#: trainer metric -> metrics.csv column (the others become ``train/<name>``)
METRIC_COLUMNS = {"reward_mean": "train/reward", "reward_shaped_mean": "train/reward_shaped"}


def run_training(trainer: SftTrainer | OnlineTrainer | PreferenceTrainer, run_dir: str | Path, schedule: RunSchedule,
                 evaluate: Callable[[Any], float], config_doc: dict[str, Any], title: str = "",
                 curve: tuple[tuple[tuple[str, str], ...], str] = RL_CURVE) -> dict[str, Any]:
    """Train from ``trainer.steps_done`` (0, or a resumed checkpoint's step) to ``schedule.total_steps``
    into ``run_dir`` (see docs/llm.md for its layout).

    Writes ``config.json`` (``config_doc``), one ``metrics.csv`` / TensorBoard row per step (``train/*``,
    ``time/sps`` in optimizer steps per second) and per evaluation (``eval/exact_match``,
    ``time/eval_seconds``; before training on a new run, every ``eval_every`` steps and at the end),
    checkpoints ``checkpoints/step_<N>`` (every ``checkpoint_every`` steps) and ``checkpoints/final`` with
    ``latest.json``, the trained model in ``model/`` and ``curve.png``.

    Args:
        trainer: an :class:`SftTrainer`, :class:`OnlineTrainer` or :class:`PreferenceTrainer` (state loaded when resuming).
        run_dir: the run directory (claimed by the caller).
        schedule: budget, evaluation and checkpoint schedule.
        evaluate: ``evaluate(model) -> exact match`` on the held-out examples.
        config_doc: the resolved settings (JSON-able); also stored in every checkpoint's metadata.
        title: the learning curve's title.
        curve: the curve's ``(columns with labels, y-axis label)``: :data:`SFT_CURVE` or :data:`RL_CURVE`.

    Returns:
        ``run_dir``, ``checkpoint``, ``model``, ``curve``, ``step``, ``exact_match`` (at the end),
        ``exact_match_before`` (None for a resumed run) and the last step's ``metrics``.
    """
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    total, start = schedule.total_steps, trainer.steps_done
    if start >= total:
        raise ValueError(f"the trainer is already at step {start}, at or past total_steps {total}.")
    model = trainer.model
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", config_doc)
    headline = ("train/loss", "loss") if curve[0][0][0] == "train/loss" else ("train/reward", "reward")
    logger = Logger(run_dir, total, start, tensorboard=schedule.tensorboard, progress=schedule.progress, headline=headline)
    checkpoint_every = schedule.checkpoint_every or max(1, total // 10)
    meta = {**config_doc, "model_config": model.config.to_dict()}

    def do_eval(step: int) -> float:
        t0 = time.perf_counter()
        value = evaluate(model)
        logger.log(step, {"eval/exact_match": value, "time/eval_seconds": time.perf_counter() - t0})
        return value

    def save(name: str) -> Path:
        path = save_checkpoint(ckpt_dir / name, trainer.state_dict(), {**meta, "step": trainer.steps_done})
        write_latest(ckpt_dir, name, trainer.steps_done)
        if schedule.keep_checkpoints > 0:
            for old in sorted(ckpt_dir.glob("step_*"))[: -schedule.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        return path

    metrics: dict[str, float] = {}
    try:
        before = do_eval(0) if start == 0 else None
        for step in range(start + 1, total + 1):
            metrics = trainer.step()
            row = {METRIC_COLUMNS.get(k, f"train/{k}"): v for k, v in metrics.items()}
            logger.log(step, {**row, "time/sps": logger.sps(step)})
            if step < total and schedule.eval_every and step % schedule.eval_every == 0:
                do_eval(step)
            if step < total and step % checkpoint_every == 0:
                save(f"step_{step:09d}")
        after = do_eval(total)
        ckpt = save("final")
        model_dir = save_model(model, run_dir / "model", {**meta, "step": total})
    except KeyboardInterrupt:
        logger.close()
        log.warning("interrupted at step %d; continue from the latest checkpoint with --resume %s", trainer.steps_done, run_dir)
        raise
    logger.close()
    columns, ylabel = curve
    png = plot_learning_curve(run_dir / "metrics.csv", run_dir / "curve.png", title=title, series=columns,
                              xlabel="optimizer steps", ylabel=ylabel)
    return {"run_dir": run_dir, "checkpoint": ckpt, "model": model_dir, "curve": png, "step": total,
            "exact_match": after, "exact_match_before": before, "metrics": metrics}


def resolve_model_dir(path: str | Path) -> Path:
    """The model to load from ``path``: a run directory (its latest checkpoint), or a model or checkpoint
    directory (one with ``meta.json``: ``RUN/model``, ``RUN/checkpoints/<name>``, or a directory
    written by :func:`save_model`).

    Raises:
        FileNotFoundError: ``path`` is none of these (the message says what each would hold).
    """
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    if (path / "checkpoints").is_dir():
        return find_latest(path / "checkpoints")
    if (path / "model" / "meta.json").is_file():
        return path / "model"
    what = "does not exist" if not path.exists() else "holds neither checkpoints/ nor model/ nor meta.json"
    raise FileNotFoundError(f"{str(path)!r} {what}; expected an llm run directory (from rlsuite llm sft or train) "
                            "or the model or checkpoint directory inside one.")


def load_model(path: str | Path):
    """Rebuild a model from a run directory or a model or checkpoint directory (see :func:`resolve_model_dir`);
    returns ``(model, meta)``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    state, meta = load_checkpoint(resolve_model_dir(path))
    cfg = GPT2Config.from_dict(meta["model_config"])
    model = GPT2LMHeadModel(cfg)
    model.load_state_dict(state["model"])
    return model, meta


def save_model(model, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Save a model's weights and config (safetensors + JSON)."""
    return save_checkpoint(path, {"model": model.state_dict()}, {"model_config": model.config.to_dict(), **(meta or {})})


__all__ = ["AGG_MODES", "METHODS", "RL_CURVE", "SFT_CURVE", "OnlineConfig", "OnlineTrainer", "PreferenceConfig", "PreferenceTrainer",
           "RunSchedule", "SftConfig", "SftTrainer", "exact_match", "generate", "load_model", "resolve_model_dir", "run_training",
           "save_model", "sft"]
