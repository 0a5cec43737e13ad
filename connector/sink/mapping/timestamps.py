"""Timestamps → integer Unix time, the only form Customer.io understands (Track API
timestamps are Unix seconds) (pure).

Accepted: ISO-8601 dates and date-times with any offset (``Z``, ``+02:00``, ``+0200``), fractional
seconds or none, date-only (midnight UTC); a missing offset means UTC. For message timestamps also
epoch seconds or milliseconds, as numbers or numeric strings: a value ≥ 10¹¹ is milliseconds
(10¹¹ seconds would be the year 5138). Message timestamps must fall between 1970 and 9999.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

from connector.sink.mapping.model import MessageContext
from connector.sink.mapping.validation import Invalid, show

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_MS_THRESHOLD: Final = 100_000_000_000
_ISO_SEPARATORS: Final = frozenset("Tt ")


def iso_ms(text: str) -> int | None:
    """An ISO-8601 date or date-time as Unix milliseconds (floor), or None if ``text`` is not one."""
    n = len(text)
    # Cheap shape test first: most strings are rejected without calling the parser.
    if n < 10 or n > 40 or text[4] != "-" or text[7] != "-" or (n > 10 and text[10] not in _ISO_SEPARATORS):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        upper = text.upper()  # RFC 3339 allows "z" and "t"; Python 3.11 takes only "Z"
        if upper == text:
            return None
        try:
            parsed = datetime.fromisoformat(upper)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH  # a timedelta spans ±999,999,999 days: years 1–9999 always fit
    # Floor milliseconds from the normalized fields (days may be negative, the others never are): the
    # same value as ``delta // timedelta(milliseconds=1)``, in machine-int arithmetic once compiled.
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def iso_seconds(text: str) -> int | None:
    """An ISO-8601 date or date-time as Unix seconds (floor), or None; used for attribute values."""
    ms = iso_ms(text)
    return None if ms is None else ms // 1000


def to_unix_ms(value: object) -> int | None:
    """A message timestamp (ISO-8601, epoch s or ms, number or numeric string) as Unix ms, or None."""
    if isinstance(value, str):
        ms = iso_ms(value)
        if ms is None:
            ms = _numeric_string_ms(value)
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        # Apart from floats: compiled, a float parameter refuses an int beyond any float (TypeError).
        ms = _int_ms(value)
    elif isinstance(value, float):
        ms = _number_ms(value)
    else:
        return None
    if ms is None or not 0 <= ms <= MAX_MS:
        return None
    return ms


def _int_ms(number: int) -> int:
    return number if abs(number) >= _MS_THRESHOLD else number * 1000


def _number_ms(number: float) -> int | None:
    if not math.isfinite(number):
        return None
    if abs(number) >= _MS_THRESHOLD:
        return math.floor(number)
    return round(number * 1000)  # 1735689000.123 * 1000 is 1735689000122.9998…


def _numeric_string_ms(text: str) -> int | None:
    # Only plain decimal digits with at most one dot: float() would also take "nan", "1e5" and "1_000".
    if not 0 < len(text) <= 24 or not text.isascii() or not text.replace(".", "", 1).isdigit():
        return None
    return _number_ms(float(text)) if "." in text else _int_ms(int(text))


def message_ms(message: dict[str, Any], ctx: MessageContext) -> int | None:
    """A message's time in ms: ``timestamp``, else ``originalTimestamp``, else the Kafka record's time.

    None when neither field is set and the record has no time either (Customer.io then uses the time
    it receives the operation). A field that is set but unreadable is ``invalid_timestamp``.
    """
    raw = message.get("timestamp")
    field = "timestamp"
    if raw is None:
        raw = message.get("originalTimestamp")
        field = "originalTimestamp"
    if raw is None:
        return ctx.timestamp_ms if 0 <= ctx.timestamp_ms <= MAX_MS else None
    ms = iso_ms(raw) if type(raw) is str else None  # the common case, without the generic parser
    if ms is None or ms < 0 or ms > MAX_MS:
        ms = to_unix_ms(raw)
        if ms is None:
            raise Invalid("invalid_timestamp", f"{field}: not an ISO-8601 date or Unix time (got {show(raw)})")
    return ms
