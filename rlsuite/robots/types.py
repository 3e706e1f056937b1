"""Plain data passed between a robot, the safety chain and the control loop.

Every array is float32 NumPy in **robot joint order** (the order of ``RobotInfo.joints``); the policy's
own joint order is mapped by the :class:`rlsuite.robots.contract.PolicyContract`.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np


class Mode(enum.Enum):
    """What a command asks the joints to do."""

    PASSIVE = "passive"  # no torque
    POSITION = "position"  # PD toward q_des with kp, kd
    DAMPING = "damping"  # kp = 0, kd > 0: a controlled stop
    TORQUE = "torque"  # tau_ff only (torque-controlled policies)


@dataclasses.dataclass(frozen=True)
class JointSpec:
    """One joint: default position, limits (rad, rad/s, N m) and PD gains."""

    name: str
    q_default: float
    q_min: float
    q_max: float
    dq_max: float
    tau_max: float
    kp: float
    kd: float


@dataclasses.dataclass(frozen=True)
class RobotInfo:
    """What a robot is: its joints in robot order and its native state rate."""

    name: str
    joints: tuple[JointSpec, ...]
    state_rate_hz: float

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    def array(self, field: str) -> np.ndarray:
        """One field of every joint as a float32 array, e.g. ``info.array("q_max")``."""
        return np.array([getattr(j, field) for j in self.joints], dtype=np.float32)


@dataclasses.dataclass
class RobotState:
    """A state sample: monotonic time stamp (ns), sequence number, joints, IMU (quaternion ``wxyz``)."""

    t_ns: int
    seq: int
    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    quat_wxyz: np.ndarray = dataclasses.field(default_factory=lambda: np.array([1, 0, 0, 0], dtype=np.float32))
    gyro: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3, dtype=np.float32))
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RobotCommand:
    """Joint targets and gains (robot order); ``tau_ff`` a feed-forward torque."""

    mode: Mode
    q_des: np.ndarray
    dq_des: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau_ff: np.ndarray

    def copy(self) -> RobotCommand:
        return RobotCommand(self.mode, self.q_des.copy(), self.dq_des.copy(), self.kp.copy(), self.kd.copy(), self.tau_ff.copy())

    @staticmethod
    def passive(n: int) -> RobotCommand:
        z = np.zeros(n, dtype=np.float32)
        return RobotCommand(Mode.PASSIVE, z.copy(), z.copy(), z.copy(), z.copy(), z.copy())

    @staticmethod
    def damping(q: np.ndarray, kd: np.ndarray) -> RobotCommand:
        """A damping command (``kp = 0``, gains ``kd``) with ``q_des = q`` as given; for a measured ``q`` that
        may hold NaN/Inf use :meth:`damping_safe`."""
        z = np.zeros_like(q, dtype=np.float32)
        return RobotCommand(Mode.DAMPING, np.asarray(q, np.float32).copy(), z.copy(), z.copy(), np.asarray(kd, np.float32).copy(), z.copy())

    @staticmethod
    def damping_safe(q: np.ndarray, kd: np.ndarray, fallback_q: np.ndarray | None = None,
                     limits: tuple[np.ndarray, np.ndarray] | None = None) -> RobotCommand:
        """A damping command around the measured positions ``q (n,)`` whose ``q_des`` is always finite: a
        joint whose ``q`` is NaN/Inf takes ``fallback_q`` (the last finite measured position, see
        :func:`last_finite_q`) where that is finite, else 0.0; with ``limits = (q_min, q_max)`` every target
        is then clipped into them. ``kp = 0``, so ``q_des`` asks for no torque; a finite, in-range value keeps
        a driver that checks targets or converts them to fixed point from refusing the command (or
        overflowing), which a target of +-3.4e38 from ``np.nan_to_num`` could cause."""
        q = np.asarray(q, np.float32)
        ok = np.isfinite(q)
        if not ok.all():
            fb = np.zeros_like(q) if fallback_q is None else np.nan_to_num(np.asarray(fallback_q, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            q = np.where(ok, q, fb)
        if limits is not None:
            q = np.clip(q, limits[0], limits[1])
        return RobotCommand.damping(q, kd)


def last_finite_q(prev: np.ndarray | None, q: np.ndarray) -> np.ndarray:
    """Per joint, the last finite measured position: ``q (n,)`` where it is finite, else ``prev (n,)`` (None
    or another shape: no earlier value, NaN). Returns a new float32 array; call it on every state read and
    pass the result to :meth:`RobotCommand.damping_safe` as ``fallback_q``."""
    q = np.asarray(q, np.float32)
    ok = np.isfinite(q)
    if ok.all():
        return q.copy()
    if prev is None or np.shape(prev) != q.shape:
        prev = np.full(q.shape, np.nan, np.float32)
    return np.where(ok, q, prev).astype(np.float32)


def projected_gravity(quat_wxyz: np.ndarray) -> np.ndarray:
    """Gravity direction ``(0, 0, -1)`` in the body frame, from the body's orientation quaternion ``wxyz``."""
    w, x, y, z = (float(v) for v in quat_wxyz)
    # R^T @ (0, 0, -1) for the rotation matrix R of the unit quaternion
    return -np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dtype=np.float32)
