"""A webhooks-only process collects its young generation less often (measured in docs/benchmarks.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from connector.webhook.listener import WEBHOOKS_GC_THRESHOLD, tune_gc_for_webhooks


@pytest.fixture
def restored_gc_thresholds() -> Iterator[tuple[int, int, int]]:
    """The interpreter's thresholds before the test, put back after it."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc_thresholds")
def test_webhooks_gc_tuning_raises_only_the_young_generations_threshold() -> None:
    """Generation 0 is collected after 10,000 allocations, not 700; older generations keep their defaults."""
    gc.set_threshold(700, 10, 10)
    tune_gc_for_webhooks()
    assert gc.get_threshold() == WEBHOOKS_GC_THRESHOLD == (10_000, 10, 10)
