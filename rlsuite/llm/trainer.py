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

``sft`` warms a model up on reference answers; ``exact_match`` evaluates greedy decoding; checkpoints
are safetensors + JSON through ``rlsuite.core.checkpoint``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from rlsuite.core.checkpoint import load_checkpoint, save_checkpoint
from rlsuite.core.config import config_to_dict
from rlsuite.core.registry import UnknownNameError, unknown_name_message
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


def sft(model, tok: CharTokenizer, examples: Sequence[Example], steps: int, batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Teacher-forced cross-entropy on ``prompt + answer + <eos>`` (loss on the answer and EOS only).

    Returns the loss of every step.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = random.Random(seed)
    losses = []
    model.train()
    for _ in range(steps):
        batch = [rng.choice(examples) for _ in range(batch_size)]
        logp, c_mask = teacher_forced_logprobs(model, tok, [e.prompt for e in batch], [e.answer for e in batch])
        loss = -aggregate(logp, c_mask, "token-mean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


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

    def save(self, path: str | Path) -> Path:
        """Model and optimizer weights (safetensors) with the config (JSON)."""
        state = {"model": self.model.state_dict(), "optim": self.opt.state_dict(), "steps_done": self.steps_done}
        return save_checkpoint(path, state, {"llm_config": config_to_dict(self.cfg), "model_config": self.model.config.to_dict()})


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
        if not pairs:
            log.warning("no (correct, wrong) pair among the samples of this step; no update.")
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


def run_steps(trainer: OnlineTrainer | PreferenceTrainer, steps: int, log_every: int = 25,
              on_log: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """``steps`` optimisation steps of an online or preference trainer; ``on_log(step, metrics)`` every
    ``log_every`` steps and at the last one. Returns the last step's metrics."""
    metrics: dict[str, float] = {}
    for i in range(steps):
        metrics = trainer.step()
        if on_log is not None and (i % log_every == 0 or i == steps - 1):
            on_log(i, metrics)
    return metrics


def load_model(path: str | Path):
    """Rebuild a model saved by :meth:`OnlineTrainer.save` or :func:`save_model`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    state, meta = load_checkpoint(path)
    cfg = GPT2Config.from_dict(meta["model_config"])
    model = GPT2LMHeadModel(cfg)
    model.load_state_dict(state["model"])
    return model, meta


def save_model(model, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Save a model's weights and config (safetensors + JSON)."""
    return save_checkpoint(path, {"model": model.state_dict()}, {"model_config": model.config.to_dict(), **(meta or {})})


__all__ = ["AGG_MODES", "METHODS", "OnlineConfig", "OnlineTrainer", "PreferenceConfig", "PreferenceTrainer", "exact_match", "generate", "load_model", "save_model", "sft"]
