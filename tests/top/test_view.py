"""What `cio-connector top` draws from two scrapes and the /readyz report."""

from __future__ import annotations

from prometheus_client import generate_latest

from connector.metrics import Metrics
from connector.top.scrape import Snapshot, parse
from connector.top.view import MAX_LAG_ROWS, PENDING, Frame, render

URL = "http://127.0.0.1:9464"
READYZ = {
    "ready": False,
    "checks": {
        "workspace:demo": {"ready": True, "detail": "ok"},
        "workspace:other": {"ready": False, "detail": "Track API key rejected (401)"},
    },
}


def scrape(metrics: Metrics, at: float) -> Snapshot:
    return parse(generate_latest(metrics.registry).decode(), at)


def row(lines: list[str], first: str) -> list[str]:
    """The cells of the row whose first cell is ``first`` (cells are separated by 2+ spaces)."""
    for line in lines:
        cells = [cell for cell in line.strip().split("  ") if cell]
        if cells and cells[0].strip() == first:
            return [cell.strip() for cell in cells]
    raise AssertionError(f"no row {first!r} in:\n" + "\n".join(lines))


def sink_metrics() -> Metrics:
    metrics = Metrics()
    for name, ready in (("demo", 1), ("other", 0)):
        metrics.workspace_ready.labels(name).set(ready)
    metrics.concurrency_limit.labels("demo").set(16)
    metrics.in_flight_requests.labels("demo").set(3)
    return metrics


def test_a_sink_instance_shows_rates_per_topic_and_workspace_readiness_lag_and_dead_letters() -> None:
    metrics = sink_metrics()
    before = scrape(metrics, 10.0)
    metrics.records_consumed.labels("events").inc(200)
    metrics.records_completed.labels("events", "delivered").inc(180)
    metrics.records_completed.labels("events", "dead_lettered").inc(20)
    metrics.operations.labels("demo", "delivered").inc(360)
    metrics.requests.labels("demo", "us", "batch", "2xx").inc(4)
    metrics.retries.labels("demo", "429").inc(2)
    metrics.responses_by_status.labels("demo", "batch", "429").inc(2)
    metrics.dead_letters.labels("none", "not_json").inc(20)
    metrics.consumer_lag.labels("events", "0").set(1500)
    metrics.consumer_lag.labels("events", "1").set(0)
    lines = render(Frame(URL, 2.0, scrape(metrics, 12.0), before, READYZ))

    assert row(lines, "events") == ["events", "100", "90", "10", "0", "0"]
    assert row(lines, "demo") == ["demo", "yes", "180", "0", "2", "3/16", "1", "1", "0"]
    assert row(lines, "other")[:2] == ["other", "NO"]
    assert row(lines, "workspace:other") == ["workspace:other", "NOT READY", "Track API key rejected (401)"]
    assert row(lines, "events-0") == ["events-0", "1500"]
    assert row(lines, "none") == ["none", "not_json", "10", "20"]
    assert "WEBHOOKS" not in "\n".join(lines)  # a sink-only instance has no webhook section


def test_the_first_frame_shows_totals_and_marks_rates_pending() -> None:
    metrics = sink_metrics()
    metrics.records_consumed.labels("events").inc(5)
    lines = render(Frame(URL, 2.0, scrape(metrics, 0.0), None, None))
    assert row(lines, "events")[1] == PENDING
    assert any("/readyz did not answer" in line for line in lines)


def test_webhook_rates_by_outcome() -> None:
    metrics = Metrics()
    before = scrape(metrics, 0.0)
    metrics.webhook_requests.labels("accepted", "").inc(40)
    metrics.webhook_requests.labels("bad_signature", "").inc(4)
    metrics.webhook_events.labels("email", "opened", "").inc(40)
    lines = render(Frame(URL, 1.0, scrape(metrics, 4.0), before, {"ready": True, "checks": {}}))
    assert row(lines, "accepted") == ["accepted", "10", "40"]
    assert row(lines, "bad_signature") == ["bad_signature", "1", "4"]
    assert any("events produced/s: 10" in line for line in lines)


def test_lag_shows_the_largest_partitions_and_sums_the_rest() -> None:
    metrics = Metrics()
    for partition in range(MAX_LAG_ROWS + 3):
        metrics.consumer_lag.labels("events", str(partition)).set(partition)
    lines = render(Frame(URL, 1.0, scrape(metrics, 0.0)))
    assert row(lines, f"events-{MAX_LAG_ROWS + 2}")[1] == str(MAX_LAG_ROWS + 2)
    assert row(lines, "… 3 more") == ["… 3 more", "3"]  # partitions 0, 1 and 2


def test_a_failed_scrape_is_said_above_the_last_good_data() -> None:
    lines = render(Frame(URL, 1.0, scrape(Metrics(), 0.0), problem="cannot reach http://x/metrics: refused"))
    assert lines[1].startswith("! cannot reach http://x/metrics: refused")


def test_webhook_rates_per_workspace_path_tell_a_failing_workspace_apart() -> None:
    metrics = Metrics()
    before = scrape(metrics, 0.0)
    metrics.webhook_requests.labels("accepted", "eu").inc(400)
    metrics.webhook_requests.labels("bad_signature", "us").inc(8)
    metrics.webhook_requests.labels("accepted", "").inc(4)
    lines = render(Frame(URL, 1.0, scrape(metrics, 4.0), before, {"ready": True, "checks": {}}))
    assert row(lines, "eu") == ["eu", "accepted", "100", "400"]
    assert row(lines, "us") == ["us", "bad_signature", "2", "8"]
    assert row(lines, "(single path)") == ["(single path)", "accepted", "1", "4"]
