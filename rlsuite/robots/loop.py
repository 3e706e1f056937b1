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
missed deadlines, faults per stage.

Failure behaviour (what a driver author can rely on):

- Every exception raised while reading the state (``read_state``, e.g. :class:`StaleState`), building
  the observation (``observation``: the terms function or the observation builder), running the policy
  (``policy``: any exception, including :class:`PolicyUnavailable` and an output of the wrong shape),
  building the command (``command``: the state machine and the safety chain) or sending it (``send``:
  ``robot.send_command``) is caught by ``tick``: the safety chain latches with an e-stop event whose
  ``filter`` is the stage, the state machine goes to DAMPING, and the robot is damped in the same tick.
  ``tick`` returns normally with ``out["fault"]`` (a :class:`TickFault`) set.
- How the robot is damped: a damping command (``kp = 0``, ``kd`` from the robot's joints) through
  ``robot.send_command``, around the measured ``q`` of this tick or, when ``read_state`` failed, of the
  last state read (``kp = 0`` makes the position irrelevant; drivers whose motor boards need a command
  every period keep getting one). Its ``q_des`` is always finite and inside ``[q_min, q_max]``: a joint
  whose measured ``q`` is NaN/Inf gets its last finite measured position, else 0.0, and every target is
  clipped into the joint limits (:meth:`RobotCommand.damping_safe`; the safety chain's own damping
  commands are built the same way). ``robot.damp()`` is called instead when no state was ever read, and
  as the fallback when ``send_command`` raised (for the policy's command or for the damping command);
  ``out["damping"]`` says which (``"command"`` or ``"robot.damp()"``), and a fallback also leaves a
  ``replaced`` event from the ``send`` stage. If ``robot.damp()`` raises too, the error is logged and
  :class:`DampingFailed` is raised: the only exception ``tick`` lets through.
- While latched, every later tick sends a damping command again (until ``safety.reset()``), whatever
  the stage that fails; the policy is not called.
- Programming errors are not hidden: the first failure of each (stage, exception type) while latched
  is logged (logger ``rlsuite.robots``) with its traceback (one line without it for the expected
  :class:`StaleState` and :class:`PolicyUnavailable`) and kept in ``safety.events``; repeats are only
  counted (``stats.faults[stage]``) so that a sensor that stays silent does not flood the log.
- ``run`` damps in a ``finally``: when it leaves by an exception (an ``on_tick`` callback that raises,
  ``KeyboardInterrupt``, ``SystemExit``), the chain latches (event from ``run``), the robot is damped as
  above, and the exception propagates. A normal return does not damp (``run(1)`` may be called in a
  loop).
- Exceptions that are not ``Exception`` (``KeyboardInterrupt``, ``SystemExit``) pass through a bare
  ``tick`` untouched: call ``tick`` inside ``run`` or your own ``try/finally`` that calls
  :meth:`ControlLoop.damp`.

The ``try`` blocks cost nothing measurable on the 500 Hz path (CPython 3.11+ exceptions are zero-cost
until raised).

Real-time mode: ``run(ticks, realtime=RealtimeConfig(...))`` runs the ticks inside
:func:`rlsuite.robots.realtime.realtime_mode` (SCHED_FIFO, CPU affinity, ``mlockall``, frozen garbage
collector) and keeps the report of what the OS granted in ``loop.realtime_report``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rlsuite.robots.contract import ObservationBuilder, PolicyContract
from rlsuite.robots.interface import Robot, StaleState
from rlsuite.robots.realtime import RealtimeConfig, RealtimeReport, realtime_mode
from rlsuite.robots.safety import OperatingFSM, Phase, SafetyChain, SafetyEvent, TickContext
from rlsuite.robots.transport import PolicyUnavailable
from rlsuite.robots.types import RobotCommand, RobotState, last_finite_q, projected_gravity

log = logging.getLogger("rlsuite.robots")
STAGES = ("read_state", "observation", "policy", "command", "send")
_EXPECTED = (StaleState, PolicyUnavailable)  # operational failures: logged without a traceback


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
    """Per-run timing figures (nanoseconds in the sample windows). Memory stays bounded on runs of any
    length: ``jitter_ns`` and ``infer_ns`` keep the latest ``max_samples`` ticks (200,000: 400 s at
    500 Hz), from which the percentiles are computed; ``jitter_max_ns`` and the counters cover the whole run."""

    jitter_ns: collections.deque[int] = dataclasses.field(default_factory=collections.deque)
    infer_ns: collections.deque[int] = dataclasses.field(default_factory=collections.deque)
    overruns: int = 0
    missed_deadlines: int = 0
    ticks: int = 0
    faults: dict[str, int] = dataclasses.field(default_factory=dict)  # stage -> ticks that failed there
    jitter_max_ns: int = 0
    max_samples: int = 200_000

    def __post_init__(self) -> None:
        self.jitter_ns = collections.deque(self.jitter_ns, maxlen=self.max_samples)
        self.infer_ns = collections.deque(self.infer_ns, maxlen=self.max_samples)

    def summary(self) -> dict[str, float]:
        def pct(x: collections.deque[int], q: float) -> float:
            return float(np.percentile(np.asarray(x), q)) / 1e6 if x else float("nan")

        return {"ticks": self.ticks, "overruns": self.overruns, "missed_deadlines": self.missed_deadlines,
                "faults": sum(self.faults.values()),
                "jitter_p50_ms": pct(self.jitter_ns, 50), "jitter_p99_ms": pct(self.jitter_ns, 99),
                "jitter_max_ms": self.jitter_max_ns / 1e6 if self.jitter_ns else float("nan"),
                "infer_p50_ms": pct(self.infer_ns, 50), "infer_p99_ms": pct(self.infer_ns, 99)}


def _sleep_until(deadline_ns: int, clock: Callable[[], int] = time.monotonic_ns, spin_ns: int = 2_000_000) -> None:
    """Block until ``spin_ns`` before the deadline, then spin (yielding while more than 200 us are left)."""
    while True:
        left = deadline_ns - clock()
        if left <= 0:
            return
        if left > spin_ns:  # coarse sleep, then spin the last spin_ns for precision
            time.sleep((left - spin_ns) / 1e9)
        elif left > 200_000:
            time.sleep(0)


class DampingFailed(RuntimeError):
    """The robot could not be damped: ``send_command`` with a damping command and ``robot.damp()`` both
    raised (or the state was unknown and ``robot.damp()`` raised). The hardware may be uncontrolled."""


@dataclasses.dataclass(frozen=True)
class TickFault:
    """A stage of the tick that raised: ``stage`` in :data:`STAGES` (or ``"run"``), the exception, and
    whether the same (stage, exception type) had already failed since the chain latched."""

    stage: str
    exception: BaseException
    repeated: bool = False

    @property
    def message(self) -> str:
        return f"{type(self.exception).__name__} in {self.stage}: {self.exception}"


class ControlLoop:
    """Runs a policy on a robot through the contract, the state machine and the safety chain (see the
    module docstring for the failure behaviour)."""

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
        self._own_sleeper = sleep_until is None
        self.sleep_until = sleep_until or (lambda d: _sleep_until(d, clock))
        self.period_ns = int(round(contract.policy_dt * 1e9))
        self.last_action = np.zeros(contract.action_dim, dtype=np.float32)
        self.last_state: RobotState | None = None
        self.stats = LoopStats()
        self.consecutive_misses = 0
        self.realtime_report: RealtimeReport | None = None
        self._kd = robot.info.array("kd")
        self._limits = (robot.info.array("q_min"), robot.info.array("q_max"))
        self._finite_q: np.ndarray | None = None  # per joint, the last finite measured position (NaN: none yet)
        self._fault_keys: set[tuple[str, str]] = set()  # (stage, exception type) already reported while latched

    def tick(self) -> dict[str, Any]:
        """One control step. Returns what happened: ``phase``, ``command`` (as sent; None when
        ``robot.damp()`` was called instead), ``events`` (safety events of this tick), ``obs`` (None when
        it could not be built), ``fault`` (a :class:`TickFault` or None) and ``damping`` (None, or how the
        robot was damped after a fault: ``"command"`` or ``"robot.damp()"``)."""
        try:
            state = self.robot.read_state(timeout_s=self.contract.policy_dt)
            finite_q = last_finite_q(self._finite_q, state.q)  # raises on a q that is no array of numbers
        except Exception as e:
            return self._fault("read_state", e, None, None)
        self.last_state, self._finite_q = state, finite_q
        try:
            obs = self.builder.push(self.terms(state, self.last_action))
        except Exception as e:
            return self._fault("observation", e, state, None)
        targets = None
        if self.fsm.phase == Phase.POLICY and not self.safety.latched:
            t0 = self.clock()
            try:
                action = np.asarray(self.policy(obs), dtype=np.float32).reshape(-1)
                # raises ContractError on a wrong number of actions (NaN/Inf are the NaN guard's job)
                targets = self.contract.action_to_targets(action, len(self.robot.info.joints), self.robot.info.array("q_default"))
            except Exception as e:
                self.stats.infer_ns.append(self.clock() - t0)
                return self._fault("policy", e, state, obs)
            self.stats.infer_ns.append(self.clock() - t0)
            self.last_action = self.contract.clip_action(action)  # what was commanded (the 'last_action' term)
        try:
            now = self.clock()
            cmd = self.fsm.command(targets, state, now, torque=self.contract.action.type == "joint_torque")
            cmd, events = self.safety(cmd, state, TickContext(now, self.consecutive_misses))
            if self.safety.latched and self.fsm.phase != Phase.DAMPING:
                self.fsm.to(Phase.DAMPING)
        except Exception as e:
            return self._fault("command", e, state, obs)
        try:
            sent = self.robot.send_command(cmd)
        except Exception as e:
            return self._fault("send", e, state, obs, events)
        self.stats.ticks += 1
        return {"phase": self.fsm.phase, "command": sent, "events": events, "obs": obs, "fault": None, "damping": None}

    def _fault(self, stage: str, exc: Exception, state: RobotState | None, obs: np.ndarray | None,
               events: list[SafetyEvent] | None = None) -> dict[str, Any]:
        """Latch, log and damp after ``stage`` raised ``exc`` (see the module docstring)."""
        self.stats.ticks += 1
        self.stats.faults[stage] = self.stats.faults.get(stage, 0) + 1
        now = self.clock()
        events = list(events or [])
        if not self.safety.latched:
            self._fault_keys.clear()
        key = (stage, type(exc).__name__)
        repeated = key in self._fault_keys
        try:
            if repeated:
                log.debug("%s in %s again while latched (%d failures in this stage so far)", type(exc).__name__, stage, self.stats.faults[stage])
            else:
                self._fault_keys.add(key)
                detail = f"{type(exc).__name__} in {stage}: {exc}; damping"
                events.append(self.safety.latch(now, stage, detail, exc=None if isinstance(exc, _EXPECTED) else exc))
            if self.fsm.phase != Phase.DAMPING:
                self.fsm.to(Phase.DAMPING)
        except Exception as bookkeeping:  # never let the bookkeeping stop the damping below
            log.critical("could not record the %s fault in the safety chain / state machine", stage, exc_info=bookkeeping)
        source = state if state is not None else self.last_state
        sent, how = self._send_damping(None if source is None else source.q, now, failed_send=exc if stage == "send" else None,
                                       events=events)
        return {"phase": self.fsm.phase, "command": sent, "events": events, "obs": obs, "fault": TickFault(stage, exc, repeated),
                "damping": how}

    def _send_damping(self, q: np.ndarray | None, now: int, failed_send: BaseException | None = None,
                      events: list[SafetyEvent] | None = None) -> tuple[RobotCommand | None, str]:
        """A damping command around ``q`` through ``send_command``; ``robot.damp()`` when ``q`` is None or
        sending fails (or ``failed_send`` says it just failed). Raises :class:`DampingFailed` when
        ``robot.damp()`` raises as well."""
        if failed_send is None and q is not None:
            try:
                return self.robot.send_command(RobotCommand.damping_safe(q, self._kd, self._finite_q, self._limits)), "command"
            except Exception as e:
                log.error("send_command raised on a damping command; calling robot.damp()", exc_info=e)
                failed_send = e
        try:
            self.robot.damp()
        except Exception as e:
            first = f"send_command raised {failed_send!r}, then " if failed_send is not None else "no state was ever read, and "
            log.critical("the robot could not be damped: %srobot.damp() raised %r", first, e, exc_info=e)
            raise DampingFailed(f"the robot could not be damped: {first}robot.damp() raised {e!r}. The hardware may be "
                                "uncontrolled: cut the motor power, and fix the driver's send_command/damp.") from e
        if failed_send is not None:
            detail = f"send_command raised {type(failed_send).__name__}: {failed_send}; robot.damp() called instead"
            ev = SafetyEvent(now, "send", "replaced", detail)
            self.safety.record([ev])
            if events is not None:
                events.append(ev)
        return None, "robot.damp()"

    def damp(self, reason: str = "damp() called") -> None:
        """Latch the chain (event from ``run``), go to DAMPING and damp the robot now (a damping command
        around the last state read, ``robot.damp()`` as the fallback); raises :class:`DampingFailed` when
        neither works."""
        now = self.clock()
        try:
            self.safety.latch(now, "run", reason)
            if self.fsm.phase != Phase.DAMPING:
                self.fsm.to(Phase.DAMPING)
        except Exception as bookkeeping:
            log.critical("could not latch the safety chain before damping", exc_info=bookkeeping)
        self._send_damping(None if self.last_state is None else self.last_state.q, now)

    def run(self, ticks: int, on_tick: Callable[[int, dict[str, Any]], None] | None = None,
            realtime: RealtimeConfig | None = None) -> LoopStats:
        """``ticks`` control steps on absolute deadlines; returns the statistics. With ``realtime`` the
        ticks run in real-time mode (see :mod:`rlsuite.robots.realtime`; the report of what the OS
        granted is kept in ``self.realtime_report``). If the loop leaves by an exception (including
        ``KeyboardInterrupt`` from ``on_tick``), the robot is damped before the exception propagates."""
        if realtime is None:
            return self._run(ticks, on_tick, self.sleep_until)
        sleeper = self.sleep_until
        if self._own_sleeper:  # block until spin_us before a deadline (a spinning SCHED_FIFO thread gets throttled)
            spin_ns, clock = int(realtime.spin_us * 1000), self.clock
            sleeper = lambda d: _sleep_until(d, clock, spin_ns)  # noqa: E731
        with realtime_mode(realtime) as report:
            self.realtime_report = report
            return self._run(ticks, on_tick, sleeper)

    def _run(self, ticks: int, on_tick: Callable[[int, dict[str, Any]], None] | None, sleep_until: Callable[[int], None]) -> LoopStats:
        try:
            deadline = self.clock()
            for i in range(ticks):
                late = self.clock() - deadline
                if late > 0:
                    self.stats.jitter_ns.append(late)
                    if late > self.stats.jitter_max_ns:
                        self.stats.jitter_max_ns = late
                else:
                    self.stats.jitter_ns.append(0)
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
                sleep_until(deadline)
        except BaseException as e:
            if not isinstance(e, DampingFailed):  # damping was just tried and failed: do not hide that error
                log.error("control loop left by %s: damping the robot", type(e).__name__,
                          exc_info=None if isinstance(e, KeyboardInterrupt | SystemExit) else e)
                self.damp(f"the loop was left by {type(e).__name__}: {e}")
            raise
        return self.stats
