"""The LLM trainer on one CUDA device (skipped without a GPU)."""

import copy
import os

import pytest
import torch

pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rlsuite.llm.model import tiny_causal_lm  # noqa: E402
from rlsuite.llm.tasks import CharTokenizer, make_split  # noqa: E402
from rlsuite.llm.trainer import (  # noqa: E402
    OnlineConfig,
    OnlineTrainer,
    PreferenceConfig,
    PreferenceTrainer,
    exact_match,
    sft,
)

pytestmark = pytest.mark.gpu


def test_online_and_preference_steps_run_on_cuda():
    tok = CharTokenizer()
    train, test = make_split("addition", 500, 0, False), make_split("addition", 50, 1, True)
    model = tiny_causal_lm(tok.vocab_size, seed=0).to("cuda")
    sft(model, tok, train, 100, seed=0)
    assert next(model.parameters()).device.type == "cuda"
    for method in ("grpo", "remax", "bapo"):
        tr = OnlineTrainer(copy.deepcopy(model), tok, train, OnlineConfig(method=method, prompts_per_step=8, group_size=4,
                                                                          micro_batch_size=8, beta=0.05, inner_epochs=2))
        m = tr.step()
        assert all(torch.isfinite(torch.tensor(v)) for v in m.values()), (method, m)
    pt = PreferenceTrainer(copy.deepcopy(model), tok, train, PreferenceConfig(prompts_per_step=8))
    assert pt.step()["pairs"] >= 0
    assert 0.0 <= exact_match(model, tok, test) <= 1.0
