"""The LLM trainer: validation, split invariance, checkpoints, and learning on the addition task."""

import copy
import functools
import logging
import os
import statistics

import pytest
import torch

pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rlsuite.core.registry import UnknownNameError  # noqa: E402
from rlsuite.llm.kl import kl_shaped_rewards  # noqa: E402
from rlsuite.llm.model import completion_mask_from_ids, tiny_causal_lm  # noqa: E402
from rlsuite.llm.tasks import CharTokenizer, make_split  # noqa: E402
from rlsuite.llm.trainer import OnlineConfig, OnlineTrainer, exact_match, load_model, sft  # noqa: E402


@functools.cache
def addition_data():
    """The tokenizer, 2000 training and 200 held-out 2-digit addition examples."""
    return CharTokenizer(), make_split("addition", 2000, 0, False), make_split("addition", 200, 1, True)


@pytest.fixture(scope="module")
def data():
    return addition_data()


def test_invalid_configurations_fail_at_construction():
    with pytest.raises(ValueError, match="group_size >= 2"):
        OnlineConfig(method="grpo", group_size=1)
    with pytest.raises(ValueError, match="must divide"):
        OnlineConfig(prompts_per_step=3, group_size=4, micro_batch_size=5)
    with pytest.raises(UnknownNameError, match="Did you mean 'grpo'"):
        OnlineConfig(method="grpoo")
    OnlineConfig(method="remax", group_size=1, micro_batch_size=4, prompts_per_step=4)  # ReMax needs no group


def test_completion_mask_stops_after_eos():
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]])
    mask, truncated = completion_mask_from_ids(ids, eos_id=2)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]] and truncated.tolist() == [False, True]


@functools.cache
def warm_model():
    """A model after 500 SFT steps: rewards vary within groups, so advantages are not all zero (do not modify it:
    it is shared; deep-copy it)."""
    tok, train, _ = addition_data()
    model = tiny_causal_lm(tok.vocab_size, seed=0)
    sft(model, tok, train, 500, seed=0)
    return model


@pytest.fixture(scope="module")
def warm(data):
    return warm_model()


def _one_step(tok, train, warm, micro, method="grpo", inner_epochs=1, beta=0.0):
    model = copy.deepcopy(warm)
    cfg = OnlineConfig(method=method, prompts_per_step=8, group_size=4, micro_batch_size=micro, seed=5,
                       inner_epochs=inner_epochs, beta=beta)
    tr = OnlineTrainer(model, tok, train, cfg)
    metrics = tr.step()
    return model, metrics


@pytest.mark.parametrize("method,beta", [("grpo", 0.0), ("dr_grpo", 0.04), ("gspo", 0.0), ("cispo", 0.0), ("bapo", 0.0), ("ngrpo", 0.0)])
def test_micro_batch_split_does_not_change_the_update(data, warm, method, beta):
    tok, train, _ = data
    a, ma = _one_step(tok, train, warm, micro=32, method=method, beta=beta)
    b, mb = _one_step(tok, train, warm, micro=8, method=method, beta=beta)
    assert ma["reward_mean"] == mb["reward_mean"] and 0 < ma["frac_zero_std_groups"] < 1
    # Compare the accumulated gradients (what the split could change). Parameters after Adam's first step are
    # not compared: where a gradient is ~1e-12 (e.g. attention key biases), Adam's g/|g| amplifies float noise.
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-8, msg=f"gradient of {n} differs")
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), warm.parameters(), strict=True)), "parameters did not move"


def test_kl_shaped_rewards_hand_computed():
    r = torch.tensor([1.0, 0.0])
    logp = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]])
    ref = torch.tensor([[-1.5, -1.0], [-0.5, -3.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    out = kl_shaped_rewards(r, logp, ref, mask, beta=0.1, kind="k1")  # k1 = logp - ref, summed over valid tokens
    torch.testing.assert_close(out, torch.tensor([1.0 - 0.1 * (0.5 - 1.0), 0.0]))


def test_kl_in_reward_moves_the_penalty_out_of_the_loss(data, warm):
    tok, train, _ = data
    out = {}
    for in_reward in (False, True):
        model = copy.deepcopy(warm)
        tr = OnlineTrainer(model, tok, train, OnlineConfig(prompts_per_step=8, group_size=4, micro_batch_size=32, beta=0.5,
                                                           kl_in_reward=in_reward, seed=3))
        with torch.no_grad():  # move the policy away from its frozen reference
            g = torch.Generator().manual_seed(0)
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        out[in_reward] = tr.step()
    in_loss, in_reward = out[False], out[True]
    assert in_loss["kl"] > 0 and in_loss["reward_shaped_mean"] == in_loss["reward_mean"]
    assert in_reward["kl"] == 0 and in_reward["reward_shaped_mean"] < in_reward["reward_mean"]  # k3 >= 0: a penalty


def test_health_checks_warn_loudly(data, warm, caplog):
    tok, train, _ = data
    tr = OnlineTrainer(copy.deepcopy(warm), tok, train, OnlineConfig(max_new_tokens=1, prompts_per_step=4, group_size=4, micro_batch_size=16))
    with caplog.at_level(logging.WARNING, logger="rlsuite"):
        m = tr.step()
    assert m["frac_truncated"] == 1.0 and m["frac_zero_std_groups"] == 1.0
    assert "every completion hit max_new_tokens=1" in caplog.text and "zero reward variance" in caplog.text


def test_vade_prompt_sampler_records_every_rollout(data, warm):
    tok, train, _ = data
    tr = OnlineTrainer(copy.deepcopy(warm), tok, train, OnlineConfig(prompt_sampler="vade", prompts_per_step=8, group_size=4, micro_batch_size=32))
    m = tr.step()
    evidence = tr.vade.alpha + tr.vade.beta - 2.0  # prior (1, 1); untouched prompts stay at the prior
    assert int((evidence > 0).sum()) == 8 and float(evidence.sum()) == pytest.approx(32.0)
    assert float(tr.vade.alpha.sum() - len(train)) == pytest.approx(m["reward_mean"] * 32)
    with pytest.raises(ValueError, match="allowed: uniform, vade"):
        OnlineConfig(prompt_sampler="thompson")


DATASET_RESET_MIN_REWARD_GAIN = 0.05


def dataset_reset_reward_gain(seed: int, workdir=None) -> dict[str, float]:
    """Mean reward of one step's 64 rollouts from the warm model with ``dataset_reset_prob`` 1 minus that with 0
    (same ``seed``). Also run over seeds and thread counts by scripts/check_seeds.py."""
    tok, train, _ = addition_data()
    rewards = {}
    for prob in (0.0, 1.0):
        tr = OnlineTrainer(copy.deepcopy(warm_model()), tok, train, OnlineConfig(dataset_reset_prob=prob, prompts_per_step=16,
                                                                                 group_size=4, micro_batch_size=64, seed=seed))
        rewards[prob] = tr.step()["reward_mean"]
    return {"reward_gain": rewards[1.0] - rewards[0.0]}


def test_dataset_reset_rollouts_continue_answer_prefixes():
    """DR-PO: starting from a prefix of the reference answer makes the (prefix + generation) reward higher."""
    m = dataset_reset_reward_gain(1)
    assert m["reward_gain"] > DATASET_RESET_MIN_REWARD_GAIN, m


def test_checkpoint_round_trip(data, tmp_path):
    tok, train, test = data
    model = tiny_causal_lm(tok.vocab_size, seed=0)
    tr = OnlineTrainer(model, tok, train, OnlineConfig(prompts_per_step=4, group_size=2, micro_batch_size=8))
    tr.step()
    tr.save(tmp_path / "ck")
    loaded, meta = load_model(tmp_path / "ck")
    assert meta["llm_config"]["method"] == "grpo"
    for p, q in zip(model.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(p, q)
    assert exact_match(model, tok, test[:20]) == exact_match(loaded, tok, test[:20])


def _trainer(kind: str, model, tok, train):
    from rlsuite.llm.trainer import PreferenceConfig, PreferenceTrainer, SftConfig, SftTrainer

    if kind == "sft":
        return SftTrainer(model, tok, train, SftConfig(batch_size=8, seed=4))
    if kind == "dpo":
        return PreferenceTrainer(model, tok, train, PreferenceConfig(prompts_per_step=4, samples_per_prompt=4, seed=4))
    # every part of the online state at once: reference model, VADE, dataset reset, old log-probs (inner epochs)
    return OnlineTrainer(model, tok, train, OnlineConfig(method=kind, prompts_per_step=4, group_size=4, micro_batch_size=8, beta=0.1,
                                                         inner_epochs=2, prompt_sampler="vade", dataset_reset_prob=0.5, seed=4))


@pytest.mark.parametrize("kind", ["sft", "grpo", "dpo"])
def test_a_trainer_restored_from_its_checkpoint_takes_the_same_steps(data, warm, tmp_path, kind):
    """Exact resume: 2 steps, checkpoint (safetensors + JSON), a fresh trainer loads it and takes step 3; the same
    weights and metrics as 3 uninterrupted steps (the RNGs, Adam moments, reference and sampler states are restored)."""
    from rlsuite.core.checkpoint import load_checkpoint, save_checkpoint

    tok, train, _ = data
    straight = _trainer(kind, copy.deepcopy(warm), tok, train)
    expected = [straight.step() for _ in range(3)][-1]
    first = _trainer(kind, copy.deepcopy(warm), tok, train)
    first.step(), first.step()
    save_checkpoint(tmp_path / "ck", first.state_dict())
    fresh_model = tiny_causal_lm(tok.vocab_size, seed=9)  # other weights: everything must come from the checkpoint
    resumed = _trainer(kind, fresh_model, tok, train)
    resumed.load_state_dict(load_checkpoint(tmp_path / "ck")[0])
    assert resumed.steps_done == 2
    got = resumed.step()
    assert got == pytest.approx(expected, rel=0, abs=0, nan_ok=True)
    for p, q in zip(straight.model.parameters(), fresh_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_checkpoint_of_other_settings_is_refused(data, warm):
    from rlsuite.core.checkpoint import CheckpointError

    tok, train, _ = data
    with_vade = _trainer("grpo", copy.deepcopy(warm), tok, train).state_dict()
    plain = OnlineTrainer(copy.deepcopy(warm), tok, train, OnlineConfig(prompts_per_step=4, group_size=4, micro_batch_size=16))
    with pytest.raises(CheckpointError, match=r"other settings .*--prompt-sampler"):
        plain.load_state_dict(with_vade)


def test_sft_function_matches_the_trainer_and_lowers_the_loss(data):
    from rlsuite.llm.trainer import SftConfig, SftTrainer

    tok, train, _ = data
    losses = sft(tiny_causal_lm(tok.vocab_size, seed=0), tok, train, 20, batch_size=16, seed=2)
    tr = SftTrainer(tiny_causal_lm(tok.vocab_size, seed=0), tok, train, SftConfig(batch_size=16, seed=2))
    assert [tr.step()["loss"] for _ in range(20)] == losses
    assert sum(losses[-5:]) < sum(losses[:5])


def test_preference_config_validation():
    from rlsuite.llm.trainer import PreferenceConfig

    with pytest.raises(ValueError, match="samples_per_prompt"):
        PreferenceConfig(samples_per_prompt=1)
    with pytest.raises(ValueError, match="allowed: dpo, ipo, rso"):
        PreferenceConfig(loss="xpo")


SEEDS = (0, 1, 2)
LEARNING_STEPS = 200
#: The median over SEEDS of the held-out exact-match gain must reach these. Set below the worst median of any 3 of
#: the seeds measured with 1 and 2 torch threads (scripts/check_seeds.py; table in docs/learning_tests.md).
#: Measured on an Intel Xeon, medians over seeds 0-2 with 1 / 2 threads (docs/learning_tests.md): held-out gain
#: GRPO +0.05 / +0.08, ReMax (lr 3e-4) +0.02 / +0.035, online DPO (beta 0.5) +0.04 / -0.01; training-reward gain
#: GRPO +0.119 / +0.072, ReMax +0.056 / +0.035, DPO +0.094 / +0.036. (On an AMD EPYC with 2 threads the held-out
#: gains were larger: GRPO +0.17, ReMax +0.13, DPO +0.155; the SFT warm start itself differs between CPUs.)
#: So all three raise the reward they are trained on. Held out, over seeds 0-4 the worst median of any three seeds
#: is -0.005 for GRPO (seeds 2-4 with 1 thread), +0.02 for ReMax and -0.01 for DPO: no method reliably raises
#: held-out accuracy on every choice of seeds here, so GRPO and DPO are only asserted not to lose more than 0.03 /
#: 0.05 of it and ReMax not to lose any; the improvement asserted is the training reward's.
GRPO_MIN_MEDIAN_GAIN = -0.03
REMAX_MIN_MEDIAN_GAIN = 0.0
DPO_MIN_MEDIAN_GAIN = -0.05
MIN_MEDIAN_GAIN = {"grpo": GRPO_MIN_MEDIAN_GAIN, "remax": REMAX_MIN_MEDIAN_GAIN, "dpo": DPO_MIN_MEDIAN_GAIN}
GRPO_MIN_MEDIAN_TRAIN_REWARD_GAIN = 0.035
REMAX_MIN_MEDIAN_TRAIN_REWARD_GAIN = 0.015
DPO_MIN_MEDIAN_TRAIN_REWARD_GAIN = 0.015
MIN_MEDIAN_TRAIN_REWARD_GAIN = {"grpo": GRPO_MIN_MEDIAN_TRAIN_REWARD_GAIN, "remax": REMAX_MIN_MEDIAN_TRAIN_REWARD_GAIN,
                                "dpo": DPO_MIN_MEDIAN_TRAIN_REWARD_GAIN}


def _trained(method: str, seed: int, tok, train, warm, steps: int = LEARNING_STEPS):
    from rlsuite.llm.trainer import PreferenceConfig, PreferenceTrainer

    model = copy.deepcopy(warm)
    if method == "dpo":
        trainer = PreferenceTrainer(model, tok, train, PreferenceConfig(seed=seed, beta=0.5))
    else:  # ReMax's unnormalised advantages need a smaller step than GRPO's standardised ones
        cfg = OnlineConfig(method=method, seed=seed, learning_rate=3e-4 if method == "remax" else 1e-3)
        trainer = OnlineTrainer(model, tok, train, cfg)
    rewards = [trainer.step()["reward_mean"] for _ in range(steps)]
    return model, rewards


def method_gain(seed: int, workdir=None, method: str = "grpo", steps: int = LEARNING_STEPS) -> dict[str, float]:
    """``steps`` steps of ``method`` with RL seed ``seed`` from the warm model (the same for every seed).
    ``gain``: held-out greedy exact match after minus before; ``train_reward_gain``: mean sampled reward on
    the training prompts over the last 20 steps minus the first 20. Also run by scripts/check_seeds.py."""
    tok, train, test = addition_data()
    warm = warm_model()
    before = exact_match(warm, tok, test)
    model, rewards = _trained(method, seed, tok, train, warm, steps)
    after = exact_match(model, tok, test)
    k = min(20, steps // 2)
    return {"before": before, "after": after, "gain": after - before,
            "train_reward_gain": sum(rewards[-k:]) / k - sum(rewards[:k]) / k}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["grpo", "remax", "dpo"])
def test_method_learns_over_three_seeds(method):
    """A 0.1 M-parameter GPT-2 after 500 SFT steps on 2-digit addition, then 200 steps of 32 prompts x 8 samples,
    three RL seeds from the same warm start: the medians over the seeds of the training-reward gain and of the
    held-out greedy exact-match gain reach the bounds above (for DPO the held-out bound is a floor on a loss)."""
    runs = [method_gain(s, method=method) for s in SEEDS]
    assert runs[0]["before"] < 0.5  # headroom
    train_gains, gains = [r["train_reward_gain"] for r in runs], [r["gain"] for r in runs]
    assert statistics.median(train_gains) >= MIN_MEDIAN_TRAIN_REWARD_GAIN[method], f"{method}: training-reward gains {train_gains}"
    assert statistics.median(gains) >= MIN_MEDIAN_GAIN[method], f"{method}: held-out gains {gains}"


SMOKE_STEPS = 60
SMOKE_MIN_TRAIN_REWARD_GAIN = 0.0


def grpo_smoke(seed: int, workdir=None) -> dict[str, float]:
    """``SMOKE_STEPS`` GRPO steps from the warm model: the training-reward gain of :func:`method_gain` (last 20
    steps minus first 20). Also run over seeds and thread counts by scripts/check_seeds.py."""
    m = method_gain(seed, method="grpo", steps=SMOKE_STEPS)
    return {"train_reward_gain": m["train_reward_gain"], "gain": m["gain"]}


def test_a_few_grpo_steps_raise_the_training_reward():
    """The fast stand-in for the slow three-seed test above (seed 0, 60 steps). (The teacher-forced likelihood of
    the reference answers is not a usable stand-in: it fell after 30 steps, measured at seed 0.)"""
    m = grpo_smoke(0)
    assert m["train_reward_gain"] > SMOKE_MIN_TRAIN_REWARD_GAIN, m


def test_zero_advantage_control_does_not_change_the_model(data, warm):
    """Exact, so a few steps per seed show it (the learning runs above take 200)."""
    tok, train, test = data
    before = exact_match(warm, tok, test)
    for s in SEEDS:
        model, _ = _trained("zero_advantage", s, tok, train, warm, steps=30)
        assert exact_match(model, tok, test) == before
        assert all(torch.equal(p, q) for p, q in zip(model.parameters(), warm.parameters(), strict=True))
