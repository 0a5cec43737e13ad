"""Every Prometheus metric of the service, declared once.

Components receive a ``Metrics`` instance (tests build one on a fresh ``CollectorRegistry``). Labels are
small closed sets — workspace names from the config, regions, reasons from a fixed vocabulary, status
classes — never ids, emails or raw error text.

Accounting identity for the sink (per topic, summed over workspaces):
    connector_records_consumed_total
      = connector_records_completed_total{outcome="delivered"|"dead_lettered"|"filtered"|"skipped"} + in flight
A record stopped by CONNECTOR_ERRORS_TOLERANCE=none stays in flight (it is never completed).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from connector import __version__

# `_created` series double every counter's cardinality and no dashboard or alert uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Fine below 1 s, where a healthy sink's delay lies (the linger, 0.2 s, plus fetch and HTTP): with only
# 0.1/0.25/0.5 a p99 near the 500 ms objective (issue #17) was interpolated across a 250 ms wide bucket.
DELAY_BUCKETS = (
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
OPS_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
BYTES_BUCKETS = (1_000, 5_000, 10_000, 50_000, 100_000, 200_000, 300_000, 400_000, 500_000)


def status_class(status: int | None) -> str:
    """'2xx'…'5xx', or 'network' when no response came back."""
    return "network" if status is None else f"{status // 100}xx"


def retry_cause(status: int | None) -> str:
    """The ``cause`` label of ``connector_retries_total``: '429' apart (rate limited), else ``status_class``."""
    return "429" if status == 429 else status_class(status)


class Metrics:
    """All metrics on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        self.build_info = Info("connector_build", "Version of the running connector.", registry=r)
        self.build_info.info({"version": __version__})
        self.workspace_info = Gauge(
            "connector_workspace_info",
            "1 per configured workspace, with its pinned region.",
            ["workspace", "region"],
            registry=r,
        )
        self.workspace_ready = Gauge(
            "connector_workspace_ready",
            "1 while the workspace's credentials are accepted, 0 while it is stopped.",
            ["workspace"],
            registry=r,
        )
        self.ready = Gauge("connector_ready", "1 while /readyz answers 200.", ["component"], registry=r)

        # --- sink: Kafka side ----------------------------------------------------------------------
        self.records_consumed = Counter(
            "connector_records_consumed_total", "Records fetched from the input topics.", ["topic"], registry=r
        )
        self.records_completed = Counter(
            "connector_records_completed_total",
            "Input records fully resolved, by outcome (delivered, dead_lettered, filtered, skipped).",
            ["topic", "outcome"],
            registry=r,
        )
        self.records_skipped = Counter(
            "connector_records_skipped_total",
            "Records committed without delivery on purpose, by reason (tombstone: a null value).",
            ["topic", "reason"],
            registry=r,
        )
        self.records_halted = Counter(
            "connector_records_halted_total",
            "Records that stopped their partition instead of being dead-lettered (CONNECTOR_ERRORS_TOLERANCE=none), "
            "by reason.",
            ["topic", "reason"],
            registry=r,
        )
        self.partitions_halted = Gauge(
            "connector_partitions_halted",
            "Assigned partitions stopped at a rejected record (CONNECTOR_ERRORS_TOLERANCE=none).",
            registry=r,
        )
        self.records_in_flight = Gauge(
            "connector_records_in_flight", "Records fetched and not yet resolved.", registry=r
        )
        self.operations_buffered = Gauge(
            "connector_operations_buffered", "Operations waiting in batches or in flight.", ["workspace"], registry=r
        )
        self.consumer_lag = Gauge(
            "connector_consumer_lag_records",
            "End offset minus committed offset, per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.commit_duration = Histogram(
            "connector_commit_duration_seconds", "Time to commit offsets.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.commits = Counter(
            "connector_commits_total", "Offset commits by outcome (ok, failed).", ["outcome"], registry=r
        )
        self.partitions_paused = Gauge(
            "connector_partitions_paused", "Assigned partitions paused for backpressure.", registry=r
        )
        self.partitions_assigned = Gauge(
            "connector_partitions_assigned", "Partitions assigned to this replica.", registry=r
        )
        self.partitions_revoked = Counter(
            "connector_partitions_revoked_total",
            "Partitions taken from this replica by rebalances (a steady rise is a rebalance storm).",
            registry=r,
        )
        self.schema_lookups = Counter(
            "connector_schema_registry_lookups_total",
            "Schema Registry lookups of a writer schema by id, by outcome: ok; schema_not_found, "
            "unsupported_schema_type or undecodable (its records are dead-lettered); unavailable (retried, "
            "its records wait).",
            ["outcome"],
            registry=r,
        )
        self.schema_fetches = Gauge(
            "connector_schema_fetches_in_progress",
            "Schema ids being fetched: records needing them, and the rest of their partitions, wait.",
            registry=r,
        )
        self.end_to_end_delay = Histogram(
            "connector_end_to_end_delay_seconds",
            "From the Kafka record timestamp to Customer.io's acceptance, observed once per accepted batch for its "
            "first (oldest) record: quantiles are over batches, each the longest wait in its batch.",
            ["workspace"],
            buckets=DELAY_BUCKETS,
            registry=r,
        )

        # --- sink: operations ----------------------------------------------------------------------
        self.operations = Counter(
            "connector_operations_total",
            "Customer.io operations by final outcome (delivered, dead_lettered).",
            ["workspace", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "connector_dead_letters_total",
            "Records written to the dead-letter topic, by reason.",
            ["workspace", "reason"],
            registry=r,
        )
        self.dead_letters_reduced = Counter(
            "connector_dead_letters_reduced_total",
            "Dead-letter copies reduced to fit the topic (value_truncated: value cut; minimal: dead-letter "
            "headers only).",
            ["form"],
            registry=r,
        )
        self.dead_letters_unwritable = Counter(
            "connector_dead_letters_unwritable_total",
            "Records committed WITHOUT a dead-letter copy: even the smallest copy was refused as too large.",
            ["workspace", "reason"],
            registry=r,
        )
        self.filtered = Counter(
            "connector_filtered_total", "Messages filtered (not sent), by reason.", ["workspace", "reason"], registry=r
        )

        # --- sink: HTTP ----------------------------------------------------------------------------
        self.requests = Counter(
            "connector_requests_total",
            "Requests to Customer.io by endpoint and status class (2xx…5xx, network).",
            ["workspace", "region", "endpoint", "status_class"],
            registry=r,
        )
        self.responses_by_status = Counter(
            "connector_responses_total",
            "Requests to Customer.io by exact status code (429 included).",
            ["workspace", "endpoint", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "connector_request_duration_seconds",
            "Duration of requests to Customer.io.",
            ["workspace", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_operations = Histogram(
            "connector_batch_operations", "Operations per /api/v2/batch request.", buckets=OPS_BUCKETS, registry=r
        )
        self.batch_bytes = Histogram(
            "connector_batch_bytes", "Body size of /api/v2/batch requests.", buckets=BYTES_BUCKETS, registry=r
        )
        self.retries = Counter(
            "connector_retries_total", "Requests retried, by cause.", ["workspace", "cause"], registry=r
        )
        self.in_flight_requests = Gauge(
            "connector_in_flight_requests", "Requests awaiting a response.", ["workspace"], registry=r
        )
        self.concurrency_limit = Gauge(
            "connector_concurrency_limit", "Current adaptive in-flight request limit.", ["workspace"], registry=r
        )
        self.rate_limit_waits = Counter(
            "connector_rate_limit_waits_total",
            "Requests that waited for the client-side rate limiter.",
            ["workspace", "api"],
            registry=r,
        )
        self.rate_limit_wait_seconds = Counter(
            "connector_rate_limit_wait_seconds_total",
            "Time spent waiting for the client-side rate limiter.",
            ["workspace", "api"],
            registry=r,
        )
        self.auth_failures = Counter(
            "connector_auth_failures_total",
            "Responses rejecting the workspace's credentials (401/403).",
            ["workspace", "api"],
            registry=r,
        )
        self.transactional_sends = Counter(
            "connector_transactional_sends_total",
            "Transactional messages sent through the App API, by outcome.",
            ["workspace", "outcome"],
            registry=r,
        )

        # --- webhooks ------------------------------------------------------------------------------
        # workspace: the workspace whose path received the request, "" for the single-workspace path and
        # for paths naming no configured workspace (bounded: only configured names ever appear).
        self.webhook_requests = Counter(
            "connector_webhook_requests_total",
            "Webhook requests by outcome (accepted, duplicate, bad_signature, bad_request, too_large, "
            "unavailable, closing, busy, timeout, aborted, unknown_workspace) and workspace.",
            ["outcome", "workspace"],
            registry=r,
        )
        self.webhook_events = Counter(
            "connector_webhook_events_total",
            "Webhook events produced to Kafka, by object type and metric (unknown ones as 'other') and workspace.",
            ["object_type", "metric", "workspace"],
            registry=r,
        )
        self.webhook_signature_failures = Counter(
            "connector_webhook_signature_failures_total",
            "Webhook requests whose signature failed, by reason and workspace.",
            ["reason", "workspace"],
            registry=r,
        )
        self.webhook_produce_duration = Histogram(
            "connector_webhook_produce_duration_seconds",
            "Time from produce to broker acknowledgement for webhook events, by workspace.",
            ["workspace"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.webhook_duplicates = Counter(
            "connector_webhook_duplicates_total",
            "Webhook retries acknowledged without producing again, by workspace.",
            ["workspace"],
            registry=r,
        )
