"""The `rtrec` command line: demo end to end, train/recommend, evaluate, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rtrec_native as rt
from conftest import MOVIELENS
from rtrec_native.cli import build_parser, main

RATINGS = MOVIELENS / "ratings.csv"
needs_movielens = pytest.mark.skipif(not RATINGS.exists(), reason=f"MovieLens not found at {RATINGS}")
needs_save = pytest.mark.skipif(
    not hasattr(rt.Recommender, "save"), reason="Recommender.save/load not implemented yet"
)

# A demo small enough for a test: a few thousand events, small model, no progress bar.
TINY = ["--events", "3000", "--users", "100", "--items", "80", "--dim", "8", "--epochs", "2", "--no-progress"]
CONTRACT = ("realtime", "periodic", "static")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_ratings(path: Path, n: int = 1200, seed: int = 0, header: str = "userId,movieId,rating,timestamp") -> Path:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 40, size=n)
    items = rng.integers(1, 70, size=n)
    ratings = np.clip(np.round(2 * (3 + np.sin(users) + np.cos(items))) / 2, 0.5, 5.0)
    times = 1_000_000_000 + np.sort(rng.integers(0, 10**7, size=n))
    lines = [header] + [f"{u},{i},{r:g},{t}" for u, i, r, t in zip(users, items, ratings, times)]
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_one_line_error(capsys, code: int, expected: int | None = None) -> str:
    out = capsys.readouterr()
    assert code != 0 if expected is None else code == expected
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert "Traceback" not in out.err and "error:" in lines[0]
    return lines[0]


# =========================================================================== demo


def test_demo_runs_end_to_end_and_writes_the_report_and_the_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", *TINY, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    for word in ("HitRate@10", "NDCG@10", "AUC", "events/s", "update latency", *CONTRACT):
        assert word in stdout
    report = json.loads((out / "report.json").read_text())
    assert set(report["policies"]) == set(CONTRACT)
    for name in CONTRACT:
        metrics = report["policies"][name]
        assert {"hitrate@10", "ndcg@10", "auc"} <= set(metrics)
        assert 0.0 <= metrics["hitrate@10"] <= 1.0 and 0.0 <= metrics["auc"] <= 1.0
    assert report["data"]["source"] == "synthetic" and report["stream"]["n_events"] == 3000
    assert (out / "prequential.png").read_bytes()[:8] == PNG_MAGIC


def test_demo_as_a_separate_process(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "rtrec_native.cli", "demo", *TINY, "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "realtime" in done.stdout and "Traceback" not in done.stderr
    assert set(json.loads((out / "report.json").read_text())["policies"]) == set(CONTRACT)
    assert (out / "prequential.png").exists()


def test_demo_json_output_is_the_report(tmp_path, capsys):
    assert main(["demo", *TINY, "--out", str(tmp_path), "--json", "--batch-size", "50"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["policies"]) == set(CONTRACT)
    assert printed["config"]["batch_size"] == 50
    assert printed["files"]["report"] == str(tmp_path / "report.json")


def test_demo_on_a_ratings_file_uses_squared_loss_and_rmse(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    assert main(["demo", "--data", str(data), "--out", str(tmp_path / "o"), "--no-progress",
                 "--dim", "8", "--epochs", "2", "--retrain-every", "200"]) == 0
    assert "RMSE" in capsys.readouterr().out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["stream"]["loss"] == "squared"
    for name in CONTRACT:
        assert {"hitrate@10", "ndcg@10", "rmse", "mae"} <= set(report["policies"][name])
    assert report["data"]["cleaning"]["n_input"] == 1200


def test_demo_finds_columns_given_by_name(tmp_path):
    data = write_ratings(tmp_path / "events.csv", header="who,what,score,when")
    code = main(["demo", "--data", str(data), "--user-col", "who", "--item-col", "what",
                 "--label-col", "score", "--time-col", "when", "--out", str(tmp_path / "o"),
                 "--no-progress", "--dim", "4", "--epochs", "1", "--json"])
    assert code == 0


@needs_movielens
def test_demo_reads_movielens_ratings_as_they_are(tmp_path, capsys):
    # The file itself, cut to its first 5000 rows to keep the test fast.
    head = tmp_path / "ratings.csv"
    with RATINGS.open() as source:
        head.write_text("".join(line for _, line in zip(range(5001), source)))
    assert main(["demo", "--data", str(head), "--out", str(tmp_path / "o"), "--no-progress", "--epochs", "2"]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["stream"]["loss"] == "squared" and report["config"]["positive_threshold"] == 4.0
    assert all(report["policies"][name]["rmse"] < 1.5 for name in CONTRACT)


# =========================================================================== other commands


def test_evaluate_prequential_runs_the_chosen_policies(capsys):
    assert main(["evaluate", *TINY, "--policies", "realtime", "static", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["policies"]) == ["realtime", "static"]


def test_evaluate_temporal_split(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    assert main(["evaluate", "--protocol", "temporal", "--split", "user", "--data", str(data),
                 "--dim", "8", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["split"]["by"] == "user" and printed["split"]["n_train"] + printed["split"]["n_test"] == 1200
    assert {"rmse", "hitrate@10", "ndcg@10"} <= set(printed["metrics"])
    assert main(["evaluate", "--protocol", "temporal", *TINY]) == 0
    assert "hitrate@10" in capsys.readouterr().out


@needs_movielens
def test_evaluate_temporal_on_movielens(capsys):
    assert main(["evaluate", "--protocol", "temporal", "--data", str(RATINGS), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"]["rmse"] < 1.1 and printed["n_ranked_users"] > 50


@needs_save
def test_train_then_recommend_round_trip(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    model = tmp_path / "models" / "m.rtrec"
    assert main(["train", "--data", str(data), "--model-out", str(model), "--dim", "8", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert model.is_file() and trained["n_events"] == 1200

    assert main(["recommend", "--model", str(model), "--user", "3", "-k", "5", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    rec = rt.Recommender.load(model)
    ids, scores = rec.recommend(3, k=5)
    assert printed["items"] == ids.tolist()
    np.testing.assert_allclose(printed["scores"], scores, rtol=1e-6)

    assert main(["recommend", "--model", str(model), "--user", "3", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4  # a title and 3 rows


@needs_save
def test_recommend_with_string_ids(tmp_path, capsys):
    data = tmp_path / "clicks.csv"
    data.write_text("user,item,click\n" + "".join(f"u{i % 5},item{i % 9},1\n" for i in range(60)))
    model = tmp_path / "m.rtrec"
    assert main(["train", "--data", str(data), "--model-out", str(model), "--dim", "4"]) == 0
    capsys.readouterr()
    assert main(["recommend", "--model", str(model), "--user", "u1", "-k", "2", "--include-seen", "--json"]) == 0
    assert all(item.startswith("item") for item in json.loads(capsys.readouterr().out)["items"])


# =========================================================================== bad input


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--events", "0"],
        ["demo", "--events", "many"],
        ["demo", "--warmup", "1.5"],
        ["demo", "--batch-size", "-3"],
        ["demo", "--retrain-period", "nan"],
        ["demo", "--loss", "hinge"],
        ["evaluate", "--protocol", "holdout"],
        ["recommend", "--user", "1"],  # --model missing
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    assert_one_line_error(capsys, main(argv), expected=2)


def test_bad_data_exits_1_with_one_line(tmp_path, capsys):
    line = assert_one_line_error(capsys, main(["demo", "--data", str(tmp_path / "missing.csv"), "--no-progress"]), 1)
    assert "missing.csv" in line
    data = write_ratings(tmp_path / "ratings.csv")
    line = assert_one_line_error(capsys, main(["demo", "--data", str(data), "--user-col", "nope", "--no-progress"]), 1)
    assert "nope" in line
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x00\x01\x02binary\x00junk")
    assert_one_line_error(capsys, main(["evaluate", "--data", str(junk), "--no-progress"]), 1)
    # Ratings are not click probabilities: the model says so, in one line.
    assert_one_line_error(capsys, main(["demo", "--data", str(data), "--loss", "logistic", "--no-progress",
                                        "--out", str(tmp_path / "o")]), 1)
    assert_one_line_error(capsys, main(["demo", "--user-col", "who", "--no-progress"]), 1)


def test_recommend_from_a_missing_or_broken_model_exits_1(tmp_path, capsys):
    assert "not found" in assert_one_line_error(
        capsys, main(["recommend", "--model", str(tmp_path / "none.rtrec"), "--user", "1"]), 1
    )
    broken = tmp_path / "broken.rtrec"
    broken.write_bytes(b"not a snapshot at all")
    assert_one_line_error(capsys, main(["recommend", "--model", str(broken), "--user", "1"]), 1)


def test_bad_arguments_in_a_separate_process_give_one_line_and_no_traceback():
    done = subprocess.run([sys.executable, "-m", "rtrec_native.cli", "demo", "--events", "-5"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


# =========================================================================== help


def test_every_option_of_every_command_is_explained(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"rtrec {name} {action.option_strings} has no help"
        assert main([name, "--help"]) == 0
        help_text = capsys.readouterr().out
        if name != "serve":  # a long-running server has no one-shot output to format
            assert "--json" in help_text
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
