"""Behaviour of rtrec_native.data: loading, column detection, cleaning and its report."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from conftest import find_dataset
from rtrec_native import data
from rtrec_native.data import REASONS, Events, load_events

pd = pytest.importorskip("pandas")

MOVIELENS = find_dataset("ml-latest-small")


def good_rows(n: int = 6) -> dict[str, list]:
    """A clean little log: users 1..n, items 10.., ratings 1..5, increasing time."""
    return {
        "user": list(range(1, n + 1)),
        "item": [10 + i for i in range(n)],
        "rating": [float(1 + i % 5) for i in range(n)],
        "timestamp": [1_000.0 + i for i in range(n)],
    }


def with_row(row: dict, n: int = 6) -> pd.DataFrame:
    """The clean log plus one extra row (at position n)."""
    frame = pd.DataFrame(good_rows(n))
    extra = pd.DataFrame({k: [v] for k, v in row.items()})
    return pd.concat([frame.astype(object), extra.astype(object)], ignore_index=True)


# --------------------------------------------------------------------------- MovieLens


def test_movielens_ratings_load_in_one_call():
    path = MOVIELENS / "ratings.csv"
    if not path.exists():
        pytest.skip(f"MovieLens not available at {path}")
    events, report = load_events(path)
    assert len(events) == 100_836
    assert len(np.unique(events.users)) == 610
    assert len(np.unique(events.items)) == 9_724
    assert events.users.dtype == np.int64 and events.items.dtype == np.int64
    assert events.labels.dtype == np.float32 and events.labels.min() >= 0.5
    assert np.all(np.diff(events.timestamps) >= 0)
    assert report.n_dropped == 0
    assert report.columns["user"] == "userId" and report.columns["item"] == "movieId"


# --------------------------------------------------------------------------- columns and types


def test_columns_are_found_by_common_names_in_a_csv(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,click,ts\n1,7,1,5\n2,8,0,6\n")
    events, report = load_events(path)
    assert report.columns == {
        "user": "user_id", "item": "item_id", "label": "click",
        "time": "ts", "event": None, "weight": None,
    }
    np.testing.assert_array_equal(events.users, [1, 2])
    np.testing.assert_array_equal(events.labels, [1.0, 0.0])


def test_column_names_match_case_insensitively_and_explicit_names_win():
    frame = pd.DataFrame({"USERID": [1, 2], "Item": [3, 4], "score": [0.1, 0.9], "rating": [5, 1]})
    events, report = load_events(frame, label_col="score")
    assert report.columns["user"] == "USERID" and report.columns["item"] == "Item"
    np.testing.assert_allclose(events.labels, [0.1, 0.9], rtol=1e-6)


def test_two_candidate_columns_for_one_role_are_an_error_not_a_guess():
    # One rule for events and features: several candidates is an error naming them (it
    # used to take the first candidate name silently for events).
    frame = pd.DataFrame({"user": [1], "item": [2], "rating": [4.0], "label": [1.0]})
    with pytest.raises(ValueError, match=r"several columns could be the label column: \['rating', 'label'\]; "
                       r"pass label_col=\.\.\. to choose one"):
        load_events(frame)
    events, report = load_events(frame, label_col="label")
    assert report.columns["label"] == "label" and events.labels.tolist() == [1.0]
    # Case-insensitive names count too: "user" and "User" are two candidates.
    with pytest.raises(ValueError, match=r"several columns could be the user column: \['user', 'User'\]"):
        load_events(pd.DataFrame({"user": [1], "User": [2], "item": [3]}))
    # A column named for one role is no candidate for another.
    _, report = load_events(pd.DataFrame({"user": [1], "uid": [5], "item": [3]}), user_col="uid")
    assert report.columns["user"] == "uid"


def test_integral_ids_are_int64_even_with_a_blank_cell_and_text_ids_are_str(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item\n1,a\n,b\n3,c\n")
    events, report = load_events(path)
    assert events.users.dtype == np.int64
    np.testing.assert_array_equal(events.users, [1, 3])
    assert events.items.dtype == object and list(events.items) == ["a", "c"]
    assert report.counts["missing_user"] == 1


def test_no_label_time_or_weight_columns_gives_none():
    events, _ = load_events({"user": np.array([1, 2]), "item": np.array([3, 4])})
    assert events.labels is None and events.timestamps is None and events.weights is None


# --------------------------------------------------------------------------- every reason


@pytest.mark.parametrize(
    ("extra_row", "kwargs", "reason"),
    [
        ({"user": None, "item": 1, "rating": 3.0, "timestamp": 5.0}, {}, "missing_user"),
        ({"user": 1, "item": None, "rating": 3.0, "timestamp": 5.0}, {}, "missing_item"),
        ({"user": 1, "item": 1, "rating": np.inf, "timestamp": 5.0}, {}, "non_finite_label"),
        ({"user": 1, "item": 1, "rating": "good", "timestamp": 5.0}, {}, "non_finite_label"),
        ({"user": 1, "item": 1, "rating": 9.0, "timestamp": 5.0},
         {"label_range": (0.5, 5)}, "label_out_of_range"),
        ({"user": 1, "item": 1, "rating": 3.0, "timestamp": "yesterday"}, {}, "unparsable_timestamp"),
    ],
)
def test_each_bad_row_reason_is_caught_counted_and_exemplified(extra_row, kwargs, reason):
    events, report = load_events(with_row(extra_row), **kwargs)
    assert len(events) == 6
    assert report.counts[reason] == 1
    assert report.n_input == 7 and report.n_output == 6
    assert report.examples[reason][0]["row"] == 6


def test_negative_or_non_finite_weights_are_dropped():
    frame = pd.DataFrame({"user": [1, 2, 3, 4], "item": [1, 2, 3, 4], "weight": [1.0, -0.5, np.nan, 0.0]})
    events, report = load_events(frame)
    assert report.counts["negative_or_non_finite_weight"] == 2
    np.testing.assert_array_equal(events.weights, [1.0, 0.0])  # zero weight is allowed


def test_event_types_map_to_weights_times_the_weight_column_and_unknown_types_are_dropped():
    frame = pd.DataFrame({
        "user": [1, 1, 2, 3],
        "item": [5, 6, 7, 8],
        "event": ["view", "purchase", "like", "click"],
        "weight": [1.0, 2.0, 1.0, 1.0],
    })
    weights = {"view": 0.2, "click": 1.0, "purchase": 3.0}
    events, report = load_events(frame, event_weights=weights)
    np.testing.assert_allclose(events.weights, [0.2, 6.0, 1.0], rtol=1e-6)
    assert report.counts["unknown_event_type"] == 1
    assert report.examples["unknown_event_type"][0]["event"] == "like"


def test_event_column_without_event_weights_is_an_error():
    frame = pd.DataFrame({"user": [1], "item": [2], "kind": ["view"]})
    with pytest.raises(ValueError, match="needs event_weights"):
        load_events(frame, event_col="kind")


def test_event_weights_must_be_finite_and_non_negative():
    with pytest.raises(ValueError, match="finite weight >= 0"):
        load_events({"user": [1], "item": [2], "event": ["a"]}, event_weights={"a": -1.0})


def test_exact_duplicates_are_dropped_keeping_the_first():
    frame = pd.DataFrame({"user": [1, 1, 1], "item": [2, 2, 2], "rating": [4.0, 4.0, 5.0]})
    events, report = load_events(frame)
    assert report.counts["duplicate"] == 1
    assert report.examples["duplicate"][0]["row"] == 1
    np.testing.assert_array_equal(events.labels, [4.0, 5.0])


def test_duplicates_can_be_kept():
    frame = pd.DataFrame({"user": [1, 1], "item": [2, 2]})
    events, report = load_events(frame, drop_duplicates=False)
    assert len(events) == 2 and report.counts["duplicate"] == 0


def test_min_counts_apply_after_other_reasons_users_first_then_items():
    frame = pd.DataFrame({
        "user": [1, 1, 1, 2, 3, 3],
        "item": [7, 8, 9, 7, 7, 8],
        "rating": [1.0, 1.0, 1.0, 1.0, np.nan, 1.0],
    })
    # user 3 keeps one valid row (the NaN row is dropped first), user 2 has one -> both
    # below 2; then among user 1's rows items 7, 8, 9 each occur once -> below 2 as well.
    events, report = load_events(frame, min_user_count=2, min_item_count=2)
    assert report.counts["non_finite_label"] == 1
    assert report.counts["below_min_user_count"] == 2
    assert report.counts["below_min_item_count"] == 3
    assert len(events) == 0


def test_min_item_count_keeps_items_with_enough_events():
    frame = pd.DataFrame({"user": [1, 2, 3, 4], "item": [7, 7, 7, 8]})
    events, report = load_events(frame, min_item_count=3)
    np.testing.assert_array_equal(events.items, [7, 7, 7])
    assert report.counts["below_min_item_count"] == 1


def test_a_row_is_counted_once_under_the_first_reason_in_order():
    frame = with_row({"user": None, "item": None, "rating": np.nan, "timestamp": "?"})
    _, report = load_events(frame)
    assert report.counts["missing_user"] == 1
    assert sum(report.counts.values()) == report.n_dropped == 1


def test_report_lists_every_reason_and_reads_clearly():
    frame = with_row({"user": 1, "item": 1, "rating": np.nan, "timestamp": 5.0})
    _, report = load_events(frame)
    assert set(report.counts) == set(REASONS)
    text = str(report)
    assert "7 rows in, 6 kept, 1 dropped" in text
    assert "non_finite_label" in text and "duplicate" not in text
    assert report.to_dict()["counts"]["non_finite_label"] == 1


def test_examples_are_capped_at_five_per_reason():
    frame = pd.DataFrame({"user": [None] * 8 + [1], "item": list(range(9))})
    _, report = load_events(frame)
    assert report.counts["missing_user"] == 8
    assert len(report.examples["missing_user"]) == 5


# --------------------------------------------------------------------------- strict mode


def test_strict_raises_on_the_first_bad_row_naming_row_column_value_and_reason():
    frame = with_row({"user": 1, "item": 1, "rating": 9.0, "timestamp": 5.0})
    with pytest.raises(ValueError, match=r"row 6: column 'rating' value 9\.0: label_out_of_range"):
        load_events(frame, strict=True, label_range=(0, 5))


def test_strict_on_a_csv_also_gives_the_line_number(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("userId,movieId,rating\n1,2,4.0\n1,3,abc\n")
    with pytest.raises(ValueError, match=r"row 1 \(line 3 of the file\).*'abc'.*non_finite_label"):
        load_events(path, strict=True)


def test_a_csv_line_with_too_many_fields_is_dropped_with_its_line_and_later_lines_stay_right(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("userId,movieId,rating\n1,2,4.0\n1,3,4.0,junk\n1,4,4.0\n1,5,x\n1,6,3.0\n")
    events, report = load_events(path)
    assert report.n_input == 5 and len(events) == 3 and report.n_dropped == 2
    assert report.counts["malformed_line"] == 1
    assert report.examples["malformed_line"] == [{"line": 3, "problem": "expected 3 fields, saw 4"}]
    # the skipped line shifts the rows below it: row 2 of the frame is line 5 of the file
    assert report.examples["non_finite_label"][0]["line"] == 5
    assert "malformed_line: 1 (line 3)" in report.problems()
    with pytest.raises(ValueError, match=r"line 3: malformed_line \(expected 3 fields, saw 4\)"):
        load_events(path, strict=True)


def test_a_few_words_in_an_integer_id_column_are_malformed_ids_not_text_ids(tmp_path):
    path = tmp_path / "log.csv"
    rows = [f"{u},{100 + u},4.0" for u in range(1, 200)]
    rows[50] = "garbage,150,4.0"
    rows[70] = "71,abc,4.0"
    path.write_text("userId,movieId,rating\n" + "\n".join(rows) + "\n")
    events, report = load_events(path)
    assert events.users.dtype == np.int64 and events.items.dtype == np.int64  # not every ID turned to text
    assert report.counts["malformed_user_id"] == 1 and report.counts["malformed_item_id"] == 1
    assert report.examples["malformed_user_id"][0]["line"] == 52
    assert report.examples["malformed_item_id"][0]["movieId"] == "abc"
    assert len(events) == 197


def test_text_ids_stay_text_ids():
    events, report = load_events(pd.DataFrame({"user": ["u1", "7", "u2"], "item": ["a", "b", "12"]}))
    assert events.users.dtype == object and report.n_dropped == 0
    assert list(events.users) == ["u1", "7", "u2"]


def test_strict_treats_duplicates_as_bad_rows():
    frame = pd.DataFrame({"user": [1, 1], "item": [2, 2]})
    with pytest.raises(ValueError, match="exact duplicate of row 0"):
        load_events(frame, strict=True)


def test_strict_accepts_clean_data():
    events, report = load_events(pd.DataFrame(good_rows()), strict=True)
    assert len(events) == 6 and report.n_dropped == 0


# --------------------------------------------------------------------------- time


def test_timestamps_parse_from_epoch_numbers_iso_strings_and_datetimes():
    frame = pd.DataFrame({
        "user": [1, 2, 3],
        "item": [1, 2, 3],
        "time": ["86400", "1970-01-03T00:00:00Z", "1970-01-04 00:00:00+01:00"],
    })
    events, _ = load_events(frame)
    np.testing.assert_array_equal(events.timestamps, [86_400.0, 2 * 86_400.0, 3 * 86_400.0 - 3_600])
    as_datetimes = frame.assign(time=pd.to_datetime(["1970-01-02", "1970-01-03", "1970-01-04"]))
    events, _ = load_events(as_datetimes)
    np.testing.assert_array_equal(events.timestamps, [86_400.0, 2 * 86_400.0, 3 * 86_400.0])


def test_events_are_stably_sorted_by_time():
    frame = pd.DataFrame({"user": [1, 2, 3, 4], "item": [1, 2, 3, 4], "ts": [5.0, 1.0, 5.0, 1.0]})
    events, report = load_events(frame)
    np.testing.assert_array_equal(events.users, [2, 4, 1, 3])  # ties keep input order
    assert report.sorted_by_time
    events, _ = load_events(frame, sort_by_time=False)
    np.testing.assert_array_equal(events.users, [1, 2, 3, 4])


# --------------------------------------------------------------------------- normalisation


def test_normalize_ratings_is_global_min_max_and_is_recorded():
    frame = pd.DataFrame({"user": [1, 2, 3], "item": [1, 2, 3], "rating": [1.0, 3.0, 5.0]})
    events, report = load_events(frame, normalize_ratings=True)
    np.testing.assert_allclose(events.labels, [0.0, 0.5, 1.0])
    assert report.label_scale == (1.0, 5.0)
    assert "normalised from [1, 5]" in str(report)


def test_normalize_ratings_needs_labels_that_vary():
    with pytest.raises(ValueError, match="all 4"):
        load_events({"user": [1, 2], "item": [1, 2], "rating": [4.0, 4.0]}, normalize_ratings=True)
    with pytest.raises(ValueError, match="needs a label column"):
        load_events({"user": [1, 2], "item": [1, 2]}, normalize_ratings=True)


# --------------------------------------------------------------------------- sources


def test_a_mapping_of_numpy_arrays_is_a_source():
    source = {"user_id": np.array([3, 4]), "item_id": np.array(["x", "y"]), "label": np.array([1, 0])}
    events, report = load_events(source)
    assert report.source == "mapping"
    assert list(events.items) == ["x", "y"]


def test_a_mapping_with_unequal_lengths_is_rejected():
    with pytest.raises(ValueError, match="same length"):
        load_events({"user": np.arange(3), "item": np.arange(2)})


def test_parquet_files_load_like_csv(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(good_rows())
    frame.to_parquet(tmp_path / "log.parquet")
    events, report = load_events(tmp_path / "log.parquet")
    assert len(events) == 6 and report.columns["label"] == "rating"
    # Parquet is recognised by its magic bytes even under another name.
    (tmp_path / "log.dat").write_bytes((tmp_path / "log.parquet").read_bytes())
    events, _ = load_events(tmp_path / "log.dat")
    assert len(events) == 6


def test_events_round_trip_through_load_events():
    original = Events(
        users=np.array([1, 2]), items=np.array([3, 4]), labels=np.array([1.0, 0.0]),
        timestamps=np.array([1.0, 2.0]), weights=np.array([0.5, 2.0]),
    )
    events, report = load_events(original)
    for name in ("users", "items", "labels", "timestamps", "weights"):
        np.testing.assert_array_equal(getattr(events, name), getattr(original, name))
    assert report.n_dropped == 0


def test_unsupported_source_type_is_a_type_error():
    with pytest.raises(TypeError, match="CSV/Parquet path"):
        load_events(42)


# --------------------------------------------------------------------------- malformed files


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        load_events(tmp_path / "nope.csv")


def test_empty_file_is_reported(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: file is empty"):
        load_events(path)


def test_header_without_rows_is_reported(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("userId,movieId,rating\n")
    with pytest.raises(ValueError, match=r"header\.csv: has a header .* but no rows"):
        load_events(path)


def test_binary_junk_is_reported(tmp_path):
    path = tmp_path / "junk.csv"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ValueError, match=r"junk\.csv: looks like binary data"):
        load_events(path)


def test_corrupt_parquet_is_reported(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(ValueError, match=r"bad\.parquet: could not be read as Parquet"):
        load_events(path)


def test_no_recognisable_user_column_lists_columns_and_names_tried(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("customer,product\n1,2\n")
    with pytest.raises(ValueError) as info:
        load_events(path)
    message = str(info.value)
    assert "cols.csv" in message and "no user column" in message
    assert "'customer', 'product'" in message and "'userId'" in message and "user_col=" in message
    events, _ = load_events(path, user_col="customer", item_col="product")
    assert len(events) == 1


def test_an_explicit_column_that_does_not_exist_is_reported():
    with pytest.raises(ValueError, match=r"label column 'stars' not found; columns are \['user', 'item'\]"):
        load_events({"user": [1], "item": [2]}, label_col="stars")


def test_options_are_validated():
    with pytest.raises(ValueError, match="lo <= hi"):
        load_events({"user": [1], "item": [2]}, label_range=(5, 1))
    # The package's one positive-int check: ValueError for a bad value, TypeError for a bad type.
    with pytest.raises(ValueError, match="min_user_count must be >= 1, got 0"):
        load_events({"user": [1], "item": [2]}, min_user_count=0)
    with pytest.raises(TypeError, match="min_item_count must be an int"):
        load_events({"user": [1], "item": [2]}, min_item_count="2")


# --------------------------------------------------------------------------- Events


def test_events_coerce_dtypes_and_know_their_length():
    events = Events(users=np.array([1, 2], dtype=np.int32), items=np.array(["a", "b"]),
                    labels=[1, 0], timestamps=[1, 2])
    assert len(events) == 2
    assert events.users.dtype == np.int64 and events.items.dtype == object
    assert events.labels.dtype == np.float32 and events.timestamps.dtype == np.float64


def test_events_index_by_slice_mask_indices_and_int():
    events = Events(users=np.arange(5), items=np.arange(5) + 10, timestamps=np.arange(5.0))
    np.testing.assert_array_equal(events[1:3].items, [11, 12])
    np.testing.assert_array_equal(events[events.timestamps >= 3].users, [3, 4])
    np.testing.assert_array_equal(events[[4, 0]].users, [4, 0])
    assert len(events[-1]) == 1 and events[-1].users[0] == 4
    assert events[:2].labels is None
    with pytest.raises(IndexError):
        events[5]


def test_events_reject_mismatched_lengths_and_float_ids():
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        Events(users=np.arange(2), items=np.arange(3))
    with pytest.raises(TypeError, match="integer or string IDs"):
        Events(users=np.array([1.5]), items=np.array([1]))
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\)"):
        Events(users=np.arange(2), items=np.arange(2), labels=[1.0])


def test_events_to_dataframe_has_named_columns():
    events = Events(users=np.arange(2), items=np.arange(2), labels=[0.0, 1.0])
    assert list(events.to_dataframe().columns) == ["user", "item", "label"]


def test_data_modules_import_pandas_lazily():
    package = Path(data.__file__).parent
    for path in [*package.glob("*.py"), package.parent / "events.py"]:
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top_level if isinstance(n, ast.Import) for a in n.names}
        modules = {n.module for n in top_level if isinstance(n, ast.ImportFrom)}
        assert "pandas" not in names and "pandas" not in modules and "pyarrow" not in names, path
