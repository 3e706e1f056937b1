"""Tiny causal language models built locally from a transformers config, and per-token log-probs.

No hub access is needed or attempted: models come from ``GPT2Config`` with a fixed seed.
"""

from __future__ import annotations

import torch


def tiny_causal_lm(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, max_positions: int = 64, seed: int = 0):
    """A GPT-2-architecture causal LM of about 0.1 M parameters (``hidden=64, layers=2``), initialised with
    ``seed``; dropout is off so that training is a deterministic function of the seeds."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=vocab_size, n_positions=max_positions, n_embd=hidden, n_layer=layers, n_head=heads,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPT2LMHeadModel(cfg)


def completion_logprobs(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies of the completion tokens under ``model`` with its logits divided by
    ``temperature`` (the distribution the completions were sampled from, so ratios stay consistent).

    Args:
        prompt_ids, prompt_mask: ``(B, P)``, left-padded prompts.
        completion_ids, completion_mask: ``(B, C)``, right-padded completions.

    Returns:
        ``(logp, entropy)``, both ``(B, C)`` (zero where ``completion_mask`` is 0).
    """
    ids = torch.cat([prompt_ids, completion_ids], 1)
    att = torch.cat([prompt_mask, completion_mask], 1)
    pos = (att.cumsum(1) - 1).clamp_min(0)
    logits = model(input_ids=ids, attention_mask=att, position_ids=pos).logits
    p = prompt_ids.shape[1]
    logits = logits[:, p - 1 : -1].float() / temperature
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    m = completion_mask.to(logp.dtype)
    return logp * m, entropy * m


def completion_mask_from_ids(completion_ids: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask ``(B, C)`` of the tokens up to and including the first EOS, and the truncated flags ``(B,)`` (no EOS)."""
    is_eos = completion_ids == eos_id
    seen_before = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    return (~seen_before).long(), ~is_eos.any(1)
