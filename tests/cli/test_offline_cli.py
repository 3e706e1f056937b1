"""`rlsuite train uni-o4 | iql | bc --dataset ...` at tiny budgets, in-process."""

import csv

import pytest

from rlsuite.cli import main
from tests.offline.helpers import write_mixed_dataset


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-data")
    write_mixed_dataset(root, steps=2000)
    return root


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_uni_o4_offline_then_online(capsys, tmp_path, data_root):
    run = tmp_path / "o4"
    code, out, _ = _run(capsys, "train", "uni-o4", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root),
                        "--offline-steps", "100", "--improve-steps", "20", "--ope-every", "10", "--ope-horizon", "5",
                        "--online-steps", "256", "--eval-every", "100", "--eval-episodes", "1", "--run-dir", str(run),
                        "--set", "hidden=[16,16]", "--set", "critic_hidden=[16,16]", "--set", "dynamics_hidden=[16]",
                        "--set", "dynamics_max_epochs=2", "--set", "online_num_steps=128", "--set", "online_minibatches=2")
    assert code == 0, out
    assert "AM-Q of the BC members" in out and "improvement step 20" in out and "after online fine-tuning" in out
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["phase"] for r in rows] == ["offline", "offline", "online", "online", "online"]
    assert [int(r["step"]) for r in rows] == [100, 120, 220, 320, 376]
    assert {"offline", "online"} <= {p.name for p in (run / "checkpoints").iterdir()}
    assert (run / "curve.png").exists()


def test_train_iql_and_bc(capsys, tmp_path, data_root):
    code, out, _ = _run(capsys, "train", "iql", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root),
                        "--offline-steps", "50", "--online-steps", "50", "--eval-every", "50", "--eval-episodes", "1",
                        "--run-dir", str(tmp_path / "iql"), "--set", "hidden=[16,16]")
    assert code == 0 and "online_score=" in out
    code, out, _ = _run(capsys, "train", "bc", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root),
                        "--offline-steps", "50", "--eval-every", "50", "--eval-episodes", "1", "--run-dir", str(tmp_path / "bc"))
    assert code == 0 and "offline_score=" in out and "online_score" not in out


def test_bad_overrides_and_algorithms_are_explained(capsys, tmp_path, data_root):
    with pytest.raises(SystemExit, match="KEY one of .*alpha"):
        main(["train", "uni-o4", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root), "--set", "alhpa=0.2"])
    code, _, err = _run(capsys, "train", "bc", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root),
                        "--online-steps", "10")
    assert code != 0 and "BC has no online phase" in err
