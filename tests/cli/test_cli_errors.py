"""Clear errors and exit statuses of the command line: --version, group --help, missing files and renderers,
eval --video's episode, deploy's mean and safety status, quiet export, misspelt flags (exit 2 everywhere)."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlsuite.cli import main
from tests.cli.helpers import run_cli as _run

RLSUITE = Path(sys.executable).with_name("rlsuite")




def _train(capsys, tmp_path, name, *argv):
    d = tmp_path / name
    assert main(["train", *argv, "--run-dir", str(d), "--no-progress", "--eval-episodes", "1"]) == 0
    capsys.readouterr()
    return d


def test_version(capsys):
    code, out, _ = _run(capsys, "--version")
    assert code == 0
    assert out.strip().startswith(f"rlsuite {importlib.metadata.version('rlsuite')} (torch {torch.__version__}, Python ")


@pytest.mark.parametrize("group", ["data", "stl", "cop"])
def test_group_help_lists_its_commands(capsys, group):
    code, out, err = _run(capsys, group, "--help")
    assert code == 0 and out.startswith(f"usage: rlsuite {group} <command>") and err == ""


def test_deploy_missing_policy_is_an_error_not_a_traceback(capsys, tmp_path):
    missing = tmp_path / "missing.onnx"
    code, out, err = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", str(missing))
    assert code == 2 and out == ""
    assert err.startswith(f"error: --policy {missing}: file not found") and "rlsuite export" in err and "Traceback" not in err


def _script(tmp_path, name, module):
    path = tmp_path / name
    torch.jit.save(torch.jit.script(module), str(path))
    return path


class _NaNPolicy(torch.nn.Module):
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[:, :1] * float("nan")


def test_deploy_prints_the_mean_last_and_exits_3_after_an_estop(capsys, tmp_path):
    net = torch.nn.Linear(4, 1)  # the hand-tuned feedback that balances InvertedPendulum-v5
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.5, 8.0, 0.8, 1.2]]))
        net.bias.zero_()
    good = _script(tmp_path, "good.pt", net)
    code, out, _ = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", str(good), "--duration", "1",
                        "--episodes", "2")
    assert code == 0 and out.strip().splitlines()[-1] == "mean_return=25.0000"  # 1 s at 25 Hz, +1 per tick, both episodes

    bad = _script(tmp_path, "nan.pt", _NaNPolicy())  # NaN commands: the NaN guard resends, then e-stops
    code, out, err = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", str(bad), "--duration", "1",
                          "--episodes", "2")
    assert code == 3, (out, err)
    assert out.strip().splitlines()[-1].startswith("mean_return=") and "safety nan_guard estop" in out
    assert "safety: episodes 0, 1 ended in an e-stop" in err


@pytest.mark.skipif(importlib.util.find_spec("pygame") is not None, reason="pygame is installed: Pendulum-v1 renders here")
def test_eval_video_without_the_renderer_says_how_to_install_it(capsys, tmp_path):
    d = _train(capsys, tmp_path, "sac", "sac", "--env", "Pendulum-v1", "--total-steps", "120", "--hidden-sizes", "8", "8")
    code, out, err = _run(capsys, "eval", str(d), "--eval-episodes", "1", "--video")
    assert code == 2 and out == ""
    assert err.startswith("error: --video: cannot render Pendulum-v1 offscreen") and "pygame" in err
    assert 'pip install "gymnasium[classic-control]"' in err and "Traceback" not in err
    assert not (d / "videos").exists()  # checked before anything was evaluated or written


def _offscreen_gl() -> bool:
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco

        mujoco.GLContext(32, 32).free()
        return True
    except Exception:  # noqa: BLE001 - any failure means no offscreen GL here
        return False


def test_eval_video_records_episode_0(capsys, tmp_path):
    """The video is episode 0 of the evaluation: same return, and as many frames as that episode has steps
    (InvertedPendulum-v5 pays 1 per step except the terminating one: steps = return + 1 for an episode that
    falls before the 1000-step limit)."""
    if not _offscreen_gl():
        pytest.skip("no offscreen OpenGL (EGL) on this machine")
    d = _train(capsys, tmp_path, "ip", "ppo", "--env", "InvertedPendulum-v5", "--total-steps", "128", "--num-steps", "64",
               "--num-minibatches", "2")
    code, out, _ = _run(capsys, "eval", str(d), "--eval-episodes", "4", "--video")
    assert code == 0
    returns = [float(line.split("=")[1]) for line in out.splitlines() if line.startswith("episode ")]
    assert len(returns) == 4
    video = d / "videos" / "eval.mp4"
    assert f"video: {video} (episode 0, return {returns[0]:.3f})" in out

    import imageio.v2 as imageio

    with imageio.get_reader(str(video)) as reader:
        assert returns[0] < 999 and reader.count_frames() == int(returns[0]) + 1
    code, out, _ = _run(capsys, "eval", str(d), "--episodes", "2")  # the old spelling still works
    assert code == 0 and ", 2 episodes" in out


def test_export_prints_no_third_party_warnings(capsys, tmp_path):
    d = _train(capsys, tmp_path, "run", "ppo", "--env", "CartPole-v1", "--total-steps", "128", "--num-steps", "16", "--num-minibatches", "2")
    out = tmp_path / "p.onnx"
    argv = [str(RLSUITE if RLSUITE.exists() else shutil.which("rlsuite")), "export", str(d), "--format", "onnx", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k not in ("TORCH_LOGS", "PYTHONWARNINGS")}
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "max_abs_diff=0" or p.stdout.strip().splitlines()[-1].startswith("max_abs_diff=")
    assert not [line for line in p.stderr.splitlines() if "Warning" in line or "WARN" in line or line.startswith("W1")], p.stderr
    assert p.stderr.strip() == "", p.stderr
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)  # the file exists now
    assert p.returncode == 2 and "already exists; pass --overwrite" in p.stderr


@pytest.mark.parametrize("argv,wrong", [
    (["train", "ppo", "--totl-steps", "10"], "--totl-steps"),
    (["eval", "run", "--eval-episode", "2"], "--eval-episode"),
    (["deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", "p.onnx", "--episods", "2"], "--episods"),
    (["data", "collect", "--env", "Hopper-v5", "--level", "medium", "--stpes", "10"], "--stpes"),
    (["cop", "solve", "f.tsp", "--problem", "tsp", "--beem", "2"], "--beem"),
], ids=lambda v: v[0] if isinstance(v, list) else None)
def test_a_misspelt_flag_exits_2_with_a_suggestion(capsys, argv, wrong):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and wrong in err and "Perhaps you meant" in err, err


def test_a_misspelt_required_flag_names_the_required_one(capsys):
    # tyro checks required options before unknown ones: a misspelt --policy is reported as the missing --policy / --remote
    code, _, err = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--polcy", "p.onnx")
    assert code == 2 and "--policy, --remote" in err
