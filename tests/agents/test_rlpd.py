"""RLPD (rlsuite.agents.rlpd) and the pieces EXPO shares with it: the target, the subset minimum, the
ensemble losses against hand values, LayerNorm critics, symmetric sampling, and the refusal of an
offline phase (through the driver and the CLI's default)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlsuite.agents.rlpd import (
    RLPD,
    CriticEnsemble,
    MixedData,
    RLPDConfig,
    ensemble_critic_loss,
    random_members,
    rlpd_actor_loss,
    rlpd_target,
    subset_min,
)
from rlsuite.cli.train import train_from_argv
from rlsuite.core.nets import EnsembleLayerNorm, EnsembleLinear, EnsembleMLP
from rlsuite.offline.datasets import DatasetError
from rlsuite.offline.train import read_evaluations, train_offline
from tests.offline.helpers import write_mixed_dataset

TINY = {"start_training": 10, "hidden_sizes": (16, 16), "batch_size": 16, "num_qs": 3, "utd": 1}

# ----------------------------------------------------------------------------- pure functions


def test_rlpd_target_by_hand():
    # gamma 0.9, alpha 0.2, r = [1, 0], terminated = [0, 1], next_q = [5, 5], log pi(a'|s') = [-1, 2]
    # with the entropy term: v = [5 - 0.2 * -1, 5 - 0.2 * 2] = [5.2, 4.6]; y = [1 + 0.9 * 5.2, 0 + 0] = [5.68, 0]
    # without it:           v = [5, 5];                           y = [1 + 0.9 * 5, 0] = [5.5, 0]
    args = (torch.tensor([1.0, 0.0]), torch.tensor([False, True]), torch.tensor([5.0, 5.0]))
    np.testing.assert_allclose(rlpd_target(*args, torch.tensor([-1.0, 2.0]), torch.tensor(0.2), 0.9).numpy(), [5.68, 0.0], rtol=1e-6)
    np.testing.assert_allclose(rlpd_target(*args, None, torch.tensor(0.2), 0.9).numpy(), [5.5, 0.0], rtol=1e-6)


def test_subset_min_takes_the_minimum_over_the_chosen_members_only():
    q = torch.tensor([[1.0, 8.0], [5.0, 2.0], [3.0, 3.0], [0.0, 9.0]])  # (K=4, B=2)
    assert subset_min(q, torch.tensor([1, 2])).tolist() == [3.0, 2.0]  # min(5, 3), min(2, 3)
    assert subset_min(q, torch.tensor([0, 3])).tolist() == [0.0, 8.0]
    assert subset_min(q, torch.tensor([2])).tolist() == [3.0, 3.0]
    assert subset_min(q[..., None].expand(4, 2, 5), torch.tensor([1, 2])).shape == (2, 5)  # (K, B, n) -> (B, n)


def test_random_members_are_distinct_and_in_range():
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        m = random_members(10, 2, g, torch.device("cpu"))
        assert m.shape == (2,) and m.dtype == torch.long and m[0] != m[1] and 0 <= int(m.min()) and int(m.max()) < 10
        seen.update(m.tolist())
    assert seen == set(range(10))  # every member gets drawn
    assert sorted(random_members(5, 5, g, torch.device("cpu")).tolist()) == [0, 1, 2, 3, 4]


def test_ensemble_critic_loss_is_the_mean_over_heads_and_batch():
    # q (K=2, B=2) = [[1, 2], [3, 4]], y = [1, 1]: squared errors [[0, 1], [4, 9]], mean 14 / 4 = 3.5
    loss, stats = ensemble_critic_loss(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1.0, 1.0]))
    assert float(loss) == pytest.approx(3.5) and float(stats["q_mean"]) == pytest.approx(2.5)


def test_rlpd_actor_loss_uses_the_mean_over_the_ensemble():
    # alpha 0.5, log pi = [-1, 0.5], q (K=2, B=2) = [[1, 2], [3, 6]]: mean_k Q = [2, 4]
    # loss = mean(0.5 * -1 - 2, 0.5 * 0.5 - 4) = mean(-2.5, -3.75) = -3.125 (the minimum over k would give -2.125)
    q = torch.tensor([[1.0, 2.0], [3.0, 6.0]], requires_grad=True)
    loss, stats = rlpd_actor_loss(torch.tensor([-1.0, 0.5]), q, torch.tensor(0.5))
    assert float(loss.detach()) == pytest.approx(-3.125) and float(stats["entropy"]) == pytest.approx(0.25)
    loss.backward()
    np.testing.assert_allclose(q.grad.numpy(), np.full((2, 2), -0.25))  # every head weighs -1 / (K B)


# ----------------------------------------------------------------------------- networks


def test_critic_ensemble_shapes_for_one_and_many_actions_per_state():
    torch.manual_seed(0)
    critic = CriticEnsemble(3, 2, 4, (8,), layer_norm=True)
    obs, act = torch.randn(5, 6, 3), torch.rand(5, 6, 2) * 2 - 1
    assert critic(obs[:, 0], act[:, 0]).shape == (4, 5)
    q = critic(obs, act)
    assert q.shape == (4, 5, 6)
    for j in range(6):  # candidate j of every state is the (B, obs) call on those pairs
        torch.testing.assert_close(q[:, :, j], critic(obs[:, j], act[:, j]), rtol=1e-5, atol=1e-6)


def test_ensemble_mlp_layer_norm_normalises_with_a_scale_and_shift_per_member():
    torch.manual_seed(0)
    net = EnsembleMLP(3, 4, 1, (8, 8), layer_norm=True)
    kinds = [type(m).__name__ for m in net.net]
    assert kinds == ["EnsembleLinear", "EnsembleLayerNorm", "ReLU", "EnsembleLinear", "EnsembleLayerNorm", "ReLU", "EnsembleLinear"]
    norms = [m for m in net.net if isinstance(m, EnsembleLayerNorm)]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n in norms:
            assert n.weight.shape == (3, 1, 8) and n.bias.shape == (3, 1, 8)
            n.weight.copy_(torch.rand(3, 1, 8, generator=g) + 0.5)
            n.bias.copy_(torch.randn(3, 1, 8, generator=g))
    seen = []
    hooks = [n.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp[0], out))) for n in norms]
    x = 10 * torch.randn(32, 4, generator=g) + 3  # far from normalised
    out = net(x)
    for h in hooks:
        h.remove()
    assert out.shape == (3, 32, 1) and len(seen) == 2
    for mod, inp, y in seen:
        z = (y - mod.bias) / mod.weight  # the activations before the affine
        torch.testing.assert_close(z.mean(-1), torch.zeros(3, 32), rtol=0, atol=1e-5)
        torch.testing.assert_close(z.std(-1, unbiased=False), torch.ones(3, 32), rtol=0, atol=1e-3)
        ref = (inp - inp.mean(-1, keepdim=True)) / (inp.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
        torch.testing.assert_close(z, ref, rtol=1e-4, atol=1e-4)
    # member 1's scale moves member 1's output only
    with torch.no_grad():
        norms[-1].weight[1].mul_(3.0)
        after = net(x)
    assert torch.equal(after[0], out[0]) and torch.equal(after[2], out[2]) and not torch.allclose(after[1], out[1])
    with pytest.raises(ValueError, match="layer_norm"):
        net.member(0)
    plain = EnsembleMLP(3, 4, 1, (8, 8))
    assert not any(isinstance(m, EnsembleLayerNorm) for m in plain.net) and sum(isinstance(m, EnsembleLinear) for m in plain.net) == 3


# ----------------------------------------------------------------------------- data


def _arrays(n=100, seed=0):
    rng = np.random.default_rng(seed)
    return {"observations": (5 + 2 * rng.normal(size=(n, 3))).astype(np.float32), "actions": rng.uniform(-3, 1, (n, 1)).astype(np.float32),
            "rewards": np.zeros(n, np.float32), "next_observations": rng.normal(size=(n, 3)).astype(np.float32),
            "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}


def test_mixed_data_is_all_dataset_before_online_data_and_exactly_half_after():
    arr = _arrays()
    data = MixedData(arr, np.array([-3.0]), np.array([1.0]), torch.device("cpu"), reward_scale=2.0, reward_bias=-1.0)
    # the dataset as stored: standardised observations, actions scaled to [-1, 1], rewards 2 r - 1 (dataset r = 0 -> -1)
    torch.testing.assert_close(data.offline.obs.mean(0), torch.zeros(3), rtol=0, atol=1e-4)
    np.testing.assert_allclose(data.offline.actions.numpy(), 2 * (arr["actions"] + 3) / 4 - 1, rtol=1e-5, atol=1e-6)
    assert bool((data.offline.rewards == -1.0).all())
    g = torch.Generator().manual_seed(0)
    assert bool((data.sample(16, 0.5, g)["rewards"] == -1.0).all())  # no online replay yet: all dataset
    data.ensure_online(10)
    assert bool((data.sample(16, 0.5, g)["rewards"] == -1.0).all())  # an empty online replay: all dataset
    for i in range(3):  # online reward 1 -> 2 * 1 - 1 = 1
        data.add_online(arr["observations"][i], np.array([0.5], np.float32), 1.0, arr["next_observations"][i], False)
    batch = data.sample(16, 0.5, g)
    assert batch["rewards"][:8].tolist() == [-1.0] * 8 and batch["rewards"][8:].tolist() == [1.0] * 8  # dataset first, then online
    assert int((data.sample(16, 0.25, g)["rewards"] == -1.0).sum()) == 4
    # online observations are standardised with the dataset's statistics
    torch.testing.assert_close(data.online.obs[0], data.offline.obs[0])


# ----------------------------------------------------------------------------- no offline phase


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("rlpd-data")
    return root, write_mixed_dataset(root, steps=1500)


def test_rlpd_refuses_an_offline_phase(data_root, tmp_path):
    root, ds = data_root
    with pytest.raises(DatasetError, match="rlpd has no offline phase .* received --offline-steps 10: use --offline-steps 0 and --online-steps N"):
        train_offline("rlpd", ds, 10, 20, eval_episodes=1, run_dir=tmp_path / "run", root=root, config=TINY)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    agent = RLPD(RLPDConfig(**TINY), 3, 1)
    with pytest.raises(ValueError, match="use --offline-steps 0"):
        agent.learn_offline(5)


def test_the_cli_default_runs_no_offline_update(data_root, tmp_path):
    root, ds = data_root
    run = tmp_path / "run"
    _, summary = train_from_argv(["rlpd", "--dataset", ds, "--data-dir", str(root), "--online-steps", "20", "--eval-every", "20",
                                  "--eval-episodes", "1", "--device", "cpu", "--start-training", "10", "--hidden-sizes", "16", "16",
                                  "--batch-size", "16", "--num-qs", "3", "--utd", "1", "--run-dir", str(run)])
    assert json.loads((run / "config.json").read_text())["offline_steps"] == 0
    assert [(r["phase"], r["step"]) for r in read_evaluations(run)] == [("online", 20)]
    # updates only online, one per env step from the 10th on: env steps 10 .. 20 -> 11
    assert summary["agent"].updates == 11 and summary["agent"].online_steps == 20
    assert not (run / "checkpoints" / "offline_partial").exists()


def test_a_run_with_nothing_to_learn_is_refused(data_root, tmp_path):
    root, ds = data_root
    with pytest.raises(DatasetError, match="--online-steps"):
        train_offline("rlpd", ds, 0, 0, eval_episodes=1, run_dir=tmp_path / "run", root=root, config=TINY)
    assert not (tmp_path / "run").exists()
