"""Rates for `cio-connector top` from two scrapes of a real Metrics registry's exposition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest

from connector.metrics import Metrics
from connector.top.scrape import Snapshot, parse, rates, values


def scrape(metrics: Metrics, at: float) -> Snapshot:
    return parse(generate_latest(metrics.registry).decode(), at)


def test_rates_are_the_increase_per_second_summed_over_hidden_labels() -> None:
    metrics = Metrics()
    metrics.requests.labels("demo", "us", "batch", "2xx").inc(10)
    before = scrape(metrics, at=100.0)
    metrics.requests.labels("demo", "us", "batch", "2xx").inc(30)
    metrics.requests.labels("demo", "us", "batch", "5xx").inc(10)  # a series new since the first scrape
    metrics.requests.labels("other", "eu", "batch", "2xx").inc(4)
    after = scrape(metrics, at=102.0)

    assert rates(before, after, "connector_requests_total", ("workspace",)) == {("demo",): 20.0, ("other",): 2.0}
    assert rates(before, after, "connector_requests_total", ("workspace",), {"status_class": "5xx"}) == {("demo",): 5.0}


def test_a_reset_counter_counts_its_new_value() -> None:
    """The instance restarted between scrapes: the rate is not negative."""
    old, new = Metrics(), Metrics()
    old.dead_letters.labels("demo", "not_json").inc(500)
    new.dead_letters.labels("demo", "not_json").inc(6)
    found = rates(scrape(old, 0.0), scrape(new, 3.0), "connector_dead_letters_total", ("reason",))
    assert found == {("not_json",): 2.0}


def test_no_rate_without_time_between_scrapes() -> None:
    metrics = Metrics()
    metrics.records_consumed.labels("t").inc()
    snapshot = scrape(metrics, 5.0)
    assert rates(snapshot, snapshot, "connector_records_consumed_total", ("topic",)) == {}


def test_gauges_are_read_per_label() -> None:
    metrics = Metrics()
    metrics.consumer_lag.labels("events", "0").set(7)
    metrics.consumer_lag.labels("events", "1").set(5)
    snapshot = scrape(metrics, 0.0)
    assert values(snapshot, "connector_consumer_lag_records", ("topic", "partition")) == {
        ("events", "0"): 7.0,
        ("events", "1"): 5.0,
    }
    assert values(snapshot, "connector_consumer_lag_records", ()) == {(): 12.0}
    assert values(snapshot, "connector_no_such_metric", ("x",)) == {}


@pytest.mark.parametrize("text", ["<html>not found</html>", 'metric{label="x" 1\n'])
def test_text_that_is_not_an_exposition_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not Prometheus metrics"):
        parse(text, 0.0)


@given(
    first=st.lists(st.integers(0, 10**9), min_size=3, max_size=3),
    increase=st.lists(st.integers(0, 10**9), min_size=3, max_size=3),
    seconds=st.floats(0.01, 3600),
)
def test_the_rate_of_a_sum_is_the_sum_of_the_rates(first: list[int], increase: list[int], seconds: float) -> None:
    metrics = Metrics()
    for topic, value in zip("abc", first, strict=True):
        metrics.records_consumed.labels(topic).inc(value)
    before = scrape(metrics, 0.0)
    for topic, value in zip("abc", increase, strict=True):
        metrics.records_consumed.labels(topic).inc(value)
    after = scrape(metrics, seconds)
    per_topic = rates(before, after, "connector_records_consumed_total", ("topic",))
    total = rates(before, after, "connector_records_consumed_total", ())
    assert per_topic == pytest.approx({(t,): v / seconds for t, v in zip("abc", increase, strict=True)})
    assert total[()] == pytest.approx(sum(increase) / seconds)
