"""Fault injection on the deploy path (rlsuite.robots.faults): every local fault class on both simulated
robots ends with no command outside the limits, no crash and, where the class requires it, a damped robot."""

from __future__ import annotations

import numpy as np
import pytest

from rlsuite.robots.faults import (
    FAULT_CLASSES,
    MUST_DAMP,
    NETWORK_FAULTS,
    Fault,
    FaultyRobot,
    command_violations,
    draw_fault,
    run_with_fault,
    upper_action,
)
from rlsuite.robots.interface import FakeRobot
from rlsuite.robots.loop import SimulatedClock
from rlsuite.robots.sim import sim_task
from rlsuite.robots.types import Mode, RobotCommand

LOCAL = [k for k in FAULT_CLASSES if k not in NETWORK_FAULTS]


def _policy(name: str):
    """The campaign's policies: a linear stabiliser for the pendulum, zero offsets for the quadruped."""
    contract = sim_task(name).make_contract()
    if name == "InvertedPendulum-v5":
        k = np.array([2.0, 20.0, 1.0, 2.0], np.float32)
        return lambda o: np.array([k @ o], np.float32)
    return lambda o: np.zeros(contract.action_dim, np.float32)


@pytest.mark.parametrize("name", ["InvertedPendulum-v5", "quadruped"])
def test_nominal_runs_without_intervention(name):
    policy = _policy(name)
    rec = run_with_fault(sim_task(name), policy, None, seed=0, ticks=150)
    assert not rec.crashed and rec.ticks == 150 and rec.commands == 150
    assert rec.out_of_limits == 0 and not rec.estop and not rec.damped


@pytest.mark.parametrize("kind", LOCAL)
@pytest.mark.parametrize("name", ["InvertedPendulum-v5", "quadruped"])
def test_every_local_fault_is_survived(name, kind):
    policy = _policy(name)
    for seed in range(3):
        fault = draw_fault(kind, np.random.default_rng([seed, FAULT_CLASSES.index(kind)]), 10, 60)
        rec = run_with_fault(sim_task(name), policy, fault, seed, ticks=100)
        assert not rec.crashed, rec.error
        assert rec.out_of_limits == 0, rec.first_violation
        assert not rec.early_stop
        if kind in MUST_DAMP:
            assert rec.damped and rec.estop, f"{kind} {fault}: the robot was not damped"
            assert rec.damp_after_ms is not None and rec.damp_after_ms <= 1000 * sim_task(name).make_contract().policy_dt  # within one tick
        if rec.damped:
            assert rec.stayed_damped
        if kind in ("action_spike", "joint_limit"):
            assert rec.clamped >= fault.duration, "the spikes did not reach the safety filters"


def test_long_nan_burst_latches_and_damps():
    policy = _policy("quadruped")
    rec = run_with_fault(sim_task("quadruped"), policy, Fault("nan_obs", 20, 8), seed=1, ticks=80)
    assert rec.estop and rec.damped and rec.stayed_damped and rec.out_of_limits == 0 and not rec.crashed


def test_command_violations_catches_each_kind():
    robot = FakeRobot(3)
    info = robot.info
    z = np.zeros(3, np.float32)
    ok = RobotCommand(Mode.POSITION, z.copy(), z.copy(), info.array("kp"), info.array("kd"), z.copy())
    assert command_violations(ok, info) == []
    assert command_violations(RobotCommand.damping(z, info.array("kd")), info) == []
    bad_q = RobotCommand(Mode.POSITION, np.full(3, 2.0, np.float32), z.copy(), info.array("kp"), info.array("kd"), z.copy())
    assert "outside the joint limits" in command_violations(bad_q, info)[0]
    nan = RobotCommand(Mode.POSITION, np.full(3, np.nan, np.float32), z.copy(), info.array("kp"), info.array("kd"), z.copy())
    assert "not finite" in command_violations(nan, info)[0]
    torque = RobotCommand(Mode.TORQUE, z.copy(), z.copy(), z.copy(), z.copy(), info.array("tau_max") * 2)
    assert "torque above" in command_violations(torque, info)[0]
    stiff_damp = RobotCommand(Mode.DAMPING, z.copy(), z.copy(), info.array("kp"), info.array("kd"), z.copy())
    assert "stiffness" in command_violations(stiff_damp, info)[0]


def test_faulty_robot_injects_what_it_says():
    clock = SimulatedClock()
    robot = FakeRobot(3, clock=clock)
    robot.connect()
    faulty = FaultyRobot(robot, Fault("stale_state", 2, 3), clock, period_ns=10_000_000)
    stamps = []
    for tick in range(6):
        faulty.tick = tick
        clock.t += 10_000_000
        stamps.append(faulty.read_state(0.01).t_ns)
    assert stamps[2] == stamps[3] == stamps[4] and stamps[5] > stamps[4] and stamps[1] < stamps[2]
    nan = FaultyRobot(robot, Fault("nan_obs", 0, 1), clock, 10_000_000)
    assert np.isnan(nan.read_state(0.01).q).all()
    with pytest.raises(ValueError, match="unknown fault class"):
        Fault("meteor", 0)


@pytest.mark.parametrize("kind", ["action_spike", "joint_limit"])
def test_spikes_are_clamped_by_the_filters_not_sent(kind):
    """Actions whose targets lie past every joint's upper limit (checked), with the contract's own clip
    removed, reach the quadruped's motors inside the limits: the safety filters clamp every one of them."""
    contract = sim_task("quadruped").make_contract()
    robot = sim_task("quadruped").make_robot()
    up = upper_action(contract, robot.info)
    assert (np.asarray(contract.action.default_q) + contract.action.scale * up > robot.info.array("q_max")).all()
    rec = run_with_fault(sim_task("quadruped"), _policy("quadruped"), Fault(kind, 5, 20, 1e3), seed=0, ticks=40)
    assert rec.out_of_limits == 0 and not rec.crashed and rec.clamped >= 20


@pytest.mark.parametrize("mode", ["garbage", "partition"])
def test_network_faults_damp_and_the_client_recovers(mode):
    """Through a policy server behind the fault proxy: garbage replies and a partition damp the robot in
    the tick they start, nothing out of limits reaches it, and the same client works again afterwards."""
    import os
    import threading

    from rlsuite.robots.faults import FaultProxy
    from rlsuite.robots.transport import PolicyClient, PolicyServer

    name = "InvertedPendulum-v5"
    policy = _policy(name)
    key = os.urandom(32)
    server = PolicyServer(policy, key, bind="tcp://127.0.0.1:*")
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, kwargs={"stop": stop.is_set, "poll_ms": 10}, daemon=True)
    thread.start()
    proxy = FaultProxy(server.endpoint, seed=0)
    client = PolicyClient(proxy.endpoint, key, timeout_s=0.5)
    try:
        fault = Fault("server_garbage" if mode == "garbage" else "network_partition", 15, 3)

        def on_tick(tick):
            proxy.mode = mode if fault.active(tick) else "pass"

        rec = run_with_fault(sim_task(name), client.act, fault, seed=0, ticks=40, on_tick=on_tick)
        assert not rec.crashed, rec.error
        assert rec.out_of_limits == 0 and not rec.early_stop and rec.estop and rec.damped and rec.stayed_damped
        proxy.mode = "pass"
        out = None
        for _ in range(3):  # the first call after the fault may still fail (a new handshake); then it works
            try:
                out = client.act(np.zeros(4, np.float32))
                break
            except Exception:  # noqa: BLE001
                continue
        assert out is not None and np.allclose(out, policy(np.zeros(4, np.float32)))
        nominal = run_with_fault(sim_task(name), client.act, None, seed=0, ticks=30)
        assert not nominal.estop and nominal.out_of_limits == 0
    finally:
        client.close()
        proxy.close()
        stop.set()
        thread.join(timeout=2)
        server.close()
