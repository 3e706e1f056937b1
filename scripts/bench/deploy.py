"""Benchmark: deploy-side latency. Inference p50/p99 for eager torch, TorchScript and ONNX Runtime (CPU, one
thread, batch 1) on MLP policies of several sizes; control-loop wake-up jitter at 50, 200 and 500 Hz (a
fake robot, an ONNX MLP policy, the full safety chain, real clock); transport round trip on loopback.

Targets: p99 jitter under 1 ms at 500 Hz with an MLP policy; ONNX Runtime at least as fast as eager torch.

Writes docs/benchmarks/deploy.csv and the tables between the ``deploy`` markers of docs/benchmarks.md.

Jitter under load (``--jitter`` for one case, ``--jitter-matrix`` for all of them): the same 500 Hz loop
idle (``none``), beside a CPU load (``cpu``: busy processes pinned to the other cores; one on a 2-core
machine), beside a memory load (``mem``: a process that maps, touches and copies a large buffer over and
over, on another core), and beside both (``all``); each in normal mode and in real-time mode
(:mod:`rlsuite.robots.realtime`: SCHED_FIFO, the loop pinned to its own core, ``mlockall``, frozen
garbage collector). Each row says which real-time parts the OS granted; the machine line gives the CPU
model, core count and kernel. Goal: p99 under 1 ms at 500 Hz under load where real-time priority is
granted. The matrix writes docs/benchmarks/deploy_jitter.csv, deploy_jitter.json and the table between
the ``deploy_jitter`` markers of docs/benchmarks.md (or under ``--out-dir``). Measure on a quiet machine:
anything else running is an extra, unrecorded load.

Usage:
    python scripts/bench/deploy.py            # 2000 inferences per backend, 4 s of loop per rate
    python scripts/bench/deploy.py --quick
    python scripts/bench/deploy.py --jitter --load cpu --realtime --seconds 10      # one case, printed
    python scripts/bench/deploy.py --jitter-matrix --seconds 30                     # 4 loads x 2 modes, ~5 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import MD_PATH, ROOT, git_commit, machine, write_results  # noqa: E402  (scripts/bench on sys.path)

from rlsuite.robots.contract import ActionSpec, ObsTerm, PolicyContract
from rlsuite.robots.export import export_onnx, export_torchscript, load_runner
from rlsuite.robots.interface import FakeRobot
from rlsuite.robots.loop import ControlLoop, LoopStats
from rlsuite.robots.realtime import RealtimeConfig
from rlsuite.robots.safety import Phase
from rlsuite.robots.transport import PolicyClient, PolicyServer

CSV_PATH = ROOT / "docs" / "benchmarks" / "deploy.csv"
JITTER_NAME = "deploy_jitter"  # the CSV / JSON stem and the docs/benchmarks.md block of the jitter matrix
LOADS = ("none", "cpu", "mem", "all")
SIZES = {"64x64": (64, 64), "256x256": (256, 256), "512x512x512": (512, 512, 512)}
OBS_DIM, ACT_DIM = 48, 12  # a quadruped-sized policy


def mlp(hidden: tuple[int, ...]) -> torch.nn.Module:
    layers, d = [], OBS_DIM
    for h in hidden:
        layers += [torch.nn.Linear(d, h), torch.nn.ELU()]
        d = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(d, ACT_DIM)).eval()


def pct(x: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(x), q))


def bench_inference(rows: list[dict], n: int) -> None:
    obs = np.random.default_rng(0).standard_normal((1, OBS_DIM)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for name, hidden in SIZES.items():
            module = mlp(hidden)
            runners = {
                "eager torch": lambda o, m=module: m(torch.from_numpy(o)).numpy(),
                "TorchScript": load_runner(export_torchscript(module, Path(tmp) / f"{name}.pt", OBS_DIM)),
                "ONNX Runtime": load_runner(export_onnx(module, Path(tmp) / f"{name}.onnx", OBS_DIM)),
            }
            for backend, run in runners.items():
                times = []
                with torch.no_grad():
                    for i in range(n + 100):
                        t0 = time.perf_counter_ns()
                        run(obs)
                        if i >= 100:
                            times.append((time.perf_counter_ns() - t0) / 1e3)
                rows.append({"part": "inference", "mlp": name, "backend": backend, "p50_us": pct(times, 50), "p99_us": pct(times, 99)})
                print(f"inference {name} {backend}: p50 {pct(times, 50):.1f} us p99 {pct(times, 99):.1f} us", flush=True)


def make_loop(run, hz: int) -> ControlLoop:
    """A loop at ``hz`` on a fake robot with a quadruped-sized contract, in the POLICY phase."""
    robot = FakeRobot(ACT_DIM)
    robot.connect()
    contract = PolicyContract(obs_terms=(ObsTerm("q", ACT_DIM), ObsTerm("dq", ACT_DIM), ObsTerm("last_action", ACT_DIM),
                                         ObsTerm("gyro", 3), ObsTerm("projected_gravity", 3), ObsTerm("quat", 4),
                                         ObsTerm("cmd", 2)),
                              joint_names=tuple(f"j{i}" for i in range(ACT_DIM)), robot_joint_map=tuple(range(ACT_DIM)),
                              action=ActionSpec("joint_position_offset", 0.25, (0.0,) * ACT_DIM), policy_dt=1.0 / hz)
    loop = ControlLoop(robot, lambda o: run(o[None])[0], contract)
    loop.terms = lambda s, a, base=loop.terms: {**base(s, a), "cmd": np.zeros(2, np.float32)}
    loop.fsm.ramp_s = 0.0
    loop.fsm.to(Phase.RAMP, 0, robot.read_state(0.1))
    loop.tick()
    loop.fsm.to(Phase.POLICY)
    return loop


def bench_loop(rows: list[dict], seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = load_runner(export_onnx(mlp((256, 256)), Path(tmp) / "p.onnx", OBS_DIM))
        for hz in (50, 200, 500):
            loop = make_loop(run, hz)
            stats = loop.run(int(seconds * hz)).summary()
            rows.append({"part": "loop", "rate_hz": hz, **stats, "estop": loop.safety.latched})
            print(f"loop {hz} Hz: jitter p50 {stats['jitter_p50_ms']:.3f} ms p99 {stats['jitter_p99_ms']:.3f} ms max "
                  f"{stats['jitter_max_ms']:.3f} ms, overruns {stats['overruns']}", flush=True)


# --- jitter under load ------------------------------------------------------------------------------------

CPU_LOAD = "while True:\n    pass\n"
MEM_LOAD = textwrap.dedent("""
    import sys
    import numpy as np
    src = np.ones(int(sys.argv[1]) * 2**20 // 2, np.uint8)
    while True:
        dst = np.empty_like(src)  # fresh pages every round: page faults, the page allocator, TLB misses
        dst[::4096] = 1  # touch every page
        np.copyto(dst, src)  # stream the buffer: memory bandwidth, caches evicted
        del dst
""")


def cpu_layout(loop_cpu: int | None) -> tuple[int, list[int]]:
    """(the loop's CPU, the CPUs for the loads): the loads go on the other CPUs this process may use, or
    on the loop's own CPU when it is the only one."""
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if loop_cpu is None else loop_cpu
    if cpu not in allowed:
        raise SystemExit(f"--loop-cpu {cpu} is not among the CPUs this process may use: {allowed}.")
    return cpu, [c for c in allowed if c != cpu] or [cpu]


def start_load(load: str, load_cpus: list[int], cpu_procs: int, mem_mb: int) -> list[subprocess.Popen]:
    """The load processes of ``load`` (none, cpu, mem, all), each pinned to one of ``load_cpus`` in turn."""
    codes = []
    if load in ("cpu", "all"):
        codes += [[CPU_LOAD]] * cpu_procs
    if load in ("mem", "all"):
        codes += [[MEM_LOAD, str(mem_mb)]]
    procs = []
    for i, code in enumerate(codes):
        p = subprocess.Popen([sys.executable, "-c", *code], stdout=subprocess.DEVNULL)
        os.sched_setaffinity(p.pid, {load_cpus[i % len(load_cpus)]})
        procs.append(p)
    return procs


def stop_load(procs: list[subprocess.Popen]) -> list[int | None]:
    """Stop the load processes; returns their exit codes before stopping (None: it was still running)."""
    alive = [p.poll() for p in procs]
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return alive


def bench_jitter_case(run, load: str, realtime: bool, args) -> dict:
    """One case: the 500 Hz loop for ``args.seconds`` beside ``load``, in normal or real-time mode."""
    loop_cpu, load_cpus = cpu_layout(args.loop_cpu)
    cpu_procs = args.cpu_procs if args.cpu_procs is not None else len(load_cpus)
    loop = make_loop(run, args.rate)
    procs = start_load(load, load_cpus, cpu_procs, args.mem_mb)
    try:
        time.sleep(args.settle)  # let the loads ramp up (the memory load maps its buffers)
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a {load} load process exited before the measurement (exit codes {[p.poll() for p in procs]}).")
        rt = (RealtimeConfig(priority=args.priority, cpus=(loop_cpu,), lock_memory=not args.no_lock_memory, spin_us=args.spin_us)
              if realtime else None)
        warm = int(0.2 * args.rate)  # the first 0.2 s (in the same real-time session) are not counted

        def restart_stats(i: int, out: dict) -> None:
            if i == warm - 1:
                loop.stats = LoopStats()

        stats = loop.run(warm + int(args.seconds * args.rate), on_tick=restart_stats, realtime=rt).summary()
    finally:
        alive = stop_load(procs)
    if any(a is not None for a in alive):
        raise RuntimeError(f"a {load} load process died during the measurement (exit codes {alive}).")
    report = loop.realtime_report if realtime else None
    row = {"part": "jitter", "load": load, "mode": "realtime" if realtime else "normal", "rate_hz": args.rate, **stats,
           "overruns_per_tick": stats["overruns"] / max(stats["ticks"], 1), "estop": loop.safety.latched,
           "loop_cpu": loop_cpu if realtime else "any", "load_procs": len(procs), "load_cpus": " ".join(map(str, load_cpus)),
           "mem_mb": args.mem_mb if load in ("mem", "all") else 0, "seconds": args.seconds,
           "realtime_granted": report.describe() if report else "", "realtime_refused": "; ".join(report.refused) if report else ""}
    print(f"jitter {load:>4} {row['mode']:>8}: p50 {stats['jitter_p50_ms']:.3f} ms p99 {stats['jitter_p99_ms']:.3f} ms max "
          f"{stats['jitter_max_ms']:.3f} ms, overruns {stats['overruns']}/{stats['ticks']}"
          + (f" [{row['realtime_granted']}]" if report else ""), flush=True)
    return row


def kernel() -> str:
    rt = Path("/sys/kernel/realtime").exists() or "PREEMPT_RT" in platform.version()
    return f"{platform.system()} {platform.release()}{' PREEMPT_RT' if rt else ''}"


def render_jitter(rows: list[dict], meta: dict) -> str:
    out = [f"Measured {meta['date']} on {meta['machine']}, {meta['kernel']}, commit {meta['commit']}, onnxruntime {meta['ort']}: "
           f"the 500 Hz loop of the table above (fake robot, 256x256 ONNX policy, full safety chain) for {meta['seconds']:g} s per case. "
           f"Loads: cpu = {meta['cpu_procs']} busy process(es) pinned to the other core(s); mem = one process mapping, touching and "
           f"copying {meta['mem_mb']} MB over and over; all = both. Real-time mode: SCHED_FIFO priority {meta['priority']}, the loop "
           f"pinned to its own core, mlockall, garbage collector frozen, blocking until {meta['spin_us']:g} us before each deadline "
           "(normal mode spins the last 2 ms); the last column says what the OS granted.", "",
           "| load | mode | ticks | jitter p50 (ms) | p99 (ms) | max (ms) | overruns / ticks | real-time parts granted |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['load']} | {r['mode']} | {r['ticks']} | {r['jitter_p50_ms']:.3f} | {r['jitter_p99_ms']:.3f} | "
                   f"{r['jitter_max_ms']:.3f} | {r['overruns']} / {r['ticks']} | {r['realtime_granted'] or '-'} |")
    return "\n".join(out)


def jitter_main(args, meta: dict) -> None:
    loads = LOADS if args.jitter_matrix else (args.load,)
    modes = (False, True) if args.jitter_matrix else (args.realtime,)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = load_runner(export_onnx(mlp((256, 256)), Path(tmp) / "p.onnx", OBS_DIM))
        for load in loads:
            for realtime in modes:
                rows.append(bench_jitter_case(run, load, realtime, args))
    if not args.jitter_matrix:
        return
    _, load_cpus = cpu_layout(args.loop_cpu)
    meta = {**meta, "kernel": kernel(), "seconds": args.seconds, "priority": args.priority, "mem_mb": args.mem_mb, "spin_us": args.spin_us,
            "cpu_procs": args.cpu_procs if args.cpu_procs is not None else len(load_cpus), "cores": os.cpu_count()}
    out_dir = Path(args.out_dir) if args.out_dir else CSV_PATH.parent
    md_path = out_dir / "benchmarks.md" if args.out_dir else MD_PATH
    if not md_path.exists():
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text("# Benchmarks\n")
    rendered = render_jitter(rows, meta)
    write_results(out_dir / f"{JITTER_NAME}.csv", rows, meta, JITTER_NAME, rendered, "Deployment: loop jitter under load, normal and real-time mode",
                  md_path=md_path)
    (out_dir / f"{JITTER_NAME}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(rendered)


def bench_transport(rows: list[dict], n: int) -> None:
    key = os.urandom(32)
    server = PolicyServer(lambda o: o[:ACT_DIM], key, bind="tcp://127.0.0.1:*")
    t = threading.Thread(target=server.serve, kwargs={"max_requests": n + 50}, daemon=True)
    t.start()
    client = PolicyClient(server.endpoint, key, timeout_s=1.0)
    obs = np.zeros(OBS_DIM, np.float32)
    times = []
    for i in range(n + 50):
        t0 = time.perf_counter_ns()
        client.act(obs)
        if i >= 50:
            times.append((time.perf_counter_ns() - t0) / 1e3)
    t.join(5)
    client.close()
    server.close()
    rows.append({"part": "transport", "p50_us": pct(times, 50), "p99_us": pct(times, 99)})
    print(f"transport round trip: p50 {pct(times, 50):.0f} us p99 {pct(times, 99):.0f} us", flush=True)


def render(rows: list[dict], meta: dict) -> str:
    out = [f"Measured {meta['date']} on {meta['machine']}, commit {meta['commit']}, torch {meta['torch']}, onnxruntime {meta['ort']}; "
           "one thread, batch 1.", "", f"Inference latency (microseconds; MLP {OBS_DIM} -> hidden -> {ACT_DIM}, ELU):", "",
           "| MLP | eager torch p50 / p99 | TorchScript p50 / p99 | ONNX Runtime p50 / p99 |", "|---|---|---|---|"]
    for name in SIZES:
        cells = []
        for backend in ("eager torch", "TorchScript", "ONNX Runtime"):
            r = next(r for r in rows if r["part"] == "inference" and r["mlp"] == name and r["backend"] == backend)
            cells.append(f"{r['p50_us']:.1f} / {r['p99_us']:.1f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "Control-loop wake-up jitter (fake robot, 256x256 ONNX policy, full safety chain, absolute deadlines):", "",
            "| rate | ticks | jitter p50 (ms) | p99 (ms) | max (ms) | inference p99 (ms) | overruns |", "|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["part"] == "loop"):
        out.append(f"| {r['rate_hz']} Hz | {r['ticks']} | {r['jitter_p50_ms']:.3f} | {r['jitter_p99_ms']:.3f} | {r['jitter_max_ms']:.3f} | "
                   f"{r['infer_p99_ms']:.3f} | {r['overruns']} |")
    tr = next((r for r in rows if r["part"] == "transport"), None)
    if tr:
        out += ["", f"Transport round trip on loopback (ZeroMQ REQ client, ROUTER server, a session with per-direction HMAC-SHA256 keys, float32 msgpack bodies, {OBS_DIM} floats in, {ACT_DIM} out): "
                f"p50 {tr['p50_us']:.0f} us, p99 {tr['p99_us']:.0f} us."]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    jit = ap.add_argument_group("jitter under load")
    jit.add_argument("--jitter", action="store_true", help="one case (--load, --realtime), printed only")
    jit.add_argument("--jitter-matrix", action="store_true", help="every load x normal and real-time mode; writes the CSV, JSON and table")
    jit.add_argument("--load", choices=LOADS, default="none")
    jit.add_argument("--realtime", action="store_true", help="real-time mode (SCHED_FIFO, affinity, mlockall, frozen GC)")
    jit.add_argument("--seconds", type=float, default=30.0, help="measured seconds per case (default 30)")
    jit.add_argument("--rate", type=int, default=500, help="loop rate in Hz (default 500)")
    jit.add_argument("--priority", type=int, default=80, help="SCHED_FIFO priority in real-time mode (default 80)")
    jit.add_argument("--loop-cpu", type=int, default=None, help="the loop's CPU in real-time mode (default: the last one allowed)")
    jit.add_argument("--cpu-procs", type=int, default=None, help="busy processes of the cpu load (default: one per other core)")
    jit.add_argument("--mem-mb", type=int, default=1024, help="buffer of the memory load in MB (default 1024)")
    jit.add_argument("--settle", type=float, default=1.0, help="seconds the loads run before each measurement (default 1)")
    jit.add_argument("--no-lock-memory", action="store_true", help="real-time mode without mlockall")
    jit.add_argument("--spin-us", type=float, default=RealtimeConfig.spin_us,
                     help=f"real-time mode: spin this long before each deadline, block before that (default {RealtimeConfig.spin_us:g})")
    jit.add_argument("--out-dir", default=None, help="write the matrix's CSV, JSON and a benchmarks.md here instead of docs/")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import onnxruntime

    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "commit": git_commit(),
            "torch": torch.__version__, "ort": onnxruntime.__version__}
    if args.jitter or args.jitter_matrix:
        jitter_main(args, meta)
        return
    rows: list[dict] = []
    bench_inference(rows, 300 if args.quick else 2000)
    bench_loop(rows, 1.0 if args.quick else 4.0)
    bench_transport(rows, 200 if args.quick else 2000)
    write_results(CSV_PATH, rows, meta, "deploy", render(rows, meta), "Deployment: inference latency, loop jitter, transport")
    print(render(rows, meta))


if __name__ == "__main__":
    main()
