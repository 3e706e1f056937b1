"""The greenhouse through the CLI: ``rlsuite train ... --env-kwargs`` (kept in the run, reused by eval and
``eval --robust``), and the flag's errors."""

import json

from tests.cli.helpers import run_cli

ENV = "rlsuite/Greenhouse-Lettuce-v0"
TINY_PPO = ("--total-steps", "64", "--no-progress", "--eval-episodes", "1", "--num-envs", "2", "--num-steps", "16",
            "--num-minibatches", "2", "--no-tensorboard")


def test_env_kwargs_are_kept_in_the_run_and_used_by_eval_and_robust_eval(capsys, tmp_path):
    d = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "ppo", "--env", ENV, "--env-kwargs", '{"season_days": 1, "prices": "modern"}',
                             "--run-dir", d, *TINY_PPO)
    assert code == 0, err
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["env_kwargs"] == {"season_days": 1, "prices": "modern"}
    code, out, err = run_cli(capsys, "eval", d, "--episodes", "2")
    assert code == 0, err
    assert out.count("episode ") == 2
    code, out, err = run_cli(capsys, "eval", d, "--robust", "--set", "greenhouse-weather", "--grid", "2", "--episodes", "1")
    assert code == 0, err
    assert list(d.rglob("*greenhouse-weather*.png"))
    code, out, err = run_cli(capsys, "train", "ppo", "--resume", d, "--total-steps", "128", "--no-progress")
    assert code == 0, err  # the resumed run builds the env with the same arguments


def _flat(text):
    """The option parser's boxed message as one line."""
    return " ".join(text.replace("\u2502", " ").split())


def test_env_kwargs_errors_say_what_was_given_and_what_is_allowed(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "ppo", "--env", ENV, "--env-kwargs", "{season_days: 1}", "--run-dir", tmp_path / "a", *TINY_PPO)
    err = _flat(err)
    assert code == 2 and "--env-kwargs must be a JSON object" in err and "{season_days: 1}" in err and not (tmp_path / "a").exists()
    code, _, err = run_cli(capsys, "train", "ppo", "--env", ENV, "--env-kwargs", "[1, 2]", "--run-dir", tmp_path / "b", *TINY_PPO)
    assert code == 2 and "must be a JSON object (keyword: value), got list" in _flat(err)
    code, _, err = run_cli(capsys, "train", "ppo", "--env", ENV, "--env-kwargs", '{"season_dayz": 1}', "--run-dir", tmp_path / "c", *TINY_PPO)
    assert code == 2 and "rlsuite/Greenhouse-Lettuce-v0 takes no argument 'season_dayz'; its arguments: season_days, substeps" in _flat(err)
    assert not (tmp_path / "c").exists()
    code, _, err = run_cli(capsys, "train", "subpo", "--env", "rlsuite/Coverage-Grid-v0", "--observation", "history",
                           "--env-kwargs", '{"observation": "state"}', "--run-dir", tmp_path / "d", "--total-steps", "64", "--no-progress")
    assert code == 2 and "--env-kwargs sets observation, which subpo sets from its own options" in _flat(err)


def test_unknown_env_kwargs_of_a_gymnasium_env_are_refused_before_the_run_starts(tmp_path):
    import pytest

    from rlsuite.core.vec_env import check_env_kwargs

    check_env_kwargs("Hopper-v5", {"ctrl_cost_weight": 1e-3})
    with pytest.raises(ValueError, match="Hopper-v5 could not be built with .*ctrl_cost_weightt"):
        check_env_kwargs("Hopper-v5", {"ctrl_cost_weightt": 1e-3})
    with pytest.raises(ValueError, match="CartPole-v1 takes no argument 'length'; its arguments: sutton_barto_reward"):
        check_env_kwargs("CartPole-v1", {"length": 1.0})


def test_robust_eval_of_profit_writes_its_own_files_and_refuses_unknown_figures(capsys, tmp_path):
    d = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "ppo", "--env", ENV, "--env-kwargs", '{"season_days": 1}', "--run-dir", d, *TINY_PPO)
    assert code == 0, err
    code, out, err = run_cli(capsys, "eval", d, "--robust", "--metric", "profit", "--set", "greenhouse-weather", "--grid", "2",
                             "--episodes", "2")
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("nominal_profit=")
    points = (d / "robust" / "greenhouse-weather__profit.csv").read_text().splitlines()
    assert points[0].startswith("point,temp_shift,radiation_scale,mean_profit,std_profit,profit_0,profit_1")
    assert len(points) == 1 + 1 + 4  # header, nominal, a 2 x 2 grid
    assert (d / "robust" / "greenhouse-weather__profit.png").is_file()
    code, _, err = run_cli(capsys, "eval", d, "--robust", "--metric", "profitt", "--grid", "2", "--episodes", "1")
    assert code != 0 and "reports no per-step info['profitt'] to sum; allowed: 'return' or one of" in _flat(err) and "profit," in err
    code, _, err = run_cli(capsys, "eval", d, "--metric", "profit")
    assert code == 2 and "--metric profit goes with --robust" in _flat(err)


def test_the_profit_summed_by_the_harness_equals_season_figures():
    import numpy as np

    from rlsuite.core.evaluate import evaluate_policy
    from rlsuite.envs.greenhouse import rule_policy, season_figures

    figs = season_figures(rule_policy(), season_days=1)
    n = len(figs["profit"])
    profit = evaluate_policy(rule_policy(), ENV, episodes=n, env_kwargs={"season_days": 1, "scenario": "eval"}, metric="profit")
    returns = evaluate_policy(rule_policy(), ENV, episodes=n, env_kwargs={"season_days": 1, "scenario": "eval"})
    np.testing.assert_allclose(profit, figs["profit"], rtol=1e-5)
    np.testing.assert_allclose(returns, figs["return"], rtol=1e-5)


def test_env_kwargs_of_batched_envs_built_by_a_factory_are_checked_too():
    import pytest

    from rlsuite.core.vec_env import check_env_kwargs

    with pytest.raises(ValueError, match="rlsuite/STL-Linear-v0 could not be built with .*bogus"):
        check_env_kwargs("rlsuite/STL-Linear-v0", {"bogus": 1})
    with pytest.raises(ValueError, match="--env-kwargs sets num_envs, which the run sets itself"):
        check_env_kwargs(ENV, {"num_envs": 3})
