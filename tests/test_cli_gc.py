"""Each service role gets its collection thresholds from one place (measured in docs/benchmarks.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from connector.cli import SINK_GC_THRESHOLD, tune_gc
from connector.webhook.listener import WEBHOOKS_GC_THRESHOLD


@pytest.fixture
def restored_gc_thresholds() -> Iterator[None]:
    """The interpreter's thresholds before the test, put back after it."""
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc_thresholds")
@pytest.mark.parametrize("role", ["sink", "run"])
def test_a_role_with_a_backlog_collects_generation_1_less_often(role: str) -> None:
    """Generation 1 after 100 young collections instead of 10; generations 0 and 2 keep the defaults."""
    gc.set_threshold(700, 10, 10)
    tune_gc(role)
    assert gc.get_threshold() == SINK_GC_THRESHOLD == (700, 100, 10)


@pytest.mark.usefixtures("restored_gc_thresholds")
def test_the_webhooks_role_keeps_its_own_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc("webhooks")
    assert gc.get_threshold() == WEBHOOKS_GC_THRESHOLD
