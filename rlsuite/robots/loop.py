"""The real-time control loop: absolute deadlines, overrun accounting, jitter statistics.

One tick (``ControlLoop.tick``)::

    state = robot.read_state(timeout)
    obs = builder.push(terms(state, last_action))     # the contract's terms and history
    action = policy(obs)                              # only in the POLICY phase
    cmd = fsm.command(contract targets of action, state)
    cmd, events = safety(cmd, state, ctx)             # NaN guard, limits, rate, torque, tilt, watchdogs
    robot.send_command(cmd)

``run`` paces ticks on absolute deadlines (``deadline += period``, never ``sleep(period)`` after the
work, which drifts by the work time) with an injectable ``clock`` and ``sleep_until`` so it can be
tested without waiting. A tick that ends after the next deadline is an overrun: the loop does not try
to catch up with a burst of ticks; it skips to the next future deadline and counts the missed ones.
Statistics: wake-up jitter (actual start - deadline) p50 / p99 / max, inference time, overruns,
missed deadlines.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rlsuite.robots.contract import ObservationBuilder, PolicyContract
from rlsuite.robots.interface import Robot
from rlsuite.robots.safety import OperatingFSM, Phase, SafetyChain, TickContext
from rlsuite.robots.transport import PolicyUnavailable
from rlsuite.robots.types import RobotState, projected_gravity


def default_terms(contract: PolicyContract) -> Callable[[RobotState, np.ndarray], dict[str, np.ndarray]]:
    """Raw observation terms from a robot state for the standard term names: ``q`` and ``dq`` (policy
    joints, ``q`` relative to the default pose), ``last_action``, ``projected_gravity``, ``gyro`` and
    ``quat`` (in the contract's convention; robot states always carry ``wxyz``)."""
    idx = list(contract.robot_joint_map)
    q0 = np.asarray(contract.action.default_q, np.float32)

    def terms(state: RobotState, last_action: np.ndarray) -> dict[str, np.ndarray]:
        quat = state.quat_wxyz if contract.quaternion == "wxyz" else state.quat_wxyz[[1, 2, 3, 0]]
        return {"q": state.q[idx] - q0, "dq": state.dq[idx], "last_action": last_action,
                "projected_gravity": projected_gravity(state.quat_wxyz), "gyro": state.gyro, "quat": quat, **state.extras}

    return terms


class SimulatedClock:
    """A clock for lockstep simulation and tests: time advances only when the loop sleeps (or when the
    caller moves ``t``). Pass it as both ``clock`` and ``sleep_until=clock.sleep_until``."""

    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t

    def sleep_until(self, deadline: int) -> None:
        self.t = max(self.t, deadline)


@dataclasses.dataclass
class LoopStats:
    """Per-run timing figures (nanoseconds in the arrays)."""

    jitter_ns: list[int] = dataclasses.field(default_factory=list)
    infer_ns: list[int] = dataclasses.field(default_factory=list)
    overruns: int = 0
    missed_deadlines: int = 0
    ticks: int = 0

    def summary(self) -> dict[str, float]:
        def pct(x: list[int], q: float) -> float:
            return float(np.percentile(np.asarray(x), q)) / 1e6 if x else float("nan")

        return {"ticks": self.ticks, "overruns": self.overruns, "missed_deadlines": self.missed_deadlines,
                "jitter_p50_ms": pct(self.jitter_ns, 50), "jitter_p99_ms": pct(self.jitter_ns, 99),
                "jitter_max_ms": max(self.jitter_ns) / 1e6 if self.jitter_ns else float("nan"),
                "infer_p50_ms": pct(self.infer_ns, 50), "infer_p99_ms": pct(self.infer_ns, 99)}


def _sleep_until(deadline_ns: int, clock: Callable[[], int] = time.monotonic_ns) -> None:
    while True:
        left = deadline_ns - clock()
        if left <= 0:
            return
        if left > 2_000_000:  # coarse sleep, then spin the last 2 ms for precision
            time.sleep((left - 2_000_000) / 1e9)
        elif left > 200_000:
            time.sleep(0)


class ControlLoop:
    """Runs a policy on a robot through the contract, the state machine and the safety chain."""

    def __init__(self, robot: Robot, policy: Callable[[np.ndarray], np.ndarray], contract: PolicyContract,
                 safety: SafetyChain | None = None, fsm: OperatingFSM | None = None,
                 terms: Callable[[RobotState, np.ndarray], dict[str, Any]] | None = None,
                 clock: Callable[[], int] = time.monotonic_ns, sleep_until: Callable[[int], None] | None = None) -> None:
        self.robot, self.policy, self.contract = robot, policy, contract
        self.safety = safety or SafetyChain.default(robot.info, contract.policy_dt)
        self.fsm = fsm or OperatingFSM(robot.info)
        self.terms = terms or default_terms(contract)
        self.builder = ObservationBuilder(contract)
        self.clock = clock
        self.sleep_until = sleep_until or (lambda d: _sleep_until(d, clock))
        self.period_ns = int(round(contract.policy_dt * 1e9))
        self.last_action = np.zeros(contract.action_dim, dtype=np.float32)
        self.stats = LoopStats()
        self.consecutive_misses = 0

    def tick(self) -> dict[str, Any]:
        """One control step; returns what happened (phase, command sent, safety events)."""
        state = self.robot.read_state(timeout_s=self.contract.policy_dt)
        obs = self.builder.push(self.terms(state, self.last_action))
        targets = None
        if self.fsm.phase == Phase.POLICY and not self.safety.latched:
            t0 = self.clock()
            try:
                action = np.asarray(self.policy(obs), dtype=np.float32).reshape(-1)
            except PolicyUnavailable as e:  # a remote policy went silent: damp, and stay damped
                self.safety.latch(self.clock(), "policy", str(e))
                action = None
            self.stats.infer_ns.append(self.clock() - t0)
            if action is not None:
                self.last_action = self.contract.clip_action(action)  # what was commanded (the 'last_action' term)
                targets = self.contract.action_to_targets(action, len(self.robot.info.joints), self.robot.info.array("q_default"))
        now = self.clock()
        cmd = self.fsm.command(targets, state, now, torque=self.contract.action.type == "joint_torque")
        cmd, events = self.safety(cmd, state, TickContext(now, self.consecutive_misses))
        if self.safety.latched and self.fsm.phase != Phase.DAMPING:
            self.fsm.to(Phase.DAMPING)
        sent = self.robot.send_command(cmd)
        self.stats.ticks += 1
        return {"phase": self.fsm.phase, "command": sent, "events": events, "obs": obs}

    def run(self, ticks: int, on_tick: Callable[[int, dict[str, Any]], None] | None = None) -> LoopStats:
        """``ticks`` control steps on absolute deadlines; returns the statistics."""
        deadline = self.clock()
        for i in range(ticks):
            start = self.clock()
            self.stats.jitter_ns.append(max(0, start - deadline))
            out = self.tick()
            if on_tick is not None:
                on_tick(i, out)
            deadline += self.period_ns
            now = self.clock()
            if now > deadline:  # overrun: skip to the next future deadline, count what was missed
                self.stats.overruns += 1
                missed = (now - deadline) // self.period_ns + 1
                self.stats.missed_deadlines += int(missed)
                self.consecutive_misses += int(missed)
                deadline += int(missed) * self.period_ns
            else:
                self.consecutive_misses = 0
            self.sleep_until(deadline)
        return self.stats
