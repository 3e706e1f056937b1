"""`rlsuite cop generate | label | train | solve` end to end on small instances."""

import pytest

from tests.cli.helpers import run_cli as _run


def test_generate_label_train_and_solve(capsys, tmp_path):
    d = tmp_path / "tsp10"
    code, out, _ = _run(capsys, "cop", "generate", "--problem", "tsp", "--size", "10", "--count", "40", "--seed", "0", "--out", str(d))
    assert code == 0 and "wrote 40 tsp10 instances" in out
    code, _, err = _run(capsys, "cop", "generate", "--problem", "tsp", "--size", "10", "--count", "40", "--out", str(d))
    assert code == 2 and "already holds an instance set" in err
    code, out, _ = _run(capsys, "cop", "label", str(d), "--solver", "lkh", "--time-limit", "0.1")
    assert code == 0 and out.strip().splitlines()[-1].startswith("mean_cost=")
    code, _, err = _run(capsys, "cop", "label", str(d), "--solver", "pyvrp")
    assert code == 2 and "for tsp use lkh, nn" in err
    labels = (d / "labels.safetensors").read_bytes()
    code, _, err = _run(capsys, "cop", "label", str(d), "--solver", "nn")  # labelled already: refused, labels kept
    assert code == 2 and "--overwrite" in err and (d / "labels.safetensors").read_bytes() == labels
    ck = tmp_path / "ck"
    # `cop train` is `train bq-nco`: one driver, one run directory layout
    code, out, err = _run(capsys, "cop", "train", "--problem", "tsp", "--size", "10", "--data", str(d), "--total-steps", "20", "--dim", "32",
                          "--layers", "2", "--heads", "4", "--ff", "64", "--batch-size", "32", "--run-dir", str(ck), "--eval-instances", "5",
                          "--device", "cpu")
    assert code == 0, err
    assert (ck / "checkpoints" / "final" / "meta.json").exists() and out.strip().splitlines()[-1].startswith("steps=20 greedy_cost=")
    code, _, err = _run(capsys, "train", "bq-nco", "--problem", "cvrp", "--size", "10", "--data", str(d), "--run-dir", str(tmp_path / "c"))
    assert code == 2 and "holds tsp10 instances" in err

    f = tmp_path / "sq.tsp"
    f.write_text("NAME : sq\nTYPE : TSP\nDIMENSION : 5\nEDGE_WEIGHT_TYPE : EUC_2D\nNODE_COORD_SECTION\n"
                 "1 0 0\n2 10 0\n3 10 10\n4 0 10\n5 5 5\nEOF\n")
    code, out, _ = _run(capsys, "cop", "solve", "--problem", "tsp", str(f), "--solver", "lkh", "--optimum", "44")
    assert code == 0 and out.strip().splitlines()[-2:] == ["gap=0.000%", "cost=44"]
    code, out, _ = _run(capsys, "cop", "solve", "--problem", "tsp", str(f), "--model", str(ck), "--beam", "4")
    cost = float(out.strip().splitlines()[-1].removeprefix("cost="))
    assert code == 0 and cost >= 44
    code, _, err = _run(capsys, "cop", "solve", "--problem", "cvrp", str(f), "--solver", "pyvrp")
    assert code == 2 and "is a TSP instance" in err
    code, _, err = _run(capsys, "cop", "solve", "--problem", "tsp", str(f), "--model", str(tmp_path / "none"))
    assert code == 2 and "rlsuite train bq-nco" in err


def test_solve_a_cvrplib_file_with_pyvrp(capsys, tmp_path):
    f = tmp_path / "small.vrp"
    f.write_text("NAME : small\nTYPE : CVRP\nDIMENSION : 5\nEDGE_WEIGHT_TYPE : EUC_2D\nCAPACITY : 10\nNODE_COORD_SECTION\n"
                 "1 0 0\n2 10 0\n3 10 10\n4 0 10\n5 -10 0\nDEMAND_SECTION\n1 0\n2 6\n3 6\n4 6\n5 6\nDEPOT_SECTION\n1\n-1\nEOF\n")
    code, out, _ = _run(capsys, "cop", "solve", "--problem", "cvrp", str(f), "--solver", "pyvrp", "--time-limit", "0.2")
    # every client needs its own trip (6 + 6 > 10): 2 * (10 + 14 + 10 + 10)
    assert code == 0 and out.strip().splitlines()[-1] == "cost=88"


@pytest.mark.parametrize("problem", ["tsp", "cvrp"])
def test_shipped_models_solve_out_of_the_box_and_beat_nearest_neighbour(capsys, tmp_path, problem):
    import numpy as np

    from rlsuite.cli.cop import PRETRAINED_DIR
    from rlsuite.envs.cop.io import Instance, write_instance
    from rlsuite.envs.cop.problems import generate

    assert (PRETRAINED_DIR / f"bq_nco_{problem}" / "model.safetensors").exists(), "the shipped model is missing"
    inst = generate(problem, 6, 30, seed=5)
    totals = {"model": 0.0, "nn": 0.0}
    for b in range(6):
        xy = (inst["locs"][b].double().numpy() * 1000).round()
        d = np.floor(np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + 0.5)
        extra = (inst["demand"][b].double().numpy(), float(inst["capacity"][b])) if problem == "cvrp" else (None, None)
        f = write_instance(Instance(f"r{b}", problem.upper(), d, xy, *extra), tmp_path / f"r{b}.{problem}")
        for key, args in (("model", []), ("nn", ["--solver", "nn"])):
            code, out, _ = _run(capsys, "cop", "solve", "--problem", problem, str(f), *args)
            assert code == 0
            totals[key] += float(out.strip().splitlines()[-1].removeprefix("cost="))
    assert totals["model"] < totals["nn"], totals
