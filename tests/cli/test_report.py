"""`rlsuite report`: run directories found recursively, grouped into methods and tasks, scored, aggregated and written."""

import json

from rlsuite.core.logger import CSVWriter
from tests.cli.helpers import run_cli as _run

REPS = "200"  # bootstrap resamples: the intervals' width is not what these tests check


def _run_dir(path, algo, env, seed, final, lr=1e-3, num_envs=8, metric="eval/mean_return"):
    """A run directory as rlsuite train writes it (config.json, metrics.csv through the production writer), whose
    last ``metric`` is ``final``."""
    path.mkdir(parents=True)
    cfg = {"algo": algo, "run": {"env": env, "seed": seed, "total_steps": 300, "device": "auto", "run_dir": str(path),
                                 "resume": None, "overwrite": False, "progress": False},
           "config": {"learning_rate": lr, "num_envs": num_envs}, "env_kwargs": {}, "versions": {"git_commit": f"c{seed}"}}
    (path / "config.json").write_text(json.dumps(cfg))
    w = CSVWriter(path / "metrics.csv")
    w.write(100, {"rollout/ep_return": 1.0})
    w.write(200, {metric: final / 2})
    w.write(300, {metric: final})
    return path


def _sweep(root):
    """ppo and sac on two envs, three seeds each, in nested folders. Normalised with EnvA 0..500 and EnvB -100..100:
    ppo EnvA 0.2 0.4 0.6, EnvB 0.5 0.7 0.9; sac EnvA 0.1 0.2 0.3, EnvB 0.5 0.5 1.0."""
    finals = {("ppo", "EnvA"): (100, 200, 300), ("ppo", "EnvB"): (0, 40, 80),
              ("sac", "EnvA"): (50, 100, 150), ("sac", "EnvB"): (0, 0, 100)}
    for (algo, env), values in finals.items():
        for seed, v in enumerate(values):
            _run_dir(root / f"{algo}-sweep" / env / f"seed{seed}", algo, env, seed, float(v))
    (root / "norm.csv").write_text("task,min,max,source\nEnvA,0,500,random..expert\nEnvB,-100,100,\n")
    return root


def _row(text, first):
    """The cells of the Markdown table row of ``text`` whose first cell is ``first``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{text}")


def test_report_aggregates_hand_computed_scores_and_writes_its_files(capsys, tmp_path):
    root = _sweep(tmp_path / "exp")
    out = tmp_path / "rep"
    code, text, err = _run(capsys, "report", root, "--normalize-by", root / "norm.csv", "--reps", REPS, "--out", out)
    assert code == 0, err
    # ppo: sorted 0.2 0.4 0.5 0.6 0.7 0.9 -> IQM (0.4 + 0.5 + 0.6 + 0.7) / 4 = 0.55; task means 0.4 and 0.7 -> median and
    # mean 0.55; optimality gap 1 - 3.3 / 6 = 0.45
    ppo = _row(text, "ppo")
    assert ppo[1:3] == ["2", "6"] and [c.split(" [")[0] for c in ppo[3:]] == ["0.55", "0.55", "0.55", "0.45"]
    # sac: sorted 0.1 0.2 0.3 0.5 0.5 1.0 -> IQM 1.5 / 4 = 0.375; task means 0.2, 2/3 -> 0.4333; gap 1 - 2.6 / 6 = 0.5667
    sac = _row(text, "sac")
    assert [c.split(" [")[0] for c in sac[3:]] == ["0.375", "0.4333", "0.4333", "0.5667"]
    # P(ppo > sac): EnvA 0.2 ties 0.2, beats 0.1 -> 1.5, 0.4 and 0.6 beat all -> 7.5 / 9; EnvB 0.5 ties twice -> 1,
    # 0.7 and 0.9 beat two -> 5 / 9; averaged 12.5 / 18 = 0.6944
    improvement = text.split("| X | Y |", 1)[1]
    poi = _row(improvement, "ppo")
    assert poi[1:3] == ["sac", "2"] and poi[3].startswith("0.6944 [")
    low, high = (float(v) for v in poi[3].split("[")[1].rstrip("]").split(","))
    assert 0 <= low <= 0.6944 <= high <= 1
    # the files, written atomically, printed last
    files = {"report": "report.md", "scores": "scores.csv", "aggregates": "aggregates.png", "profile": "performance_profile.png",
             "improvement": "probability_of_improvement.png"}
    assert text.strip().splitlines()[-5:] == [f"{k}={out / v}" for k, v in files.items()]
    for name in files.values():
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    report = (out / "report.md").read_text()
    assert "12 runs of 2 methods on 2 tasks (EnvA, EnvB)" in report and "normalised per task" in report
    assert _row(report, "EnvB")[:4] == ["EnvB", "ppo", "3", "300"]  # per task: runs and final step
    assert "## Probability of improvement" in report and "![profile](performance_profile.png)" in report
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0] == "method,task,run,step,value,score" and len(rows) == 13
    assert any(r.startswith("sac,EnvB,") and r.endswith(",100.0,1.0") for r in rows)


def test_methods_split_by_settings_within_a_task_not_by_per_task_presets(tmp_path):
    from rlsuite.report import build_methods, collect_scores

    for s in range(2):
        _run_dir(tmp_path / f"a{s}", "ppo", "CartPole-v1", s, 10.0 + s, lr=1e-3)
        _run_dir(tmp_path / f"b{s}", "ppo", "CartPole-v1", s, 20.0 + s, lr=3e-4)
        _run_dir(tmp_path / f"c{s}", "ppo", "Acrobot-v1", s, 30.0 + s, lr=1e-3, num_envs=4)  # another preset
        _run_dir(tmp_path / f"d{s}", "sac", "CartPole-v1", s, 40.0 + s)
        _run_dir(tmp_path / f"e{s}", "sac", "Acrobot-v1", s, 50.0 + s, num_envs=1)
    scores, left_out = collect_scores([tmp_path])
    assert not left_out and len(scores) == 10
    methods = {m.name: m for m in build_methods(scores)}
    assert sorted(methods) == ["ppo learning_rate=0.0003", "ppo learning_rate=0.001", "sac"]
    assert methods["ppo learning_rate=0.001"].tasks == ("Acrobot-v1", "CartPole-v1")
    assert methods["ppo learning_rate=0.001"].scores.tolist() == [[30.0, 10.0], [31.0, 11.0]]
    assert methods["ppo learning_rate=0.0003"].tasks == ("CartPole-v1",) and methods["sac"].num_runs == 4


def test_default_out_is_the_first_paths_report_and_is_not_replaced_without_overwrite(capsys, tmp_path):
    root = _sweep(tmp_path / "exp")
    code, text, err = _run(capsys, "report", root, "--normalize", "0:500", "--reps", REPS, "--baseline", "sac")
    assert code == 0, err
    assert f"report={root / 'report' / 'report.md'}" in text  # default: the first PATH's report/
    assert _row(text.split("| X | Y |", 1)[1], "ppo")[1] == "sac"
    before = (root / "report" / "report.md").read_bytes()
    code, _, err = _run(capsys, "report", root, "--reps", REPS)
    assert code == 2 and "already holds a report (report.md, scores.csv, aggregates.png" in err and "--overwrite" in err
    assert (root / "report" / "report.md").read_bytes() == before


def test_overwrite_replaces_a_report_and_drops_its_stale_figure(capsys, tmp_path):
    root = _sweep(tmp_path / "exp")
    out = root / "report"
    out.mkdir()
    for name in ("report.md", "probability_of_improvement.png", "notes.txt"):
        (out / name).write_text("old")
    # only ppo's runs: one method, so no probability of improvement (the earlier figure goes, other files stay)
    code, text, err = _run(capsys, "report", root / "ppo-sweep", "--reps", REPS, "--out", out, "--overwrite")
    assert code == 0, err
    assert "| X | Y |" not in text and not (out / "probability_of_improvement.png").exists()
    assert (out / "notes.txt").read_text() == "old"
    assert "mix their scales" in (out / "report.md").read_text()  # raw scores of two tasks


def test_a_run_directory_given_alone_is_reported_beside_it(capsys, tmp_path):
    run = _run_dir(tmp_path / "runs" / "s0", "sac", "EnvA", 0, 50.0)
    code, text, err = _run(capsys, "report", run, "--reps", REPS)
    assert code == 0, err
    assert (tmp_path / "runs" / "report" / "report.md").is_file() and _row(text, "sac")[1:4] == ["1", "1", "50 [50, 50]"]


def test_runs_without_the_metric_are_left_out_and_named(capsys, tmp_path):
    _run_dir(tmp_path / "runs" / "a", "ppo", "EnvA", 0, 5.0)
    _run_dir(tmp_path / "runs" / "b", "ppo", "EnvA", 1, 7.0, metric="rollout/ep_length")  # never evaluated
    code, text, err = _run(capsys, "report", tmp_path / "runs", "--reps", REPS)
    assert code == 0, err
    assert _row(text, "ppo")[1:4] == ["1", "1", "5 [5, 5]"]
    assert f"left out 1 run(s):\n  {tmp_path / 'runs' / 'b'}: " in text and "eval/mean_return" in text.split("left out")[1]
    assert "## Runs left out" in (tmp_path / "runs" / "report" / "report.md").read_text()


def test_errors_name_what_was_found_and_what_is_allowed(capsys, tmp_path):
    def error(*argv):
        code, out, err = _run(capsys, "report", "--reps", REPS, *argv)
        assert code == 2 and out == "" and err.startswith("error: "), (code, out, err)
        return " ".join(err.split())

    (tmp_path / "empty").mkdir()
    assert f"no run directory at or under '{tmp_path / 'empty'}' (it is empty). A run directory holds config.json and " \
           "metrics.csv" in error(tmp_path / "empty")
    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "other" / "notes.txt").write_text("x")
    assert "(it holds: notes.txt, sub)" in error(tmp_path / "other")
    half = tmp_path / "half" / "r0"
    half.mkdir(parents=True)
    (half / "metrics.csv").write_text("step,eval/mean_return\n1,2\n")
    assert f"(directories with part of a run: {half} (only metrics.csv))" in error(tmp_path / "half")
    assert "not found" in error(tmp_path / "missing")
    assert "no path given" in error()

    root = _sweep(tmp_path / "exp")
    msg = error(root, "--metric", "eval/mean_retrun")
    assert "no run logs a value of 'eval/mean_retrun' (--metric): 12 run directories found under" in msg
    assert "Did you mean 'eval/mean_return'? Their metrics.csv columns: eval/mean_return, rollout/ep_return." in msg
    assert "--normalize takes MIN:MAX" in error(root, "--normalize", "5")
    assert "--normalize takes MIN:MAX" in error(root, "--normalize", "3:1")
    assert "give --normalize or --normalize-by, not both" in error(root, "--normalize", "0:1", "--normalize-by", root / "norm.csv")
    (tmp_path / "partial.csv").write_text("task,min,max\nEnvA,0,1\n")
    assert "--normalize-by has no row for task(s) EnvB; it has: EnvA." in error(root, "--normalize-by", tmp_path / "partial.csv")
    (tmp_path / "bad.csv").write_text("env,low,high\nEnvA,0,1\n")
    assert "must have the columns task,min,max" in error(root, "--normalize-by", tmp_path / "bad.csv")
    assert "unknown method 'sax'. Did you mean 'sac'? Known methods: ppo, sac." in error(root, "--baseline", "sax")
    assert "--reps must be >= 1, got 0." in error(root, "--reps", "0")
    assert not (root / "report").exists()  # nothing written by a refused command


def test_method_names_fall_back_to_full_keys_then_numbers():
    from rlsuite.report import method_names
    from rlsuite.run_groups import RunGroup

    def group(algo, env, **config):
        return RunGroup({"algo": algo, "run": {"env": env}, "config": config}, ())

    # the same leaf name under two parents: the dotted keys tell them apart
    a = RunGroup({"algo": "ppo", "run": {"env": "E"}, "config": {"actor": {"width": 64}}}, ())
    b = RunGroup({"algo": "ppo", "run": {"env": "E"}, "config": {"critic": {"width": 64}}}, ())
    assert method_names([a, b]) == ["ppo config.actor.width=64", "ppo config.critic.width=64"]
    # values that print alike (1 and "1"): numbered
    assert method_names([group("ppo", "E", lr=1), group("ppo", "E", lr="1")]) == ["ppo lr=1 #1", "ppo lr=1 #2"]
    # one group per algorithm and task: the algorithm alone, whatever differs between tasks
    assert method_names([group("ppo", "E", lr=1), group("ppo", "F", lr=2), group("sac", "E")]) == ["ppo", "ppo", "sac"]


def test_a_sweeps_unfinished_trials_and_a_nan_last_value_are_left_out(capsys, tmp_path):
    root = tmp_path / "sweep"
    _run_dir(root / "t0", "ppo", "EnvA", 0, 5.0)
    _run_dir(root / "t1", "ppo", "EnvA", 1, 7.0)  # failed in its sweep: not scored although it logs a value
    _run_dir(root / "t2", "ppo", "EnvA", 2, float("nan"))  # its last eval is NaN: not scored on the older one
    (root / "sweep.json").write_text(json.dumps({"trials": [
        {"name": "t0", "status": "finished"}, {"name": "t1", "status": "failed", "error": "boom"},
        {"name": "t2", "status": "finished"}]}))
    code, text, err = _run(capsys, "report", root, "--reps", REPS)
    assert code == 0, err
    assert _row(text, "ppo")[1:4] == ["1", "1", "5 [5, 5]"]
    md = (root / "report" / "report.md").read_text()
    assert f"`{root / 't1'}`: its sweep" in md and "'failed', not finished: boom" in md
    assert f"`{root / 't2'}`: its last 'eval/mean_return' (step 300) is nan" in md


def test_aggregate_tables_of_scores_in_hand_equal_the_reports(capsys, tmp_path):
    """The benchmark scripts' path (scores from a CSV, not run directories) gives the tables of `rlsuite report` on
    the same scores with the same bootstrap seed."""
    from pathlib import Path

    from rlsuite.report import RunScore, aggregate_tables, build_methods

    root = _sweep(tmp_path / "exp")
    out = tmp_path / "rep"
    code, text, err = _run(capsys, "report", root, "--normalize-by", root / "norm.csv", "--reps", REPS, "--out", out)
    assert code == 0, err
    lines = (out / "scores.csv").read_text().splitlines()[1:]
    scores = [RunScore(Path(run), method, task, float(step), float(value), float(score))
              for method, task, run, step, value, score in (line.split(",") for line in lines)]
    _, tables = aggregate_tables(build_methods(scores), normalized=True, reps=int(REPS), seed=0)
    report = (out / "report.md").read_text()
    for name in ("aggregates", "per_task", "improvement"):
        assert tables[name] and tables[name] in report, name
