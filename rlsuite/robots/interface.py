"""The ``Robot`` protocol every driver implements, a fake robot, and a conformance check for drivers.

A driver for real hardware implements :class:`Robot` and runs :func:`check_robot_conformance` against
itself (on the bench, motors unpowered or in a safe pose): it checks the contract below without
judging the hardware. ``send_command`` returns what was actually sent (after the driver's own
clipping); ``close`` must leave the hardware passive or damped; ``read_state`` raises
:class:`StaleState` when no state newer than ``timeout_s`` arrives. A broken rule raises
:class:`ConformanceError` (a subclass of ``AssertionError``) naming what was wrong; the checks are
explicit, so they run under ``python -O`` as well.

What a driver can rely on from the control loop when one of its calls raises is written in
:mod:`rlsuite.robots.loop` (failure behaviour).
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import numpy as np

from rlsuite.robots.types import JointSpec, Mode, RobotCommand, RobotInfo, RobotState


class StaleState(RuntimeError):
    """No fresh state arrived in time."""


@runtime_checkable
class Robot(Protocol):
    info: RobotInfo

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def read_state(self, timeout_s: float) -> RobotState: ...

    def send_command(self, cmd: RobotCommand) -> RobotCommand: ...

    def passive(self) -> None: ...

    def damp(self) -> None: ...

    @property
    def healthy(self) -> bool: ...


class FakeRobot:
    """A kinematic stand-in: each joint moves toward its PD target with a first-order lag, on an
    injectable clock. For tests and dry runs of the loop; no physics."""

    def __init__(self, n_joints: int = 3, clock=time.monotonic_ns, lag: float = 0.5) -> None:
        joints = tuple(JointSpec(f"j{i}", 0.0, -1.5, 1.5, 5.0, 10.0, 20.0, 0.5) for i in range(n_joints))
        self.info = RobotInfo("fake", joints, 500.0)
        self.clock, self.lag = clock, lag
        self.q = np.zeros(n_joints, dtype=np.float32)
        self.dq = np.zeros(n_joints, dtype=np.float32)
        self.quat = np.array([1, 0, 0, 0], dtype=np.float32)
        self.seq = 0
        self.connected = False
        self.last_sent: RobotCommand | None = None

    def connect(self) -> None:
        self.connected = True

    def close(self) -> None:
        self.damp()
        self.connected = False

    def read_state(self, timeout_s: float) -> RobotState:
        if not self.connected:
            raise StaleState("fake robot is not connected; call connect() first.")
        self.seq += 1
        return RobotState(self.clock(), self.seq, self.q.copy(), self.dq.copy(), np.zeros_like(self.q), self.quat.copy())

    def send_command(self, cmd: RobotCommand) -> RobotCommand:
        sent = cmd.copy()
        if cmd.mode == Mode.POSITION:
            new = self.q + self.lag * (cmd.q_des - self.q)
            self.dq = (new - self.q).astype(np.float32)
            self.q = new.astype(np.float32)
        else:
            self.dq = (self.dq * 0.5).astype(np.float32)
        self.last_sent = sent
        return sent

    def passive(self) -> None:
        self.last_sent = RobotCommand.passive(len(self.q))

    def damp(self) -> None:
        self.last_sent = RobotCommand.damping_safe(self.q, self.info.array("kd"), limits=(self.info.array("q_min"), self.info.array("q_max")))

    @property
    def healthy(self) -> bool:
        return self.connected


class ConformanceError(AssertionError):
    """A driver breaks the :class:`Robot` protocol (the message says where). A subclass of
    ``AssertionError`` so that callers written against the earlier ``assert``-based check keep working;
    raised explicitly, so ``python -O`` does not remove the checks."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConformanceError(message)


def check_robot_conformance(robot: Robot) -> None:
    """Raise :class:`ConformanceError` with the reason where ``robot`` breaks the protocol (see the module
    docstring). Runs the same under ``python -O``."""
    _require(isinstance(robot, Robot), f"{type(robot).__name__} does not implement the Robot protocol (needs info, connect, close, "
             "read_state, send_command, passive, damp, healthy).")
    n = len(robot.info.joints)
    _require(n > 0 and len(set(robot.info.joint_names)) == n, f"joint names must be present and unique, got {robot.info.joint_names}.")
    for j in robot.info.joints:
        _require(j.q_min < j.q_max and j.dq_max > 0 and j.tau_max > 0,
                 f"joint {j.name}: limits must be ordered and positive, got q in [{j.q_min}, {j.q_max}], dq_max {j.dq_max}, tau_max {j.tau_max}.")
        _require(j.q_min <= j.q_default <= j.q_max, f"joint {j.name}: default position {j.q_default} outside its limits [{j.q_min}, {j.q_max}].")
    try:
        robot.read_state(0.01)
    except StaleState:
        pass
    else:
        raise ConformanceError("read_state before connect() must raise StaleState, not return a state.")
    robot.connect()
    try:
        _require(bool(robot.healthy), "robot reports unhealthy right after connect().")
        s1 = robot.read_state(0.5)
        s2 = robot.read_state(0.5)
        for name in ("q", "dq", "tau"):
            arr = np.asarray(getattr(s1, name))
            _require(arr.shape == (n,) and arr.dtype == np.float32, f"state.{name} must be float32 of shape ({n},), got {arr.dtype} {arr.shape}.")
        quat = np.asarray(s1.quat_wxyz)
        _require(quat.shape == (4,) and abs(float(np.linalg.norm(quat)) - 1) < 1e-3, f"quat_wxyz must be a unit quaternion, got {quat}.")
        _require(s2.seq > s1.seq and s2.t_ns >= s1.t_ns,
                 f"state sequence numbers and time stamps must increase, got seq {s1.seq} -> {s2.seq}, t_ns {s1.t_ns} -> {s2.t_ns}.")
        hold = RobotCommand(Mode.POSITION, s2.q.copy(), np.zeros(n, np.float32), robot.info.array("kp"), robot.info.array("kd"), np.zeros(n, np.float32))
        sent = robot.send_command(hold)
        _require(isinstance(sent, RobotCommand) and np.shape(sent.q_des) == (n,),
                 f"send_command must return the command actually sent (a RobotCommand with q_des of shape ({n},)), got {type(sent).__name__}.")
        _require(sent.mode == Mode.POSITION and bool(np.isfinite(sent.q_des).all()),
                 f"send_command returned another mode ({sent.mode}) or non-finite targets for a position command.")
        robot.damp()
        robot.passive()
    finally:
        robot.close()
