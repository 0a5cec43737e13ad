"""Debezium's temporal columns → ISO-8601 strings, read from the change event's own schema (pure).

Debezium writes a PostgreSQL ``timestamp`` column as microseconds since the epoch
(``io.debezium.time.MicroTimestamp``, its default ``time.precision.mode=adaptive``), a ``date`` as days,
a nanosecond column as nanoseconds. As plain numbers they mean nothing to Customer.io: a
``created_at`` of 1735689600000000 is no Unix time at all (it was dead-lettered), another column would be
stored as a meaningless number. The JSON converter's envelope (``schemas.enable=true``) names each
column's semantic type, so the values are converted exactly, never guessed from their size; the mapping
then treats them as any ISO string (``created_at`` and, with ``CONNECTOR_CONVERT_ISO_TIMESTAMPS``, other
attributes become Unix seconds).

Without the envelope the numbers stay as they are (docs/inputs.md says which Debezium settings give
milliseconds instead). Zoned types (``ZonedTimestamp``) are ISO strings already; times of day are left
alone. A value of an unexpected type is left as it is, for the mapping to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY: Final = date(1970, 1, 1)


def _instant(value: Any, per_second: int) -> Any:
    if type(value) is not int:
        return value
    try:
        moment = _EPOCH + timedelta(microseconds=value * 1_000_000 // per_second)
    except OverflowError:
        return value  # beyond datetime's years 1-9999: left for the mapping to refuse
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds").replace("+00:00", "Z")


def _day(value: Any) -> Any:
    if type(value) is not int:
        return value
    try:
        return (_EPOCH_DAY + timedelta(days=value)).isoformat()
    except OverflowError:
        return value


# Semantic type name (the field schema's ``name``) → conversion of its value.
CONVERSIONS: Final[dict[str, Callable[[Any], Any]]] = {
    "io.debezium.time.Timestamp": lambda value: _instant(value, 1000),
    "org.apache.kafka.connect.data.Timestamp": lambda value: _instant(value, 1000),
    "io.debezium.time.MicroTimestamp": lambda value: _instant(value, 1_000_000),
    "io.debezium.time.NanoTimestamp": lambda value: _instant(value, 1_000_000_000),
    "io.debezium.time.Date": _day,
    "org.apache.kafka.connect.data.Date": _day,
}


def convert_temporal_columns(schema: Any, side: str, row: dict[str, Any]) -> None:
    """Replace, in place, ``row``'s temporal values by ISO strings, per the envelope ``schema``'s
    description of its ``side`` (``after`` or ``before``) struct. A schema of another shape: no change."""
    if type(schema) is not dict or type(fields := schema.get("fields")) is not list:
        return
    for struct in fields:
        if type(struct) is dict and struct.get("field") == side and type(columns := struct.get("fields")) is list:
            for column in columns:
                if type(column) is not dict or type(kind := column.get("name")) is not str:
                    continue
                convert = CONVERSIONS.get(kind)
                name = column.get("field")
                if convert is not None and type(name) is str and name in row:
                    row[name] = convert(row[name])
            return
