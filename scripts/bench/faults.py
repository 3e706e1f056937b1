"""Benchmark: fault-injection campaign on the deploy path. Sim-to-sim runs of the quadruped and of
InvertedPendulum-v5 through contract, observation builder, state machine, safety chain and control loop,
locally and through the transport to a ``rlsuite serve-policy`` process, with one fault of each class
(:data:`rlsuite.robots.faults.FAULT_CLASSES`) injected at a random tick, for a random duration, in each run.

Per run: commands outside the robot's limits (must be 0), whether and how fast (loop-clock ms from the
fault's start) the robot was damped, whether the e-stop latched and the robot stayed damped, crashes (an
exception out of the loop, or the policy server process dying on its own; must be 0).

Policies: InvertedPendulum-v5 uses a linear stabiliser ``a = [2, 20, 1, 2] . obs`` (1000 per episode in
the Gymnasium env) and the quadruped a policy that holds the default pose (zero offsets); both are exported
to ONNX and run by ONNX Runtime, locally or by the policy server. Network faults always go through the
server (behind :class:`rlsuite.robots.faults.FaultProxy`); every other class runs locally on even seeds and
remotely on odd ones. Before each remote run the client is checked with one request, as an operator's
re-arm does (a long-lived client re-handshakes there after a server restart).

Writes docs/benchmarks/faults.csv (one row per run) and the table between the ``faults`` markers of
docs/benchmarks.md.

Usage:
    python scripts/bench/faults.py              # 36 runs per class and task: 1,080 faults, a few minutes
    python scripts/bench/faults.py --quick      # 2 runs per class and task
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import ROOT, git_commit, machine, write_results  # noqa: E402  (scripts/bench on sys.path)

from rlsuite.robots.export import export_onnx, load_runner
from rlsuite.robots.faults import (
    FAULT_CLASSES,
    MUST_DAMP,
    NETWORK_FAULTS,
    FaultProxy,
    draw_fault,
    run_with_fault,
)
from rlsuite.robots.sim import sim_task
from rlsuite.robots.transport import PolicyClient, PolicyUnavailable

CSV_PATH = ROOT / "docs" / "benchmarks" / "faults.csv"
BLOCK, TITLE = "faults", "Fault injection on the deploy path"
TASKS = {"InvertedPendulum-v5": 200, "quadruped": 200}  # ticks per run (8 s and 4 s of robot time)


def make_policy(name: str) -> tuple[torch.nn.Module, int]:
    """The task's policy module (see the module docstring) and its observation size."""
    contract = sim_task(name).make_contract()
    module = torch.nn.Linear(contract.obs_dim, contract.action_dim, bias=False)
    with torch.no_grad():
        module.weight.zero_()
        if name == "InvertedPendulum-v5":
            module.weight.copy_(torch.tensor([[2.0, 20.0, 1.0, 2.0]]))
    return module.eval(), contract.obs_dim


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``rlsuite serve-policy`` process that the campaign stops, kills and restarts."""

    def __init__(self, policy_file: Path, key_file: Path, log_dir: Path) -> None:
        self.policy_file, self.key_file, self.log_dir = policy_file, key_file, log_dir
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = None
        self.starts = self.unexpected_exits = 0
        self.stopped = False

    def start(self) -> None:
        self.starts += 1
        if self.log is not None:
            self.log.close()
        self.log = open(self.log_dir / f"server{self.starts}.log", "w")  # noqa: SIM115 - closed at the next start or in close()
        self.proc = subprocess.Popen([sys.executable, "-m", "rlsuite", "serve-policy", str(self.policy_file), "--port", str(self.port),
                                      "--key-file", str(self.key_file)], stdout=self.log, stderr=subprocess.STDOUT)

    def check(self) -> None:
        """Count (and restart) a server that died without being killed by the campaign."""
        if self.proc is not None and self.proc.poll() is not None:
            self.unexpected_exits += 1
            print(f"  policy server exited by itself with status {self.proc.returncode}; restarting it", flush=True)
            self.start()

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        if self.stopped:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.stopped = False

    def restart(self) -> None:
        self.resume()
        self.proc.kill()
        self.proc.wait()
        self.start()

    def close(self) -> None:
        self.resume()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()


def rearm(client: PolicyClient, obs_dim: int, wait_s: float = 30.0) -> None:
    """One successful request through ``client`` (retried while the server starts)."""
    t_end = time.monotonic() + wait_s
    while True:
        try:
            client.act(np.zeros(obs_dim, np.float32))
            return
        except PolicyUnavailable:
            if time.monotonic() > t_end:
                raise
            time.sleep(0.05)


def campaign(runs: int, tasks: list[str], classes: list[str], seed: int, tmp: Path) -> list[dict]:
    rows: list[dict] = []
    key_file = tmp / "key"
    from rlsuite.robots.transport import write_key_file

    key = write_key_file(key_file)  # mode 0600 from the start, 32 random bytes in hex
    for ti, name in enumerate(tasks):
        task, ticks = sim_task(name), TASKS[name]
        module, obs_dim = make_policy(name)
        onnx = export_onnx(module, tmp / f"{name}.onnx", obs_dim)
        local = load_runner(onnx)  # takes one observation (obs_dim,) and returns (act_dim,)
        server = Server(onnx, key_file, tmp)
        server.start()
        proxy = FaultProxy(server.endpoint, seed=seed + ti)
        client = PolicyClient(proxy.endpoint, key, timeout_s=0.05)
        remote = client.act
        try:
            rearm(client, obs_dim)
            for path, pol in (("local", local), ("remote", remote)):
                nominal = run_with_fault(task, pol, None, seed, ticks)
                rows.append({"part": "nominal", "task": name, "path": path, **dataclasses.asdict(nominal)})
                print(f"{name} nominal ({path}): {nominal.ticks} ticks, e-stop {nominal.estop}, out of limits {nominal.out_of_limits}", flush=True)
            for ci, kind in enumerate(classes):
                t0 = time.perf_counter()
                for i in range(runs):
                    s = seed + i
                    rng = np.random.default_rng([seed, ti, ci, i])
                    fault = draw_fault(kind, rng, 10, ticks - 60)
                    path = "remote" if kind in NETWORK_FAULTS or i % 2 == 1 else "local"
                    on_tick = None
                    if path == "remote":
                        server.check()
                        rearm(client, obs_dim)
                        on_tick = _network_schedule(kind, fault, server, proxy)
                    rec = run_with_fault(task, remote if path == "remote" else local, fault, s, ticks, on_tick=on_tick)
                    if path == "remote":
                        proxy.mode = "pass"
                        server.resume()
                        server.check()
                    rows.append({"part": "fault", "task": name, "path": path, "magnitude": fault.magnitude, **dataclasses.asdict(rec)})
                done = [r for r in rows if r["part"] == "fault" and r["task"] == name and r["kind"] == kind]
                print(f"{name} {kind}: {len(done)} runs, out of limits {sum(r['out_of_limits'] for r in done)}, crashes "
                      f"{sum(r['crashed'] for r in done)}, e-stops {sum(r['estop'] for r in done)}, damped {sum(r['damped'] for r in done)} "
                      f"({time.perf_counter() - t0:.1f} s)", flush=True)
        finally:
            client.close()
            proxy.close()
            server.close()
        rows.append({"part": "server", "task": name, "kind": "server", "crashed": server.unexpected_exits, "starts": server.starts})
    return rows


def _network_schedule(kind: str, fault, server: Server, proxy: FaultProxy):
    def on_tick(tick: int) -> None:
        if tick == fault.start:
            if kind == "server_silent":
                server.pause()
            elif kind == "server_restart":
                server.restart()
            elif kind == "server_garbage":
                proxy.mode = "garbage"
            elif kind == "network_partition":
                proxy.mode = "partition"
        elif tick == fault.start + fault.duration:
            proxy.mode = "pass"
            server.resume()

    return on_tick


def render(rows: list[dict]) -> str:
    faults = [r for r in rows if r["part"] == "fault"]
    servers = [r for r in rows if r["part"] == "server"]
    lines = ["| fault class | must damp | runs (local / remote) | survived | commands out of limits | e-stop latched | damped | "
             "fault to damping, median / max (ms) | stayed damped | crashes | no e-stop and still up at the end |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in FAULT_CLASSES:
        rs = [r for r in faults if r["kind"] == kind]
        if not rs:
            continue
        loc = sum(r["path"] == "local" for r in rs)
        ms = [float(r["damp_after_ms"]) for r in rs if r.get("damp_after_ms") not in (None, "")]
        lat = f"{np.median(ms):.0f} / {max(ms):.0f}" if ms else "-"
        up = sum(not _true(r["estop"]) and _true(r.get("alive", True)) for r in rs)
        survived = sum(_survived(r) for r in rs)
        lines.append(f"| {kind} | {'yes' if kind in MUST_DAMP else 'no'} | {len(rs)} ({loc} / {len(rs) - loc}) | {survived} | "
                     f"{sum(int(r['out_of_limits']) for r in rs)} | {sum(_true(r['estop']) for r in rs)} | {sum(_true(r['damped']) for r in rs)} | "
                     f"{lat} | {sum(_true(r['stayed_damped']) for r in rs if _true(r['damped']))} of {sum(_true(r['damped']) for r in rs)} | "
                     f"{sum(_true(r['crashed']) for r in rs)} | {up} |")
    all_survived = sum(_survived(r) for r in faults)
    lines.append(f"| **all** | | {len(faults)} | {all_survived} | {sum(int(r['out_of_limits']) for r in faults)} | "
                 f"{sum(_true(r['estop']) for r in faults)} | {sum(_true(r['damped']) for r in faults)} | | | "
                 f"{sum(_true(r['crashed']) for r in faults) + sum(int(r['crashed']) for r in servers)} | "
                 f"{sum(not _true(r['estop']) and _true(r.get('alive', True)) for r in faults)} |")
    lines.append("")
    lines.append(f"Policy server processes: {sum(int(r.get('starts', 0)) for r in servers)} starts (restarts are injected faults), "
                 f"{sum(int(r['crashed']) for r in servers)} exits on their own. Survived: no crash, no command out of limits, no damping "
                 "before the fault, and damped where the class requires it. Times are loop-clock (robot) time from the tick the fault "
                 "starts to the first damping command; the watchdogs' thresholds set them for the classes that need several "
                 "ticks (stale state: the state-age limit; latency and overruns: 5 missed deadlines in a row). The last "
                 "column counts runs that ended without an e-stop with the pendulum still balanced or the quadruped still standing.")
    return "\n".join(lines)


def _survived(r: dict) -> bool:
    """No crash, no command out of limits, no damping before the fault, damped where the class requires it."""
    return (not _true(r["crashed"]) and int(r["out_of_limits"]) == 0 and not _true(r["early_stop"])
            and (_true(r["damped"]) or r["kind"] not in MUST_DAMP))


def _true(v) -> bool:
    return v is True or str(v) in ("True", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=36, help="runs per fault class and task")
    ap.add_argument("--quick", action="store_true", help="2 runs per class and task")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--classes", default=",".join(FAULT_CLASSES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("rlsuite.robots").setLevel(logging.CRITICAL)  # every safety event is counted in the rows instead
    runs = 2 if args.quick else args.runs
    tasks, classes = args.tasks.split(","), args.classes.split(",")
    bad = [t for t in tasks if t not in TASKS] + [c for c in classes if c not in FAULT_CLASSES]
    if bad:
        raise SystemExit(f"unknown task or fault class {bad}; tasks: {', '.join(TASKS)}; classes: {', '.join(FAULT_CLASSES)}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = campaign(runs, tasks, classes, args.seed, Path(tmp))
    rendered = render(rows)
    print(rendered)
    wall = time.perf_counter() - t0
    print(f"wall time {wall:.0f} s")
    if not args.no_write:
        meta = {"commit": git_commit(), "machine": machine(), "date": time.strftime("%Y-%m-%d"), "wall_s": round(wall, 1)}
        write_results(CSV_PATH, rows, meta, BLOCK, rendered, TITLE)


if __name__ == "__main__":
    main()
