"""``rlsuite export RUN``, ``rlsuite deploy --robot sim:ENV``, ``rlsuite serve-policy FILE``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from rlsuite.cli.args import above, at_least, parse, within

_SOURCE = tyro.conf.create_mutex_group(required=True, title="policy source (exactly one)")

SAFETY_EXIT = 3
"""``rlsuite deploy``'s exit status when an episode ended in an e-stop or a safety filter changed a command."""


@dataclasses.dataclass(frozen=True)
class ExportArgs:
    """Export a trained policy (normaliser and action scaling inside) and check it against the torch policy."""

    run_dir: str
    """run directory (its latest checkpoint) or a checkpoint directory"""
    format: Literal["onnx", "torchscript"]
    """artifact format"""
    out: str
    """file to write (.onnx or .pt)"""
    opset: int = 18
    """ONNX opset"""
    overwrite: bool = False
    """replace an existing --out file"""

    def __post_init__(self) -> None:
        at_least(self, 1, "opset")


@dataclasses.dataclass(frozen=True)
class DeployArgs:
    """Run an exported policy through contract, observation builder, safety chain and control loop
    on a simulated robot (lockstep)."""

    robot: str
    """sim:<task>: sim:InvertedPendulum-v5 or sim:quadruped"""
    policy: Annotated[str | None, _SOURCE] = None
    """an artifact from rlsuite export (.onnx or .pt)"""
    remote: Annotated[str | None, _SOURCE] = None
    """a policy server, e.g. tcp://127.0.0.1:5555 (key from --key-file or $RLSUITE_POLICY_KEY)"""
    key_file: str | None = None
    """file holding the shared key of --remote, mode 0600 (else $RLSUITE_POLICY_KEY)"""
    remote_timeout: float | None = None
    """seconds to wait for each remote action before damping (None: one control period, at least 0.05)"""
    rate: float | None = None
    """control rate in Hz (must match the robot's policy rate)"""
    duration: float = 10.0
    """seconds of simulated time per episode at most"""
    episodes: int = 1
    """episodes; with --compare-gym also run them in the Gymnasium env"""
    compare_gym: bool = False
    """sim-to-sim check: same start states in the Gymnasium env"""
    latency_steps: int = 0
    """sensor latency in control ticks"""
    noise_std: float = 0.0
    """Gaussian sensor noise"""
    seed: int = 0
    """seed of the first episode (episode i uses seed + i)"""

    def __post_init__(self) -> None:
        if not self.robot.startswith("sim:"):
            raise ValueError(f"--robot {self.robot!r}: only simulated robots (sim:InvertedPendulum-v5, sim:quadruped) can be driven "
                             "from the command line; drive hardware from Python with your Robot driver and rlsuite.robots.loop.ControlLoop.")
        at_least(self, 1, "episodes")
        at_least(self, 0, "latency_steps", "noise_std")
        above(self, 0, "duration", "rate", "remote_timeout")


@dataclasses.dataclass(frozen=True)
class ServeArgs:
    """Serve an exported policy over ZeroMQ: a session per client (handshake with fresh nonces, keys derived
    from the shared key), HMAC-SHA256 authenticated msgpack messages. ONNX files are served by default;
    TorchScript only with --allow-torchscript."""

    file: str
    """an artifact from rlsuite export (.onnx; .pt with --allow-torchscript)"""
    port: int
    """TCP port to listen on"""
    bind: str = "127.0.0.1"
    """address to listen on (loopback by default; any other address needs --allow-remote)"""
    allow_remote: bool = False
    """allow a non-loopback --bind (messages are authenticated, not encrypted: trusted networks only)"""
    allow_torchscript: bool = False
    """serve a TorchScript file (loading TorchScript runs code stored in the file: only files you trust)"""
    key_file: str | None = None
    """file holding the shared key, mode 0600 (else $RLSUITE_POLICY_KEY)"""
    max_requests: int | None = None
    """stop after this many answered action requests (None: serve until Ctrl-C)"""
    max_sessions: int = 64
    """client sessions kept at once (the least recently used is dropped for a new client)"""
    max_clock_skew: float = 5.0
    """seconds a handshake timestamp may differ from this machine's clock (clocks synchronised by NTP)"""
    log_every: float = 60.0
    """seconds between two log lines with the counts (served, rejected, errors)"""

    def __post_init__(self) -> None:
        within(self, "port", 1, 65535)
        at_least(self, 1, "max_requests", "max_sessions")
        above(self, 0, "max_clock_skew", "log_every")
        from rlsuite.robots.transport import is_loopback

        if not is_loopback(self.bind) and not self.allow_remote:
            raise ValueError(f"--bind {self.bind} listens beyond this machine; allowed without --allow-remote: 127.0.0.1, ::1, "
                             "localhost. To serve other machines pass --allow-remote as well, on a trusted network only "
                             "(messages are authenticated, not encrypted).")


def cmd_export(argv: list[str]) -> int:
    """``rlsuite export RUN_DIR --format onnx|torchscript --out FILE`` for any run with a policy module."""
    a = parse(ExportArgs, argv, "rlsuite export", positional=("run_dir",))
    if Path(a.out).exists() and not a.overwrite:
        raise FileExistsError(f"--out {a.out} already exists; pass --overwrite to replace it, or choose another --out.")
    from rlsuite.robots.contract import file_sha256
    from rlsuite.runs import export_run

    path, diff, info = export_run(a.run_dir, a.format, a.out, a.opset)
    print(f"exported {info['algo']} ({info['env']}) to {path} [{a.format}], sha256 {file_sha256(path)}")
    print(f"parity on 256 random observations: max abs difference {diff:.3g} (limit 1e-05)")
    print(f"max_abs_diff={diff:.3g}")
    return 0


def cmd_deploy(argv: list[str]) -> int:
    """``rlsuite deploy --robot sim:<env> --policy FILE``: run an exported policy on a simulated robot."""
    a = parse(DeployArgs, argv, "rlsuite deploy")
    from rlsuite.robots.export import load_runner
    from rlsuite.robots.sim import sim_task

    task = sim_task(a.robot[len("sim:") :])
    contract = task.make_contract()
    rate = 1.0 / contract.policy_dt
    if a.rate is not None and abs(a.rate - rate) > 1e-6:
        raise ValueError(f"--rate {a.rate:g} Hz does not match {task.name}'s policy rate of {rate:g} Hz (the contract's policy_dt).")
    client = None
    if a.remote:
        from rlsuite.robots.transport import PolicyClient, load_key

        timeout = a.remote_timeout if a.remote_timeout is not None else max(0.05, contract.policy_dt)
        client = PolicyClient(a.remote, load_key(a.key_file), timeout_s=timeout)
        policy = client.act  # one observation (obs_dim,) per request, a session per deploy (handshake on the first call)
    else:
        if not Path(a.policy).is_file():
            raise FileNotFoundError(f"--policy {a.policy}: file not found; make one with rlsuite export RUN_DIR --format onnx --out FILE "
                                    "(or torchscript, .pt).")
        policy = load_runner(a.policy)  # (obs_dim,) -> (act_dim,)
    try:
        return _run_deploy(a, task, contract, policy, rate, client)
    finally:
        if client is not None:
            client.close()


def _run_deploy(a: DeployArgs, task, contract, policy, rate: float, client) -> int:
    """The episodes of ``rlsuite deploy`` (``client``: the --remote client, or None); the exit status."""
    from rlsuite.robots.sim import run_episode, sim_to_sim
    from rlsuite.robots.transport import PolicyUnavailable

    ticks = int(a.duration * rate)
    if a.compare_gym:
        try:
            gym_r, sim_r = sim_to_sim(policy, task, a.episodes, a.seed, a.latency_steps, a.noise_std)
        except PolicyUnavailable as e:  # only a --remote policy raises it
            print(f"remote: {e} (the Gymnasium side of --compare-gym has no safety chain to damp; stopped); exit status "
                  f"{SAFETY_EXIT}.", file=sys.stderr)
            return SAFETY_EXIT
        for i, (g, r) in enumerate(zip(gym_r, sim_r, strict=True)):
            print(f"episode {i}: gymnasium return {g:.1f}, simulated robot return {r:.1f}")
        gm, sm = float(np.mean(gym_r)), float(np.mean(sim_r))
        print(f"mean return: gymnasium {gm:.2f}, simulated robot {sm:.2f} ({100 * (sm - gm) / max(abs(gm), 1e-9):+.1f}%)")
        print(f"sim_to_sim_gap={abs(sm - gm) / max(abs(gm), 1e-9):.4f}")
        return 0
    robot = task.make_robot(a.latency_steps, a.noise_std, a.seed)
    returns, stopped, intervened = [], [], []
    for ep in range(a.episodes):
        out = run_episode(task, robot, policy, contract, max_steps=ticks, seed=a.seed + ep)
        st, events = out["stats"], out["events"]
        returns.append(out["return"])
        print(f"episode {ep}: return {out['return']:.1f}, ticks {st['ticks']} (lockstep, simulated clock), overruns {st['overruns']}, "
              f"jitter p99 {st['jitter_p99_ms']:.3f} ms, inference p50 {st['infer_p50_ms']:.3f} ms, safety events {sum(n for kinds in out['safety_counts'].values() for n in kinds.values())}")
        for e in events[:10]:
            print(f"  safety {e.filter} {e.kind}: {e.detail}")
        if any(e.kind == "estop" for e in events):
            stopped.append(ep)
        elif events:
            intervened.append(ep)
    print(f"mean_return={float(np.mean(returns)):.4f}")
    if client is not None and client.handshakes == 0:
        print(f"remote: no policy server completed a handshake at {a.remote}; start one with rlsuite serve-policy FILE --port N "
              "and give both sides the same key (--key-file, mode 0600, or $RLSUITE_POLICY_KEY).", file=sys.stderr)
    if stopped or intervened:
        said = [f"{_episodes(stopped)} ended in an e-stop"] if stopped else []
        said += [f"the safety filters changed the policy's commands in {_episodes(intervened)}"] if intervened else []
        print(f"safety: {'; '.join(said)} (see the safety lines above); exit status {SAFETY_EXIT}.", file=sys.stderr)
        return SAFETY_EXIT
    return 0


def _episodes(eps: list[int]) -> str:
    return f"episode {eps[0]}" if len(eps) == 1 else f"episodes {', '.join(map(str, eps))}"


def cmd_serve_policy(argv: list[str]) -> int:
    """``rlsuite serve-policy FILE --port N``: answer authenticated action requests for an exported policy."""
    a = parse(ServeArgs, argv, "rlsuite serve-policy", positional=("file",))
    path = Path(a.file)
    if not path.is_file():
        raise FileNotFoundError(f"{a.file}: file not found; make one with rlsuite export RUN_DIR --format onnx --out FILE.")
    if path.suffix != ".onnx" and not a.allow_torchscript:
        raise ValueError(f"{a.file} is not an .onnx file, so it would be loaded as TorchScript, and loading TorchScript runs code "
                         "stored in the file. Serve it only if you trust where it came from, with --allow-torchscript; "
                         "or export the run to ONNX (rlsuite export RUN_DIR --format onnx --out policy.onnx), served by default.")
    from rlsuite.robots.export import load_runner
    from rlsuite.robots.transport import PolicyServer, load_key

    key = load_key(a.key_file)
    runner = load_runner(path)
    if runner.obs_dim is not None:
        runner(np.zeros((1, runner.obs_dim), np.float32))  # warm up: the first request is not slower than the others
    host = f"[{a.bind}]" if ":" in a.bind else a.bind
    server = PolicyServer(runner, key, bind=f"tcp://{host}:{a.port}", allow_remote=a.allow_remote, obs_dim=runner.obs_dim,
                          max_sessions=a.max_sessions, max_skew_s=a.max_clock_skew)
    width = f"obs_dim {runner.obs_dim}" if runner.obs_dim is not None else "obs_dim not recorded in the file"
    print(f"serving {a.file} ({runner.format}, {width}) on {server.endpoint}: a session per client, HMAC-SHA256 "
          "authenticated; Ctrl-C stops", flush=True)
    try:
        server.serve(max_requests=a.max_requests, log_every_s=a.log_every)
    except KeyboardInterrupt:
        print("stopped (Ctrl-C)", flush=True)
    finally:
        server.close()
        print(server.summary(), flush=True)
    return 0
