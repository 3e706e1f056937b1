"""robots/loop: every stage of a control tick that fails latches the safety chain and damps the robot;
run() damps when it is left by an exception; a policy clamped on every tick keeps memory and the log bounded."""

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rlsuite.robots.contract import ActionSpec, ObsTerm, PolicyContract
from rlsuite.robots.interface import ConformanceError, FakeRobot, StaleState, check_robot_conformance
from rlsuite.robots.loop import STAGES, ControlLoop, DampingFailed, SimulatedClock
from rlsuite.robots.safety import Phase
from rlsuite.robots.types import Mode, RobotCommand


def contract(policy_dt=0.02) -> PolicyContract:
    return PolicyContract(obs_terms=(ObsTerm("q", 3), ObsTerm("dq", 3, scale=0.05, clip=5.0), ObsTerm("last_action", 3)),
                          joint_names=("a", "b", "c"), robot_joint_map=(0, 1, 2),
                          action=ActionSpec("joint_position_offset", 0.25, (0.0, 0.0, 0.0), clip=4.0), policy_dt=policy_dt)


class ScriptedRobot(FakeRobot):
    """A fake robot whose calls raise on demand; ``received`` lists what reached it, in order:
    ``("send", command)`` or ``("damp", None)``."""

    def __init__(self, clock):
        super().__init__(3, clock=clock)
        self.received: list[tuple[str, RobotCommand | None]] = []
        self.fail_read: Exception | None = None
        self.fail_send: Exception | None = None
        self.fail_send_once = False
        self.fail_damp: Exception | None = None

    def read_state(self, timeout_s):
        if self.fail_read is not None:
            raise self.fail_read
        return super().read_state(timeout_s)

    def send_command(self, cmd):
        if self.fail_send is not None:
            err = self.fail_send
            if self.fail_send_once:
                self.fail_send = None
            raise err
        self.received.append(("send", cmd.copy()))
        return super().send_command(cmd)

    def damp(self):
        if self.fail_damp is not None:
            raise self.fail_damp
        self.received.append(("damp", None))
        super().damp()


class Policy:
    """Returns ``action`` (or what ``behaviour`` says) and counts its calls."""

    def __init__(self):
        self.calls = 0
        self.behaviour = None

    def __call__(self, obs):
        self.calls += 1
        if self.behaviour is not None:
            return self.behaviour(obs)
        return np.full(3, 0.2, np.float32)


def running_loop(policy_dt=0.02):
    """A loop in the POLICY phase after two good ticks, on a simulated clock."""
    clock = SimulatedClock()
    robot = ScriptedRobot(clock)
    robot.connect()
    policy = Policy()
    loop = ControlLoop(robot, policy, contract(policy_dt), clock=clock, sleep_until=clock.sleep_until)
    loop.fsm.ramp_s = 0.0
    loop.fsm.to(Phase.RAMP, 0, robot.read_state(0.1))
    loop.tick()
    loop.fsm.to(Phase.POLICY)
    loop.run(2)
    assert not loop.safety.latched and robot.received[-1][1].mode == Mode.POSITION
    return loop, robot, policy


def is_damping(received):
    kind, cmd = received
    return kind == "damp" or (cmd.mode == Mode.DAMPING and not cmd.kp.any() and cmd.kd.all() and np.isfinite(cmd.q_des).all())


def _raise(exc):
    raise exc


INJECT = {
    "read_state": lambda loop, robot, policy: setattr(robot, "fail_read", StaleState("no state for 20 ms")),
    "observation": lambda loop, robot, policy: setattr(loop, "terms", lambda s, a: _raise(KeyError("gyro"))),
    "policy": lambda loop, robot, policy: setattr(policy, "behaviour", lambda o: _raise(ValueError("bad weights"))),
    "policy_shape": lambda loop, robot, policy: setattr(policy, "behaviour", lambda o: np.zeros(5, np.float32)),
    "command": lambda loop, robot, policy: loop.safety.filters.insert(0, _Broken()),
    "send": lambda loop, robot, policy: (setattr(robot, "fail_send", OSError("CAN bus off")), setattr(robot, "fail_send_once", True)),
}


class _Broken:
    name = "broken"

    def __call__(self, cmd, state, ctx, chain):
        raise ZeroDivisionError("a filter with a bug")


@pytest.mark.parametrize("case", list(INJECT))
def test_every_failing_stage_latches_and_damps_without_raising(case, caplog):
    loop, robot, policy = running_loop()
    INJECT[case](loop, robot, policy)
    stage = "policy" if case == "policy_shape" else case
    n_before = len(robot.received)
    with caplog.at_level(logging.DEBUG, logger="rlsuite.robots"):
        out = loop.tick()  # must not raise
    assert out["fault"] is not None and out["fault"].stage == stage
    assert loop.safety.latched and loop.fsm.phase == Phase.DAMPING
    assert len(robot.received) == n_before + 1 and is_damping(robot.received[-1])  # the one thing sent this tick damps
    ev = [e for e in loop.safety.events if e.filter == stage and e.kind == "estop"]
    assert len(ev) == 1 and type(out["fault"].exception).__name__ in ev[0].detail
    assert loop.stats.faults == {stage: 1}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and f"safety {stage} estop" in r.getMessage()]
    assert len(errors) == 1
    assert (errors[0].exc_info is None) == (case == "read_state")  # tracebacks for everything but the expected StaleState
    if case == "send":  # the policy's command could not be sent: robot.damp() instead, recorded
        assert out["damping"] == "robot.damp()" and robot.received[-1] == ("damp", None) and out["command"] is None
        assert any(e.filter == "send" and e.kind == "replaced" and "robot.damp()" in e.detail for e in loop.safety.events)
    else:  # a damping command around the measured (or, when reading failed, the last read) joint positions
        assert out["damping"] == "command" and np.array_equal(robot.received[-1][1].q_des, loop.last_state.q)
    calls = policy.calls
    for _ in range(3):  # latched: damping on every later tick, the policy is not called again
        loop.tick()
        assert is_damping(robot.received[-1])
    assert policy.calls == calls and len(robot.received) == n_before + 4
    assert len([e for e in loop.safety.events if e.filter == stage and e.kind == "estop"]) == 1  # the same failure again is counted


def test_policy_output_of_the_wrong_shape_names_both_sizes():
    loop, robot, policy = running_loop()
    INJECT["policy_shape"](loop, robot, policy)
    out = loop.tick()
    assert "action has 5 numbers" in str(out["fault"].exception) and "3 joints" in str(out["fault"].exception)
    assert loop.last_action.shape == (3,)  # the bad output never became the 'last_action' observation term


def test_nan_policy_output_goes_through_the_nan_guard_then_latches():
    loop, robot, policy = running_loop()
    last_good = robot.received[-1][1]
    policy.behaviour = lambda o: np.full(3, np.nan, np.float32)
    for _ in range(2):  # NanGuard(max_consecutive=3): the last safe command is resent twice
        out = loop.tick()
        assert out["fault"] is None and not loop.safety.latched
        np.testing.assert_array_equal(robot.received[-1][1].q_des, last_good.q_des)
    out = loop.tick()
    assert loop.safety.latched and is_damping(robot.received[-1]) and out["events"][-1].kind == "estop"
    assert all(np.isfinite(c.q_des).all() for k, c in robot.received if c is not None)


def test_read_state_failing_before_any_state_calls_robot_damp():
    clock = SimulatedClock()
    robot = ScriptedRobot(clock)  # never connected: read_state raises StaleState
    loop = ControlLoop(robot, Policy(), contract(), clock=clock, sleep_until=clock.sleep_until)
    out = loop.tick()
    assert out["fault"].stage == "read_state" and out["damping"] == "robot.damp()" and robot.received == [("damp", None)]
    assert loop.safety.latched


def test_stale_state_while_running_damps_around_the_last_state_every_tick():
    loop, robot, policy = running_loop()
    q = loop.last_state.q.copy()
    robot.fail_read = StaleState("sensor bus silent")
    loop.run(50)
    sent = robot.received[-50:]
    assert all(k == "send" and c.mode == Mode.DAMPING and np.array_equal(c.q_des, q) for k, c in sent)
    assert loop.stats.faults == {"read_state": 50}
    assert [e.filter for e in loop.safety.events] == ["read_state"]  # 50 failures, one event


def test_when_send_and_damp_both_fail_tick_raises_a_clear_error_after_trying(caplog):
    loop, robot, policy = running_loop()
    robot.fail_send = OSError("CAN bus off")
    robot.fail_damp = OSError("driver gone")
    with caplog.at_level(logging.ERROR, logger="rlsuite.robots"), pytest.raises(DampingFailed, match="could not be damped") as info:
        loop.tick()
    assert "CAN bus off" in str(info.value) and "driver gone" in str(info.value) and "cut the motor power" in str(info.value)
    assert loop.safety.latched and loop.fsm.phase == Phase.DAMPING
    assert any(r.levelno == logging.CRITICAL and r.exc_info for r in caplog.records)


def test_damping_command_failing_falls_back_to_robot_damp():
    loop, robot, policy = running_loop()
    robot.fail_read = StaleState("silent")  # read fails -> damping command -> send fails -> robot.damp()
    robot.fail_send = OSError("CAN bus off")
    out = loop.tick()
    assert out["damping"] == "robot.damp()" and robot.received[-1] == ("damp", None)
    assert any(e.filter == "send" and e.kind == "replaced" for e in loop.safety.events)


def in_limits(cmd, info):
    return np.isfinite(cmd.q_des).all() and (cmd.q_des >= info.array("q_min")).all() and (cmd.q_des <= info.array("q_max")).all()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the fake robot's own Inf - Inf
@pytest.mark.parametrize("path", ["policy_fault", "nan_guard", "damp"])
def test_inf_in_the_measured_q_damps_around_the_last_finite_position(path):
    loop, robot, policy = running_loop()
    good = loop.last_state.q.copy()
    robot.q[1], robot.q[2] = np.inf, -np.inf  # two encoders fail; joint 0 still reads
    if path == "policy_fault":
        policy.behaviour = lambda o: _raise(ValueError("bad weights"))
        out = loop.tick()
        assert out["fault"].stage == "policy" and out["damping"] == "command"
    elif path == "nan_guard":
        for _ in range(3):  # the last safe command twice, then the NaN guard latches and the chain damps
            out = loop.tick()
        assert out["fault"] is None and any(e.filter == "nan_guard" and e.kind == "estop" for e in out["events"])
    else:
        loop.tick()  # replaced by the last safe command (the NaN guard)
        loop.damp("operator")
    assert loop.safety.latched
    kind, cmd = robot.received[-1]
    assert kind == "send" and cmd.mode == Mode.DAMPING and in_limits(cmd, robot.info)
    np.testing.assert_array_equal(cmd.q_des, [loop.last_state.q[0], good[1], good[2]])  # joint 0 as measured last
    loop.tick()  # latched: the next damping command too
    cmd = robot.received[-1][1]
    assert cmd.mode == Mode.DAMPING and np.array_equal(cmd.q_des, [loop.last_state.q[0], good[1], good[2]])
    assert all(c is None or np.isfinite(c.q_des).all() for _, c in robot.received)


def test_a_joint_that_never_read_finite_gets_a_target_inside_its_limits():
    from rlsuite.robots.types import JointSpec, RobotInfo

    clock = SimulatedClock()
    robot = ScriptedRobot(clock)
    robot.info = RobotInfo("knee", (JointSpec("j0", 1.0, 0.5, 2.5, 5.0, 10.0, 20.0, 0.5),) + robot.info.joints[1:], 500.0)
    robot.connect()
    robot.q[0] = np.nan  # joint 0 (range [0.5, 2.5], 0.0 outside it) never reads
    loop = ControlLoop(robot, Policy(), contract(), clock=clock, sleep_until=clock.sleep_until)
    loop.terms = lambda s, a: _raise(KeyError("gyro"))
    out = loop.tick()
    assert out["fault"].stage == "observation" and out["damping"] == "command"
    cmd = robot.received[-1][1]
    assert in_limits(cmd, robot.info) and cmd.q_des.tolist() == [0.5, 0.0, 0.0] and not cmd.kp.any()


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_run_damps_in_finally_when_on_tick_raises(exc):
    loop, robot, policy = running_loop()

    def on_tick(i, out):
        if i == 3:
            raise exc("operator")

    with pytest.raises(exc):
        loop.run(100, on_tick=on_tick)
    assert is_damping(robot.received[-1]) and robot.received[-2][1].mode == Mode.POSITION
    assert loop.safety.latched and loop.fsm.phase == Phase.DAMPING
    assert any(e.filter == "run" and exc.__name__ in e.detail for e in loop.safety.events)
    assert loop.stats.ticks == 3 + 4  # 3 ticks in running_loop, then ticks 0-3 of this run


def test_run_returning_normally_does_not_damp():
    loop, robot, policy = running_loop()
    loop.run(5)
    assert not loop.safety.latched and robot.received[-1][1].mode == Mode.POSITION


def test_long_run_clamped_every_tick_keeps_events_stats_and_log_bounded(caplog):
    loop, robot, policy = running_loop(policy_dt=0.002)  # 500 Hz
    loop.stats.max_samples = 1000
    loop.stats.__post_init__()
    sign = [1.0]

    def alternate(obs):  # targets +-0.25 rad, alternating: above both the rate and the target-step limits on every tick
        sign[0] = -sign[0]
        return np.full(3, sign[0], np.float32)

    policy.behaviour = alternate
    ticks = 10_000  # 20 s of robot time
    with caplog.at_level(logging.DEBUG, logger="rlsuite.robots"):
        caplog.clear()  # only the run's lines (the set-up's state-machine lines show when another test raised the level)
        loop.run(ticks)
        counts = loop.safety.summary()
    assert not loop.safety.latched
    assert counts["rate_limit"]["clamped"] >= ticks - 2 and counts["target_step"]["clamped"] >= ticks - 2
    assert len(loop.safety.events) == loop.safety.max_events == 1000 and loop.safety.dropped > ticks
    assert len(loop.stats.jitter_ns) == len(loop.stats.infer_ns) == 1000 and loop.stats.ticks == ticks + 3
    lines = [r for r in caplog.records if r.name == "rlsuite.robots"]
    assert len(lines) <= 25  # first clamp per filter, then about one summary a second of robot time (20 s), then summary()
    summaries = [r.getMessage() for r in lines if "safety summary" in r.getMessage()]
    assert 15 <= len(summaries) <= 21 and "rate_limit clamped" in summaries[0]


def test_stages_are_named_as_documented():
    assert STAGES == ("read_state", "observation", "policy", "command", "send")


# --- conformance checker under python -O ----------------------------------------------------------------

BROKEN_DRIVERS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from rlsuite.robots.interface import ConformanceError, FakeRobot, check_robot_conformance
    from rlsuite.robots.types import JointSpec, RobotInfo

    class NoStaleBeforeConnect(FakeRobot):
        def read_state(self, timeout_s):
            self.connected = True
            return super().read_state(timeout_s)

    class Float64State(FakeRobot):
        def read_state(self, timeout_s):
            s = super().read_state(timeout_s)
            s.q = s.q.astype(np.float64)
            return s

    class FrozenSeq(FakeRobot):
        def read_state(self, timeout_s):
            s = super().read_state(timeout_s)
            s.seq = 1
            return s

    class SendReturnsNone(FakeRobot):
        def send_command(self, cmd):
            super().send_command(cmd)

    class Unhealthy(FakeRobot):
        healthy = False

    class BadQuat(FakeRobot):
        def read_state(self, timeout_s):
            s = super().read_state(timeout_s)
            s.quat_wxyz = np.array([2, 0, 0, 0], np.float32)
            return s

    def bad_limits():
        r = FakeRobot(2)
        r.info = RobotInfo("bad", (JointSpec("a", 0.0, 1.0, -1.0, 1.0, 1.0, 1.0, 0.1), JointSpec("b", 0.0, -1, 1, 1, 1, 1, 0.1)), 500.0)
        return r

    def duplicate_names():
        r = FakeRobot(2)
        r.info = RobotInfo("dup", (r.info.joints[0], r.info.joints[0]), 500.0)
        return r

    cases = {"stale": NoStaleBeforeConnect, "dtype": Float64State, "seq": FrozenSeq, "send": SendReturnsNone,
             "healthy": Unhealthy, "quat": BadQuat, "limits": bad_limits, "names": duplicate_names, "protocol": object}
    out = {"optimize": sys.flags.optimize}
    for name, make in cases.items():
        try:
            check_robot_conformance(make())
            out[name] = None
        except ConformanceError as e:
            out[name] = str(e)
    check_robot_conformance(FakeRobot(3))  # a good driver still passes
    print(json.dumps(out))
""")


def test_conformance_checker_catches_every_broken_driver_under_python_O():
    import json

    res = subprocess.run([sys.executable, "-O", "-c", BROKEN_DRIVERS], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out.pop("optimize") == 1
    expected = {"stale": "must raise StaleState", "dtype": "state.q must be float32", "seq": "must increase",
                "send": "must return the command actually sent", "healthy": "unhealthy", "quat": "unit quaternion",
                "limits": "joint a: limits must be ordered", "names": "unique", "protocol": "does not implement the Robot protocol"}
    for name, text in expected.items():
        assert out[name] is not None and text in out[name], (name, out[name])


def test_conformance_error_is_still_an_assertion_error():
    class Unhealthy(FakeRobot):
        healthy = False

    with pytest.raises(AssertionError, match="unhealthy right after connect"):
        check_robot_conformance(Unhealthy(3))
    assert issubclass(ConformanceError, AssertionError)
