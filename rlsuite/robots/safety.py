"""The safety chain between a policy and the motors, and the operating state machine.

Every command passes :class:`SafetyChain`: an ordered list of filters, each returning the (possibly
changed) command and the events it raised. Filters: NaN/Inf guard, joint soft limits, a per-tick
target-step limit (relative to the measured position), an action-rate limit (relative to the last
command), a torque-estimate clamp, a tilt e-stop, a state-age watchdog and a deadline-miss watchdog.
After the filters, a command that still holds a non-finite number latches the chain (event from
``chain``): NaN/Inf never reach the motors, whatever the filters did.
An e-stop *latches*: from then on the chain sends damping commands until :meth:`SafetyChain.reset` is
called explicitly.

Events, counts and the log (logger ``rlsuite.robots``), bounded on runs of any length:

- ``chain.counts[filter][kind]`` counts every event the chain ever raised (stored or not).
- ``chain.events`` keeps every e-stop and the first ``max_events`` (default 1000) other events
  (``clamped``, ``replaced``); later ones are only counted, and ``chain.dropped`` says how many.
- An e-stop is logged at error level each time. A ``clamped`` or ``replaced`` event is logged (warning)
  the first time each filter raises it; after that the chain logs one summary line (count per filter)
  at most once per ``summary_interval_s`` of robot time (the tick's ``now_ns``, default 1 s), and
  :meth:`SafetyChain.summary` logs what is still pending (call it at the end of a run) and returns the
  counts. A policy clamped on every tick at 500 Hz thus writes about one line a second, not 500.

:class:`OperatingFSM`: PASSIVE -> RAMP -> HOLD -> POLICY -> DAMPING. RAMP moves from the measured pose
to the default pose over ``ramp_s`` seconds with gains ramping up; illegal transitions raise.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math

import numpy as np

from rlsuite.robots.types import Mode, RobotCommand, RobotInfo, RobotState, last_finite_q, projected_gravity

log = logging.getLogger("rlsuite.robots")


@dataclasses.dataclass(frozen=True)
class SafetyEvent:
    """What a filter did: ``kind`` is ``clamped``, ``replaced`` or ``estop``."""

    t_ns: int
    filter: str
    kind: str
    detail: str


@dataclasses.dataclass
class TickContext:
    """Per-tick facts the watchdogs need."""

    now_ns: int
    consecutive_misses: int = 0


class Filter:
    name = "filter"

    def __call__(self, cmd: RobotCommand, state: RobotState, ctx: TickContext, chain: SafetyChain) -> tuple[RobotCommand, list[SafetyEvent]]:
        raise NotImplementedError

    def event(self, ctx: TickContext, kind: str, detail: str) -> SafetyEvent:
        return SafetyEvent(ctx.now_ns, self.name, kind, detail)


class NanGuard(Filter):
    """Non-finite numbers in the state or the command: resend the last safe command; e-stop after
    ``max_consecutive`` in a row."""

    name = "nan_guard"

    def __init__(self, max_consecutive: int = 3) -> None:
        self.max_consecutive, self.count = max_consecutive, 0

    def __call__(self, cmd, state, ctx, chain):
        if np.isfinite(np.concatenate((cmd.q_des, cmd.dq_des, cmd.kp, cmd.kd, cmd.tau_ff, state.q, state.dq))).all():  # one pass
            self.count = 0
            return cmd, []
        self.count += 1
        if self.count >= self.max_consecutive:
            return cmd, [self.event(ctx, "estop", f"{self.count} ticks in a row with NaN/Inf")]
        fallback = chain.last_safe.copy() if chain.last_safe is not None else chain.damping_command(state)
        return fallback, [self.event(ctx, "replaced", "NaN/Inf in state or command: last safe command resent")]


class JointLimits(Filter):
    """Clamp position targets into ``[q_min + margin, q_max - margin]``."""

    name = "joint_limits"

    def __init__(self, info: RobotInfo, margin: float = 0.02) -> None:
        self.lo, self.hi = info.array("q_min") + margin, info.array("q_max") - margin

    def __call__(self, cmd, state, ctx, chain):
        if cmd.mode != Mode.POSITION:
            return cmd, []
        q = np.clip(cmd.q_des, self.lo, self.hi)
        if np.array_equal(q, cmd.q_des):
            return cmd, []
        joints = np.nonzero(q != cmd.q_des)[0].tolist()
        cmd = dataclasses.replace(cmd, q_des=q)
        return cmd, [self.event(ctx, "clamped", f"targets of joints {joints} outside the soft limits")]


class TargetStepLimit(Filter):
    """``|q_des - q_measured| <= max_step`` per joint (a target far from where the joint is means a jump).
    Joints whose measured position is not finite keep their target (the NaN guard has already put the
    last safe command there; clipping around NaN would turn it into NaN)."""

    name = "target_step"

    def __init__(self, max_step: float) -> None:
        self.max_step = max_step

    def __call__(self, cmd, state, ctx, chain):
        if cmd.mode != Mode.POSITION:
            return cmd, []
        q = np.clip(cmd.q_des, state.q - self.max_step, state.q + self.max_step)
        if not np.isfinite(state.q).all():
            q = np.where(np.isfinite(state.q), q, cmd.q_des)
        if np.array_equal(q, cmd.q_des):
            return cmd, []
        return dataclasses.replace(cmd, q_des=q.astype(np.float32)), [self.event(ctx, "clamped", f"target step above {self.max_step} rad")]


class RateLimit(Filter):
    """``|q_des - q_des_previous| <= max_delta`` per tick (smooths jerky policies)."""

    name = "rate_limit"

    def __init__(self, max_delta: float) -> None:
        self.max_delta = max_delta

    def __call__(self, cmd, state, ctx, chain):
        prev = chain.last_safe
        if prev is None or prev.mode != Mode.POSITION or cmd.mode != Mode.POSITION:
            return cmd, []
        q = np.clip(cmd.q_des, prev.q_des - self.max_delta, prev.q_des + self.max_delta)
        if np.array_equal(q, cmd.q_des):
            return cmd, []
        return dataclasses.replace(cmd, q_des=q.astype(np.float32)), [self.event(ctx, "clamped", f"target rate above {self.max_delta} rad/tick")]


class TorqueClamp(Filter):
    """Estimated torque ``kp (q_des - q) + kd (dq_des - dq) + tau_ff`` above ``tau_max``: move ``q_des`` so
    that the estimate equals the limit. Joints whose estimate is not finite (NaN/Inf in the measured
    ``q`` or ``dq``) keep their target, as in :class:`TargetStepLimit` (moving it to ``q + ...`` would make
    it non-finite)."""

    name = "torque_clamp"

    def __init__(self, info: RobotInfo) -> None:
        self.tau_max = info.array("tau_max")

    def __call__(self, cmd, state, ctx, chain):
        if cmd.mode == Mode.TORQUE:
            tau = np.clip(cmd.tau_ff, -self.tau_max, self.tau_max)
            if np.array_equal(tau, cmd.tau_ff):
                return cmd, []
            return dataclasses.replace(cmd, tau_ff=tau.astype(np.float32)), [self.event(ctx, "clamped", "feed-forward torque above tau_max")]
        if cmd.mode != Mode.POSITION:
            return cmd, []
        damp = cmd.kd * (cmd.dq_des - state.dq) + cmd.tau_ff
        tau = cmd.kp * (cmd.q_des - state.q) + damp
        over = (np.abs(tau) > self.tau_max) & (cmd.kp > 0) & np.isfinite(tau)
        if not over.any():
            return cmd, []
        target = np.clip(tau, -self.tau_max, self.tau_max)
        q = cmd.q_des.copy()
        q[over] = state.q[over] + (target[over] - damp[over]) / cmd.kp[over]
        return dataclasses.replace(cmd, q_des=q.astype(np.float32)), [self.event(ctx, "clamped", f"torque estimate above tau_max on joints {np.nonzero(over)[0].tolist()}")]


class TiltEStop(Filter):
    """E-stop when the body tilts more than ``max_tilt`` rad from upright (from the IMU quaternion)."""

    name = "tilt"

    def __init__(self, max_tilt: float = 1.0) -> None:
        self.max_tilt = max_tilt

    def __call__(self, cmd, state, ctx, chain):
        g = projected_gravity(state.quat_wxyz)
        tilt = math.acos(float(np.clip(-g[2], -1.0, 1.0)))
        if tilt > self.max_tilt:
            return cmd, [self.event(ctx, "estop", f"tilt {tilt:.2f} rad above {self.max_tilt}")]
        return cmd, []


class StateAgeWatchdog(Filter):
    """E-stop when the newest state is older than ``max_age_s``."""

    name = "state_age"

    def __init__(self, max_age_s: float) -> None:
        self.max_age_ns = int(max_age_s * 1e9)

    def __call__(self, cmd, state, ctx, chain):
        age = ctx.now_ns - state.t_ns
        if age > self.max_age_ns:
            return cmd, [self.event(ctx, "estop", f"state is {age / 1e6:.1f} ms old (limit {self.max_age_ns / 1e6:.1f} ms)")]
        return cmd, []


class DeadlineWatchdog(Filter):
    """E-stop after ``max_consecutive`` missed control deadlines in a row."""

    name = "deadline"

    def __init__(self, max_consecutive: int = 5) -> None:
        self.max_consecutive = max_consecutive

    def __call__(self, cmd, state, ctx, chain):
        if ctx.consecutive_misses >= self.max_consecutive:
            return cmd, [self.event(ctx, "estop", f"{ctx.consecutive_misses} deadlines missed in a row")]
        return cmd, []


class SafetyChain:
    """Ordered filters with a latched e-stop (see the module docstring)."""

    def __init__(self, info: RobotInfo, filters: list[Filter], max_events: int = 1000, summary_interval_s: float = 1.0) -> None:
        if max_events < 0 or summary_interval_s < 0:
            raise ValueError(f"max_events and summary_interval_s must be >= 0, got {max_events} and {summary_interval_s}.")
        self.info, self.filters = info, filters
        self.last_safe: RobotCommand | None = None
        self.latched = False
        self.events: list[SafetyEvent] = []
        self.counts: dict[str, dict[str, int]] = {}
        self.max_events, self.dropped = max_events, 0
        self.summary_interval_ns = int(summary_interval_s * 1e9)
        self._stored_other = 0  # stored events that are not e-stops (capped at max_events)
        self._pending: dict[tuple[str, str], int] = {}  # (filter, kind) counted since the last summary line
        self._pending_since_ns = self._pending_last_ns = 0
        self._kd, self._limits = info.array("kd"), (info.array("q_min"), info.array("q_max"))
        self.last_finite_q: np.ndarray | None = None  # per joint, the last finite measured position (NaN: none yet)

    @staticmethod
    def default(info: RobotInfo, policy_dt: float) -> SafetyChain:
        """The full chain with conservative defaults for a joint-position policy at ``policy_dt``."""
        max_vel = float(info.array("dq_max").min())
        return SafetyChain(info, [NanGuard(), JointLimits(info), TargetStepLimit(max(0.05, 2 * max_vel * policy_dt)),
                                  RateLimit(max(0.02, max_vel * policy_dt)), TorqueClamp(info), TiltEStop(),
                                  StateAgeWatchdog(max(0.05, 5 * policy_dt)), DeadlineWatchdog()])

    def __call__(self, cmd: RobotCommand, state: RobotState, ctx: TickContext) -> tuple[RobotCommand, list[SafetyEvent]]:
        events: list[SafetyEvent] = []
        self.last_finite_q = last_finite_q(self.last_finite_q, state.q)
        if not self.latched:
            for f in self.filters:
                cmd, ev = f(cmd, state, ctx, self)
                events += ev
                if any(e.kind == "estop" for e in ev):
                    self.latched = True
                    break
            if not self.latched and not np.isfinite(np.concatenate((cmd.q_des, cmd.dq_des, cmd.kp, cmd.kd, cmd.tau_ff))).all():
                # last line of defence: whatever produced it, a non-finite number never reaches the motors
                events.append(SafetyEvent(ctx.now_ns, "chain", "estop", "the filtered command holds NaN/Inf (a filter's bug?)"))
                self.latched = True
        if self.latched:
            cmd = self.damping_command(state)
        else:
            self.last_safe = cmd.copy()
        if self._pending and ctx.now_ns - self._pending_since_ns >= self.summary_interval_ns:
            self._log_pending(ctx.now_ns)  # events in [since, now): this tick's start the next window
        if events:
            self.record(events)
        return cmd, events

    def damping_command(self, state: RobotState) -> RobotCommand:
        """The damping command the chain sends for ``state``: ``q_des`` the measured positions, with the
        last finite measured position (else 0.0) for a joint that reads NaN/Inf, inside the joint limits
        (:meth:`RobotCommand.damping_safe`)."""
        return RobotCommand.damping_safe(state.q, self._kd, self.last_finite_q, self._limits)

    def record(self, events: list[SafetyEvent]) -> None:
        """Count, store (bounded) and log ``events`` (see the module docstring); the chain calls it for its
        filters' events, the control loop for events of its own (e.g. a failed send replaced by ``robot.damp()``)."""
        for e in events:
            per_filter = self.counts.setdefault(e.filter, {})
            first = e.kind not in per_filter
            per_filter[e.kind] = per_filter.get(e.kind, 0) + 1
            if e.kind == "estop":
                log.error("safety %s estop: %s", e.filter, e.detail)
                self.events.append(e)
                continue
            if first:
                log.warning("safety %s %s: %s (further '%s' events of this filter are summarised at most once per %g s)",
                            e.filter, e.kind, e.detail, e.kind, self.summary_interval_ns / 1e9)
            else:
                if not self._pending:
                    self._pending_since_ns = e.t_ns
                key = (e.filter, e.kind)
                self._pending[key] = self._pending.get(key, 0) + 1
                self._pending_last_ns = e.t_ns
            if self._stored_other < self.max_events:
                self.events.append(e)
                self._stored_other += 1
            else:
                self.dropped += 1

    def _log_pending(self, now_ns: int) -> None:
        parts = ", ".join(f"{f} {k} x{n}" for (f, k), n in sorted(self._pending.items()))
        log.warning("safety summary of the last %.3g s: %s (totals in SafetyChain.counts)", (now_ns - self._pending_since_ns) / 1e9, parts)
        self._pending.clear()

    def summary(self, now_ns: int | None = None) -> dict[str, dict[str, int]]:
        """Log the summary line still pending (events since the last one; ``now_ns`` for its time span)
        and return the counts of every event so far, ``{filter: {kind: count}}`` (a copy)."""
        if self._pending:
            self._log_pending(now_ns if now_ns is not None else self._pending_last_ns)
        return {f: dict(kinds) for f, kinds in self.counts.items()}

    def latch(self, now_ns: int, source: str, detail: str, exc: BaseException | None = None) -> SafetyEvent:
        """E-stop from outside the filters (e.g. the policy stopped answering, or a stage of the control
        loop raised: ``source`` names the stage). With ``exc`` the log line carries its traceback.
        Returns the event (also kept in ``events`` and counted)."""
        event = SafetyEvent(now_ns, source, "estop", detail)
        log.error("safety %s estop: %s", source, detail, exc_info=exc)
        self.events.append(event)
        per_source = self.counts.setdefault(source, {})
        per_source["estop"] = per_source.get("estop", 0) + 1
        self.latched = True
        return event

    def reset(self) -> None:
        """Operator reset of a latched e-stop (the only way out of it)."""
        if self.latched:
            log.warning("safety e-stop reset by the operator")
        self.latched = False
        self.last_safe = None
        for f in self.filters:
            if isinstance(f, NanGuard):
                f.count = 0


class Phase(enum.Enum):
    PASSIVE = "passive"
    RAMP = "ramp"
    HOLD = "hold"
    POLICY = "policy"
    DAMPING = "damping"


class IllegalTransition(RuntimeError):
    """A state-machine transition that is not allowed."""


TRANSITIONS = {
    Phase.PASSIVE: {Phase.RAMP, Phase.DAMPING},
    Phase.RAMP: {Phase.HOLD, Phase.DAMPING},
    Phase.HOLD: {Phase.POLICY, Phase.DAMPING},
    Phase.POLICY: {Phase.HOLD, Phase.DAMPING},
    Phase.DAMPING: {Phase.PASSIVE},
}


class OperatingFSM:
    """PASSIVE -> RAMP -> HOLD -> POLICY -> DAMPING (see the module docstring); ``command`` builds the
    phase's command from the policy's targets and the measured state."""

    def __init__(self, info: RobotInfo, ramp_s: float = 2.0) -> None:
        self.info, self.ramp_s = info, ramp_s
        self.phase = Phase.PASSIVE
        self._ramp_from: np.ndarray | None = None
        self._ramp_t0 = 0

    def to(self, phase: Phase, now_ns: int = 0, state: RobotState | None = None) -> None:
        if phase not in TRANSITIONS[self.phase]:
            allowed = ", ".join(p.name for p in TRANSITIONS[self.phase])
            raise IllegalTransition(f"{self.phase.name} -> {phase.name} is not allowed; from {self.phase.name}: {allowed}.")
        if phase == Phase.RAMP:
            if state is None:
                raise IllegalTransition("RAMP starts from the measured pose: pass the current state.")
            self._ramp_from, self._ramp_t0 = state.q.copy(), now_ns
        log.info("fsm %s -> %s", self.phase.name, phase.name)
        self.phase = phase

    def command(self, policy_q_des: np.ndarray | None, state: RobotState, now_ns: int, torque: bool = False) -> RobotCommand:
        info, n = self.info, len(self.info.joints)
        kp, kd, q0 = info.array("kp"), info.array("kd"), info.array("q_default")
        z = np.zeros(n, dtype=np.float32)
        if self.phase == Phase.PASSIVE:
            return RobotCommand.passive(n)
        if self.phase == Phase.DAMPING:
            return RobotCommand.damping(state.q, kd)
        if self.phase == Phase.RAMP:
            assert self._ramp_from is not None
            s = min(1.0, (now_ns - self._ramp_t0) / 1e9 / self.ramp_s) if self.ramp_s > 0 else 1.0
            q = (1 - s) * self._ramp_from + s * q0
            if s >= 1.0:
                self.to(Phase.HOLD)
            return RobotCommand(Mode.POSITION, q.astype(np.float32), z.copy(), (kp * max(s, 0.1)).astype(np.float32), kd, z.copy())
        if self.phase == Phase.HOLD or policy_q_des is None:
            return RobotCommand(Mode.POSITION, q0.copy(), z.copy(), kp, kd, z.copy())
        if torque:  # policy_q_des holds torques
            return RobotCommand(Mode.TORQUE, state.q.copy(), z.copy(), z.copy(), z.copy(), np.asarray(policy_q_des, np.float32))
        return RobotCommand(Mode.POSITION, np.asarray(policy_q_des, np.float32), z.copy(), kp, kd, z.copy())
