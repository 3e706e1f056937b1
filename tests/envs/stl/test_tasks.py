"""The STL task generator: seeded, well-formed, consistent layouts."""

import math

import pytest
import torch

from rlsuite.envs.stl.robustness import robustness
from rlsuite.envs.stl.spec import parse, signals, to_text
from rlsuite.envs.stl.tasks import FAMILIES, OBSTACLE_COUNT_PROBS, sample_task, task_signals


@pytest.mark.parametrize("family", [*FAMILIES, "mixed"])
def test_tasks_are_seeded_and_well_formed(family):
    for seed in range(20):
        t = sample_task(family, seed)
        again = sample_task(family, seed)
        assert t.text == again.text and torch.equal(t.centers, again.centers)
        assert parse(t.text) == t.formula and to_text(t.formula) == t.text
        assert signals(t.formula) <= set(t.signal_names)
        n = t.centers.shape[0]
        assert t.radii.shape == (n,) and ((t.radii >= 0.5) & (t.radii <= 1.5)).all()
        assert (t.centers.abs() + t.radii.unsqueeze(-1) <= 5.0 + 1e-5).all()  # inside the arena
        for i in range(n):
            for j in range(i):
                gap = math.dist(t.centers[i].tolist(), t.centers[j].tolist()) - t.radii[i] - t.radii[j]
                assert gap >= 0.05 - 1e-5
        assert all(t.radii[i] >= 1.0 for i in t.obstacles)
    with pytest.raises(ValueError, match="allowed: reach"):
        sample_task("maze", 0)


def test_obstacle_counts_follow_the_published_distribution():
    counts = [0] * len(OBSTACLE_COUNT_PROBS)
    for seed in range(700):
        counts[len(sample_task("reach", seed).obstacles)] += 1
    for k, p in enumerate(OBSTACLE_COUNT_PROBS):
        assert abs(counts[k] / 700 - p) < 0.05, counts


def test_staying_on_the_goal_satisfies_an_obstacle_free_reach_task():
    checked = 0
    for seed in range(200):
        t = sample_task("reach", seed)
        if t.obstacles:
            continue
        points = t.centers[0].expand(1, t.horizon, 2)
        rho = robustness(t.formula, task_signals(points, t.centers), t.signal_names)[0, 0]
        assert rho == pytest.approx(float(t.radii[0]), abs=1e-3)  # deep inside: robustness = radius
        far = torch.full((1, t.horizon, 2), 50.0)
        assert robustness(t.formula, task_signals(far, t.centers), t.signal_names)[0, 0] < 0
        checked += 1
    assert checked >= 20
