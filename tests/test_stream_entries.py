"""The stream entry format: what becomes an event and what becomes a dead letter, and why."""

from __future__ import annotations

import pytest

from rtrec_native.stream import REASONS, EntryError, EntryParser
from rtrec_native.stream.entries import entry_time

ENTRY = "1700000000123-4"


def parse(fields, loss="bpr", ids="auto", event_weights=None, user_kind=None, item_kind=None):
    parser = EntryParser(loss, ids, event_weights, user_kind=lambda: user_kind, item_kind=lambda: item_kind)
    return parser.parse(ENTRY, fields)


def reason(fields, **kwargs) -> str:
    with pytest.raises(EntryError) as err:
        parse(fields, **kwargs)
    assert err.value.reason in REASONS
    return err.value.reason


def test_a_full_entry_and_the_defaults():
    assert parse({b"user": b"7", b"item": b"sku-1", b"label": b"4.5", b"weight": b"2", b"ts": b"1690000000.5"},
                 loss="squared") == (7, "sku-1", 4.5, 2.0, 1690000000.5)
    # No label (implicit), weight 1, and the time Redis gave the entry.
    assert parse({b"user": b"-3", b"item": b"9"}) == (-3, 9, None, 1.0, 1700000000.123)
    assert entry_time(ENTRY) == 1700000000.123
    # str names and values (a Python caller) read the same.
    assert parse({"user": "7", "item": "9"}) == (7, 9, None, 1.0, 1700000000.123)


def test_auto_ids_follow_the_kind_each_side_started_with():
    assert parse({b"user": b"12", b"item": b"x"})[:2] == (12, "x")
    assert parse({b"user": b"12", b"item": b"34"}, user_kind="str", item_kind="str")[:2] == ("12", "34")
    assert reason({b"user": b"bob", b"item": b"1"}, user_kind="int") == "bad_user"
    # Beyond int64, " 12" and "1_000" are not base-10 int64 text: strings under auto, refused under int.
    for text in (b"9223372036854775808", b" 12", b"1_000", b"+5"):
        assert parse({b"user": text, b"item": b"1"})[0] == text.decode()
        assert reason({b"user": text, b"item": b"1"}, ids="int") == "bad_user"
    assert parse({b"user": b"-9223372036854775808", b"item": b"1"}, ids="int")[0] == -(2**63)
    assert parse({b"user": b"12", b"item": b"34"}, ids="str")[:2] == ("12", "34")


@pytest.mark.parametrize(("fields", "kwargs", "expected"), [
    ({b"item": b"1"}, {}, "missing_user"),
    ({b"user": b"", b"item": b"1"}, {}, "missing_user"),
    ({b"user": b"1"}, {}, "missing_item"),
    ({b"user": b"1", b"item": b"2", b"lable": b"1"}, {}, "unknown_field"),
    ({b"user": b"\xff\xfe", b"item": b"2"}, {}, "not_utf8"),
    ({b"user": b"1", b"item": b"2"}, {"loss": "squared"}, "missing_label"),
    ({b"user": b"1", b"item": b"2", b"label": b"nan"}, {}, "bad_label"),
    ({b"user": b"1", b"item": b"2", b"label": b"1e999"}, {}, "bad_label"),
    ({b"user": b"1", b"item": b"2", b"label": b"five"}, {"loss": "squared"}, "bad_label"),
    ({b"user": b"1", b"item": b"2", b"label": b"2"}, {"loss": "logistic"}, "label_out_of_range"),
    ({b"user": b"1", b"item": b"2", b"weight": b"-1"}, {}, "bad_weight"),
    ({b"user": b"1", b"item": b"2", b"weight": b"inf"}, {}, "bad_weight"),
    ({b"user": b"1", b"item": b"2", b"ts": b"yesterday"}, {}, "bad_timestamp"),
    ({b"user": b"1", b"item": b"2", b"type": b"hover"}, {"event_weights": {"view": 0.2}}, "unknown_event_type"),
    ({b"user": b"1", b"item": b"2"}, {"event_weights": {"view": 0.2}}, "unknown_event_type"),
])
def test_malformed_entries_name_their_reason(fields, kwargs, expected):
    assert reason(fields, **kwargs) == expected


def test_event_type_weights_multiply_the_weight_and_type_is_ignored_without_them():
    weights = {"view": 0.25, "purchase": 3.0}
    assert parse({b"user": b"1", b"item": b"2", b"type": b"view", b"weight": b"2"}, event_weights=weights)[3] == 0.5
    assert parse({b"user": b"1", b"item": b"2", b"type": b"purchase"}, event_weights=weights)[3] == 3.0
    assert parse({b"user": b"1", b"item": b"2", b"type": b"anything"})[3] == 1.0


def test_bad_parser_settings():
    with pytest.raises(ValueError, match="ids"):
        EntryParser("bpr", "float")
    with pytest.raises(ValueError, match="event_weights"):
        EntryParser("bpr", event_weights={"view": -1})
    with pytest.raises(TypeError, match="event_weights"):
        EntryParser("bpr", event_weights={})
