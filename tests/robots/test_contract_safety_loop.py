"""robots/: policy contract, observation builder, safety filters, state machine, control loop timing."""

import dataclasses
import json

import numpy as np
import pytest

from rlsuite.robots.contract import (
    ActionSpec,
    ContractError,
    History,
    ObservationBuilder,
    ObsTerm,
    PolicyContract,
)
from rlsuite.robots.interface import FakeRobot, check_robot_conformance
from rlsuite.robots.loop import ControlLoop, SimulatedClock
from rlsuite.robots.safety import (
    IllegalTransition,
    JointLimits,
    NanGuard,
    OperatingFSM,
    Phase,
    RateLimit,
    SafetyChain,
    StateAgeWatchdog,
    TargetStepLimit,
    TickContext,
    TiltEStop,
    TorqueClamp,
)
from rlsuite.robots.types import Mode, RobotCommand, RobotState, last_finite_q, projected_gravity


def contract(**over) -> PolicyContract:
    base = dict(obs_terms=(ObsTerm("q", 3, scale=1.0), ObsTerm("dq", 3, scale=0.05, clip=5.0), ObsTerm("last_action", 3)),
                joint_names=("a", "b", "c"), robot_joint_map=(0, 1, 2),
                action=ActionSpec("joint_position_offset", 0.25, (0.0, 0.0, 0.0), clip=4.0), policy_dt=0.02)
    base.update(over)
    return PolicyContract(**base)


def state(q=(0.0, 0.0, 0.0), dq=(0.0, 0.0, 0.0), t_ns=0, quat=(1.0, 0.0, 0.0, 0.0)) -> RobotState:
    f = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    return RobotState(t_ns, 0, f(q), f(dq), f((0, 0, 0)), f(quat))


def position(q, kp=20.0, kd=0.5) -> RobotCommand:
    n = len(q)
    return RobotCommand(Mode.POSITION, np.asarray(q, np.float32), np.zeros(n, np.float32), np.full(n, kp, np.float32),
                        np.full(n, kd, np.float32), np.zeros(n, np.float32))


# --- contract -------------------------------------------------------------------------------------------

def test_contract_json_round_trip_and_atomic_save(tmp_path):
    c = contract(history=History(3, "first", "newest_first"), quaternion="xyzw")
    path = c.save(tmp_path / "policy.contract.json")
    assert PolicyContract.load(path) == c and not list(tmp_path.glob("*.tmp"))
    assert c.obs_dim == 27 and c.action_dim == 3


@pytest.mark.parametrize("change,message", [
    (dict(obs_terms=(ObsTerm("q", 3), ObsTerm("dq", 4, scale=0.05, clip=5.0), ObsTerm("last_action", 3))), "term 1 ('dq') differs in dim: 3 vs 4"),
    (dict(obs_terms=(ObsTerm("q", 3), ObsTerm("dq", 3, scale=0.1, clip=5.0), ObsTerm("last_action", 3))), "differs in scale"),
    (dict(joint_names=("a", "c", "b")), "joint_names differ at joint 1"),
    (dict(robot_joint_map=(0, 2, 1)), "robot_joint_map differ at joint 1"),
    (dict(quaternion="xyzw"), "quaternion differs"),
    (dict(obs_terms=(ObsTerm("q", 3),)), "observation terms differ at position 1: 3 terms vs 1"),
])
def test_mismatch_names_the_first_differing_term(change, message):
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        contract().check_compatible(contract(**change))


@pytest.mark.parametrize("bad,message", [
    (lambda d: d.update(schema="other/9"), "not supported"),
    (lambda d: d.pop("policy_dt"), "missing the field 'policy_dt'"),
    (lambda d: d.update(colour="red"), "unknown contract field"),
    (lambda d: d.update(robot_joint_map=[0, 0, 1]), "distinct robot index"),
    (lambda d: d["history"].update(fill="repeat"), "fill in"),
])
def test_malformed_contracts_are_refused(bad, message):
    data = contract().to_json()
    bad(data)
    with pytest.raises(ContractError, match=message):
        PolicyContract.from_json(json.loads(json.dumps(data)))


def test_observation_builder_scales_clips_and_keeps_history():
    c = contract(history=History(2, "zeros", "oldest_first"))
    b = ObservationBuilder(c)
    first = b.push({"q": [1, 2, 3], "dq": [200, 0, -20], "last_action": [0, 0, 1]})
    assert first.tolist() == [0] * 9 + [1, 2, 3, 5, 0, -1, 0, 0, 1]  # 200 * 0.05 = 10 clipped to 5
    second = b.push({"q": [4, 5, 6], "dq": [0, 0, 0], "last_action": [0, 0, 0]})
    assert second[:9].tolist() == first[9:].tolist()
    with pytest.raises(ContractError, match="'dq' has 2 numbers; the contract says 3"):
        b.push({"q": [1, 2, 3], "dq": [1, 2], "last_action": [0, 0, 0]})
    newest = ObservationBuilder(contract(history=History(2, "first", "newest_first")))
    out = newest.push({"q": [1, 1, 1], "dq": [0, 0, 0], "last_action": [0, 0, 0]})
    assert out[:9].tolist() == out[9:].tolist()  # "first" fill repeats the first frame


def test_actions_map_to_robot_joint_order():
    c = contract(robot_joint_map=(2, 0, 3), action=ActionSpec("joint_position_offset", 0.5, (0.1, 0.2, 0.3), clip=1.0))
    q = c.action_to_targets(np.array([1.0, -4.0, 0.0]), 4, np.full(4, 9.0, np.float32))
    np.testing.assert_allclose(q, [0.2 - 0.5, 9.0, 0.1 + 0.5, 0.3])  # action clipped to [-1, 1]


# --- safety -------------------------------------------------------------------------------------------

def chain_for(robot, filters):
    return SafetyChain(robot.info, filters)


def test_each_filter_on_crafted_inputs():
    r = FakeRobot(3)
    ctx = TickContext(now_ns=1_000)
    limits = chain_for(r, [JointLimits(r.info, margin=0.1)])
    cmd, ev = limits(position([2.0, -2.0, 0.0]), state(), ctx)
    np.testing.assert_allclose(cmd.q_des, [1.4, -1.4, 0.0])
    assert ev[0].kind == "clamped" and "[0, 1]" in ev[0].detail
    step = chain_for(r, [TargetStepLimit(0.1)])
    cmd, _ = step(position([1.0, 0.05, -1.0]), state(q=(0.5, 0, 0)), ctx)
    np.testing.assert_allclose(cmd.q_des, [0.6, 0.05, -0.1])
    rate = chain_for(r, [RateLimit(0.1)])
    rate(position([0.0, 0.0, 0.0]), state(), ctx)
    cmd, ev = rate(position([1.0, 0.0, -0.05]), state(), ctx)
    np.testing.assert_allclose(cmd.q_des, [0.1, 0.0, -0.05])
    assert ev and ev[0].filter == "rate_limit"
    torque = chain_for(r, [TorqueClamp(r.info)])  # tau_max 10, kp 20: at most 0.5 rad of error
    cmd, ev = torque(position([1.0, 0.2, 0.0]), state(), ctx)
    np.testing.assert_allclose(cmd.q_des, [0.5, 0.2, 0.0], atol=1e-6)
    assert ev and ev[0].filter == "torque_clamp"


def test_nan_guard_resends_the_last_safe_command_then_latches():
    r = FakeRobot(3)
    chain = chain_for(r, [NanGuard(max_consecutive=2)])
    ctx = TickContext(0)
    good, _ = chain(position([0.1, 0.2, 0.3]), state(), ctx)
    cmd, ev = chain(position([np.nan, 0, 0]), state(), ctx)
    np.testing.assert_allclose(cmd.q_des, good.q_des)
    assert ev[0].kind == "replaced"
    cmd, ev = chain(position([np.inf, 0, 0]), state(), ctx)
    assert chain.latched and cmd.mode == Mode.DAMPING and ev[-1].kind == "estop"
    cmd, _ = chain(position([0.0, 0.0, 0.0]), state(), ctx)  # latched: still damping
    assert cmd.mode == Mode.DAMPING
    chain.reset()
    cmd, _ = chain(position([0.0, 0.0, 0.0]), state(), ctx)
    assert cmd.mode == Mode.POSITION


def test_nan_state_never_turns_the_resent_command_into_nan():
    r = FakeRobot(3)
    chain = SafetyChain.default(r.info, 0.02)
    ctx = TickContext(0)
    good, _ = chain(position([0.1, 0.2, 0.3]), state(q=(0.1, 0.2, 0.3)), ctx)
    cmd, ev = chain(position([0.1, 0.2, 0.3]), state(q=(np.nan, 0.2, 0.3), dq=(np.nan, 0, 0)), ctx)
    assert ev[0].kind == "replaced" and not chain.latched  # target_step no longer clips around a NaN position
    np.testing.assert_array_equal(cmd.q_des, good.q_des)


def test_damping_safe_replaces_non_finite_positions_and_stays_inside_the_limits():
    kd = np.full(3, 0.5, np.float32)
    limits = (np.array([0.5, -1.0, -1.0], np.float32), np.array([1.5, 1.0, 1.0], np.float32))
    # no earlier position: 0.0, clipped into [0.5, 1.5] for joint 0; joint 2 measured past q_max is clipped to it
    cmd = RobotCommand.damping_safe(np.array([np.inf, np.nan, 1.2], np.float32), kd, limits=limits)
    assert cmd.mode == Mode.DAMPING and cmd.q_des.tolist() == [0.5, 0.0, 1.0] and not cmd.kp.any() and (cmd.kd == kd).all()
    # the last finite measured position where there is one (joint 1 never had one: 0.0)
    fallback = last_finite_q(last_finite_q(None, [0.7, np.nan, 0.1]), [np.nan, np.nan, 0.3])
    np.testing.assert_array_equal(fallback, np.array([0.7, np.nan, 0.3], np.float32))
    cmd = RobotCommand.damping_safe(np.array([-np.inf, np.inf, 0.25], np.float32), kd, fallback, limits)
    np.testing.assert_allclose(cmd.q_des, [0.7, 0.0, 0.25])
    assert cmd.q_des.dtype == np.float32 and last_finite_q(np.zeros(2), [np.nan, 1.0, 2.0]).tolist()[1:] == [1.0, 2.0]
    assert np.isnan(last_finite_q(np.zeros(2), [np.nan, 1.0, 2.0])[0])  # an earlier state of another shape is not used


def test_chain_damping_with_inf_in_the_state_is_finite_and_inside_the_limits():
    r = FakeRobot(3)  # limits [-1.5, 1.5]
    chain = SafetyChain.default(r.info, 0.02)
    ctx = TickContext(0)
    chain(position([0.1, 0.2, 0.3]), state(q=(0.1, 0.2, 0.3)), ctx)
    # joint 1 reads +Inf, joint 2 -Inf: replaced twice (last safe command), then the NaN guard latches
    for _ in range(3):
        cmd, ev = chain(position([0.1, 0.2, 0.3]), state(q=(0.15, np.inf, -np.inf)), ctx)
    assert chain.latched and ev[-1].kind == "estop" and cmd.mode == Mode.DAMPING
    np.testing.assert_allclose(cmd.q_des, [0.15, 0.2, 0.3])  # the measured q, else the last finite one (not +-3.4e38)
    # a chain that is latched from the first state on: no finite position yet, 0.0
    fresh = SafetyChain.default(r.info, 0.02)
    fresh.latch(0, "run", "test")
    cmd, _ = fresh(position([0.1, 0.2, 0.3]), state(q=(np.nan, np.inf, 0.4)), ctx)
    assert cmd.mode == Mode.DAMPING and cmd.q_des.tolist() == pytest.approx([0.0, 0.0, 0.4])
    # nothing replaced yet and no last safe command: the NaN guard's own fallback is a safe damping command too
    cmd, ev = SafetyChain.default(r.info, 0.02)(position([0.1, 0.2, 0.3]), state(q=(0.1, np.inf, 0.3)), ctx)
    assert ev[0].kind == "replaced" and cmd.mode == Mode.DAMPING and cmd.q_des.tolist() == pytest.approx([0.1, 0.0, 0.3])


def test_a_filter_that_outputs_nan_latches_the_chain():
    class Buggy:
        name = "buggy"

        def __call__(self, cmd, state, ctx, chain):
            return RobotCommand(cmd.mode, cmd.q_des * np.nan, cmd.dq_des, cmd.kp, cmd.kd, cmd.tau_ff), []

    r = FakeRobot(3)
    chain = chain_for(r, [NanGuard(), Buggy()])
    cmd, ev = chain(position([0.1, 0.2, 0.3]), state(), TickContext(0))
    assert chain.latched and cmd.mode == Mode.DAMPING and np.isfinite(cmd.q_des).all()
    assert ev[-1].filter == "chain" and ev[-1].kind == "estop" and chain.counts["chain"] == {"estop": 1}


def test_tilt_and_state_age_estop():
    r = FakeRobot(3)
    tilt = chain_for(r, [TiltEStop(max_tilt=1.0)])
    tipped = (np.cos(0.6), np.sin(0.6), 0.0, 0.0)  # rolled by 1.2 rad
    assert tilt(position([0, 0, 0]), state(quat=tipped), TickContext(0))[0].mode == Mode.DAMPING and tilt.latched
    np.testing.assert_allclose(projected_gravity(np.array([1, 0, 0, 0])), [0, 0, -1])
    age = chain_for(r, [StateAgeWatchdog(0.05)])
    assert not age(position([0, 0, 0]), state(t_ns=0), TickContext(40_000_000))[1]
    assert age(position([0, 0, 0]), state(t_ns=0), TickContext(60_000_000))[1][0].kind == "estop"


def test_fsm_transitions_and_ramp():
    r = FakeRobot(3)
    fsm = OperatingFSM(r.info, ramp_s=1.0)
    with pytest.raises(IllegalTransition, match="PASSIVE -> POLICY is not allowed"):
        fsm.to(Phase.POLICY)
    s0 = state(q=(1.0, -1.0, 0.5))
    fsm.to(Phase.RAMP, now_ns=0, state=s0)
    mid = fsm.command(None, s0, now_ns=500_000_000)
    np.testing.assert_allclose(mid.q_des, [0.5, -0.5, 0.25])  # halfway to the default pose (zeros)
    fsm.command(None, s0, now_ns=1_000_000_000)
    assert fsm.phase == Phase.HOLD
    fsm.to(Phase.POLICY)
    fsm.to(Phase.DAMPING)
    with pytest.raises(IllegalTransition):
        fsm.to(Phase.POLICY)
    fsm.to(Phase.PASSIVE)


# --- robot protocol and loop --------------------------------------------------------------------------

def test_fake_robot_passes_the_conformance_suite():
    check_robot_conformance(FakeRobot(4))


def test_loop_deadlines_overruns_and_jitter_with_a_fake_clock():
    clock = SimulatedClock()
    robot = FakeRobot(3, clock=clock)
    robot.connect()
    work = {"ns": 5_000_000}  # 5 ms of inference per tick, period 20 ms

    def policy(obs):
        clock.t += work["ns"]
        return np.full(3, 0.4, np.float32)

    loop = ControlLoop(robot, policy, contract(), clock=clock, sleep_until=clock.sleep_until)
    loop.fsm.to(Phase.RAMP, 0, robot.read_state(0.1))
    loop.fsm.ramp_s = 0.0
    loop.tick()
    loop.fsm.to(Phase.POLICY)
    stats = loop.run(10)
    assert stats.overruns == 0 and stats.missed_deadlines == 0 and max(stats.jitter_ns) == 0
    assert clock.t == 20_000_000 * 10  # ten periods on absolute deadlines: no drift from the 5 ms of work
    work["ns"] = 45_000_000  # a 45 ms tick misses two 20 ms deadlines
    stats = loop.run(1)
    assert stats.overruns == 1 and stats.missed_deadlines == 2
    np.testing.assert_allclose(robot.last_sent.q_des, np.full(3, 0.1), atol=1e-6)  # q_des = 0 + 0.25 * 0.4


def test_loop_damps_after_repeated_deadline_misses():
    clock = SimulatedClock()
    robot = FakeRobot(3, clock=clock)
    robot.connect()

    def slow(obs):
        clock.t += 50_000_000
        return np.zeros(3, np.float32)

    loop = ControlLoop(robot, slow, contract(), clock=clock, sleep_until=clock.sleep_until)
    loop.fsm.to(Phase.RAMP, 0, robot.read_state(0.1))
    loop.fsm.ramp_s = 0.0
    loop.tick()
    loop.fsm.to(Phase.POLICY)
    loop.run(4)
    assert loop.safety.latched and loop.fsm.phase == Phase.DAMPING and robot.last_sent.mode == Mode.DAMPING
    assert any(e.filter in ("deadline", "state_age") and e.kind == "estop" for e in loop.safety.events)


def test_contract_is_frozen_and_hashable_fields_stay_tuples():
    c = contract()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.policy_dt = 0.01  # type: ignore[misc]
