"""Samples of one ``/metrics`` scrape, and rates from two (pure: text and times in, numbers out).

A rate is the increase of a counter between two scrapes divided by the seconds between them. A counter
that went down was reset (the instance restarted): its increase is then its new value, as Prometheus'
``rate()`` counts it. Series are summed over the labels a view does not show (``by``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
Key = tuple[str, ...]  # the values of the ``by`` labels, in order


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every sample of one scrape, by sample name then labels, and when it was taken (monotonic seconds)."""

    at: float
    samples: Mapping[str, Mapping[Labels, float]]

    def series(self, name: str) -> Mapping[Labels, float]:
        """The samples named ``name`` (empty when the instance exports none)."""
        return self.samples.get(name, {})


def parse(text: str, at: float) -> Snapshot:
    """A scrape's Prometheus text exposition as a Snapshot; ValueError if it is not one."""
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name][tuple(sorted(sample.labels.items()))] = float(sample.value)
    except (ValueError, TypeError, IndexError) as exc:  # the parser's errors on text that is not an exposition
        raise ValueError(f"not Prometheus metrics ({type(exc).__name__})") from None
    return Snapshot(at, dict(samples))


def _key(labels: Labels, by: tuple[str, ...]) -> Key:
    named = dict(labels)
    return tuple(named.get(label, "") for label in by)


def _matches(labels: Labels, where: Mapping[str, str]) -> bool:
    named = dict(labels)
    return all(named.get(k) == v for k, v in where.items())


def values(
    snapshot: Snapshot, name: str, by: tuple[str, ...], where: Mapping[str, str] | None = None
) -> dict[Key, float]:
    """Current values of ``name`` summed per ``by`` labels (gauges, or counters' totals)."""
    out: dict[Key, float] = defaultdict(float)
    for labels, value in snapshot.series(name).items():
        if where is None or _matches(labels, where):
            out[_key(labels, by)] += value
    return dict(out)


def rates(
    before: Snapshot, after: Snapshot, name: str, by: tuple[str, ...], where: Mapping[str, str] | None = None
) -> dict[Key, float]:
    """Per-second increase of counter ``name`` between two scrapes, summed per ``by`` labels.

    Series new in ``after`` count from zero; a reset series counts its new value. Empty when no time passed.
    """
    seconds = after.at - before.at
    if seconds <= 0:
        return {}
    old = before.series(name)
    out: dict[Key, float] = defaultdict(float)
    for labels, value in after.series(name).items():
        if where is not None and not _matches(labels, where):
            continue
        previous = old.get(labels, 0.0)
        increase = value - previous if value >= previous else value
        out[_key(labels, by)] += increase / seconds
    return dict(out)
