"""Timestamps in every accepted shape → integer Unix time; anything else → None (pure)."""

from __future__ import annotations

import pytest

from connector.sink.mapping.timestamps import iso_seconds, to_unix_ms

JAN1 = 1_735_689_600_000  # 2025-01-01T00:00:00Z in ms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-01T00:00:00Z", JAN1),
        ("2025-01-01T00:00:00z", JAN1),
        ("2025-01-01T00:00:00.123Z", JAN1 + 123),
        ("2025-01-01T00:00:00.123456789Z", JAN1 + 123),
        ("2025-01-01T02:00:00+02:00", JAN1),
        ("2025-01-01T02:00:00+0200", JAN1),
        ("2024-12-31T19:00:00-05:00", JAN1),
        ("2025-01-01T00:00:00", JAN1),  # no offset: UTC
        ("2025-01-01 00:00:00Z", JAN1),
        ("2025-01-01T00:00Z", JAN1),
        ("2025-01-01", JAN1),
        ("1970-01-01T00:00:00Z", 0),
        (1_735_689_600, JAN1),
        (1_735_689_600.5, JAN1 + 500),
        (JAN1, JAN1),
        (float(JAN1), JAN1),
        ("1735689600", JAN1),
        ("1735689600.25", JAN1 + 250),
        (str(JAN1), JAN1),
        (0, 0),
    ],
)
def test_accepted_timestamps(value: object, expected: int) -> None:
    """ISO-8601 with any offset, date-only, epoch seconds or ms as numbers or numeric strings."""
    assert to_unix_ms(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        "",
        "yesterday",
        "2025-13-01",
        "2025-02-30T00:00:00Z",
        "2025-01-01T24:00:00Z",
        "01/02/2025",
        "1e9",
        "nan",
        "1_735_689_600",
        "-5",
        "١٧٣٥٦٨٩٦٠٠",  # Arabic-Indic digits
        "9" * 5000,
        -1,
        float("nan"),
        float("inf"),
        10**20,
        10**400,  # beyond any float: the compiled build once raised TypeError on it (Hypothesis)
        "0001-01-01T00:00:00Z",  # before 1970
        [],
        {},
    ],
)
def test_rejected_timestamps(value: object) -> None:
    """Anything else is not a message timestamp."""
    assert to_unix_ms(value) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-06-01T12:00:00Z", 1_717_243_200),
        ("1969-07-20T20:17:40Z", -14_182_940),  # attributes keep dates before 1970, as negative seconds
        ("2024-06-01", 1_717_200_000),
        ("12345", None),  # numeric strings are not dates (zip codes)
        ("2024-06-01 is the day", None),
        ("short", None),
    ],
)
def test_attribute_dates(text: str, expected: int | None) -> None:
    """ISO-8601 attribute values → Unix seconds (floor); other strings stay strings."""
    assert iso_seconds(text) == expected
