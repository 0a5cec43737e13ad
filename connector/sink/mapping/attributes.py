"""Traits and properties → Customer.io attribute objects, within the limits (pure).

Stored attributes (people, objects, devices): empty values (``null``, ``""``) are dropped when
``omit_empty_values`` is on, so a missing trait never erases what Customer.io already holds; ISO-8601
strings become Unix seconds when ``convert_iso_timestamps`` is on (recursively, numeric strings left
alone, as Segment does); names, string values and the attribute count are checked against Customer.io's
Track API limits, and cut or dropped instead when the oversize policy is ``truncate``. Event attributes
(track, page, screen) are only converted: they are not stored, so neither dropping empties nor the
attribute limits apply.

Input dicts are never modified; a nested value is copied only when something in it changes.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any, Final

import orjson

from connector.sink.mapping.timestamps import iso_seconds
from connector.sink.mapping.validation import (
    MAX_ATTRIBUTE_NAME_BYTES,
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    MAX_EVENT_DATA_BYTES,
    MAX_VALUE_BYTES,
    Invalid,
    label,
    over,
    serialize,
    too_long,
    truncate_utf8,
)

# Person attributes Customer.io gives a meaning to: never prefixed. Names starting with ``_`` or
# ``cio_`` (``cio_subscription_preferences.topics.topic_1``) are Customer.io's too.
RESERVED_NAMES: Final = frozenset(
    {
        "id",
        "email",
        "phone",
        "cio_id",
        "created_at",
        "anonymous_id",
        "unsubscribed",
        "cio_subscription_preferences",
        "cio_relationships",
        "_update",
        "_timestamp",
    }
)
_NAME_CACHE_SIZE: Final = 10_000
# A JSON string that starts like an ISO-8601 date: one search of the serialized event decides whether
# the attribute tree must be walked at all.
_DATE_IN_JSON: Final = re.compile(rb'"[0-9]{4}-[0-9]{2}-[0-9]{2}')
_UNSET: Final = object()


class Names:
    """Final attribute names for one kind of call: prefix applied, skipped keys, limit checked, cached."""

    __slots__ = ("_prefix", "_skip", "_truncate", "cache")

    def __init__(self, prefix: str, skip: frozenset[str], truncate: bool) -> None:
        self._prefix = prefix
        self._skip = skip
        self._truncate = truncate
        self.cache: dict[str, str] = {}

    def get(self, key: str, path: str) -> str:
        """The name ``key`` is sent under; ``""`` when the key is handled elsewhere (``createdAt``)."""
        name = self.cache.get(key)
        if name is not None:
            return name
        if not isinstance(key, str):
            raise Invalid("invalid_field", f"{path}: attribute names must be strings")
        if key in self._skip:
            name = ""
        elif not key:
            raise Invalid("invalid_field", f"{path}: empty attribute name")
        elif self._prefix and key not in RESERVED_NAMES and not key.startswith(("_", "cio_")):
            name = self._prefix + key
        else:
            name = key
        if over(name, MAX_ATTRIBUTE_NAME_BYTES):
            if not self._truncate:
                raise Invalid(
                    "limit_exceeded",
                    f"{path}.{label(key)}: attribute name over {MAX_ATTRIBUTE_NAME_BYTES} bytes",
                )
            name = truncate_utf8(name, MAX_ATTRIBUTE_NAME_BYTES)
        if len(self.cache) >= _NAME_CACHE_SIZE:
            self.cache.clear()
        self.cache[key] = name
        return name


class Attributes:
    """Attribute cleaning per MappingSettings; built once, used for every message."""

    __slots__ = ("_convert_iso", "_omit_empty", "_truncate")

    def __init__(self, *, convert_iso: bool, omit_empty: bool, truncate: bool) -> None:
        self._convert_iso = convert_iso
        self._omit_empty = omit_empty
        self._truncate = truncate

    def stored(  # noqa: C901 - hot path: one flat branch per attribute value kind
        self,
        raw: dict[str, Any],
        path: str,
        names: Names,
        *,
        extra: dict[str, Any] | None = None,
        convert: bool = True,
        omit: bool = True,
    ) -> dict[str, Any]:
        """Attributes Customer.io stores, from ``raw`` (the message's ``path``), within the limits.

        ``extra`` (already final, e.g. ``created_at``) overrides same-named keys and is never dropped by
        truncation; ``convert=False``/``omit=False`` turn off ISO conversion / dropping empty values.
        """
        omit_empty = self._omit_empty and omit
        convert_iso = self._convert_iso and convert
        out: dict[str, Any] = {}
        cached = names.cache
        for key, value in raw.items():
            name = cached.get(key)
            if name is None:
                name = names.get(key, path)
            if not name:
                continue
            if isinstance(value, str):
                if not value:
                    if omit_empty:
                        continue
                elif convert_iso and len(value) >= 10 and value[4] == "-":
                    seconds = iso_seconds(value)
                    if seconds is not None:
                        out[name] = seconds
                        continue
                if len(value) * 4 > MAX_VALUE_BYTES:
                    fitted = self._fit(value, MAX_VALUE_BYTES)
                    if fitted is None:
                        raise too_long(f"{path}.{label(key)}", value, MAX_VALUE_BYTES)
                    value = fitted  # noqa: PLW2901
            elif value is None:
                if omit_empty:
                    continue
            elif isinstance(value, dict | list):
                value = self._walk(value, f"{path}.{label(key)}", 1, MAX_VALUE_BYTES, convert_iso)  # noqa: PLW2901
            out[name] = value
        if extra:
            out.update(extra)
        if len(out) > MAX_ATTRIBUTES:
            if not self._truncate:
                raise Invalid("limit_exceeded", f"{path}: {len(out)} attributes, limit {MAX_ATTRIBUTES}")
            kept = MAX_ATTRIBUTES - len(extra or ())
            out = dict(islice(((k, v) for k, v in out.items() if not extra or k not in extra), kept))
            out.update(extra or {})
        return out

    def event(self, raw: dict[str, Any], path: str, *, convert: bool = True) -> dict[str, Any] | orjson.Fragment:
        """Event attributes, serialized here once and embedded in the operation as a Fragment.

        The ISO-8601 walk runs only when the serialized text holds a string that starts like a date,
        which most events do not. Event data over 100,000 bytes is refused, or its strings cut to
        1000 bytes under the truncate policy.
        """
        if not raw:
            return raw
        data = serialize(raw, path)
        if convert and self._convert_iso and _DATE_IN_JSON.search(data) is not None:
            converted = self._walk(raw, path, 0, None, True)
            if converted is not raw:
                data = serialize(converted, path)
        if len(data) > MAX_EVENT_DATA_BYTES:
            if not self._truncate:
                raise Invalid(
                    "limit_exceeded", f"{path}: {len(data)} bytes of event data, limit {MAX_EVENT_DATA_BYTES}"
                )
            data = serialize(self.shrink(orjson.loads(data), path), path)
            if len(data) > MAX_EVENT_DATA_BYTES:
                raise Invalid("too_large", f"{path}: {len(data)} bytes of event data after truncation")
        return orjson.Fragment(data)

    def shrink(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        """Event attributes with every string cut to 1000 bytes: the truncate policy's last resort."""
        result: dict[str, Any] = self._walk(raw, path, 0, MAX_VALUE_BYTES, False)
        return result

    def _fit(self, value: str, limit: int) -> str | None:
        """``value`` if within ``limit`` bytes, cut to it under the truncate policy, else None."""
        if not over(value, limit):
            return value
        return truncate_utf8(value, limit) if self._truncate else None

    def _walk(self, value: Any, path: str, depth: int, limit: int | None, convert_iso: bool) -> Any:
        """``value`` with ISO strings converted and strings over ``limit`` cut or refused; copied on change."""
        if depth > MAX_DEPTH:
            raise Invalid("invalid_field", f"{path}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            items: Any = value.items()
            sep = "."
        else:
            items = enumerate(value)
            sep = ""
        copy: Any = None
        for key, item in items:
            new: Any = _UNSET
            if isinstance(item, str):
                if convert_iso and len(item) >= 10 and item[4] == "-":
                    seconds = iso_seconds(item)
                    if seconds is not None:
                        new = seconds
                if new is _UNSET and limit is not None and len(item) * 4 > limit:
                    new = self._fit(item, limit)
                    if new is None:
                        raise too_long(_child(path, f".{label(key)}" if sep else f"[{key}]"), item, limit)
            elif isinstance(item, dict | list):
                child = _child(path, f".{label(key)}" if sep else f"[{key}]")
                new = self._walk(item, child, depth + 1, limit, convert_iso)
            if new is not _UNSET and new is not item:
                if copy is None:
                    copy = dict(value) if sep else list(value)
                copy[key] = new
        return value if copy is None else copy


def _child(path: str, part: str) -> str:
    """``path`` + ``part`` for error messages, capped: a path 64 levels deep is not a one-line message."""
    if len(path) < 120:
        return path + part
    return path if path.endswith("…") else path + "…"
