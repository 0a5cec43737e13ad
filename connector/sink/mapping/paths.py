"""The dotted-path syntax of declarative mappings: ``$.user.email``, ``$.items[0].sku`` (pure).

Syntax: ``$`` is the record; ``.name`` steps into an object's key, ``[n]`` into an array's element
(n ≥ 0). A key is any run of characters other than ``.``, ``[`` and ``]`` (so keys holding those
characters cannot be named). Nothing else: no wildcards, filters or functions. That is all a mapping
needs, and a compiled path is a tuple walked by one loop: measured against jmespath in
``bench/declarative_map.py`` (see ``docs/benchmarks.md``), it is several times faster per lookup.

``get`` answers ``MISSING`` for a path that does not lead anywhere (absent key, index out of range,
stepping into a scalar); it never raises, whatever the document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

Step = str | int


class _Missing:
    """The one value ``get`` returns for a path that leads nowhere (``None`` is a JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class PathError(ValueError):
    """A path that does not follow the syntax; ``str()`` says what is wrong."""


def parse_path(text: str) -> tuple[Step, ...]:
    """The steps of ``text`` (``$.a.b[0]`` → ``("a", "b", 0)``); ``$`` alone is the whole record."""
    if not text.startswith("$"):
        raise PathError(f"a path starts with $ (got {text!r})")
    steps: list[Step] = []
    i, n = 1, len(text)
    while i < n:
        char = text[i]
        if char == ".":
            j = i + 1
            while j < n and text[j] not in ".[]":
                j += 1
            if j == i + 1:
                raise PathError(f"empty key at character {i + 1} of {text!r}")
            steps.append(text[i + 1 : j])
            i = j
        elif char == "[":
            close = text.find("]", i)
            digits = text[i + 1 : close] if close > 0 else ""
            if not digits.isascii() or not digits.isdigit():
                raise PathError(f"[n] needs a non-negative index at character {i + 1} of {text!r}")
            steps.append(int(digits))
            i = close + 1
        else:
            raise PathError(f"expected . or [ at character {i + 1} of {text!r}")
    return tuple(steps)


def show_path(steps: tuple[Step, ...]) -> str:
    """The path as written: ``("a", 0)`` → ``$.a[0]``."""
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps)


def get(doc: Any, steps: tuple[Step, ...]) -> Any:
    """The value at ``steps`` in ``doc``, or ``MISSING``."""
    value = doc
    for step in steps:
        if isinstance(step, str):
            if type(value) is not dict:
                return MISSING
            value = value.get(step, MISSING)
            if value is MISSING:
                return MISSING
        else:
            if type(value) is not list or step >= len(value):
                return MISSING
            value = value[step]
    return value


def getter(steps: tuple[Step, ...]) -> Callable[[Any], Any]:
    """``get`` specialized for ``steps``: paths of one or two keys (most of them) skip the loop, a call
    saved per lookup on the per-record path. Same answers as ``get``."""
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]
        return lambda doc: doc.get(key, MISSING) if type(doc) is dict else MISSING
    if len(steps) == 2 and isinstance(steps[0], str) and isinstance(steps[1], str):
        first, second = steps

        def two_keys(doc: Any) -> Any:
            inner = doc.get(first) if type(doc) is dict else None
            return inner.get(second, MISSING) if type(inner) is dict else MISSING

        return two_keys
    return lambda doc: get(doc, steps)
