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

# A demo small enough for a test: a few thousand events, small model, no progress bar.
TINY = ["--events", "3000", "--users", "100", "--items", "80", "--dim", "8", "--epochs", "2", "--no-progress"]
CONTRACT = ("realtime", "periodic", "static", "hybrid")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_ratings(path: Path, n: int = 1200, seed: int = 0, header: str = "userId,movieId,rating,timestamp") -> Path:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 40, size=n)
    items = rng.integers(1, 70, size=n)
    ratings = np.clip(np.round(2 * (3 + np.sin(users) + np.cos(items))) / 2, 0.5, 5.0)
    times = 1_000_000_000 + np.sort(rng.integers(0, 10**7, size=n))
    lines = [header] + [f"{u},{i},{r:g},{t}" for u, i, r, t in zip(users, items, ratings, times, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_one_line_error(capsys, code: int, expected: int | None = None) -> str:
    out = capsys.readouterr()
    assert code != 0 if expected is None else code == expected
    lines = out.err.strip().splitlines()
    # The cleaning report of the data (a "Cleaned ..." line and indented lines) may come first.
    if lines and lines[0].startswith("Cleaned "):
        lines = [line for line in lines[1:] if not line.startswith("  ")]
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
    assert list(report["policies"]) == list(CONTRACT)
    metric_keys = {*report["metric_names"], "n_scored", "n_ranked"}
    for name in CONTRACT:
        metrics = report["policies"][name]
        assert {"hitrate@10", "ndcg@10", "auc"} <= metric_keys <= set(metrics)
        assert 0.0 <= metrics["hitrate@10"] <= 1.0 and 0.0 <= metrics["auc"] <= 1.0
    # hybrid refits where periodic does (nightly on the synthetic stream) and learns in between
    hybrid, periodic = report["policies"]["hybrid"], report["policies"]["periodic"]
    assert hybrid["refits_at"] == periodic["refits_at"] and hybrid["refits_at"]
    assert hybrid["n_updates"] == len(hybrid["refits_at"]) + report["policies"]["realtime"]["n_updates"]
    hybrid_row = next(line for line in stdout.splitlines() if line.startswith("hybrid "))
    assert f"({len(hybrid['refits_at'])} refits) + " in hybrid_row and "ms per update" in hybrid_row
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
    assert main(["demo", "--family", "mf", "--data", str(data), "--out", str(tmp_path / "o"), "--no-progress",
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
        head.write_text("".join(line for _, line in zip(range(5001), source, strict=False)))
    assert main(["demo", "--family", "mf", "--data", str(head), "--out", str(tmp_path / "o"), "--no-progress",
                 "--epochs", "2"]) == 0
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
    assert main(["evaluate", "--family", "mf", "--protocol", "temporal", "--split", "user", "--data", str(data),
                 "--dim", "8", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["split"]["by"] == "user" and printed["split"]["n_train"] + printed["split"]["n_test"] == 1200
    assert {"rmse", "hitrate@10", "ndcg@10"} <= set(printed["metrics"])
    assert main(["evaluate", "--family", "mf", "--protocol", "temporal", *TINY]) == 0
    assert "hitrate@10" in capsys.readouterr().out


def write_noisy_ratings(path: Path) -> Path:
    """write_ratings' 1200 rows plus 3 exact duplicates, a line with an extra field (line
    1202), a word among the integer movieIds (line 1203) and a blank rating (line 1204)."""
    write_ratings(path)
    lines = path.read_text().splitlines()
    lines += ["3,7,4,1000000001,extra", "3,abc,4,1000000002", "3,8,,1000000003", *lines[1:4]]
    path.write_text("\n".join(lines) + "\n")
    return path


NOISY_COUNTS = {"malformed_line": 1, "malformed_item_id": 1, "non_finite_label": 1, "duplicate": 3}


@pytest.mark.parametrize("command", [
    ["demo", "--retrain-every", "400"],
    ["evaluate", "--policies", "realtime"],
    ["evaluate", "--protocol", "temporal"],
    ["train", "--model-out", "MODEL"],
])
def test_every_command_that_reads_data_reports_the_cleaning_on_stderr_and_in_json(tmp_path, capsys, command):
    data = write_noisy_ratings(tmp_path / "noisy.csv")
    command = [str(tmp_path / "m.rtrec") if c == "MODEL" else c for c in command]
    args = [*command, "--data", str(data), "--dim", "8", "--epochs", "1", "--no-progress"]
    if command[0] == "demo":
        args += ["--out", str(tmp_path / "o")]
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr()
    cleaning = json.loads(out.out)["data"]["cleaning"]
    assert cleaning["n_input"] == 1206 and cleaning["n_dropped"] == 6
    assert {k: v for k, v in cleaning["counts"].items() if v} == NOISY_COUNTS
    assert cleaning["examples"]["malformed_line"][0]["line"] == 1202
    assert cleaning["examples"]["malformed_item_id"][0]["line"] == 1203
    assert "1,206 rows in, 1,200 kept, 6 dropped" in out.err
    for reason in NOISY_COUNTS:
        assert reason in out.err
    assert "'line': 1204" in out.err  # the blank rating's line, below the skipped one

    # --strict: any dropped row is an error (exit code 1) naming every reason and a line
    assert main([*args, "--strict"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    last = err[-1]
    assert last.startswith(f"rtrec {command[0]}: error: --strict: 6 of 1,206 rows")
    for reason, line in (("malformed_line", 1202), ("malformed_item_id", 1203), ("non_finite_label", 1204)):
        assert f"{reason}: 1 (line {line})" in last
    assert "duplicate: 3 (line 1205, line 1206, ...)" in last


def test_the_noisy_feedback_options_reach_the_model(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    model = tmp_path / "m.rtrec"
    assert main(["train", "--family", "mf", "--data", str(data), "--model-out", str(model), "--dim", "8",
                 "--epochs", "1", "--loss", "huber", "--huber-delta", "0.5", "--adaptive-step", "--dedup-window", "60",
                 "--max-user-rate", "5", "--json"]) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    assert (params["loss"], params["huber_delta"], params["adaptive_step"]) == ("huber", 0.5, True)
    assert (params["dedup_window"], params["max_user_rate"]) == (60.0, 5.0)
    assert rt.Recommender.load(model).get_params()["dedup_window"] == 60.0
    assert main(["train", "--data", str(data), "--model-out", str(model), "--dedup-window", "0"]) == 2


def test_strict_accepts_clean_data_and_says_nothing_was_dropped(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    assert main(["train", "--data", str(data), "--model-out", str(tmp_path / "m.rtrec"), "--dim", "8",
                 "--epochs", "1", "--strict", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["data"]["cleaning"]["n_dropped"] == 0
    assert "1,200 rows in, 1,200 kept, 0 dropped" in out.err


@needs_movielens
def test_evaluate_temporal_on_movielens(capsys):
    assert main(["evaluate", "--family", "mf", "--protocol", "temporal", "--data", str(RATINGS), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"]["rmse"] < 1.1 and printed["n_ranked_users"] > 50


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
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[1].split() == ["rank", "item", "name", "score"]  # a title, a heading, 3 rows


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


def test_model_options_default_to_the_librarys_defaults():
    # --epochs is the family's default_epochs, the rest from DEFAULTS: no second copy to drift.
    from rtrec_native.cli.options import DEFAULT_FAMILY
    from rtrec_native.cli.steps import fit_epochs, model_params

    args = build_parser().parse_args(["train", "--model-out", "m.rtrec"])
    assert args.epochs is None and fit_epochs(args) == rt.default_epochs(DEFAULT_FAMILY)
    assert model_params(args, None)["model"] == DEFAULT_FAMILY == "two_tower"
    args = build_parser().parse_args(["train", "--model-out", "m.rtrec", "--family", "two_tower", "--epochs", "3"])
    assert fit_epochs(args) == 3
    # Family-dependent options are unset (None) and the model takes its family's defaults.
    for family in ("mf", "two_tower"):
        args = build_parser().parse_args(["train", "--model-out", "m.rtrec", "--family", family])
        built = rt.Recommender(**model_params(args, None)).get_params()
        expected = rt.defaults(family)
        for key in ("dim", "learning_rate", "l2", "negatives", "optimizer", "min_count", "tower", "history"):
            assert built[key] == expected[key], (family, key)


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


# =========================================================================== model options, side features

MOVIES = MOVIELENS / "movies.csv"
needs_movies = pytest.mark.skipif(not (RATINGS.exists() and MOVIES.exists()),
                                  reason=f"MovieLens not found at {MOVIELENS}")


def write_movies(path: Path, n: int = 80) -> Path:
    """Features for items 1..n-1 (write_ratings uses items 1..69): odd ones are dramas and
    comedies, even ones action films; each has a decade too."""
    rows = [f"{i},Film {i},{'Drama|Comedy' if i % 2 else 'Action'},{1990 + 10 * (i % 3)}" for i in range(1, n)]
    path.write_text("movieId,title,genres,decade\n" + "\n".join(rows) + "\n")
    return path


def write_users(path: Path) -> Path:
    path.write_text("userId,country\n" + "".join(f"{u},{'fr' if u % 2 else 'de'}\n" for u in range(1, 40)))
    return path


def train_json(capsys, *argv: str) -> dict:
    assert main(["train", *argv, "--dim", "4", "--epochs", "2", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_passes_min_count_ttl_and_max_rows_to_the_model(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")  # 39 users, 69 items
    model = tmp_path / "m.rtrec"
    trained = train_json(capsys, "--data", str(data), "--model-out", str(model),
                         "--max-rows", "10", "--min-count", "2", "--ttl", "86400")
    rec = rt.Recommender.load(model)
    params = rec.get_params()
    assert (params["max_rows"], params["min_count"], params["ttl"]) == (10, 2, 86400.0)
    assert trained["params"]["max_rows"] == 10 and trained["params"]["ttl"] == 86400.0
    assert rec.n_users <= 10 and rec.n_items <= 10
    assert trained["n_users"] == rec.n_users and trained["evicted_users"] > 0 and trained["evicted_items"] > 0
    assert {"not_admitted", "n_item_features", "n_user_features"} <= set(trained)

    # Without the options the model keeps the defaults: no admission, no expiry, no cap.
    trained = train_json(capsys, "--data", str(data), "--model-out", str(model))
    params = rt.Recommender.load(model).get_params()
    assert (params["max_rows"], params["min_count"], params["ttl"]) == (None, 1, None)
    assert trained["evicted_users"] == trained["evicted_items"] == 0 and trained["n_users"] == 39
    # 'none' switches an option off explicitly.
    train_json(capsys, "--data", str(data), "--model-out", str(model), "--ttl", "none", "--max-rows", "None")
    assert rt.Recommender.load(model).get_params()["ttl"] is None


def test_train_text_output_reports_evictions_admission_and_features(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    movies = write_movies(tmp_path / "movies.csv")
    assert main(["train", "--data", str(data), "--model-out", str(tmp_path / "m.rtrec"), "--dim", "4",
                 "--max-rows", "20", "--min-count", "2", "--item-features", str(movies)]) == 0
    out = capsys.readouterr().out
    assert "evicted" in out and "cap 20 rows" in out and "not learned" in out
    assert "3 distinct item features on 79 items from" in out and "69 of them in the data" in out
    # The default run prints the one summary line it always did.
    assert main(["train", "--data", str(data), "--model-out", str(tmp_path / "m.rtrec"), "--dim", "4"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


def test_train_with_item_and_user_features(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    movies, users = write_movies(tmp_path / "movies.csv"), write_users(tmp_path / "users.csv")
    model = tmp_path / "m.rtrec"
    trained = train_json(capsys, "--data", str(data), "--model-out", str(model),
                         "--item-features", str(movies), "--item-feature-prefix", "genre",
                         "--user-features", str(users), "--user-feature-col", "country",
                         "--user-feature-prefix", "country")
    rec = rt.Recommender.load(model)
    assert rec.item_features(1) == ["genre=Drama", "genre=Comedy"]
    assert rec.item_features(2) == ["genre=Action"]
    assert rec.user_features(1) == ["country=fr"] and rec.user_features(2) == ["country=de"]
    # Items of the file nobody rated (70..79) are in the catalogue: cold start.
    assert rec.item_features(75) == ["genre=Drama", "genre=Comedy"] and rec.n_items == 79
    assert trained["n_item_features"] == 3 and trained["n_user_features"] == 2
    assert trained["data"]["item_features"] == {"path": str(movies), "n_ids": 79, "n_in_data": 69,
                                                "n_applied": 79, "n_features": 3}
    assert trained["data"]["user_features"]["n_features"] == 2
    # recommend still reads the model.
    assert main(["recommend", "--model", str(model), "--user", "3", "-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["items"]) == 3

    # Several feature columns (repeat the option), features found without a prefix.
    train_json(capsys, "--data", str(data), "--model-out", str(model), "--item-features", str(movies),
               "--item-feature-col", "genres", "--item-feature-col", "decade")
    assert rt.Recommender.load(model).item_features(1) == ["Drama", "Comedy", "2000"]


def test_item_features_with_an_id_column_and_merged_rows(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    tags = tmp_path / "tags.csv"  # MovieLens tags.csv shape: userId and movieId, one row per tag
    tags.write_text("userId,movieId,tag\n1,5,funny\n2,5,dark\n3,6,funny\n")
    model = tmp_path / "m.rtrec"
    argv = ["--data", str(data), "--model-out", str(model), "--item-features", str(tags)]
    # The library's messages as they are, naming load_features' arguments (each option's help
    # names the argument it sets).
    assert main(["train", *argv]) == 1  # two possible ID columns
    err = capsys.readouterr().err
    assert ("several columns could be the ID column: ['userId', 'movieId']; give --item-feature-id-col NAME to "
            "choose one") in err
    assert main(["train", *argv, "--item-feature-id-col", "movieId"]) == 1  # 5 is on two rows
    assert "pass duplicates='first' or 'last'" in capsys.readouterr().err
    train_json(capsys, *argv, "--item-feature-id-col", "movieId", "--item-feature-duplicates", "merge",
               "--item-feature-prefix", "tag")
    rec = rt.Recommender.load(model)
    assert rec.item_features(5) == ["tag=funny", "tag=dark"] and rec.item_features(6) == ["tag=funny"]


def test_evaluate_and_demo_give_every_model_the_features(tmp_path, capsys, monkeypatch):
    data = write_ratings(tmp_path / "ratings.csv")
    movies = write_movies(tmp_path / "movies.csv")
    calls = []
    original = rt.Recommender.set_item_features

    def counting(self, items, features):
        calls.append(len(items))
        return original(self, items, features)

    monkeypatch.setattr(rt.Recommender, "set_item_features", counting)
    assert main(["evaluate", "--data", str(data), "--item-features", str(movies), "--max-rows", "500",
                 "--min-count", "2", "--dim", "4", "--epochs", "1", "--retrain-every", "300",
                 "--no-progress", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["config"]["model"]["max_rows"] == 500 and printed["config"]["model"]["min_count"] == 2
    assert printed["data"]["item_features"]["n_applied"] == 69  # the stream's items only
    # Every model the replay builds gets them: one per policy, one per refit (3 here), plus
    # the probes prequential makes.
    assert len(calls) >= 3 + 3 and set(calls) == {69}

    calls.clear()
    assert main(["evaluate", "--protocol", "temporal", "--data", str(data), "--item-features", str(movies),
                 "--ttl", "3600", "--dim", "4", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert calls == [69] and printed["model"]["ttl"] == 3600.0
    assert printed["data"]["item_features"]["n_features"] == 3

    out = tmp_path / "demo"
    assert main(["demo", *TINY, "--out", str(out), "--max-rows", "60", "--min-count", "2"]) == 0
    assert "min_count=2, max_rows=60" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["config"]["model"]["max_rows"] == 60


def _fake_server(monkeypatch) -> dict:
    """Run `rtrec serve` up to the point where it would start listening; capture the model."""
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    import signal

    from rtrec_native import serving

    seen: dict = {}
    real_create_app = serving.create_app

    def create_app(rec, **kwargs):
        seen["rec"] = rec
        return real_create_app(rec, **kwargs)

    monkeypatch.setattr(serving, "create_app", create_app)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: seen.setdefault("ran", True))
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # leave the test process's handlers alone
    return seen


def test_serve_new_model_gets_the_options_and_the_features(tmp_path, capsys, monkeypatch):
    seen = _fake_server(monkeypatch)
    movies = write_movies(tmp_path / "movies.csv")
    assert main(["serve", "--port", "0", "--dim", "4", "--min-count", "3", "--ttl", "600", "--max-rows", "1000",
                 "--item-features", str(movies), "--item-feature-prefix", "genre"]) == 0
    rec = seen["rec"]
    params = rec.get_params()
    assert (params["dim"], params["min_count"], params["ttl"], params["max_rows"]) == (4, 3, 600.0, 1000)
    assert rec.item_features(2) == ["genre=Action"] and rec.n_items == 79
    assert "item features from" in capsys.readouterr().err


def test_serve_loaded_model_gets_the_features_and_a_note_on_ignored_options(tmp_path, capsys, monkeypatch):
    seen = _fake_server(monkeypatch)
    data, movies = write_ratings(tmp_path / "ratings.csv"), write_movies(tmp_path / "movies.csv")
    model = tmp_path / "m.rtrec"
    train_json(capsys, "--data", str(data), "--model-out", str(model))
    assert main(["serve", "--model", str(model), "--ttl", "600", "--item-features", str(movies)]) == 0
    rec = seen["rec"]
    assert rec.item_features(1) == ["Drama", "Comedy"] and rec.get_params()["ttl"] is None
    err = capsys.readouterr().err
    assert "ignoring --ttl 600" in err and "the model has ttl=None" in err
    # The same options as the model's: no note.
    assert main(["serve", "--model", str(model), "--dim", "4"]) == 0
    assert "note" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["train", "--max-rows", "0"], "--max-rows"),
        (["train", "--max-rows", "1.5"], "--max-rows"),
        (["demo", "--min-count", "0"], "--min-count"),
        (["demo", "--min-count", "70000"], "--min-count"),
        (["evaluate", "--ttl", "-5"], "--ttl"),
        (["evaluate", "--ttl", "forever"], "--ttl"),
        (["serve", "--ttl", "nan"], "--ttl"),
        (["serve", "--max-rows", "lots"], "--max-rows"),
        (["train", "--item-feature-prefix", "genre="], "--item-feature-prefix"),
        (["train", "--item-feature-duplicates", "sum"], "--item-feature-duplicates"),
    ],
)
def test_bad_model_and_feature_option_values_exit_2_with_one_line(argv, option, capsys):
    line = assert_one_line_error(capsys, main(argv), expected=2)
    assert option in line


def test_bad_features_files_exit_1_with_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    data = write_ratings(tmp_path / "ratings.csv")
    run = ["train", "--data", str(data), "--model-out", str(tmp_path / "m.rtrec")]
    missing = tmp_path / "no-movies.csv"
    for command in (run, ["evaluate", "--data", str(data), "--no-progress"],
                    ["demo", *TINY, "--out", str(tmp_path / "o")]):
        line = assert_one_line_error(capsys, main([*command, "--item-features", str(missing)]), 1)
        assert "no-movies.csv" in line and "not found" in line
    line = assert_one_line_error(capsys, main([*run, "--user-features", str(missing)]), 1)
    assert "--user-features" in line and "no-movies.csv" in line

    # No features column, a named column that is not there, a directory.
    line = assert_one_line_error(capsys, main([*run, "--item-features", str(data)]), 1)
    assert "ratings.csv" in line and "no features column found" in line and "--item-feature-col NAME" in line
    movies = write_movies(tmp_path / "movies.csv")
    line = assert_one_line_error(capsys, main([*run, "--item-features", str(movies), "--item-feature-col", "nope"]), 1)
    assert "movies.csv" in line and "'nope'" in line
    assert "is a directory" in assert_one_line_error(capsys, main([*run, "--item-features", str(tmp_path)]), 1)

    # IDs that cannot be the data's: strings against integers, or none in common.
    strings = tmp_path / "strings.csv"
    strings.write_text("movieId,genres\nm1,Drama\n")
    line = assert_one_line_error(capsys, main([*run, "--item-features", str(strings)]), 1)
    assert "strings.csv" in line and "strings but the data's item IDs are integers" in line
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("movieId,genres\n1000,Drama\n1001,Comedy\n")
    line = assert_one_line_error(capsys, main([*run, "--item-features", str(elsewhere)]), 1)
    assert "elsewhere.csv" in line and "none of its 2 IDs" in line
    # A features option without its file.
    line = assert_one_line_error(capsys, main([*run, "--item-feature-col", "genres"]), 1)
    assert "--item-feature-col needs --item-features" in line
    assert not (tmp_path / "m.rtrec").exists()  # nothing was trained

    # serve checks the file before it starts.
    seen = _fake_server(monkeypatch)
    line = assert_one_line_error(capsys, main(["serve", "--item-features", str(missing)]), 1)
    assert "no-movies.csv" in line and "ran" not in seen


@needs_movies
def test_train_with_movielens_genres(tmp_path, capsys):
    head = tmp_path / "ratings.csv"
    with RATINGS.open() as source:
        head.write_text("".join(line for _, line in zip(range(5001), source, strict=False)))
    model = tmp_path / "m.rtrec"
    trained = train_json(capsys, "--data", str(head), "--model-out", str(model),
                         "--item-features", str(MOVIES), "--item-feature-prefix", "genre")
    rec = rt.Recommender.load(model)
    assert rec.item_features(1) == ["genre=Adventure", "genre=Animation", "genre=Children", "genre=Comedy",
                                    "genre=Fantasy"]  # Toy Story
    with MOVIES.open() as source:
        n_movies = sum(1 for _ in source) - 1
    assert rec.n_items == n_movies == trained["data"]["item_features"]["n_ids"]  # the whole catalogue
    assert 15 <= trained["n_item_features"] <= 25


def test_evaluate_runs_the_hybrid_policy_when_asked(tmp_path, capsys):
    ratings = write_ratings(tmp_path / "ratings.csv")
    code = main(["evaluate", "--data", str(ratings), "--protocol", "prequential", "--policies", "realtime", "hybrid",
                 "--retrain-every", "300", "--epochs", "1", "--dim", "8", "--json", "--no-progress",
                 "--family", "mf"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["policies"]) == {"realtime", "hybrid"}
    assert report["policies"]["hybrid"]["refits_at"]
