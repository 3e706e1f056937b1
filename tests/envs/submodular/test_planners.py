"""Planners: greedy equals a brute-force greedy; beam width 1 is greedy; a wide beam finds the optimum."""

import itertools

import pytest
import torch

from rlsuite.envs.submodular.grid import SubmodularGridVecEnv
from rlsuite.envs.submodular.planners import ACTION_ORDER, beam_plan, greedy_plan

TINY = {"height": 3, "width": 3, "horizon": 4, "start": 0}


def _value(env, actions):
    pos, mask = env.start, torch.zeros(1, env.n, dtype=torch.bool)
    mask[0, pos] = True
    for a in actions:
        pos = int(env.table[pos, a])
        mask[0, pos] = True
    return float(env.F.value(mask)[0])


def _brute_force_greedy(env):
    """F evaluated from scratch for every candidate move; ties to the first in ACTION_ORDER."""
    actions = []
    for _ in range(env.horizon):
        vals = [_value(env, [*actions, a]) for a in ACTION_ORDER]
        actions.append(ACTION_ORDER[max(range(5), key=lambda i: (vals[i], -i))])
    return actions, _value(env, actions)


def _exhaustive(env):
    seqs = torch.tensor(list(itertools.product(range(5), repeat=env.horizon)))
    pos = torch.full((len(seqs),), env.start)
    mask = torch.zeros(len(seqs), env.n, dtype=torch.bool)
    mask[:, env.start] = True
    for t in range(env.horizon):
        pos = env.table[pos, seqs[:, t]]
        mask[torch.arange(len(seqs)), pos] = True
    return float(env.F.value(mask).max())


@pytest.mark.parametrize("task", ["coverage", "coverage-bimodal", "gp-ipp", "items", "entropy"])
def test_greedy_equals_brute_force_and_beam_bounds(task):
    kw = dict(TINY, task=task)
    if task == "items":
        kw.update(height=4, width=4, horizon=5)
    env = SubmodularGridVecEnv(**kw)
    actions, value = greedy_plan(kw)
    bf_actions, bf_value = _brute_force_greedy(env)
    assert actions == bf_actions and value == pytest.approx(bf_value, rel=1e-5)
    assert value == pytest.approx(_value(env, actions), rel=1e-6)
    b1, v1 = beam_plan(kw, width=1)
    assert b1 == actions and v1 == pytest.approx(value, rel=1e-6)
    wide, vw = beam_plan(kw, width=8)
    assert vw >= value - 1e-6 and vw == pytest.approx(_value(env, wide), rel=1e-6)
    best = _exhaustive(env)
    _, vo = beam_plan(kw, width=1000)
    assert vo == pytest.approx(best, rel=1e-5) and vw <= best + 1e-5


def test_planned_actions_replay_in_the_env_to_the_planned_F():
    kw = dict(task="two-rooms", horizon=10)
    actions, value = beam_plan(task="two-rooms", horizon=10, width=16)
    env = SubmodularGridVecEnv(**kw)
    env.reset(seed=0)
    for a in actions:
        *_, info = env.step(torch.tensor([a]))
    assert info["episode_F"].item() == pytest.approx(value)
    greedy_actions, greedy_value = greedy_plan(env)
    assert value >= greedy_value and len(greedy_actions) == 10


def test_greedy_on_an_open_coverage_grid_gains_two_cells_per_step():
    # on the 30x30 coverage task a straight line away from the borders covers 2 new cells per step
    actions, value = greedy_plan(task="coverage", horizon=20)
    assert value == 4 + 2 * 20


def test_planners_refuse_random_starts_and_bad_widths():
    with pytest.raises(ValueError, match="fixed start"):
        greedy_plan({"task": "coverage", "height": 5, "width": 5}, start="random")
    with pytest.raises(ValueError, match="not both"):
        greedy_plan(SubmodularGridVecEnv(), task="items")
    with pytest.raises(ValueError, match="width"):
        beam_plan(task="coverage", width=0)
