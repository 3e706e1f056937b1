"""Uni-O4 end to end on a small generated dataset (fixed seeds, CPU): offline it beats BC, and the
online phase improves on the offline policy. Each figure in the comments was measured on AMD EPYC."""

import statistics

import pytest

from rlsuite.offline.train import read_evaluations, train_offline
from tests.offline.helpers import DS_ID, write_mixed_dataset

SMALL = dict(hidden_sizes=(64, 64), batch_size=256, dynamics_hidden=(64, 64), dynamics_max_epochs=20, ope_horizon=50, ope_starts=256,
             ope_every=100)


BC_MAX_SCORE = 10.0
# Uni-O4 minus BC over seeds 0-4 x 1, 2 torch threads (Intel Xeon, docs/learning_tests.md): 74.7-97.1 on seeds
# 0-1 but 15.9-27.3 on seeds 2-4. The margin is set about half below the worst case, and the test runs a strong
# and a weak seed (0 and 3), not two strong ones.
O4_MIN_MARGIN_OVER_BC = 8.0
# online minus offline score over seeds 0-4 x 1, 2 threads: 4.6-95.4 (seed 3 gains only 4.6-7.0), so one seed
# proves nothing either way: the test asserts the median over seeds 0, 3, 4 (67.8 / 90.9 here) against a bound
# below the worst median of any three seeds measured (25.5).
ONLINE_SEEDS = (0, 3, 4)
ONLINE_MIN_MEDIAN_GAIN = 15.0


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("o4")
    write_mixed_dataset(root)
    return root


def offline_o4_vs_bc(seed: int, workdir, data_root=None) -> dict[str, float]:
    """BC and Uni-O4 (1500 supervised + 800 improvement steps) on the two-mode dataset, seeded with ``seed``;
    normalised scores over 5 evaluation episodes. Also run over seeds and thread counts by scripts/check_seeds.py."""
    if data_root is None:
        data_root = workdir / "data"
        write_mixed_dataset(data_root)
    bc = train_offline("bc", DS_ID, 1500, 0, seed=seed, eval_every=1500, eval_episodes=5, run_dir=workdir / "bc", root=data_root)
    o4 = train_offline("uni-o4", DS_ID, 1500, 0, seed=seed, eval_every=1500, eval_episodes=5, run_dir=workdir / "o4",
                       root=data_root, config={**SMALL, "improve_steps": 800})
    return {"bc_score": float(bc["offline_score"]), "o4_score": float(o4["offline_score"]),
            "o4_minus_bc": float(o4["offline_score"] - bc["offline_score"])}


@pytest.mark.parametrize("seed", [0, 3])
def test_uni_o4_offline_beats_bc(data_root, tmp_path, seed):
    m = offline_o4_vs_bc(seed, tmp_path, data_root)
    # BC averages the two modes and falls within ~20 steps (score ~2); Uni-O4's advantage-weighted
    # improvement recovers the stabilising mode.
    assert m["bc_score"] < BC_MAX_SCORE, m
    assert m["o4_minus_bc"] > O4_MIN_MARGIN_OVER_BC, m
    assert (tmp_path / "o4" / "checkpoints" / "offline" / "latest.json").exists() or any((tmp_path / "o4" / "checkpoints").iterdir())


def online_gain(seed: int, workdir, data_root=None) -> dict[str, float]:
    """A deliberately short offline phase (1000 + 100 steps), then 20k PPO steps with a larger lr than the
    conservative default so the improvement is visible within a unit test; normalised scores over 5 episodes.
    Also run over seeds and thread counts by scripts/check_seeds.py."""
    if data_root is None:
        data_root = workdir / "data"
        write_mixed_dataset(data_root)
    out = train_offline("uni-o4", DS_ID, 1000, 20_000, seed=seed, eval_every=5000, eval_episodes=5, run_dir=workdir / "run",
                        root=data_root, config={**SMALL, "improve_steps": 100, "online_lr": 3e-4, "online_clip": 0.2})
    return {"offline_score": float(out["offline_score"]), "online_score": float(out["online_score"]),
            "online_minus_offline": float(out["online_score"] - out["offline_score"])}


def test_uni_o4_online_phase_improves_on_the_offline_policy(data_root, tmp_path):
    runs = [online_gain(s, tmp_path / f"seed{s}", data_root) for s in ONLINE_SEEDS]
    gains = [r["online_minus_offline"] for r in runs]
    assert statistics.median(gains) > ONLINE_MIN_MEDIAN_GAIN, runs
    assert [r["phase"] for r in read_evaluations(tmp_path / "seed0" / "run")].count("online") == 4  # every 5000 of 20000 steps
