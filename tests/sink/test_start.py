"""CONNECTOR_START_FROM: parsing, and the offset each uncommitted partition starts at (pure)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.sink.start import Offsets, StartFrom, effective_start, parse_start_from, start_offsets

ZONED = st.datetimes(
    min_value=dt.datetime(1970, 1, 2),
    max_value=dt.datetime(9000, 1, 1),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-7))]),
)


@pytest.mark.parametrize("text", ["earliest", "latest", " LATEST ", "Earliest"])
def test_keywords(text: str) -> None:
    assert parse_start_from(text).kind == text.strip().lower()


@given(ZONED)
def test_a_zoned_time_is_that_instant_in_milliseconds(moment: dt.datetime) -> None:
    parsed = parse_start_from(moment.isoformat())
    assert parsed.kind == "at"
    assert parsed.timestamp_ms == int(moment.timestamp() * 1000)


def test_z_suffix_and_display() -> None:
    parsed = parse_start_from("2024-03-01T00:00:00Z")
    assert parsed.timestamp_ms == 1_709_251_200_000
    assert str(parsed) == "2024-03-01T00:00:00.000Z"


@given(st.text(max_size=40).filter(lambda t: t.strip().lower() not in ("earliest", "latest") and ":" not in t))
def test_anything_else_is_a_value_error_quoting_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"must be earliest, latest or an ISO-8601 time|time zone") as caught:
        parse_start_from(text)
    assert repr(text) in str(caught.value)


def test_a_time_without_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        parse_start_from("2024-03-01T00:00:00")


def test_start_offsets_per_kind() -> None:
    offsets = Offsets(beginning={"a": 3, "b": 0}, end={"a": 10, "b": 7}, at_time={"a": 5})
    assert start_offsets(StartFrom("earliest"), ["a", "b"], offsets) == {"a": 3, "b": 0}
    assert start_offsets(StartFrom("latest"), ["a", "b"], offsets) == {"a": 10, "b": 7}
    # b has no record at or after the time: it starts at its end.
    assert start_offsets(StartFrom("at", 1), ["a", "b"], offsets) == {"a": 5, "b": 7}


def test_a_group_with_commits_starts_new_partitions_at_earliest() -> None:
    assert effective_start(StartFrom("latest"), group_has_commits=True) == StartFrom("earliest")
    assert effective_start(StartFrom("at", 5), group_has_commits=False) == StartFrom("at", 5)
