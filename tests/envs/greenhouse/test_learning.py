"""Learning on the greenhouse, on 10-day seasons, over the 12 evaluation seasons
(``rlsuite.envs.greenhouse.season_figures``).

Robust MBRL (delta = 0.2, small networks) learns within 2,000 real env steps: its return is well above the zero-input and
random controllers' (by 0.08 and 0.2 EUR m^-2 per season; the rule-based controller's is about 0.34
above the random one's).

PPO beats the rule-based controller's profit (0.450 EUR m^-2 per season) by more than 0.1 when it is trained on the
profit itself (the comfort-band weights set to 0, so that the reward is the profit: crop value minus heat and CO2),
in 300,000 env steps (about 45 s on one CPU thread): it learns to keep the vents closed and dose CO2 (about
1,300 ppm where the rule's humidity venting keeps about 480), which the comfort bands would penalise. With the
default comfort penalties no learner beats the rule at a CPU test's budget (docs/greenhouse.md).

Thresholds: the distributions over seeds and thread counts are in docs/learning_tests.md
(``scripts/check_seeds.py --only robust_mbrl_greenhouse ppo_profit_greenhouse``).
"""

from __future__ import annotations

import json

import torch

from rlsuite.agents.train import load_agent
from rlsuite.envs.greenhouse import ENV_ID, rule_policy, season_figures
from tests.agents.helpers import train_run

SEASON_DAYS = 10
MBRL_STEPS = 2_000
# the preset with smaller networks, rollout rounds and update counts, so that the test takes well under a minute
MBRL_CONFIG = dict(dropout=0.2, hidden_sizes=(64, 64), model_hidden=(64, 64), rollout_batch=500, gradient_steps=2, model_every=500,
                   rollout_every=250)
MBRL_MIN_RETURN_OVER_RANDOM = 0.08  # EUR m^-2 per 10-day season above the random controller's return (about -0.3)
MBRL_MIN_RETURN_OVER_ZERO = 0.2  # above the zero-input controller's (about -0.5)

PPO_PROFIT_STEPS = 300_000
# the preset (16 greenhouses, one day per rollout) with reward scaling, observation normalisation, initial log-std 0
# (more exploration than the preset's -0.5) and gamma 0.9: at the preset's 0.99 the profit after 300k steps ranged
# 0.47-0.77 over seeds 0-4; at 0.9 it was 0.66-0.67 (CO2 dosing pays within the hour)
PPO_PROFIT_CONFIG = dict(normalize_reward=True, normalize_obs=True, init_log_std=0.0, gamma=0.9)
PROFIT_ONLY = {"weight_temp": 0.0, "weight_co2": 0.0, "weight_rh": 0.0}  # the reward is the profit
PPO_MIN_PROFIT_OVER_RULE = 0.1  # EUR m^-2 per 10-day season above the rule-based controller's profit (0.450)


def _policy_figures(run_dir) -> dict[str, float]:
    agent, _ = load_agent(run_dir)
    figs = season_figures(lambda o: agent.act(o, deterministic=True), SEASON_DAYS)
    return {"profit": float(figs["profit"].mean()), "return": float(figs["return"].mean())}


def robust_mbrl_greenhouse(seed: int, workdir) -> dict[str, float]:
    train_run(None, "robust-mbrl", workdir / f"mbrl{seed}", env=ENV_ID, env_kwargs=f'{{"season_days": {SEASON_DAYS}}}', seed=seed,
              total_steps=MBRL_STEPS, eval_episodes=0, algo=MBRL_CONFIG)
    mbrl = _policy_figures(workdir / f"mbrl{seed}")
    g = torch.Generator().manual_seed(seed)
    random = season_figures(lambda o: torch.rand(o.shape[0], 3, generator=g) * 2 - 1, SEASON_DAYS)
    zero = season_figures(lambda o: -torch.ones(o.shape[0], 3), SEASON_DAYS)
    return {"return_over_random": mbrl["return"] - float(random["return"].mean()),
            "return_over_zero_input": mbrl["return"] - float(zero["return"].mean()), "return": mbrl["return"], "profit": mbrl["profit"]}


def test_robust_mbrl_learns_within_two_thousand_real_steps(tmp_path):
    r = robust_mbrl_greenhouse(0, tmp_path)
    assert r["return_over_random"] >= MBRL_MIN_RETURN_OVER_RANDOM, r
    assert r["return_over_zero_input"] >= MBRL_MIN_RETURN_OVER_ZERO, r


def ppo_profit_greenhouse(seed: int, workdir) -> dict[str, float]:
    env_kwargs = json.dumps({"season_days": SEASON_DAYS, "bands": PROFIT_ONLY})
    train_run(None, "ppo", workdir / f"ppo{seed}", env=ENV_ID, env_kwargs=env_kwargs, seed=seed, total_steps=PPO_PROFIT_STEPS,
              eval_episodes=0, algo=PPO_PROFIT_CONFIG)
    ppo = _policy_figures(workdir / f"ppo{seed}")
    rule = season_figures(rule_policy(), SEASON_DAYS)
    return {"profit_over_rule": ppo["profit"] - float(rule["profit"].mean()), "profit": ppo["profit"], "return": ppo["return"],
            "rule_profit": float(rule["profit"].mean())}


def test_ppo_trained_on_profit_beats_the_rule_based_controllers_profit(tmp_path):
    r = ppo_profit_greenhouse(0, tmp_path)
    assert r["profit_over_rule"] >= PPO_MIN_PROFIT_OVER_RULE, r
