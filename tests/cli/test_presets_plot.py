"""`rlsuite presets` (tuned values and their source), the preset named in `train --help`, and `rlsuite plot`."""

import dataclasses
import json
import re

import pytest

from rlsuite.agents import AGENTS
from rlsuite.core.logger import CSVWriter
from tests.cli.helpers import run_cli as _run

# ----------------------------------------------------------------------------- presets


def test_presets_lists_every_agent_with_its_sources(capsys):
    code, out, _ = _run(capsys, "presets")
    assert code == 0
    for name in AGENTS.names():
        spec = AGENTS.get(name)
        assert any(line.startswith(f"{name} (learns from {spec.learns_from}") for line in out.splitlines()), name
        for env in spec.presets:
            assert f"preset {env}: " in out, (name, env)
    assert "defaults: PPO hyper-parameters (defaults: CleanRL's ppo_continuous_action)." in out
    # the comment above a preset in the agent's file is its source
    assert re.search(r"preset Pendulum-v1: .*\n +source: rlsuite/agents/ppo\.py:\d+: rl-baselines3-zoo's Pendulum-v1 settings", out)


def test_presets_of_one_agent_show_every_default_and_the_preset_envs(capsys):
    code, out, _ = _run(capsys, "presets", "ppo")
    assert code == 0
    defaults = AGENTS.get("ppo").config_cls()
    assert f"--num-steps {defaults.num_steps} " in out and "--hidden-sizes 64 64 " in out and "--no-normalize-obs " in out
    assert "Adam learning rate." in out  # each field's help
    for env in AGENTS.get("ppo").presets:
        assert re.search(rf"^  {re.escape(env)} +--", out, re.M), env
    code, out, _ = _run(capsys, "presets", "iql")
    assert code == 0 and "no per-env presets" in out and "the paper's locomotion settings" in out


def test_presets_for_an_env_mark_exactly_what_the_preset_changes(capsys):
    spec = AGENTS.get("ppo")
    defaults, tuned = spec.config_cls(), spec.config_cls(**spec.presets["CartPole-v1"])
    changed = {f.name for f in dataclasses.fields(defaults) if getattr(defaults, f.name) != getattr(tuned, f.name)}
    code, out, _ = _run(capsys, "presets", "ppo", "--env", "CartPole-v1")
    assert code == 0 and f"({len(changed)} changed, marked *)" in out
    marked = {m.group(1).replace("-", "_") for m in re.finditer(r"^  \* --(?:no-)?([a-z-]+)", out, re.M)}
    assert marked == changed  # num_envs, num_steps, learning_rate, num_minibatches (gamma 0.99 is the default: unmarked)
    assert re.search(r"^  \* --num-envs 8 +\(default 1\)", out, re.M)
    assert "CleanRL's ppo.py layout" in out  # the preset's source
    code, out, _ = _run(capsys, "presets", "ppo", "--env", "Acrobot-v1")  # a valid env without a preset
    assert code == 0 and "no preset for Acrobot-v1, the defaults apply" in out and not re.search(r"^  \*", out, re.M)


@pytest.mark.parametrize("argv,message", [
    (["presets", "ppx"], "Did you mean 'ppo'?"),
    (["presets", "ppo", "--env", "Hoper-v5"], "Did you mean 'Hopper-v5'?"),
    (["presets", "sac", "--env", "NoSuchEnv-v9"], "unknown environment 'NoSuchEnv-v9'"),
    (["presets", "iql", "--env", "Hopper-v5"], "iql learns from a dataset, not an env"),
])
def test_presets_unknown_names_exit_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and err.startswith("error: ") and message in err and out == ""


def test_train_help_says_which_preset_its_values_are(capsys):
    def help_text(*argv):
        code, out, _ = _run(capsys, "train", "ppo", *argv, "--help")
        assert code == 0
        return " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())

    text = help_text()
    assert "Values shown: the preset for CartPole-v1 (the default env) over PPOConfig's defaults (CleanRL's ppo_continuous_action)" in text
    assert "--num-envs INT Parallel environments. (default: 8)" in text and "rlsuite presets ppo" in text
    text = help_text("--env", "Hopper-v5")
    assert "the preset for Hopper-v5 (--env)" in text and "--num-envs INT Parallel environments. (default: 1)" in text
    assert "no preset for Acrobot-v1 (--env)" in help_text("--env", "Acrobot-v1")


# ----------------------------------------------------------------------------- plot


def _fake_run(path, seed, points, lr=1e-3):
    """A run directory as rlsuite train writes it: config.json and metrics.csv (through the production writer)."""
    path.mkdir(parents=True)
    cfg = {"algo": "ppo", "run": {"env": "CartPole-v1", "seed": seed, "total_steps": 300, "device": "auto", "run_dir": str(path),
                                  "resume": None, "overwrite": False, "progress": False},
           "config": {"learning_rate": lr, "num_envs": 8}, "versions": {"git_commit": f"c{seed}"}}
    (path / "config.json").write_text(json.dumps(cfg))
    w = CSVWriter(path / "metrics.csv")
    for step, value in points:
        w.write(step, {"rollout/ep_return": 1.0})
        w.write(step, {"eval/mean_return": value})
    return path


def test_plot_groups_seeds_and_draws_mean_and_spread(capsys, tmp_path):
    a = _fake_run(tmp_path / "s0", 0, [(100, 10.0), (200, 20.0), (300, 30.0)])
    b = _fake_run(tmp_path / "s1", 1, [(100, 20.0), (300, 60.0)])
    c = _fake_run(tmp_path / "s2", 2, [(100, 30.0), (150, 45.0), (300, 90.0)])
    other = _fake_run(tmp_path / "lr", 0, [(100, 5.0), (300, 7.0)], lr=3e-4)
    out = tmp_path / "fig.png"
    code, text, err = _run(capsys, "plot", str(a), str(b), str(c), str(other), "--out", str(out))
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    lines = text.strip().splitlines()
    assert lines[-1] == f"figure={out}"
    # one line per config: three seeds (mean 60 = (30 + 60 + 90) / 3, band 30..90) and the other learning rate
    assert lines[0] == "ppo CartPole-v1 learning_rate=0.001: 3 runs, eval/mean_return at step 300: mean 60 (min 30, max 90)"
    assert lines[1] == "ppo CartPole-v1 learning_rate=0.0003: 1 run, eval/mean_return at step 300: 7"

    from rlsuite.plotting import compare_runs

    s = compare_runs([a, b, c], tmp_path / "std.svg", spread="std")
    (g,) = s["groups"]
    assert g["x"].tolist() == [100.0, 150.0, 200.0, 300.0]  # every logged step, the others interpolated
    # at 150: s0 15 (between 10 and 20), s1 30 (20 + 0.25 * 40), s2 45 -> mean 30, sample std 15
    assert g["mean"][1] == pytest.approx(30.0) and (g["low"][1], g["high"][1]) == pytest.approx((15.0, 45.0))
    # at 300: 30, 60, 90 -> mean 60, sample std 30
    assert (g["final_mean"], g["final_low"], g["final_high"]) == pytest.approx((60.0, 30.0, 90.0))
    assert g["legend"].endswith("mean of 3 runs, shaded ± 1 std")
    assert (tmp_path / "std.svg").read_text().lstrip().startswith("<?xml")


def test_plot_errors_exit_2_and_leave_files_alone(capsys, tmp_path):
    a = _fake_run(tmp_path / "s0", 0, [(100, 1.0), (200, 2.0)])
    out = tmp_path / "fig.png"
    out.write_bytes(b"old")
    code, _, err = _run(capsys, "plot", str(a), "--out", str(out))
    assert code == 2 and "already exists; pass --overwrite" in err and out.read_bytes() == b"old"
    code, _, err = _run(capsys, "plot", str(a), str(tmp_path / "missing"), "--out", str(tmp_path / "f.png"))
    assert code == 2 and err.strip() == f"error: run directory '{tmp_path / 'missing'}' not found."
    code, _, err = _run(capsys, "plot", str(a), "--metric", "eval/mean_retrun", "--out", str(tmp_path / "f.png"))
    assert code == 2 and "no column 'eval/mean_retrun' (--metric). Did you mean 'eval/mean_return'?" in err
    assert "Its columns: step, rollout/ep_return, eval/mean_return." in err
    code, _, err = _run(capsys, "plot", str(a), "--out", str(tmp_path / "f.xyz"))
    assert code == 2 and "the suffix names the format" in err
    assert not (tmp_path / "f.png").exists()
    code, _, _ = _run(capsys, "plot", str(a), "--out", str(out), "--overwrite")
    assert code == 0 and out.read_bytes()[:4] == b"\x89PNG"
