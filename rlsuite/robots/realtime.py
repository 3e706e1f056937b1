"""Opt-in real-time mode for the control loop: SCHED_FIFO priority, CPU affinity, locked memory and a
frozen garbage collector, each restored afterwards.

Use it around the loop (``ControlLoop.run(ticks, realtime=RealtimeConfig(...))`` does this)::

    with realtime_mode(RealtimeConfig(priority=80, cpus=(1,))) as report:
        loop.run(ticks)
    print(report.describe())   # which parts the OS granted

Parts (each requested on its own; ``report.granted`` says which ones the OS granted):

- ``sched_fifo``: ``os.sched_setscheduler(0, SCHED_FIFO, priority)``: the loop's thread runs before every
  normal process on its CPU. Needs ``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO`` of at least ``priority``.
- ``affinity``: ``os.sched_setaffinity(0, cpus)``: the thread stays on ``cpus`` (ideally a core that
  nothing else is pinned to, e.g. one isolated with the ``isolcpus=`` kernel parameter). Usually granted
  without privileges.
- ``mlockall``: ``mlockall(MCL_CURRENT | MCL_FUTURE)`` from libc: no page of the process is swapped out
  or faulted in lazily during the loop. Needs ``CAP_IPC_LOCK`` or an ``RLIMIT_MEMLOCK`` larger than the
  process (a torch process maps hundreds of MB).
- ``gc_freeze``: ``gc.collect(); gc.freeze(); gc.disable()``: no collector pause inside a tick. Always
  granted; the loop must not build reference cycles per tick (it does not).

Priority and affinity apply to the *calling thread* (Linux semantics of pid 0); memory locking and the
collector to the whole process. Enter and leave the context on the loop's own thread.

When the OS refuses a part (``PermissionError`` / ``EPERM``, ``ENOMEM`` under ``RLIMIT_MEMLOCK``, an
``RLIMIT_RTPRIO`` of 0, a CPU not in the process's set, a system without these calls), one warning
(logger ``rlsuite.robots``, once per process for the same refusal) names what was refused, why, and how
to grant it, and the loop runs in normal mode for that part; with ``strict=True`` it raises
:class:`RealtimeRefused` instead (after undoing the parts that were granted).

On exit every part is restored: the previous scheduling policy and priority, the previous CPU set,
``munlockall()``, and the collector unfrozen and re-enabled when it was enabled before (objects that were
already frozen before the context are left frozen).

A ``SCHED_FIFO`` thread that spins for most of its period is throttled by the kernel's real-time
bandwidth limit (``/proc/sys/kernel/sched_rt_runtime_us``, 95 % of each second by default) and then
stalls for tens of milliseconds, so in real-time mode the loop's default sleeper blocks in the kernel
until ``spin_us`` before each deadline and spins only the rest (normal mode spins the last 2 ms).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import errno
import gc
import logging
import os
import platform
from collections.abc import Iterator

log = logging.getLogger("rlsuite.robots")

PARTS = ("sched_fifo", "affinity", "mlockall", "gc_freeze")
_warned: set[str] = set()


class RealtimeRefused(RuntimeError):
    """Real-time mode was requested with ``strict=True`` and the OS refused a part of it."""


@dataclasses.dataclass(frozen=True)
class RealtimeConfig:
    """What real-time mode asks of the OS (see the module docstring)."""

    priority: int = 80
    """SCHED_FIFO priority, 1-99 (higher runs first); 0 leaves the scheduling policy as it is."""
    cpus: tuple[int, ...] | None = None
    """CPUs the loop's thread may run on; None leaves the affinity as it is."""
    lock_memory: bool = True
    """``mlockall(MCL_CURRENT | MCL_FUTURE)`` during the loop."""
    freeze_gc: bool = True
    """``gc.freeze()`` and ``gc.disable()`` during the loop."""
    strict: bool = False
    """Raise :class:`RealtimeRefused` when the OS refuses a requested part, instead of a warning."""
    spin_us: float = 500.0
    """The loop's default sleeper blocks until this long before a deadline and spins the rest: more than
    the OS's wake-up latency (tens of us on a PREEMPT_RT kernel, a few hundred in a VM), less than the period."""

    def __post_init__(self) -> None:
        if not 0 <= self.priority <= 99:
            raise ValueError(f"RealtimeConfig.priority must be 0 (leave the scheduler alone) or 1-99 (SCHED_FIFO), got {self.priority}.")
        if self.cpus is not None and (len(self.cpus) == 0 or any(c < 0 for c in self.cpus)):
            raise ValueError(f"RealtimeConfig.cpus must be None or a non-empty tuple of CPU numbers >= 0, got {self.cpus!r}.")
        if self.spin_us < 0:
            raise ValueError(f"RealtimeConfig.spin_us must be >= 0, got {self.spin_us}.")

    def requested(self) -> tuple[str, ...]:
        """The parts this config asks for, in :data:`PARTS` order."""
        asked = {"sched_fifo": self.priority > 0, "affinity": self.cpus is not None, "mlockall": self.lock_memory,
                 "gc_freeze": self.freeze_gc}
        return tuple(p for p in PARTS if asked[p])


@dataclasses.dataclass
class RealtimeReport:
    """Which requested parts the OS granted, and why the others were refused."""

    config: RealtimeConfig
    granted: dict[str, bool] = dataclasses.field(default_factory=dict)
    """Requested part -> granted."""
    refused: dict[str, str] = dataclasses.field(default_factory=dict)
    """Refused part -> the reason and how to grant it."""

    @property
    def all_granted(self) -> bool:
        return bool(self.granted) and all(self.granted.values())

    def describe(self) -> str:
        """One line, e.g. ``sched_fifo=granted(80) affinity=granted(1) mlockall=refused gc_freeze=granted``."""
        detail = {"sched_fifo": f"({self.config.priority})", "affinity": f"({','.join(map(str, self.config.cpus or ()))})"}
        return " ".join(f"{p}={'granted' + detail.get(p, '') if ok else 'refused'}" for p, ok in self.granted.items()) or "nothing requested"


def _rlimit(name: str) -> str:
    try:
        import resource

        soft, hard = resource.getrlimit(getattr(resource, name))
    except (ImportError, AttributeError, OSError, ValueError):
        return "unknown"
    fmt = lambda v: "unlimited" if v == resource.RLIM_INFINITY else str(v)  # noqa: E731
    return f"{fmt(soft)} (hard {fmt(hard)})"


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno is not None else type(e).__name__


def _mcl_flags() -> tuple[int, int]:
    # MCL_CURRENT, MCL_FUTURE: 1, 2 on x86, arm, riscv...; 0x2000, 0x4000 on alpha, powerpc and sparc
    if platform.machine().lower().startswith(("ppc", "powerpc", "sparc", "alpha")):
        return 0x2000, 0x4000
    return 1, 2


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _set_fifo(priority: int) -> tuple[tuple[int, int], str | None]:
    """SCHED_FIFO at ``priority`` for the calling thread; returns (previous (policy, priority), refusal)."""
    if not hasattr(os, "sched_setscheduler"):
        return (0, 0), f"SCHED_FIFO: os.sched_setscheduler does not exist on {platform.system()}; real-time scheduling is Linux only."
    prev = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as e:
        return prev, (f"SCHED_FIFO priority {priority} refused ({_errname(e)}: {e.strerror}; RLIMIT_RTPRIO is {_rlimit('RLIMIT_RTPRIO')}). "
                      "Grant it with `ulimit -r 99` in the shell that starts the loop (as root, or after raising the hard limit: "
                      "`@realtime - rtprio 99` in /etc/security/limits.conf, then log in again), or "
                      "`sudo setcap cap_sys_nice+ep $(readlink -f $(which python))`; in Docker: "
                      "`--cap-add SYS_NICE --ulimit rtprio=99` (with cgroup v1 also `--cpu-rt-runtime=950000`).")
    return prev, None


def _set_affinity(cpus: tuple[int, ...]) -> tuple[set[int] | None, str | None]:
    if not hasattr(os, "sched_setaffinity"):
        return None, f"CPU affinity: os.sched_setaffinity does not exist on {platform.system()}."
    prev = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        return prev, (f"CPU affinity {list(cpus)} refused ({_errname(e)}: {e.strerror}); this process may run on CPUs {sorted(prev)} "
                      "(see `taskset -p $$`, the container's --cpuset-cpus); choose among those.")
    return prev, None


def _mlockall() -> str | None:
    if platform.system() != "Linux":
        return f"mlockall: not attempted on {platform.system()} (Linux only here)."
    try:
        libc = _libc()
        current, future = _mcl_flags()
        rc = libc.mlockall(current | future)
    except (OSError, AttributeError) as e:
        return f"mlockall: libc could not be called ({e})."
    if rc == 0:
        return None
    err = ctypes.get_errno()
    return (f"mlockall(MCL_CURRENT | MCL_FUTURE) refused ({errno.errorcode.get(err, err)}: {os.strerror(err)}; RLIMIT_MEMLOCK is "
            f"{_rlimit('RLIMIT_MEMLOCK')} bytes). Grant it with `ulimit -l unlimited` (`@realtime - memlock unlimited` in "
            "/etc/security/limits.conf), or `sudo setcap cap_ipc_lock+ep $(readlink -f $(which python))`; in Docker: "
            "`--ulimit memlock=-1 --cap-add IPC_LOCK`.")


def _munlockall() -> None:
    try:
        _libc().munlockall()
    except (OSError, AttributeError) as e:  # pragma: no cover - it was callable a moment ago
        log.warning("munlockall failed (%s); memory stays locked until the process exits.", e)


@contextlib.contextmanager
def realtime_mode(config: RealtimeConfig | None = None, **kwargs) -> Iterator[RealtimeReport]:
    """Real-time mode for the calling thread for the duration of the ``with`` block (see the module
    docstring); ``config`` or the :class:`RealtimeConfig` fields as keywords. Yields the report."""
    if config is not None and kwargs:
        raise TypeError("realtime_mode takes a RealtimeConfig or its fields as keywords, not both.")
    config = config or RealtimeConfig(**kwargs)
    report = RealtimeReport(config)
    undo: list = []  # restore actions, run in reverse order

    def refuse(part: str, why: str) -> None:
        report.granted[part], report.refused[part] = False, why

    try:
        if config.freeze_gc:
            was_enabled, was_frozen = gc.isenabled(), gc.get_freeze_count()
            gc.collect()
            gc.freeze()
            gc.disable()
            report.granted["gc_freeze"] = True

            def restore_gc() -> None:
                if not was_frozen:
                    gc.unfreeze()
                if was_enabled:
                    gc.enable()

            undo.append(restore_gc)
        if config.cpus is not None:
            prev_cpus, why = _set_affinity(config.cpus)
            if why is None:
                report.granted["affinity"] = True
                undo.append(lambda: os.sched_setaffinity(0, prev_cpus))
            else:
                refuse("affinity", why)
        if config.lock_memory:
            why = _mlockall()
            if why is None:
                report.granted["mlockall"] = True
                undo.append(_munlockall)
            else:
                refuse("mlockall", why)
        if config.priority > 0:  # last: the steps above run at normal priority
            prev_sched, why = _set_fifo(config.priority)
            if why is None:
                report.granted["sched_fifo"] = True
                undo.append(lambda: os.sched_setscheduler(0, prev_sched[0], os.sched_param(prev_sched[1])))
            else:
                refuse("sched_fifo", why)
        report.granted = {p: report.granted[p] for p in PARTS if p in report.granted}
        report.refused = {p: report.refused[p] for p in PARTS if p in report.refused}
        if report.refused:
            message = (f"real-time mode: {', '.join(report.refused)} refused by the OS"
                       f"{'' if config.strict else '; continuing in normal mode for those parts'}. " + " ".join(report.refused.values()))
            if config.strict:
                raise RealtimeRefused(message + " (strict=True: not running the loop without them)")
            if message not in _warned:
                _warned.add(message)
                log.warning(message)
            else:
                log.debug(message)
        log.info("real-time mode: %s", report.describe())
        yield report
    finally:
        for restore in reversed(undo):
            try:
                restore()
            except OSError as e:  # restoring must not hide the loop's own exception; say what stayed changed
                log.error("real-time mode: could not restore a setting on exit (%s)", e)
