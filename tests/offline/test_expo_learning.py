"""EXPO end to end on a one-step task where expressiveness matters (fixed seeds, CPU).

The dataset's behaviour plays +0.7 or -0.7 at random whatever the context, and only the mode that matches
the sign of the context pays (tests/offline/helpers.py: TwoModeBandit): a Gaussian cloned from the data
sits between the modes and earns ~0 (normalised score ~0), sampling the modes at random earns ~50, and
picking the right mode per context earns ~100. EXPO's diffusion base keeps both modes and its critic picks
between them. Thresholds come from scripts/check_seeds.py (docs/learning_tests.md)."""

import pytest

from rlsuite.offline.train import read_evaluations, train_offline
from tests.offline.helpers import BANDIT_DS_ID, register_two_mode_bandit, write_two_mode_dataset

# small networks, one critic update per env step: about a minute of CPU for the whole run
SMALL = dict(utd=1, batch_size=128, num_qs=5, hidden_sizes=(64, 64), start_training=0, denoiser_width=64, denoiser_blocks=1,
             time_dim=16, eval_samples=8)
ONLINE_STEPS = 1000
# over seeds 0-4 x 1, 2 torch threads (Intel Xeon, docs/learning_tests.md): EXPO's score 51.4-77.9 (median 69.7),
# of which its choice among candidates adds 31.3-57.0 over the trained base sampled alone (one sample per
# context, no critic); BC on these data scores ~0. Thresholds about 10 points below the worst case.
EXPO_MIN_SCORE = 40.0
MIN_SELECTION_GAIN = 20.0


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bandit")
    write_two_mode_dataset(root)
    return root


def expo_bandit(seed: int, workdir, data_root=None) -> dict[str, float]:
    """EXPO online for ONLINE_STEPS env steps with the bandit's dataset in every minibatch (no pretraining)."""
    register_two_mode_bandit()
    if data_root is None:
        data_root = workdir / "data"
        write_two_mode_dataset(data_root)
    out = train_offline("expo", BANDIT_DS_ID, 0, ONLINE_STEPS, seed=seed, eval_every=ONLINE_STEPS // 2, eval_episodes=100,
                        run_dir=workdir / "expo", root=data_root, config=SMALL, tensorboard=False)
    first = read_evaluations(workdir / "expo")[0]["normalized_score"]
    base = base_only_score(out["agent"], seed)
    return {"expo_score": float(out["online_score"]), "expo_halfway": float(first), "base_only_score": base,
            "selection_gain": float(out["online_score"]) - base}


def base_only_score(agent, seed: int, episodes: int = 400) -> float:
    """Normalised score of the trained EMA base alone: one sample per context, no edit, no critic (what
    EXPO's selection adds to the expressive base is the difference)."""
    import numpy as np
    import torch

    from rlsuite.core.diffusion import sample_actions
    from tests.offline.helpers import TwoModeBandit

    env, rewards = TwoModeBandit(), []
    gen = torch.Generator().manual_seed(seed + 12345)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 50_000 + i)
        with torch.no_grad():
            a = sample_actions(agent.ema, agent.schedule, agent.data.norm_obs(obs[None]), 1, gen)[0, 0]
        rewards.append(env.step(agent.data.unscale_action(a[None])[0])[1])
    return 100.0 * float(np.mean(rewards))


def test_expo_picks_the_paying_mode_of_a_two_mode_dataset(data_root, tmp_path):
    m = expo_bandit(0, tmp_path, data_root)
    assert m["expo_score"] >= EXPO_MIN_SCORE, m
    assert m["selection_gain"] >= MIN_SELECTION_GAIN, m  # the critic's choice among candidates, not the base, earns it
