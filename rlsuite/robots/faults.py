"""Fault injection for the deploy path: break a robot, a policy or the network on a schedule and record
what reached the motors.

A fault is a :class:`Fault`: a class name, the control tick it starts at, how many ticks it lasts and a
magnitude. :class:`FaultyRobot` wraps any :class:`rlsuite.robots.interface.Robot` (sensor faults),
:class:`FaultyPolicy` wraps any policy callable (policy faults), and :class:`FaultProxy` sits between a
:class:`rlsuite.robots.transport.PolicyClient` and a policy server (network faults); the server process
itself is stopped, killed and restarted by the campaign (``scripts/bench/faults.py``).

Fault classes (:data:`FAULT_CLASSES`; ``must_damp`` marks the ones after which the robot has to be
damped, the others may be absorbed by the safety filters):

==================== ======== ========================================================================
class                must     what is injected
                     damp
==================== ======== ========================================================================
nan_obs                       NaN in the measured joint positions and velocities
inf_obs                       +Inf in the measured joint velocities
sensor_dropout       yes      ``read_state`` raises :class:`StaleState`
stale_state                   the state's time stamp stops advancing (a frozen sensor driver)
latency_spike                 reading the state takes ``magnitude`` control periods
deadline_overrun              inference takes ``magnitude`` control periods
policy_raises        yes      the policy raises an exception
policy_bad_output    yes      the policy returns an array of the wrong shape
action_spike                  ``magnitude`` (10 to 1e4) times a random sign per joint added to the action
joint_limit                   the action drives every joint 20 % past its upper limit
tilt                 yes      the IMU reports a tilt of ``magnitude`` rad (beyond the tilt limit)
server_silent        yes      the policy server process is stopped (SIGSTOP) for the fault's duration
server_restart       yes      the policy server process is killed and started again
server_garbage       yes      the server's replies are replaced by random or corrupted bytes
network_partition    yes      every message in both directions is dropped for the fault's duration
==================== ======== ========================================================================

For ``action_spike`` and ``joint_limit`` :func:`run_with_fault` removes the contract's own action clip, so
that the spikes reach the safety filters (a contract may have no clip) and the filters are what is tested.

Every command the robot receives is checked by :func:`command_violations` against the robot's limits
(finite numbers; position targets inside the joint limits; torques inside ``tau_max``; damping with
``kp = 0``): the campaign's first figure is the count of commands outside the limits, which must be 0.
Time is the loop's clock: in lockstep simulation a :class:`rlsuite.robots.loop.SimulatedClock`, which the
wrappers advance by the real time a remote call took and by the injected delays.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rlsuite.robots.interface import StaleState
from rlsuite.robots.types import Mode, RobotCommand, RobotInfo, RobotState

log = logging.getLogger("rlsuite.robots")

SENSOR_FAULTS = ("nan_obs", "inf_obs", "sensor_dropout", "stale_state", "latency_spike", "tilt")
POLICY_FAULTS = ("deadline_overrun", "policy_raises", "policy_bad_output", "action_spike", "joint_limit")
NETWORK_FAULTS = ("server_silent", "server_restart", "server_garbage", "network_partition")
FAULT_CLASSES = SENSOR_FAULTS + POLICY_FAULTS + NETWORK_FAULTS
MUST_DAMP = frozenset({"sensor_dropout", "policy_raises", "policy_bad_output", "tilt", *NETWORK_FAULTS})


class InjectedFault(RuntimeError):
    """The exception an injected ``policy_raises`` fault throws."""


@dataclasses.dataclass(frozen=True)
class Fault:
    """``kind`` (one of :data:`FAULT_CLASSES`) active for ticks ``[start, start + duration)``."""

    kind: str
    start: int
    duration: int = 1
    magnitude: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_CLASSES:
            raise ValueError(f"unknown fault class {self.kind!r}; allowed: {', '.join(FAULT_CLASSES)}.")
        if self.start < 0 or self.duration < 1:
            raise ValueError(f"a fault needs start >= 0 and duration >= 1, got start={self.start}, duration={self.duration}.")

    def active(self, tick: int) -> bool:
        return self.start <= tick < self.start + self.duration


def draw_fault(kind: str, rng: np.random.Generator, first: int, last: int) -> Fault:
    """A fault of class ``kind`` starting at a random tick in ``[first, last]`` with a random duration
    (1-10 ticks) and the class's magnitude range."""
    duration = int(rng.integers(1, 11))
    magnitude = {"latency_spike": float(rng.uniform(0.5, 6.0)), "deadline_overrun": float(rng.uniform(0.5, 6.0)),
                 "action_spike": float(10 ** rng.uniform(1, 4) * rng.choice([-1, 1])), "tilt": float(rng.uniform(1.1, 3.0))}.get(kind, 1.0)
    return Fault(kind, int(rng.integers(first, last + 1)), duration, magnitude)


def _tilted(angle: float, axis: int) -> np.ndarray:
    q = np.zeros(4, np.float32)
    q[0], q[1 + axis] = np.cos(angle / 2), np.sin(angle / 2)
    return q


class FaultyRobot:
    """A robot whose sensors fail as ``fault`` says (sensor classes); everything else is passed through.
    ``tick`` is set by the caller before each control tick; ``clock`` (with a settable ``t``) is the
    loop's simulated clock, advanced for latency spikes. Every command received is kept in ``sent``."""

    def __init__(self, robot: Any, fault: Fault | None, clock: Any, period_ns: int) -> None:
        self.robot, self.fault, self.clock, self.period_ns = robot, fault, clock, period_ns
        self.info: RobotInfo = robot.info
        self.tick = 0
        self.sent: list[tuple[int, int, RobotCommand]] = []  # (tick, loop-clock ns, command)
        self.damp_calls: list[tuple[int, int]] = []  # (tick, loop-clock ns)
        self._frozen_t: int | None = None

    def _on(self, kind: str) -> bool:
        return self.fault is not None and self.fault.kind == kind and self.fault.active(self.tick)

    def connect(self) -> None:
        self.robot.connect()

    def close(self) -> None:
        self.robot.close()

    def read_state(self, timeout_s: float) -> RobotState:
        if self._on("sensor_dropout"):
            raise StaleState(f"injected sensor dropout at tick {self.tick}")
        if self._on("latency_spike"):
            self.clock.t += int(self.fault.magnitude * self.period_ns)
        s = self.robot.read_state(timeout_s)
        if self._on("stale_state"):
            self._frozen_t = s.t_ns if self._frozen_t is None else self._frozen_t
            s = dataclasses.replace(s, t_ns=self._frozen_t)
        if self._on("nan_obs"):
            s = dataclasses.replace(s, q=np.full_like(s.q, np.nan), dq=np.full_like(s.dq, np.nan))
        if self._on("inf_obs"):
            s = dataclasses.replace(s, dq=np.full_like(s.dq, np.inf))
        if self._on("tilt"):
            s = dataclasses.replace(s, quat_wxyz=_tilted(self.fault.magnitude, self.fault.start % 2))
        return s

    def send_command(self, cmd: RobotCommand) -> RobotCommand:
        self.sent.append((self.tick, self.clock(), cmd.copy()))
        return self.robot.send_command(cmd)

    def passive(self) -> None:
        self.robot.passive()

    def damp(self) -> None:
        self.damp_calls.append((self.tick, self.clock()))
        self.robot.damp()

    @property
    def healthy(self) -> bool:
        return self.robot.healthy

    def __getattr__(self, name: str) -> Any:  # simulator helpers (reset, data, ...) of the wrapped robot
        return getattr(self.robot, name)


class FaultyPolicy:
    """A policy that fails as ``fault`` says (policy classes); ``upper`` is :func:`upper_action`. The
    loop's simulated ``clock`` is advanced by the real time each call took (a remote call's round trip or time-out) and by injected overruns."""

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray], fault: Fault | None, clock: Any, period_ns: int,
                 upper: np.ndarray | None = None) -> None:
        self.policy, self.fault, self.clock, self.period_ns = policy, fault, clock, period_ns
        self.upper = upper  # the action that drives every joint past its upper limit (joint_limit faults)
        self.tick = 0

    def _on(self, kind: str) -> bool:
        return self.fault is not None and self.fault.kind == kind and self.fault.active(self.tick)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self._on("policy_raises"):
            raise InjectedFault(f"injected policy exception at tick {self.tick}")
        t0 = time.monotonic_ns()
        try:
            action = np.asarray(self.policy(obs), dtype=np.float32)
        finally:
            self.clock.t += time.monotonic_ns() - t0
        if self._on("deadline_overrun"):
            self.clock.t += int(self.fault.magnitude * self.period_ns)
        if self._on("policy_bad_output"):
            return np.zeros(action.size + 3, np.float32)
        if self._on("action_spike"):
            signs = np.random.default_rng(self.fault.start).choice([-1.0, 1.0], action.shape)
            return (action + self.fault.magnitude * signs).astype(np.float32)
        if self._on("joint_limit") and self.upper is not None:
            return self.upper.astype(np.float32)
        return action


def upper_action(contract: Any, info: RobotInfo, overshoot: float = 1.2) -> np.ndarray:
    """The action ``(action_dim,)`` that asks every policy joint for ``overshoot`` times its upper limit:
    position offsets past ``q_max`` (relative to the default pose), or ``overshoot`` times ``tau_max`` for a
    torque contract (what a ``joint_limit`` fault sends)."""
    idx = list(contract.robot_joint_map)
    a = contract.action
    if a.type == "joint_torque":
        return (overshoot * info.array("tau_max")[idx] / a.scale).astype(np.float32)
    q_max = info.array("q_max")[idx]
    if a.type == "joint_position":
        return (overshoot * q_max / a.scale).astype(np.float32)
    if a.type == "joint_position_offset":
        return (overshoot * (q_max - np.asarray(a.default_q, np.float32)) / a.scale).astype(np.float32)
    raise ValueError(f"no joint-limit action for a {a.type!r} contract; allowed: joint_torque, joint_position, joint_position_offset.")


def command_violations(cmd: RobotCommand, info: RobotInfo, atol: float = 1e-4) -> list[str]:
    """Why ``cmd`` is outside ``info``'s limits (an empty list when it is inside): non-finite numbers,
    position targets outside ``[q_min, q_max]``, negative gains, feed-forward torque above ``tau_max``,
    damping or passive commands that push."""
    bad = []
    arrays = {"q_des": cmd.q_des, "dq_des": cmd.dq_des, "kp": cmd.kp, "kd": cmd.kd, "tau_ff": cmd.tau_ff}
    for name, a in arrays.items():
        if a.shape != (len(info.joints),):
            bad.append(f"{name} has shape {a.shape}, expected ({len(info.joints)},)")
        elif not np.isfinite(a).all():
            bad.append(f"{name} not finite")
    if bad:
        return bad
    if (cmd.kp < 0).any() or (cmd.kd < 0).any():
        bad.append("negative gains")
    tau_max = info.array("tau_max")
    if cmd.mode == Mode.POSITION:
        if (cmd.q_des < info.array("q_min") - atol).any() or (cmd.q_des > info.array("q_max") + atol).any():
            bad.append("position target outside the joint limits")
        if (np.abs(cmd.tau_ff) > tau_max + atol).any():
            bad.append("feed-forward torque above tau_max")
    elif cmd.mode == Mode.TORQUE:
        if (np.abs(cmd.tau_ff) > tau_max * (1 + 1e-6) + atol).any():
            bad.append("torque above tau_max")
    elif cmd.mode == Mode.DAMPING:
        if (cmd.kp != 0).any() or (cmd.tau_ff != 0).any():
            bad.append("damping command with stiffness or feed-forward torque")
    elif cmd.mode == Mode.PASSIVE:
        if (cmd.kp != 0).any() or (cmd.kd != 0).any() or (cmd.tau_ff != 0).any():
            bad.append("passive command that is not zero")
    return bad


@dataclasses.dataclass
class FaultRun:
    """What one run with one injected fault did."""

    kind: str
    seed: int
    fault_tick: int
    duration: int
    ticks: int = 0
    commands: int = 0
    out_of_limits: int = 0
    estop: bool = False
    damped: bool = False
    damp_after_ms: float | None = None  # loop-clock time from the start of the fault's first tick to the first damping command
    stayed_damped: bool = True  # after the first damping command, every later command damped too
    alive: bool = True  # the task's own termination test passed at the end (still balanced / standing)
    clamped: int = 0  # commands the safety filters changed (clamped or replaced)
    early_stop: bool = False  # damped before the fault started (a false alarm; the runs before it were broken)
    crashed: bool = False
    error: str = ""
    first_violation: str = ""


def run_with_fault(task: Any, policy: Callable[[np.ndarray], np.ndarray], fault: Fault | None, seed: int, ticks: int,
                   after_ticks: int = 10, on_tick: Callable[[int], None] | None = None) -> FaultRun:
    """One lockstep run of ``policy`` on ``task``'s simulated robot through contract, observation builder,
    state machine, safety chain and control loop, with ``fault`` injected. The run goes on for
    ``after_ticks`` ticks after an e-stop to check that the robot stays damped. ``on_tick(tick)`` runs
    before every tick (the campaign uses it to stop or restart a policy server). For ``action_spike`` and
    ``joint_limit`` faults the contract's action clip is removed (see the module docstring). An exception escaping the
    loop is recorded as a crash (``crashed``, ``error``), never raised."""
    from rlsuite.robots.loop import SimulatedClock
    from rlsuite.robots.sim import lockstep_loop

    contract = task.make_contract()
    if fault is not None and fault.kind in ("action_spike", "joint_limit"):
        contract = dataclasses.replace(contract, action=dataclasses.replace(contract.action, clip=None))
    clock = SimulatedClock()
    period_ns = int(round(contract.policy_dt * 1e9))
    inner = task.make_robot(0, 0.0, seed)
    inner.clock = clock
    robot = FaultyRobot(inner, fault, clock, period_ns)
    faulty = FaultyPolicy(policy, fault, clock, period_ns, upper_action(contract, inner.info))
    rec = FaultRun(fault.kind if fault else "none", seed, fault.start if fault else -1, fault.duration if fault else 0)
    fault_t: int | None = None
    try:
        loop = lockstep_loop(robot, faulty, contract, clock)
        inner.reset(seed=seed)
        robot.sent.clear()
        stop_at = ticks
        for tick in range(ticks):
            robot.tick = faulty.tick = tick
            if on_tick is not None:
                on_tick(tick)
            if fault is not None and tick == fault.start:
                fault_t = clock()
            loop.run(1)
            rec.ticks += 1
            if loop.safety.latched and stop_at == ticks:
                stop_at = tick + 1 + after_ticks
            if tick + 1 >= stop_at:
                break
        rec.estop = bool(loop.safety.latched)
        rec.alive = bool(task.alive(inner))
        rec.clamped = sum(n for f, kinds in loop.safety.counts.items() for k, n in kinds.items() if k in ("clamped", "replaced"))
    except Exception as e:  # noqa: BLE001 - a crash is what the campaign counts
        rec.crashed, rec.error = True, f"{type(e).__name__}: {e}"
        log.exception("fault run crashed (%s, seed %d)", rec.kind, seed)
    _score(rec, robot, fault, fault_t)
    return rec


def _score(rec: FaultRun, robot: FaultyRobot, fault: Fault | None, fault_t: int | None) -> None:
    rec.commands = len(robot.sent)
    first_damp = first_damp_t = None
    for tick, t_ns, cmd in robot.sent:
        bad = command_violations(cmd, robot.info)
        if bad:
            rec.out_of_limits += 1
            rec.first_violation = rec.first_violation or f"tick {tick}: {'; '.join(bad)}"
        if cmd.mode == Mode.DAMPING and first_damp is None:
            first_damp, first_damp_t = tick, t_ns
        elif first_damp is not None and cmd.mode != Mode.DAMPING:
            rec.stayed_damped = False
    if first_damp is None and robot.damp_calls:
        first_damp, first_damp_t = robot.damp_calls[0]
    rec.damped = first_damp is not None
    rec.early_stop = first_damp is not None and first_damp < (fault.start if fault is not None else 1 << 62)
    if first_damp_t is not None and fault_t is not None:
        rec.damp_after_ms = max(0, first_damp_t - fault_t) / 1e6


class FaultProxy:
    """A ZeroMQ relay between policy clients (``frontend``, which they connect to) and a policy server
    (``backend``), run in a thread: passes every frame through, or drops everything (``mode =
    "partition"``), or replaces the server's replies by garbage (``mode = "garbage"``: random bytes, a
    bit-flipped reply or an empty frame, chosen at random)."""

    def __init__(self, backend: str, seed: int = 0) -> None:
        import zmq

        self.ctx = zmq.Context.instance()
        self.front = self.ctx.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.LINGER, 0)
        self.front.bind("tcp://127.0.0.1:*")
        self.endpoint = self.front.getsockopt_string(zmq.LAST_ENDPOINT)
        self.back = self.ctx.socket(zmq.DEALER)
        self.back.setsockopt(zmq.LINGER, 0)
        self.back.connect(backend)
        self.mode = "pass"
        self.rng = np.random.default_rng(seed)
        self.dropped = self.corrupted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _garbage(self, body: bytes) -> bytes:
        choice = int(self.rng.integers(3))
        if choice == 0:
            return self.rng.bytes(int(self.rng.integers(1, 200)))
        if choice == 1 and body:
            b = bytearray(body)
            b[int(self.rng.integers(len(b)))] ^= 1 << int(self.rng.integers(8))
            return bytes(b)
        return b""

    def _run(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.back, zmq.POLLIN)
        while not self._stop.is_set():
            for sock, _ in poller.poll(20):
                frames = sock.recv_multipart()
                if self.mode == "partition":
                    self.dropped += 1
                    continue
                if sock is self.front:
                    self.back.send_multipart(frames)
                else:
                    if self.mode == "garbage":
                        frames = frames[:-1] + [self._garbage(frames[-1])]
                        self.corrupted += 1
                    self.front.send_multipart(frames)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.front.close(0)
        self.back.close(0)
