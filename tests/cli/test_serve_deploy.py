"""`rlsuite serve-policy` and `rlsuite deploy --remote` end to end from the command line: a SAC run exported
to ONNX and to TorchScript, served by a separate process, drives the simulated robot exactly as the
same file loaded locally does."""

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rlsuite.cli import main
from rlsuite.robots.transport import write_key_file
from tests.cli.helpers import run_cli

pytest.importorskip("onnxruntime")
pytest.importorskip("zmq")

ROOT = Path(__file__).resolve().parents[2]
ROBOT = "sim:InvertedPendulum-v5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny SAC run on InvertedPendulum-v5 exported with `rlsuite export` to ONNX and to TorchScript."""
    d = tmp_path_factory.mktemp("serve")
    assert main(["train", "sac", "--env", "InvertedPendulum-v5", "--total-steps", "64", "--seed", "0", "--run-dir", str(d / "run"),
                 "--no-progress", "--eval-episodes", "1"]) == 0
    for fmt, suffix in (("onnx", "onnx"), ("torchscript", "pt")):
        assert main(["export", str(d / "run"), "--format", fmt, "--out", str(d / f"policy.{suffix}")]) == 0
    write_key_file(d / "key")
    return {"onnx": d / "policy.onnx", "torchscript": d / "policy.pt", "key": d / "key"}


class Server:
    """`python -m rlsuite serve-policy ...` in a subprocess; its merged output is collected line by line."""

    def __init__(self, *args: str) -> None:
        # Ctrl-C reaches the server as it would from a terminal even when the tests run as a background job, where the
        # shell starts them with SIGINT ignored (which a child inherits, and Python then keeps)
        self.proc = subprocess.Popen([sys.executable, "-m", "rlsuite", "serve-policy", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not any(line.startswith("serving ") for line in self.lines):
            assert self.proc.poll() is None, f"serve-policy exited with {self.proc.returncode}:\n{''.join(self.lines)}"
            assert time.monotonic() < end, f"serve-policy did not start within {timeout} s:\n{''.join(self.lines)}"
            time.sleep(0.05)

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, then the exit status and everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.reader.join(5)
        return code, "".join(self.lines)


def counts(output: str) -> dict[str, int]:
    m = re.search(r"served=(\d+) rejected=(\d+) errors=(\d+) handshakes=(\d+)", output)
    assert m, output
    return dict(zip(("served", "rejected", "errors", "handshakes"), map(int, m.groups()), strict=True))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_deploy_remote_earns_what_the_local_file_earns(capsys, exported, fmt):
    path, key = exported[fmt], exported["key"]
    port = free_port()
    extra = ["--allow-torchscript"] if fmt == "torchscript" else []
    server = Server(str(path), "--port", str(port), "--key-file", str(key), *extra)
    try:
        server.wait_ready()
        # lockstep simulation on a shared test machine: a generous per-request timeout keeps the watchdog out of it
        code, out, err = run_cli(capsys, "deploy", "--robot", ROBOT, "--remote", f"tcp://127.0.0.1:{port}", "--key-file", key,
                                 "--duration", "0.5", "--episodes", "2", "--remote-timeout", "5")
    finally:
        status, served = server.stop()
    local_code, local, _ = run_cli(capsys, "deploy", "--robot", ROBOT, "--policy", path, "--duration", "0.5", "--episodes", "2")
    assert code == 0 == local_code, out + err
    remote_return = out.strip().splitlines()[-1]
    assert re.fullmatch(r"mean_return=\d+\.\d{4}", remote_return) and remote_return == local.strip().splitlines()[-1]
    ticks = sum(int(t) for t in re.findall(r"ticks (\d+)", out))
    n = counts(served)
    assert status == 0 and n == {"served": ticks, "rejected": 0, "errors": 0, "handshakes": 1}, served
    assert f"serving {path} ({fmt}, obs_dim 4)" in served


def test_deploy_against_no_server_is_an_estop(capsys, exported):
    code, out, err = run_cli(capsys, "deploy", "--robot", ROBOT, "--remote", f"tcp://127.0.0.1:{free_port()}", "--key-file",
                             exported["key"], "--duration", "0.5")
    assert code == 3, out + err
    assert "safety policy estop" in out and "no reply from tcp://127.0.0.1:" in out
    assert "no policy server completed a handshake" in err and "ended in an e-stop" in err


def test_serve_policy_refusals(capsys, exported, tmp_path):
    port = str(free_port())
    code, _, err = run_cli(capsys, "serve-policy", exported["onnx"], "--port", port, "--bind", "0.0.0.0", "--key-file", exported["key"])
    assert code == 2 and "--bind 0.0.0.0 listens beyond this machine" in err and "--allow-remote" in err
    code, _, err = run_cli(capsys, "serve-policy", exported["torchscript"], "--port", port, "--key-file", exported["key"])
    assert code == 2 and "loading TorchScript runs code" in err and "--allow-torchscript" in err
    loose = tmp_path / "loose.key"
    loose.write_bytes(b"0f" * 32)
    loose.chmod(0o644)
    code, _, err = run_cli(capsys, "serve-policy", exported["onnx"], "--port", port, "--key-file", loose)
    assert code == 2 and "mode 0644" in err and f"chmod 600 {loose}" in err
    code, _, err = run_cli(capsys, "serve-policy", tmp_path / "missing.onnx", "--port", port, "--key-file", exported["key"])
    assert code == 2 and "file not found" in err


def test_serve_policy_answers_bad_requests_and_keeps_serving(capsys, exported):
    """In-process: a malformed observation gets an error reply, the next request is served, and
    --max-requests counts both."""
    from rlsuite.robots.transport import PolicyClient, PolicyUnavailable, load_key

    port = free_port()
    t = threading.Thread(target=main, args=(["serve-policy", str(exported["onnx"]), "--port", str(port), "--key-file",
                                              str(exported["key"]), "--max-requests", "3"],), daemon=True)
    t.start()
    client = PolicyClient(f"tcp://127.0.0.1:{port}", load_key(exported["key"]), timeout_s=10)
    try:
        with pytest.raises(PolicyUnavailable, match=r"shape \(5,\); this policy takes \(4,\)"):
            client.act(np.zeros(5, np.float32))
        assert client.act(np.zeros(4, np.float32)).shape == (1,)
        assert client.act(np.zeros((3, 4), np.float32)).shape == (3, 1)
    finally:
        t.join(20)
        client.close()
    assert not t.is_alive()
    n = counts(capsys.readouterr().out)
    assert n == {"served": 2, "rejected": 0, "errors": 1, "handshakes": 1}


@pytest.fixture
def closes(monkeypatch):
    """Count the calls of PolicyClient.close (every client deploy makes must be closed)."""
    from rlsuite.robots import transport

    calls, close = [], transport.PolicyClient.close

    def counting(self):
        calls.append(self.endpoint)
        close(self)

    monkeypatch.setattr(transport.PolicyClient, "close", counting)
    return calls


def test_deploy_compare_gym_remote_closes_its_client(capsys, exported, closes):
    """In-process server: --compare-gym --remote runs both sides through the server, then closes the
    client; against no server it exits 3 and closes it too."""
    from rlsuite.robots.export import load_runner
    from rlsuite.robots.transport import PolicyServer, load_key

    server = PolicyServer(load_runner(exported["onnx"]), load_key(exported["key"]), bind="tcp://127.0.0.1:*", obs_dim=4)
    stop = threading.Event()
    t = threading.Thread(target=server.serve, kwargs={"stop": stop.is_set, "poll_ms": 10, "log_every_s": None}, daemon=True)
    t.start()
    try:
        code, out, err = run_cli(capsys, "deploy", "--robot", ROBOT, "--remote", server.endpoint, "--key-file", exported["key"],
                                 "--compare-gym", "--episodes", "1", "--remote-timeout", "5")
    finally:
        stop.set()
        t.join(5)
        server.close()
    assert code == 0, out + err
    assert re.fullmatch(r"sim_to_sim_gap=\d+\.\d{4}", out.strip().splitlines()[-1])
    assert closes == [server.endpoint] and server.served > 0 and server.errors == server.rejected == 0
    local_code, local, _ = run_cli(capsys, "deploy", "--robot", ROBOT, "--policy", exported["onnx"], "--compare-gym", "--episodes", "1")
    assert local_code == 0 and local.strip().splitlines()[-1] == out.strip().splitlines()[-1]  # (obs_dim,) -> (act_dim,) both ways

    nowhere = f"tcp://127.0.0.1:{free_port()}"
    code, out, err = run_cli(capsys, "deploy", "--robot", ROBOT, "--remote", nowhere, "--key-file", exported["key"], "--compare-gym")
    assert code == 3 and f"remote: no reply from {nowhere}" in err, out + err
    assert closes == [server.endpoint, nowhere]
