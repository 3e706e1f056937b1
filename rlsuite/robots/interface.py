"""The ``Robot`` protocol every driver implements, a fake robot, and a conformance check for drivers.

A driver for real hardware implements :class:`Robot` and runs :func:`check_robot_conformance` against
itself (on the bench, motors unpowered or in a safe pose): it checks the contract below without
judging the hardware. ``send_command`` returns what was actually sent (after the driver's own
clipping); ``close`` must leave the hardware passive or damped; ``read_state`` raises
:class:`StaleState` when no state newer than ``timeout_s`` arrives.
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
        self.last_sent = RobotCommand.damping(self.q, self.info.array("kd"))

    @property
    def healthy(self) -> bool:
        return self.connected


def check_robot_conformance(robot: Robot) -> None:
    """Raise ``AssertionError`` with a reason where ``robot`` breaks the protocol (see module docstring)."""
    assert isinstance(robot, Robot), f"{type(robot).__name__} does not implement the Robot protocol."
    n = len(robot.info.joints)
    assert n > 0 and len(set(robot.info.joint_names)) == n, "joint names must be present and unique."
    for j in robot.info.joints:
        assert j.q_min < j.q_max and j.dq_max > 0 and j.tau_max > 0, f"joint {j.name}: limits must be ordered and positive."
        assert j.q_min <= j.q_default <= j.q_max, f"joint {j.name}: default position outside its limits."
    try:
        robot.read_state(0.01)
    except StaleState:
        pass
    else:
        raise AssertionError("read_state before connect() must raise StaleState, not return a state.")
    robot.connect()
    try:
        assert robot.healthy, "robot reports unhealthy right after connect()."
        s1 = robot.read_state(0.5)
        s2 = robot.read_state(0.5)
        for name in ("q", "dq", "tau"):
            arr = getattr(s1, name)
            assert arr.shape == (n,) and arr.dtype == np.float32, f"state.{name} must be float32 of shape ({n},), got {arr.dtype} {arr.shape}."
        assert s1.quat_wxyz.shape == (4,) and abs(float(np.linalg.norm(s1.quat_wxyz)) - 1) < 1e-3, "quat_wxyz must be a unit quaternion."
        assert s2.seq > s1.seq and s2.t_ns >= s1.t_ns, "state sequence numbers and time stamps must increase."
        hold = RobotCommand(Mode.POSITION, s2.q.copy(), np.zeros(n, np.float32), robot.info.array("kp"), robot.info.array("kd"), np.zeros(n, np.float32))
        sent = robot.send_command(hold)
        assert isinstance(sent, RobotCommand) and sent.q_des.shape == (n,), "send_command must return the command actually sent."
        assert sent.mode == Mode.POSITION and np.isfinite(sent.q_des).all(), "send_command returned another mode or non-finite targets."
        robot.damp()
        robot.passive()
    finally:
        robot.close()
