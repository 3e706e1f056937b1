"""robots/realtime: the opt-in real-time mode asks the OS for each part, reports truthfully what it got,
says how to grant what was refused, and restores everything afterwards."""

import errno
import gc
import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rlsuite.robots import loop as loop_module
from rlsuite.robots import realtime
from rlsuite.robots.interface import FakeRobot
from rlsuite.robots.loop import ControlLoop, SimulatedClock
from rlsuite.robots.realtime import RealtimeConfig, RealtimeRefused, realtime_mode
from tests.robots.test_loop_faults import contract

linux_only = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux scheduling calls")


def _eperm(*args):
    raise PermissionError(errno.EPERM, "Operation not permitted")


def _einval(*args):
    raise OSError(errno.EINVAL, "Invalid argument")


@linux_only
def test_refusal_warns_once_with_how_to_grant_and_restores_everything(monkeypatch, caplog):
    monkeypatch.setattr(realtime, "_warned", set())
    monkeypatch.setattr(os, "sched_setscheduler", _eperm)
    monkeypatch.setattr(os, "sched_setaffinity", _einval)
    sched_before, cpus_before = os.sched_getscheduler(0), os.sched_getaffinity(0)
    assert gc.isenabled()
    cfg = RealtimeConfig(priority=80, cpus=(0,), lock_memory=False)
    with caplog.at_level(logging.DEBUG, logger="rlsuite.robots"):
        with realtime_mode(cfg) as report:
            assert not gc.isenabled() and gc.get_freeze_count() > 0  # the collector is frozen inside
        with realtime_mode(cfg):  # the same refusal again: not a second warning
            pass
    assert report.granted == {"sched_fifo": False, "affinity": False, "gc_freeze": True} and not report.all_granted
    assert "ulimit -r 99" in report.refused["sched_fifo"] and "cap_sys_nice" in report.refused["sched_fifo"]
    assert "EINVAL" in report.refused["affinity"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "sched_fifo, affinity refused" in warnings[0] and "continuing in normal mode" in warnings[0]
    assert "--cap-add SYS_NICE --ulimit rtprio=99" in warnings[0] and "RLIMIT_RTPRIO is" in warnings[0]
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert os.sched_getscheduler(0) == sched_before and os.sched_getaffinity(0) == cpus_before
    assert report.describe() == "sched_fifo=refused affinity=refused gc_freeze=granted"


@linux_only
def test_strict_raises_after_undoing_what_was_granted(monkeypatch):
    monkeypatch.setattr(os, "sched_setscheduler", _eperm)
    with pytest.raises(RealtimeRefused, match="sched_fifo refused.*strict=True"):
        with realtime_mode(priority=50, lock_memory=False, strict=True):
            pytest.fail("the body must not run when strict real-time mode is refused")
    assert gc.isenabled() and gc.get_freeze_count() == 0


@linux_only
def test_what_is_reported_granted_is_really_in_effect_and_restored():
    cpu = min(os.sched_getaffinity(0))
    sched_before, cpus_before = os.sched_getscheduler(0), os.sched_getaffinity(0)
    with realtime_mode(priority=1, cpus=(cpu,), lock_memory=False, freeze_gc=False) as report:  # priority 1: the lowest
        fifo_inside = os.sched_getscheduler(0) == os.SCHED_FIFO
        cpus_inside = os.sched_getaffinity(0)
    assert set(report.granted) == {"sched_fifo", "affinity"}
    assert report.granted["sched_fifo"] == fifo_inside
    assert report.granted["affinity"] and cpus_inside == {cpu}  # affinity needs no privilege
    assert os.sched_getscheduler(0) == sched_before and os.sched_getaffinity(0) == cpus_before


CHILD = textwrap.dedent("""
    import json, logging, os, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from rlsuite.robots.realtime import realtime_mode

    def locked_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmLck:"):
                return int(line.split()[1])
        return -1

    cpu = min(os.sched_getaffinity(0))
    with realtime_mode(priority=80, cpus=(cpu,), lock_memory=True, freeze_gc=True) as report:
        inside = {"fifo": os.sched_getscheduler(0) == os.SCHED_FIFO, "cpus": sorted(os.sched_getaffinity(0)), "locked_kb": locked_kb()}
    after = {"fifo": os.sched_getscheduler(0) == os.SCHED_FIFO, "locked_kb": locked_kb()}
    print(json.dumps({"granted": report.granted, "refused": report.refused, "inside": inside, "after": after, "cpu": cpu}))
""")


def _unprivileged():
    """In the child before exec: no real-time priority, 64 KiB of lockable memory, and (for root) neither
    CAP_SYS_NICE nor CAP_IPC_LOCK, dropped from the bounding set so that the exec'd process cannot regain them."""
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 * 1024, 64 * 1024))
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (23, 14):  # CAP_SYS_NICE, CAP_IPC_LOCK
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                os._exit(97)


def _child(preexec=None):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.getcwd()}
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, preexec_fn=preexec, env=env)
    if res.returncode == 97:
        pytest.skip("cannot drop CAP_SYS_NICE / CAP_IPC_LOCK here (root without CAP_SETPCAP)")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="Linux real-time calls")
def test_an_unprivileged_process_is_refused_for_real_and_told_how_to_grant_it():
    out, stderr = _child(_unprivileged)
    assert out["granted"] == {"sched_fifo": False, "affinity": True, "mlockall": False, "gc_freeze": True}
    assert not out["inside"]["fifo"] and out["inside"]["cpus"] == [out["cpu"]] and out["inside"]["locked_kb"] == 0
    assert "RLIMIT_RTPRIO is 0" in out["refused"]["sched_fifo"]
    assert "RLIMIT_MEMLOCK is 65536" in out["refused"]["mlockall"] and "ulimit -l unlimited" in out["refused"]["mlockall"]
    assert stderr.count("real-time mode: sched_fifo, mlockall refused") == 1  # one warning for both


@pytest.mark.skipif(sys.platform != "linux", reason="Linux real-time calls")
def test_this_process_gets_what_its_privileges_allow_and_the_report_says_so():
    out, _ = _child()
    assert out["granted"]["sched_fifo"] == out["inside"]["fifo"]
    assert out["granted"]["mlockall"] == (out["inside"]["locked_kb"] > 0)
    assert out["granted"]["affinity"] and out["inside"]["cpus"] == [out["cpu"]]
    assert not out["after"]["fifo"] and out["after"]["locked_kb"] == 0  # munlockall and the old scheduler on exit


def test_config_is_checked():
    for bad in (dict(priority=100), dict(priority=-1), dict(cpus=()), dict(cpus=(-1,)), dict(spin_us=-5)):
        with pytest.raises(ValueError, match="RealtimeConfig"):
            RealtimeConfig(**bad)
    assert RealtimeConfig(priority=0, cpus=None, lock_memory=False, freeze_gc=True).requested() == ("gc_freeze",)
    with pytest.raises(TypeError, match="not both"):
        with realtime_mode(RealtimeConfig(), priority=3):
            pass


def test_control_loop_runs_in_realtime_mode_and_keeps_the_report():
    clock = SimulatedClock()
    robot = FakeRobot(3, clock=clock)
    robot.connect()
    loop = ControlLoop(robot, lambda o: np.zeros(3, np.float32), contract(), clock=clock, sleep_until=clock.sleep_until)
    seen = []
    loop.run(5, on_tick=lambda i, out: seen.append(gc.isenabled()), realtime=RealtimeConfig(priority=0, lock_memory=False))
    assert seen == [False] * 5 and gc.isenabled()  # collector off during the ticks, back on afterwards
    assert loop.realtime_report.granted == {"gc_freeze": True} and clock.t == 5 * 20_000_000


def test_realtime_sleeper_blocks_until_spin_us_before_the_deadline(monkeypatch):
    now = [0]
    slept = []

    def clock():  # reading the clock takes 10 us here
        now[0] += 10_000
        return now[0]

    def fake_sleep(s):
        slept.append(s)
        now[0] += int(s * 1e9) if s > 0 else 50_000  # a yield takes 50 us here

    monkeypatch.setattr(loop_module.time, "sleep", fake_sleep)
    loop_module._sleep_until(2_000_000, clock, spin_ns=100_000)  # real-time mode: 2 ms left, spin only the last 100 us
    assert len(slept) == 1 and slept[0] == pytest.approx(1.89e-3) and now[0] >= 2_000_000
    slept.clear()
    now[0] = 0
    loop_module._sleep_until(2_000_000, clock)  # normal mode: spins (yielding) through the last 2 ms, never blocks
    assert set(slept) == {0} and len(slept) > 10 and now[0] >= 2_000_000
