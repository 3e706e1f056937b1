"""The greenhouse in the robust-evaluation harness: its uncertainty sets and a grid evaluation of the rule-based
controller (rlsuite.envs.robust.robust_evaluate, what ``rlsuite eval RUN --robust`` runs)."""

import numpy as np
import pytest

import rlsuite  # noqa: F401  (registers the envs)
from rlsuite.envs.greenhouse import GreenhouseVecEnv, rule_policy
from rlsuite.envs.robust import default_set, get_uncertainty_set, robust_evaluate, sets_for
from rlsuite.envs.robust.evaluate import perturbable

ID = "rlsuite/Greenhouse-Lettuce-v0"
SHORT = {"season_days": 1, "substeps": 1, "scenario": "eval"}


def test_the_greenhouse_sets_name_parameters_the_env_has():
    assert sets_for(ID) == ["greenhouse-params", "greenhouse-weather", "greenhouse-param-noise"]
    assert default_set(ID).name == "greenhouse-params"
    params = GreenhouseVecEnv().perturbation_parameters
    for name in sets_for(ID):
        assert all(n in params for n in get_uncertainty_set(name).names)
    eid, kwargs, found = perturbable(ID, SHORT)  # declared by the env itself: evaluated as it is, not wrapped
    assert eid == ID and kwargs == SHORT and found == params


def test_robust_evaluation_of_the_rule_based_controller_over_a_grid():
    result = robust_evaluate(rule_policy(), ID, grid=2, episodes=2, seed=0, env_kwargs=SHORT)
    assert result.uncertainty_set.name == "greenhouse-params" and result.returns.shape == (4, 2)
    assert result.points.tolist() == [[0.8, 0.8], [0.8, 1.2], [1.2, 0.8], [1.2, 1.2]]
    means = result.point_means
    # 20 % more light use efficiency grows more crop at either heat loss; a leakier cover costs heat at either efficiency
    assert means[2] > means[0] and means[3] > means[1] and means[0] > means[1] and means[2] > means[3]
    s = result.summary()
    assert s["worst"] == pytest.approx(means[1]) and result.worst_point() == {"c_eps_scale": 0.8, "c_ai_ou_scale": 1.2}
    assert means.min() < s["nominal"] < means.max()
    weather = robust_evaluate(rule_policy(), ID, "greenhouse-weather", grid=2, episodes=1, seed=0, env_kwargs=SHORT)
    assert np.isfinite(weather.returns).all() and weather.summary()["worst"] < weather.summary()["nominal"]
