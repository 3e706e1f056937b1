"""Benchmark: deploy-side latency. Inference p50/p99 for eager torch, TorchScript and ONNX Runtime (CPU, one
thread, batch 1) on MLP policies of several sizes; control-loop wake-up jitter at 50, 200 and 500 Hz (a
fake robot, an ONNX MLP policy, the full safety chain, real clock); transport round trip on loopback.

Targets from the deploy issue: p99 jitter under 1 ms at 500 Hz with an MLP policy; ONNX Runtime at least
as fast as eager torch.

Writes docs/benchmarks/deploy.csv and the tables between the ``deploy`` markers of docs/benchmarks.md.

Usage:
    python scripts/bench/deploy.py            # 2000 inferences per backend, 4 s of loop per rate
    python scripts/bench/deploy.py --quick
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import ROOT, git_commit, machine, write_results  # noqa: E402  (scripts/bench on sys.path)

from rlsuite.robots.contract import ActionSpec, ObsTerm, PolicyContract
from rlsuite.robots.export import export_onnx, export_torchscript, load_runner
from rlsuite.robots.interface import FakeRobot
from rlsuite.robots.loop import ControlLoop
from rlsuite.robots.safety import Phase
from rlsuite.robots.transport import PolicyClient, PolicyServer

CSV_PATH = ROOT / "docs" / "benchmarks" / "deploy.csv"
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


def bench_loop(rows: list[dict], seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = load_runner(export_onnx(mlp((256, 256)), Path(tmp) / "p.onnx", OBS_DIM))
        for hz in (50, 200, 500):
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
            stats = loop.run(int(seconds * hz)).summary()
            rows.append({"part": "loop", "rate_hz": hz, **stats, "estop": loop.safety.latched})
            print(f"loop {hz} Hz: jitter p50 {stats['jitter_p50_ms']:.3f} ms p99 {stats['jitter_p99_ms']:.3f} ms max "
                  f"{stats['jitter_max_ms']:.3f} ms, overruns {stats['overruns']}", flush=True)


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
        out += ["", f"Transport round trip on loopback (ZeroMQ REQ/REP, HMAC-SHA256 + msgpack, {OBS_DIM} floats in, {ACT_DIM} out): "
                f"p50 {tr['p50_us']:.0f} us, p99 {tr['p99_us']:.0f} us."]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import onnxruntime

    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "commit": git_commit(),
            "torch": torch.__version__, "ort": onnxruntime.__version__}
    rows: list[dict] = []
    bench_inference(rows, 300 if args.quick else 2000)
    bench_loop(rows, 1.0 if args.quick else 4.0)
    bench_transport(rows, 200 if args.quick else 2000)
    write_results(CSV_PATH, rows, meta, "deploy", render(rows, meta), "Deployment: inference latency, loop jitter, transport")
    print(render(rows, meta))


if __name__ == "__main__":
    main()
