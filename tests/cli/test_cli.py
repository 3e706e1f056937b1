"""The CLI forms of the README at tiny budgets (in-process, through rlsuite.cli.main)."""

import json
import re
from pathlib import Path

import pytest

from rlsuite.cli import main
from tests.cli.helpers import run_cli as _run


def test_list(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0 and "ppo" in out and "sac" in out and "rlsuite/Pendulum-v0" in out
    for name, source in (("tgpo", "env"), ("uni-o4", "dataset"), ("iql", "dataset"), ("bc", "dataset"), ("bq-nco", "instances")):
        assert f"{name}" in out and any(line.split()[:4] == [name, "learns", "from", source] for line in out.splitlines()), name
    assert "rlsuite/Quadruped-Balance-v0" in out


def test_train_eval_resume_cycle(capsys, tmp_path):
    d = str(tmp_path / "run")
    code, out, _ = _run(capsys, "train", "ppo", "--env", "CartPole-v1", "--seed", "0", "--total-steps", "512",
                        "--run-dir", d, "--no-progress", "--eval-episodes", "2")
    assert code == 0 and "run directory" in out
    reached = int(re.search(r"steps=(\d+)", out).group(1))  # whole iterations: at least 512
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["algo"] == "ppo" and cfg["config"]["num_envs"] == 8  # CartPole preset applied
    assert {"config.json", "metrics.csv", "tb", "checkpoints", "curve.png"} <= {p.name for p in (tmp_path / "run").iterdir()}

    code, out, _ = _run(capsys, "eval", d, "--episodes", "3")
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"mean_return=-?\d+(\.\d+)?", last)

    # the same directory again without --resume is refused with the fix in the message
    code, _, err = _run(capsys, "train", "ppo", "--env", "CartPole-v1", "--run-dir", d, "--no-progress")
    assert code == 2 and "--resume" in err

    code, out, _ = _run(capsys, "train", "ppo", "--resume", d, "--total-steps", str(2 * reached), "--no-progress", "--eval-episodes", "1")
    assert code == 0 and f"steps={2 * reached}" in out
    before = {p: p.read_bytes() for p in Path(d).rglob("*") if p.is_file()}
    code, out, _ = _run(capsys, "train", "ppo", "--resume", d, "--total-steps", str(2 * reached), "--no-progress")
    assert code == 0 and "nothing to do" in out  # a finished run is not re-evaluated and re-logged
    assert {p: p.read_bytes() for p in Path(d).rglob("*") if p.is_file()} == before
    code, _, err = _run(capsys, "train", "ppo", "--env", "CartPole-v1", "--total-steps", "-5", "--run-dir", str(tmp_path / "neg"))
    assert code == 2 and "--total-steps must be >= 0, got -5" in err


def test_sac_cli_form(capsys, tmp_path):
    d = str(tmp_path / "sac")
    code, out, _ = _run(capsys, "train", "sac", "--env", "Pendulum-v1", "--seed", "0", "--total-steps", "150",
                        "--run-dir", d, "--no-progress", "--eval-episodes", "1", "--hidden-sizes", "16", "16")
    assert code == 0 and "steps=150" in out


def test_unknown_names_get_suggestions(capsys):
    code, _, err = _run(capsys, "train", "sacc")
    assert code == 2 and "Did you mean 'sac'" in err
    code, _, err = _run(capsys, "train", "ppo", "--env", "CartPol-v1", "--no-progress")
    assert code == 2 and "Did you mean 'CartPole-v1'" in err
    code, _, err = _run(capsys, "evl")
    assert code == 2 and "Did you mean 'eval'" in err


def test_corrupted_checkpoint_is_a_clear_error(capsys, tmp_path):
    d = tmp_path / "run"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--total-steps", "256", "--run-dir", str(d), "--no-progress",
                 "--eval-episodes", "1"]) == 0
    f = d / "checkpoints" / "final" / "tensors.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    capsys.readouterr()
    code, _, err = _run(capsys, "eval", str(d))
    assert code == 2 and "corrupted or truncated" in err


def test_resume_into_a_different_algorithm_is_refused(capsys, tmp_path):
    d = tmp_path / "run"
    assert main(["train", "ppo", "--env", "Pendulum-v1", "--total-steps", "64", "--run-dir", str(d), "--no-progress",
                 "--eval-episodes", "1", "--num-steps", "64", "--num-minibatches", "4"]) == 0
    capsys.readouterr()
    code, _, err = _run(capsys, "train", "sac", "--resume", str(d))
    assert code == 2 and "rlsuite train ppo --resume" in err


def _offscreen_gl_available() -> bool:
    try:
        import mujoco

        ctx = mujoco.GLContext(64, 64)
        ctx.free()
        return True
    except Exception:  # noqa: BLE001 - any failure means no offscreen GL here
        return False


def test_eval_video_mujoco(capsys, tmp_path):
    if not _offscreen_gl_available():
        pytest.skip("no offscreen OpenGL (EGL/OSMesa) on this machine")
    d = str(tmp_path / "run")
    assert main(["train", "sac", "--env", "InvertedPendulum-v5", "--total-steps", "200", "--run-dir", d, "--no-progress",
                 "--eval-episodes", "1", "--hidden-sizes", "16", "16"]) == 0
    code, out, _ = _run(capsys, "eval", d, "--episodes", "1", "--video")
    assert code == 0 and (tmp_path / "run" / "videos" / "eval.mp4").stat().st_size > 1000


def test_llm_list_one_key_per_line(capsys):
    from rlsuite.llm import registered_methods

    code, out, _ = _run(capsys, "llm", "list")
    assert code == 0
    assert out.split() == sorted(registered_methods()) and {"grpo", "dpo", "gspo"} <= set(out.split())


def test_llm_sft_train_eval_cli(capsys, tmp_path):
    pytest.importorskip("transformers")
    assert main(["llm", "sft", "--total-steps", "20", "--run-dir", str(tmp_path / "sft"), "--eval-examples", "20"]) == 0
    assert main(["llm", "train", "--init", str(tmp_path / "sft"), "--total-steps", "2", "--prompts-per-step", "4",
                 "--group-size", "2", "--run-dir", str(tmp_path / "rl"), "--eval-examples", "20"]) == 0
    assert main(["llm", "train", "--method", "bapo", "--init", str(tmp_path / "sft"), "--total-steps", "1", "--prompts-per-step", "4",
                 "--group-size", "2", "--micro-batch-size", "4", "--inner-epochs", "2", "--prompt-sampler", "vade",
                 "--dataset-reset-prob", "0.5", "--beta", "0.1", "--kl-in-reward", "--run-dir", str(tmp_path / "rl2"),
                 "--eval-examples", "20"]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "llm", "eval", str(tmp_path / "rl"), "--eval-examples", "20")
    assert code == 0 and re.fullmatch(r"exact_match=\d\.\d{4}", out.strip().splitlines()[-1])


def test_stl_check_prints_robustness_last(capsys, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("x,y\n0,1\n1,-1\n2,0.5\n3,2\n4,-3\n")
    code, out, _ = _run(capsys, "stl", "check", "always[0:2](x > -0.5) and eventually[1:3](y >= 1.5)", "--trace", str(trace))
    assert code == 0 and out.strip().splitlines()[-1] == "robustness=0.5"  # min(0.5, 0.5)
    code, out, _ = _run(capsys, "stl", "check", "G[0,2](x > 1)", "--trace", str(trace))
    assert out.strip().splitlines()[-1] == "robustness=-1"


@pytest.mark.parametrize("formula,content,message", [
    ("G[0,2](x > 1", "x\n1\n", "position 12"),
    ("G(z > 1)", "x\n1\n", "does not name"),
    ("G(x > 1)", "x,y\n1\n", ":2: 1 values"),
    ("G(x > 1)", "x\nabc\n", "'abc' is not a number"),
    ("G(x > 1)", "x\n", "at least one row"),
])
def test_stl_check_bad_input_is_a_clear_error(capsys, tmp_path, formula, content, message):
    trace = tmp_path / "t.csv"
    trace.write_text(content)
    code, _, err = _run(capsys, "stl", "check", formula, "--trace", str(trace))
    assert code == 2 and message in err


def test_stl_sample_is_seeded(capsys):
    code, out, _ = _run(capsys, "stl", "sample", "--family", "chain", "--seed", "0")
    assert code == 0 and "family: chain" in out and "formula: " in out
    assert _run(capsys, "stl", "sample", "--family", "chain", "--seed", "0")[1] == out
    assert _run(capsys, "stl", "sample", "--family", "chain", "--seed", "1")[1] != out


TGPO_SMALL = ["--num-envs", "8", "--horizon", "32", "--num-steps", "31", "--num-allocations", "8", "--eval-episodes", "2",
              "--no-progress", "--no-tensorboard"]


@pytest.mark.parametrize("extra", [["--spec", "F[5,20](d0 <= 1) & G(d1 >= 1)", "--objects", "3,3,1;0,0,1"],
                                   ["--task-family", "chain", "--sampler", "mh"]])
def test_train_tgpo_cli(capsys, tmp_path, extra):
    args = ["train", "tgpo", "--env", "rlsuite/STL-Unicycle-v0", "--total-steps", "1000", *TGPO_SMALL, "--run-dir", str(tmp_path / "r"),
            *extra]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    assert re.fullmatch(r"steps=\d+ eval_mean_return=-?\d+\.\d\d success_rate=\d\.\d{4}", out.strip().splitlines()[-1])
    assert (tmp_path / "r" / "checkpoints" / "final" / "meta.json").exists()
    code, _, err = _run(capsys, *args)
    assert code == 2 and "--resume" in err  # a finished run is not overwritten


def test_train_tgpo_cli_checkpoints_and_resumes(capsys, tmp_path):
    args = ["train", "tgpo", "--spec", "F[5,20](x > 2)", "--checkpoint-every", "248", *TGPO_SMALL, "--run-dir", str(tmp_path / "r")]
    code, _, err = _run(capsys, *args, "--total-steps", "496")
    assert code == 0, err
    code, out, err = _run(capsys, "train", "tgpo", "--resume", str(tmp_path / "r"), "--total-steps", "992")
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("steps=992 ")
    code, _, err = _run(capsys, "train", "tgpo", "--resume", str(tmp_path / "r"), "--spec", "F[5,20](y > 2)", "--total-steps", "1488")
    assert code == 2 and "options it was started with" in err
    code, out, _ = _run(capsys, "train", "tgpo", "--resume", str(tmp_path / "r"), "--total-steps", "992")
    assert code == 0 and "nothing to do" in out and "--total-steps" in out


def test_train_tgpo_cli_rejects_bad_objects_and_signals(capsys, tmp_path):
    code, _, err = _run(capsys, "train", "tgpo", "--spec", "F(d0 <= 1)", "--objects", "3,3", "--run-dir", str(tmp_path))
    assert code == 2 and "cx,cy,r" in err
    code, _, err = _run(capsys, "train", "tgpo", "--spec", "F(d2 <= 1)", "--objects", "3,3,1", "--run-dir", str(tmp_path))
    assert code == 2 and "signals are" in err


@pytest.mark.parametrize("fmt,suffix", [("onnx", "onnx"), ("torchscript", "pt")])
def test_export_cli_writes_a_parity_checked_artifact(capsys, tmp_path, fmt, suffix):
    pytest.importorskip("onnxruntime")
    d = tmp_path / "run"
    assert main(["train", "ppo", "--env", "Pendulum-v1", "--total-steps", "64", "--run-dir", str(d), "--no-progress",
                 "--eval-episodes", "1", "--num-steps", "64", "--num-minibatches", "4"]) == 0
    capsys.readouterr()
    out_file = tmp_path / f"policy.{suffix}"
    code, out, _ = _run(capsys, "export", str(d), "--format", fmt, "--out", str(out_file))
    assert code == 0 and out_file.exists() and "sha256" in out
    assert re.fullmatch(r"max_abs_diff=[0-9.e+-]+", out.strip().splitlines()[-1])
    assert float(out.strip().splitlines()[-1].split("=")[1]) <= 1e-5


def test_serve_policy_cli_answers_authenticated_requests(capsys, tmp_path, monkeypatch):
    pytest.importorskip("zmq")
    import socket
    import threading

    import numpy as np
    import torch

    from rlsuite.robots.transport import PolicyClient

    module = torch.nn.Linear(3, 2)
    path = tmp_path / "p.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    (tmp_path / "key").write_text("s3cret-key-of-32-bytes-length!!!")
    (tmp_path / "key").chmod(0o600)  # a key file readable by others is refused
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t = threading.Thread(target=main, args=(["serve-policy", str(path), "--port", str(port), "--key-file", str(tmp_path / "key"),
                                             "--max-requests", "1", "--allow-torchscript"],), daemon=True)
    t.start()
    client = PolicyClient(f"tcp://127.0.0.1:{port}", b"s3cret-key-of-32-bytes-length!!!", timeout_s=10)
    obs = np.array([[1.0, 2.0, 3.0]], np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(client.act(obs), module(torch.as_tensor(obs)).numpy(), atol=1e-6)
    t.join(10)
    client.close()
    assert "served=1 rejected=0" in capsys.readouterr().out
    monkeypatch.delenv("RLSUITE_POLICY_KEY", raising=False)
    code, _, err = _run(capsys, "serve-policy", str(path), "--port", str(port), "--allow-torchscript")
    assert code == 2 and "RLSUITE_POLICY_KEY" in err


def _stabiliser_artifact(tmp_path):
    """A TorchScript file of the hand-tuned linear feedback that balances InvertedPendulum-v5."""
    import torch

    net = torch.nn.Linear(4, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.5, 8.0, 0.8, 1.2]]))
        net.bias.zero_()
    path = tmp_path / "p.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    return path


def test_deploy_cli_sim_to_sim_and_errors(capsys, tmp_path):
    path = _stabiliser_artifact(tmp_path)
    code, out, _ = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", str(path), "--episodes", "2", "--compare-gym")
    assert code == 0 and out.strip().splitlines()[-1] == "sim_to_sim_gap=0.0000"
    code, out, _ = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", str(path), "--duration", "2")
    assert code == 0 and out.strip().splitlines()[-1] == "mean_return=50.0000"  # 2 s at 25 Hz, balanced throughout
    code, _, err = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", str(path), "--rate", "50")
    assert code == 2 and "policy rate of 25 Hz" in err
    code, _, err = _run(capsys, "deploy", "--robot", "unitree:go2", "--policy", str(path))
    assert code == 2 and "only simulated robots" in err


def test_deploy_remote_drives_the_simulated_robot_through_serve_policy(capsys, tmp_path, monkeypatch):
    """End to end: `rlsuite serve-policy` in one thread, `rlsuite deploy --remote` against it; the remote
    policy earns what the same file earns when loaded locally."""
    import socket
    import threading

    path = _stabiliser_artifact(tmp_path)
    monkeypatch.setenv("RLSUITE_POLICY_KEY", "k" * 32)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ticks = 50  # 2 s at 25 Hz
    server = threading.Thread(target=main, args=(["serve-policy", str(path), "--port", str(port), "--max-requests", str(ticks),
                                                   "--allow-torchscript"],),
                              daemon=True)
    server.start()
    code, out, _ = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--remote", f"tcp://127.0.0.1:{port}", "--duration", "2",
                        "--remote-timeout", "5")  # lockstep simulation: a loaded test machine must not trip the watchdog
    server.join(20)
    out += capsys.readouterr().out  # both threads print: the server's count may come after deploy's last line
    assert not server.is_alive()
    deploy_lines = [line for line in out.strip().splitlines() if not line.startswith("served=")]
    assert code == 0 and deploy_lines[-1] == "mean_return=50.0000", out
    assert f"served={ticks} rejected=0" in out
    code, local, _ = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", str(path), "--duration", "2")
    assert local.strip().splitlines()[-1] == "mean_return=50.0000"


def test_deploy_cli_runs_the_quadruped_sim_to_sim(capsys, tmp_path):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(42, 32), torch.nn.Tanh(), torch.nn.Linear(32, 12), torch.nn.Tanh())
    path = tmp_path / "q.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    code, out, _ = _run(capsys, "deploy", "--robot", "sim:quadruped", "--policy", str(path), "--episodes", "1", "--compare-gym")
    assert code == 0 and out.strip().splitlines()[-1] == "sim_to_sim_gap=0.0000", out
    code, _, err = _run(capsys, "deploy", "--robot", "sim:cheetah", "--policy", str(path))
    assert code == 2 and "available: InvertedPendulum-v5, quadruped" in err
