"""A newcomer's path through the command line: help, misspelled options, delimiters, column
errors in CLI words, item names from a catalogue, one saved model across evaluate / serve /
consume, and a busy port."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

import rtrec_native as rt
from rtrec_native.cli import main

try:
    import redis
except ImportError:  # the redis_url fixture skips and says why
    redis = None


def write_ratings(path: Path, sep: str = ",", n: int = 1200) -> Path:
    rng = np.random.default_rng(0)
    users, items = rng.integers(1, 40, size=n), rng.integers(1, 70, size=n)
    ratings = np.clip(np.round(2 * (3 + np.sin(users) + np.cos(items))) / 2, 0.5, 5.0)
    times = 1_000_000_000 + np.sort(rng.integers(0, 10**7, size=n))
    rows = [sep.join(["userId", "movieId", "rating", "timestamp"])]
    rows += [sep.join(map(str, (u, i, f"{r:g}", t))) for u, i, r, t in zip(users, items, ratings, times, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_catalog(path: Path) -> Path:
    path.write_text("movieId,title,genres\n" + "".join(f'{i},"Movie {i}, the sequel",Drama|Genre{i % 3}\n'
                                                        for i in range(1, 70)))
    return path


def one_line(capsys, code: int, expected: int = 1) -> str:
    out = capsys.readouterr()
    assert code == expected, out.err
    lines = [line for line in out.err.strip().splitlines() if not line.startswith(("Cleaned ", "  "))]
    assert len(lines) == 1 and "Traceback" not in out.err, out.err
    return lines[0]


def test_rtrec_alone_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rtrec") and "demo" in out and "serve" in out


def test_a_misspelled_option_names_the_subcommands_help(capsys):
    line = one_line(capsys, main(["demo", "--evnets", "10"]), expected=2)
    assert "--evnets" in line and "did you mean --events?" in line and "see rtrec demo --help" in line


@pytest.mark.parametrize("sep", ["\t", ";"])
def test_the_delimiter_is_sniffed_and_sep_overrides_it(tmp_path, capsys, sep):
    data = write_ratings(tmp_path / "ratings.csv", sep=sep)
    model = tmp_path / "m.rtrec"
    assert main(["train", "--data", str(data), "--model-out", str(model), "--dim", "4", "--epochs", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_events"] == 1200
    line = one_line(capsys, main(["train", "--data", str(data), "--sep", ",", "--model-out", str(model)]))
    assert "--user-col NAME" in line and "user_col" not in line  # one giant column: CLI words in the hint


def test_column_errors_name_flags_on_the_command_line(tmp_path, capsys):
    data = tmp_path / "events.csv"
    data.write_text("who,what\n1,2\n")
    line = one_line(capsys, main(["train", "--data", str(data), "--model-out", str(tmp_path / "m.rtrec")]))
    assert "give --user-col NAME" in line and "pass user_col" not in line
    catalog = tmp_path / "items.csv"
    catalog.write_text("movieId,label\n1,x\n")
    line = one_line(capsys, main(["train", "--data", str(write_ratings(tmp_path / "r.csv")), "--catalog", str(catalog),
                                  "--model-out", str(tmp_path / "m.rtrec")]))
    assert "give --item-name-col NAME" in line


def test_catalog_names_reach_recommend_explain_and_json(tmp_path, capsys):
    data, catalog = write_ratings(tmp_path / "ratings.csv"), write_catalog(tmp_path / "movies.csv")
    model = tmp_path / "m.rtrec"
    assert main(["train", "--data", str(data), "--catalog", str(catalog), "--model-out", str(model), "--dim", "8",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["item_names"] == 69
    assert main(["recommend", "--model", str(model), "--user", "3", "-k", "3", "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["rank", "item", "name", "score"]
    first_item = lines[2].split()[1]
    assert f"Movie {first_item}, the sequel" in lines[2]
    assert "because: item" in lines[3] and "the sequel" in lines[3]
    assert main(["recommend", "--model", str(model), "--user", "3", "-k", "3", "--json", "--explain"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["names"] == [f"Movie {i}, the sequel" for i in payload["items"]]
    assert all("name" in r for reasons in payload["explanations"] for r in reasons if "item" in r)


def test_catalog_genres_are_one_option_away(tmp_path, capsys):
    data, catalog = write_ratings(tmp_path / "ratings.csv"), write_catalog(tmp_path / "movies.csv")
    model = tmp_path / "m.rtrec"
    assert main(["train", "--data", str(data), "--catalog", str(catalog), "--catalog-genres", "--model-out",
                 str(model), "--dim", "4", "--epochs", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_item_features"] == 4  # Drama, Genre0..2
    assert rt.Recommender.load(model).item_features(5) == ["genre=Drama", "genre=Genre2"]


def test_evaluate_a_saved_model_without_refitting(tmp_path, capsys):
    data = write_ratings(tmp_path / "ratings.csv")
    model = tmp_path / "m.rtrec"
    assert main(["train", "--family", "mf", "--data", str(data), "--model-out", str(model), "--dim", "8", "--epochs",
                 "2"]) == 0
    capsys.readouterr()
    common = ["evaluate", "--data", str(data), "--json", "--no-progress"]
    assert main([*common, "--protocol", "temporal", "--model", str(model)]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["fit_seconds"] == 0.0 and saved["data"]["model_file"] == str(model)
    assert main([*common, "--protocol", "temporal", "--dim", "8", "--family", "mf"]) == 0
    refit = json.loads(capsys.readouterr().out)
    assert set(saved["metrics"]) == set(refit["metrics"]) and "hitrate@10" in saved["metrics"]
    # The saved model scores the test part as it is: what predict says now.
    assert main([*common, "--model", str(model), "--policies", "static", "realtime"]) == 0
    replay = json.loads(capsys.readouterr().out)
    assert replay["config"]["started_from_saved_model"] is True
    assert "hitrate@10" in replay["policies"]["realtime"]
    # static keeps the saved model, realtime learns from it: they differ.
    assert replay["policies"]["static"]["rmse"] != replay["policies"]["realtime"]["rmse"]
    line = one_line(capsys, main([*common, "--model", str(tmp_path / "nope.rtrec")]))
    assert "model file not found" in line


def test_serve_refuses_a_model_of_another_lineage_and_leaves_the_directory(tmp_path, capsys):
    a, b = tmp_path / "a.rtrec", tmp_path / "b.rtrec"
    rt.Recommender(model="mf", dim=4).fit([1, 2], [3, 4]).save(a)
    rt.Recommender(model="mf", dim=4).fit([1, 2], [3, 4]).save(b)
    directory = tmp_path / "state"
    rt.Publisher(rt.Recommender.load(a), directory, interval=None).close()
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    line = one_line(capsys, main(["serve", "--model", str(b), "--snapshot-dir", str(directory), "--port", "0"]))
    assert "another model" in line and "drop --model" in line and "new --snapshot-dir" in line
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before


def test_a_busy_port_is_one_line_before_anything_is_served(tmp_path, capsys):
    pytest.importorskip("uvicorn")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out_err = main(["serve", "--port", str(port)])
        line = one_line(capsys, out_err)
    assert f"cannot serve on 127.0.0.1:{port}" in line and "http://" not in line


def test_consume_warm_starts_from_a_saved_model(redis_url, tmp_path, capsys):
    from rtrec_native.stream import Producer

    data, catalog = write_ratings(tmp_path / "ratings.csv"), write_catalog(tmp_path / "movies.csv")
    model = tmp_path / "m.rtrec"
    assert main(["train", "--data", str(data), "--model-out", str(model), "--dim", "8", "--loss", "bpr"]) == 0
    capsys.readouterr()
    Producer(redis_url, "warm").send(1, 2)
    directory = tmp_path / "trainer"
    argv = ["consume", "--redis", redis_url, "--stream", "warm", "--snapshot-dir", str(directory), "--model",
            str(model), "--catalog", str(catalog), "--idle-exit", "0.2", "--log-level", "error", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["learned_now"] == 1
    restored = rt.replication.restore_latest(directory)
    assert restored.n_users == rt.Recommender.load(model).n_users  # the saved model's users are there
    assert restored.item_names([5]) == ["Movie 5, the sequel"]
    assert main(argv) == 0  # the same file again: the directory continues it, so it resumes
    capsys.readouterr()


def test_http_replies_carry_the_names(tmp_path):
    pytest.importorskip("fastapi")
    from test_serving import Server

    data, catalog = write_ratings(tmp_path / "ratings.csv"), write_catalog(tmp_path / "movies.csv")
    model = tmp_path / "m.rtrec"
    assert main(["train", "--data", str(data), "--model-out", str(model), "--dim", "8", "--epochs", "2"]) == 0
    server = Server("--model", str(model), "--catalog", str(catalog))
    try:
        status, body = server.get("/recommend?user=3&k=4")
        assert status == 200 and len(body["items"]) == 4
        assert body["names"] == [f"Movie {i}, the sequel" for i in body["items"]]
        status, body = server.post("/recommend", {"users": [3, 5], "k": 2})
        assert status == 200
        for row in body["results"]:
            assert row["names"] == [f"Movie {i}, the sequel" for i in row["items"]]
    finally:
        assert server.stop() == 0
    assert "69 item names from" in server.stderr_text


def test_extras_hints_fit_where_the_package_came_from(tmp_path, monkeypatch):
    from rtrec_native import _extras

    clone = tmp_path / "clone"
    clone.mkdir()
    monkeypatch.setattr(_extras, "_source_dir", lambda: str(clone))
    monkeypatch.chdir(clone)
    assert _extras.install_hint("serve") == "pip install '.[serve]'"  # from the clone itself
    monkeypatch.chdir(tmp_path)
    assert _extras.install_hint("serve") == f"pip install '{clone}[serve]'"  # from elsewhere
    monkeypatch.setattr(_extras, "_source_dir", lambda: None)
    assert _extras.install_hint("stream") == "pip install 'rtrec_native[stream]'"  # from an index


def test_demo_with_a_catalog_names_what_each_policy_recommends_at_the_end(tmp_path, capsys):
    data, catalog = write_ratings(tmp_path / "ratings.csv"), write_catalog(tmp_path / "movies.csv")
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(data), "--catalog", str(catalog), "--family", "mf", "--dim", "4", "--epochs",
                 "1", "--no-progress", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "ranked events: a new positive is an event with label >= " in stdout  # the label rule
    assert "the stream's last" in stdout and ", the sequel" in stdout
    now = json.loads((out / "report.json").read_text())["now"]
    assert set(now["policies"]) == {"realtime", "periodic", "static", "hybrid"}
    assert all(e["name"] == f"Movie {e['item']}, the sequel" for top in now["policies"].values() for e in top)
    assert (out / "prequential.png").read_bytes()[:4] == b"\x89PNG"
