"""rtrec_native.data.load_features: side features from list or delimited-string columns."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import MOVIELENS
from rtrec_native import data
from rtrec_native.data import Events, load_features

pd = pytest.importorskip("pandas")

MOVIES = MOVIELENS / "movies.csv"


# --------------------------------------------------------------------------- list and string cells


def test_list_column_of_a_dataframe_gives_int64_ids_and_lists_of_str():
    frame = pd.DataFrame(
        {
            "item_id": [10, 11, 12, 13],
            "tags": [["drama", " comedy "], [], None, ("noir", None, "", "drama")],
        }
    )
    ids, features = load_features(frame)
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [10, 11, 12, 13])
    # trimmed; None elements and empty strings skipped; a missing cell means no features
    assert features == [["drama", "comedy"], [], [], ["noir", "drama"]]
    assert all(type(f) is str for row in features for f in row)


def test_pipe_string_column_in_a_csv_with_string_ids(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(
        "item,genres\n a ,Adventure|Animation|Children\nb, Drama | |Crime \nc,\nd,Comedy\n"
    )
    ids, features = load_features(path)
    assert ids.dtype == object and list(ids) == ["a", "b", "c", "d"]
    assert features == [["Adventure", "Animation", "Children"], ["Drama", "Crime"], [], ["Comedy"]]


def test_parquet_list_column_comes_through_as_lists(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "users.parquet"
    pd.DataFrame(
        {"user_id": ["u1", "u2", "u3"], "features": [["age=30s", "country=fr"], None, []]}
    ).to_parquet(path)
    ids, features = load_features(path)
    assert list(ids) == ["u1", "u2", "u3"]
    assert features == [["age=30s", "country=fr"], [], []]


def test_mapping_source_may_hold_a_list_of_lists():
    ids, features = load_features({"item": [1, 2], "tags": [["x", "y"], ["z"]]})
    assert ids.dtype == np.int64 and ids.tolist() == [1, 2]
    assert features == [["x", "y"], ["z"]]


def test_sep_none_keeps_each_string_whole_and_lists_are_never_split():
    frame = pd.DataFrame({"item": [1, 2], "tags": ["sci-fi|fantasy", ["a|b"]]})
    assert load_features(frame, sep=None)[1] == [["sci-fi|fantasy"], ["a|b"]]
    assert load_features(frame)[1] == [["sci-fi", "fantasy"], ["a|b"]]
    assert load_features(frame, sep=",")[1] == [["sci-fi|fantasy"], ["a|b"]]


def test_integer_category_column_is_read_as_text_even_with_blank_cells(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item,year\n1,1995\n2,\n3,2001\n")
    ids, features = load_features(path, feature_col="year", prefix="year")
    assert ids.tolist() == [1, 2, 3]
    assert features == [["year=1995"], [], ["year=2001"]]


def test_a_set_cell_is_sorted_so_the_output_is_stable():
    letters = list("hgfedcba")
    frame = pd.DataFrame({"item": [1, 2], "tags": [set(letters), frozenset(letters)]})
    assert load_features(frame)[1] == [sorted(letters), sorted(letters)]


# --------------------------------------------------------------------------- prefix, dedupe, drop


def test_prefix_is_written_before_every_value():
    frame = pd.DataFrame({"item": [1, 2], "genres": ["Drama|Comedy", ["Noir"]]})
    _, features = load_features(frame, prefix=" genre ")
    assert features == [["genre=Drama", "genre=Comedy"], ["genre=Noir"]]


def test_several_columns_each_with_its_own_prefix_stay_distinct():
    frame = pd.DataFrame(
        {
            "item": [1, 2],
            "genres": ["Drama|Red", None],
            "color": ["Red", "Blue|Red"],
            "tags": [["x"], []],
        }
    )
    _, features = load_features(
        frame, feature_col={"genres": "genre", "color": "color", "tags": None}
    )
    assert features == [["genre=Drama", "genre=Red", "color=Red", "x"], ["color=Blue", "color=Red"]]
    # a list of names shares one prefix (and features of equal value merge)
    _, shared = load_features(frame, feature_col=["genres", "color"], prefix="f")
    assert shared == [["f=Drama", "f=Red"], ["f=Blue", "f=Red"]]


def test_duplicate_features_in_a_row_are_kept_once_at_their_first_position():
    frame = pd.DataFrame({"item": [1, 2], "a": ["x|y|x| y", ["q", "q"]], "b": ["y|z", ["q", "r"]]})
    _, features = load_features(frame, feature_col=["a", "b"])
    assert features == [["x", "y", "z"], ["q", "r"]]


def test_missing_values_of_every_kind_give_no_features_and_keep_the_row():
    frame = pd.DataFrame(
        {"item": [1, 2, 3, 4, 5], "tags": pd.Series([None, np.nan, pd.NA, "", "   "], dtype=object)}
    )
    ids, features = load_features(frame)
    assert ids.tolist() == [1, 2, 3, 4, 5]
    assert features == [[], [], [], [], []]


def test_no_genres_listed_is_a_feature_unless_dropped_in_either_form():
    frame = pd.DataFrame(
        {"movieId": [1, 2], "genres": ["(no genres listed)", "Drama|(no genres listed)"]}
    )
    assert load_features(frame, prefix="genre")[1] == [
        ["genre=(no genres listed)"],
        ["genre=Drama", "genre=(no genres listed)"],
    ]
    for drop in ({"(no genres listed)"}, "(no genres listed)", ["genre=(no genres listed)"]):
        assert load_features(frame, prefix="genre", drop=drop)[1] == [[], ["genre=Drama"]], drop


# --------------------------------------------------------------------------- duplicate IDs


DUPLICATED = {"item": ["a", "b", "a", "c", "b"], "tags": ["x|y", "p", "z|x", "q", None]}


def test_duplicate_ids_are_an_error_by_default_naming_the_rows(tmp_path):
    path = tmp_path / "items.csv"
    pd.DataFrame(DUPLICATED).to_csv(path, index=False)
    with pytest.raises(
        ValueError,
        match=r"ID 'a' is on rows 0 and 2 \(lines 2 and 4 of the file\) "
        r"\(2 ID\(s\) are on more than one row\); pass duplicates=",
    ):
        load_features(path)


@pytest.mark.parametrize(
    ("policy", "ids", "features"),
    [
        ("first", ["a", "b", "c"], [["x", "y"], ["p"], ["q"]]),
        ("last", ["a", "c", "b"], [["z", "x"], ["q"], []]),
        ("merge", ["a", "b", "c"], [["x", "y", "z"], ["p"], ["q"]]),
    ],
)
def test_duplicate_id_policies(policy, ids, features):
    got_ids, got_features = load_features(pd.DataFrame(DUPLICATED), duplicates=policy)
    assert list(got_ids) == ids
    assert got_features == features


def test_merge_unites_a_long_table_with_integer_ids():
    frame = pd.DataFrame({"movieId": [7, 3, 7, 7], "tag": ["funny", "dark", "Funny", "funny"]})
    ids, features = load_features(frame, duplicates="merge", prefix="tag")
    assert ids.dtype == np.int64 and ids.tolist() == [7, 3]
    assert features == [["tag=funny", "tag=Funny"], ["tag=dark"]]


# --------------------------------------------------------------------------- bad input


def test_column_errors_say_what_was_expected_and_what_was_found():
    frame = pd.DataFrame({"userId": [1], "movieId": [2], "genres": ["x"], "tags": ["y"]})
    with pytest.raises(
        ValueError, match=r"several columns could be the ID column: \['userId', 'movieId'\]"
    ):
        load_features(frame, feature_col="genres")
    with pytest.raises(
        ValueError, match=r"several columns could be the features column: \['genres', 'tags'\]"
    ):
        load_features(frame, id_col="movieId")
    with pytest.raises(ValueError, match=r"features column 'genre' not found; columns are"):
        load_features(frame, id_col="movieId", feature_col="genre")
    with pytest.raises(ValueError, match=r"ID column 'item' not found"):
        load_features(frame, id_col="item", feature_col="genres")
    with pytest.raises(ValueError, match=r"no features column found; tried \['features'"):
        load_features(pd.DataFrame({"item": [1], "title": ["t"]}))
    with pytest.raises(ValueError, match=r"cannot be both the ID and a features column"):
        load_features(frame, id_col="genres", feature_col="genres")


def test_non_string_values_are_type_errors_naming_row_and_position():
    with pytest.raises(
        TypeError,
        match=r"row 1: column 'tags': expected a list of strings, got int 3 at position 1",
    ):
        load_features(pd.DataFrame({"item": [1, 2], "tags": [["a"], ["b", 3]]}))
    with pytest.raises(
        TypeError, match=r"row 0: column 'tags': expected a string, a list of strings"
    ):
        load_features(pd.DataFrame({"item": [1], "tags": [{"a": 1}]}))
    with pytest.raises(
        TypeError, match=r"value 2.5: expected strings, lists of strings or integer categories"
    ):
        load_features(pd.DataFrame({"item": [1, 2], "score": [1.0, 2.5]}), feature_col="score")
    with pytest.raises(TypeError, match=r"got dtype bool"):
        load_features(pd.DataFrame({"item": [1], "flag": [True]}), feature_col="flag")
    with pytest.raises(
        TypeError, match=r"ID column 'item': expected an integer or string ID, got list"
    ):
        load_features(pd.DataFrame({"item": [[1]], "tags": ["a"]}))


def test_a_python_list_written_to_csv_as_text_is_refused(tmp_path):
    path = tmp_path / "items.csv"
    pd.DataFrame({"item": [1, 2], "tags": [["Drama", "Comedy"], []]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 0 \(line 2 of the file\).*looks like a Python list"):
        load_features(path)
    # brackets without quotes are an ordinary value
    frame = pd.DataFrame({"item": [1], "tags": ["[restricted]|ok"]})
    assert load_features(frame)[1] == [["[restricted]", "ok"]]


def test_missing_ids_are_an_error_with_the_row_and_count(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item,tags\n1,a\n,b\n3,c\n,d\n")
    with pytest.raises(
        ValueError, match=r"row 1 \(line 3 of the file\): ID column 'item'.*2 row\(s\) have none"
    ):
        load_features(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"sep": ""}, TypeError, r"sep: expected a non-empty str"),
        ({"sep": 1}, TypeError, r"sep: expected a non-empty str"),
        (
            {"duplicates": "keep"},
            ValueError,
            r"duplicates: expected one of \['error', 'first', 'last', 'merge'\]",
        ),
        ({"prefix": ""}, ValueError, r"prefix: expected a non-empty name"),
        ({"prefix": "genre="}, ValueError, r"prefix: give the name without '='"),
        ({"prefix": 3}, TypeError, r"prefix: expected a str"),
        ({"drop": [1]}, TypeError, r"drop: expected strings, got 1"),
        ({"drop": 5}, TypeError, r"drop: expected a str or a collection of str"),
        ({"feature_col": 5}, TypeError, r"feature_col: expected a column name"),
        ({"feature_col": []}, ValueError, r"feature_col: expected at least one column"),
        ({"feature_col": ["tags", "tags"]}, ValueError, r"a column is listed twice"),
        ({"feature_col": {"tags": "t"}, "prefix": "p"}, ValueError, r"prefix= cannot be combined"),
        (
            {"feature_col": {"tags": ""}},
            ValueError,
            r"feature_col\['tags'\]: expected a non-empty name",
        ),
    ],
)
def test_bad_options(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        load_features(pd.DataFrame({"item": [1], "tags": ["a"]}), **kwargs)


def test_bad_sources(tmp_path):
    with pytest.raises(TypeError, match=r"Events hold no features"):
        load_features(Events(users=[1], items=[2]))
    with pytest.raises(TypeError, match=r"source: expected a CSV/Parquet path"):
        load_features(42)
    with pytest.raises(FileNotFoundError, match=r"features file not found"):
        load_features(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"all columns must have the same length"):
        load_features({"item": [1, 2], "tags": [["a"]]})
    with pytest.raises(ValueError, match=r"expected a 1-D array, got shape \(2, 2\)"):
        load_features({"item": [1, 2], "tags": np.array([["a", "b"], ["c", "d"]])})


def test_load_features_is_public_in_the_data_module():
    assert "load_features" in data.__all__ and "FEATURE_COLUMN_CANDIDATES" in data.__all__
    assert "genres" in data.FEATURE_COLUMN_CANDIDATES


# --------------------------------------------------------------------------- MovieLens


def test_movielens_movies_load_in_one_call():
    if not MOVIES.exists():
        pytest.skip(f"MovieLens not available at {MOVIES}")
    ids, features = load_features(MOVIES, prefix="genre")
    assert ids.dtype == np.int64 and len(ids) == 9_742 and len(np.unique(ids)) == len(ids)
    assert ids[0] == 1
    assert features[0] == [
        "genre=Adventure",
        "genre=Animation",
        "genre=Children",
        "genre=Comedy",
        "genre=Fantasy",
    ]
    vocabulary = {f for row in features for f in row}
    assert all(f.startswith("genre=") for f in vocabulary)
    assert len(vocabulary) == 20 and "genre=(no genres listed)" in vocabulary
    without = load_features(MOVIES, prefix="genre", drop={"(no genres listed)"})[1]
    assert "genre=(no genres listed)" not in {f for row in without for f in row}
    assert (
        sum(not row for row in without)
        == sum("genre=(no genres listed)" in row for row in features)
        > 0
    )
