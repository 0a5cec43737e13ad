"""Every setting, declared once: the frozen section dataclasses and their fields.

Each scalar field is declared with ``setting(default, env, help, ...)``: its environment variable,
default, description and bounds. Field order is documentation order: the README table is generated from
these declarations (``python -m connector.config --markdown``), and a test keeps them in step.
Reading the YAML file and the environment into these types is ``connector.config.loading``.

Secrets are ``Secret`` values whose repr and str never show the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from connector.sink.mapping.shapes import RecordShape

Region = Literal["us", "eu", "auto"]
OversizePolicy = Literal["dead_letter", "truncate"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["auto", "json", "text"]
WebhookEventNames = Literal["rudderstack", "customerio"]
IdentifyTimestamp = Literal["event", "now", "omit"]
EventLoopChoice = Literal["auto", "asyncio", "uvloop"]  # connector/event_loop.py
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM", "GSSAPI"]
MSK_EXTRA_MODULE = "aws_msk_iam_sasl_signer"

DEFAULT_TRACK_URL_US = "https://track.customer.io"
DEFAULT_TRACK_URL_EU = "https://track-eu.customer.io"
DEFAULT_APP_URL_US = "https://api.customer.io"
DEFAULT_APP_URL_EU = "https://api-eu.customer.io"


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that sends it (an Authorization header, an HMAC key)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def setting(default: Any, env: str | None, help: str, **rules: Any) -> Any:
    """Declare a setting: its default, environment variable, description and validation rules.

    Rules: ``ge``/``gt``/``le`` for numbers, ``choices`` is implied by ``Literal`` annotations.
    """
    metadata = {"env": env, "help": help, **rules}
    if isinstance(default, list | dict):
        factory = default.copy
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------------------------------
# Sections. Field order is documentation order.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach the Kafka cluster."""

    bootstrap_servers: str = setting("localhost:9092", "KAFKA_BOOTSTRAP_SERVERS", "Comma-separated brokers.")
    client_id: str = setting("cio-connector", "KAFKA_CLIENT_ID", "Client id shown in broker logs and quotas.")
    isolation_level: Literal["read_committed", "read_uncommitted"] = setting(
        "read_committed",
        "KAFKA_ISOLATION_LEVEL",
        "read_committed skips records of aborted transactions; read_uncommitted delivers them too.",
    )
    metadata_max_age_seconds: float = setting(
        300.0,
        "KAFKA_METADATA_MAX_AGE_SECONDS",
        "Cluster metadata refresh interval: topics created later that match CONNECTOR_INPUT_TOPIC_PATTERN are "
        "consumed within this.",
        gt=0,
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = setting(
        "PLAINTEXT", "KAFKA_SECURITY_PROTOCOL", "Kafka security protocol."
    )
    sasl_mechanism: SaslMechanism | None = setting(
        None,
        "KAFKA_SASL_MECHANISM",
        "SASL mechanism when the protocol is SASL_*: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (user name and "
        "password), OAUTHBEARER (OIDC client credentials) or AWS_MSK_IAM (extra `msk`). GSSAPI is refused.",
    )
    sasl_username: str | None = setting(None, "KAFKA_SASL_USERNAME", "SASL user name.")
    sasl_password: Secret | None = setting(None, "KAFKA_SASL_PASSWORD", "SASL password (secret).")
    sasl_oauth_token_url: str | None = setting(
        None, "KAFKA_SASL_OAUTH_TOKEN_URL", "OAUTHBEARER: the OIDC token endpoint (client-credentials grant)."
    )
    sasl_oauth_client_id: str | None = setting(None, "KAFKA_SASL_OAUTH_CLIENT_ID", "OAUTHBEARER: OAuth client id.")
    sasl_oauth_client_secret: Secret | None = setting(
        None, "KAFKA_SASL_OAUTH_CLIENT_SECRET", "OAUTHBEARER: OAuth client secret (secret)."
    )
    sasl_oauth_scope: str | None = setting(
        None, "KAFKA_SASL_OAUTH_SCOPE", "OAUTHBEARER: scope requested with the token (space-separated)."
    )
    sasl_oauth_extensions: tuple[str, ...] = setting(
        (),
        "KAFKA_SASL_OAUTH_EXTENSIONS",
        "OAUTHBEARER: SASL extensions sent with the token, key=value,… (Confluent Cloud: "
        "logicalCluster=lkc-…,identityPoolId=pool-…).",
    )
    aws_region: str | None = setting(
        None, "AWS_REGION", "AWS_MSK_IAM: the cluster's AWS region (AWS_DEFAULT_REGION when unset)."
    )
    ssl_cafile: str | None = setting(None, "KAFKA_SSL_CAFILE", "CA bundle (PEM) to verify the brokers.")
    ssl_certfile: str | None = setting(None, "KAFKA_SSL_CERTFILE", "Client certificate (PEM) for mTLS.")
    ssl_keyfile: str | None = setting(None, "KAFKA_SSL_KEYFILE", "Client private key (PEM) for mTLS.")


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """Customer.io base URLs per region; override them for a proxy or the local fake."""

    track_url_us: str = setting(DEFAULT_TRACK_URL_US, "CIO_TRACK_URL_US", "Track API base URL, US region.")
    track_url_eu: str = setting(DEFAULT_TRACK_URL_EU, "CIO_TRACK_URL_EU", "Track API base URL, EU region.")
    app_url_us: str = setting(DEFAULT_APP_URL_US, "CIO_APP_URL_US", "App API base URL, US region.")
    app_url_eu: str = setting(DEFAULT_APP_URL_EU, "CIO_APP_URL_EU", "App API base URL, EU region.")

    def track_url(self, region: str) -> str:
        """Track API base URL of a pinned region (``us`` or ``eu``)."""
        return self.track_url_eu if region == "eu" else self.track_url_us

    def app_url(self, region: str) -> str:
        """App API base URL of a pinned region (``us`` or ``eu``)."""
        return self.app_url_eu if region == "eu" else self.app_url_us


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """Kafka → Customer.io delivery."""

    input_topics: tuple[str, ...] = setting(
        (), "CONNECTOR_INPUT_TOPICS", "Comma-separated topics of Segment-spec events to deliver."
    )
    input_topic_pattern: str | None = setting(
        None,
        "CONNECTOR_INPUT_TOPIC_PATTERN",
        "Consume every topic whose whole name matches this regular expression (instead of "
        "CONNECTOR_INPUT_TOPICS), except the dead-letter, webhook and transactional delivery topics.",
    )
    tombstones: Literal["skip", "dead_letter"] = setting(
        "skip",
        "CONNECTOR_TOMBSTONES",
        "Records with a null value (tombstones): skip (committed, counted) or dead_letter them as empty_record.",
    )
    errors_tolerance: Literal["all", "none"] = setting(
        "all",
        "CONNECTOR_ERRORS_TOLERANCE",
        "all: rejected records go to the dead-letter topic; none: a rejected record stops its partition "
        "(not committed past it, /readyz names it).",
    )
    group_id: str = setting("cio-connector", "CONNECTOR_GROUP_ID", "Kafka consumer group of the sink.")
    start_from: str = setting(
        "latest",
        "CONNECTOR_START_FROM",
        "Where a new consumer group (no committed offset at all) starts: latest, earliest, or an ISO-8601 time "
        "(2025-05-01T00:00:00Z: each partition's first record from then on). A group with committed offsets "
        "resumes from them, and starts partitions new to it at earliest.",
    )
    dlq_topic: str = setting(
        "cio-connector-dlq", "CONNECTOR_DLQ_TOPIC", "Dead-letter topic: rejected records with their reason."
    )
    dlq_max_message_bytes: int | None = setting(
        None,
        "CONNECTOR_DLQ_MAX_MESSAGE_BYTES",
        "Largest dead-letter record (bytes); a larger copy keeps a truncated value. Unset: the dead-letter "
        "topic's max.message.bytes, read at start-up (1048576 when it cannot be read).",
        ge=1_024,
    )
    dlq_connect_headers: bool = setting(
        False,
        "CONNECTOR_DLQ_CONNECT_HEADERS",
        "Dead letters also carry Kafka Connect's `__connect.errors.*` headers (source topic, partition, offset, "
        "stage, message), for DLQ tooling built for Kafka Connect.",
    )
    workspace_header: str = setting(
        "",
        "CONNECTOR_WORKSPACE_HEADER",
        "Kafka header that may name the target workspace (off when empty); each topic's "
        "header_workspaces in the config file lists the workspaces it may name.",
    )
    batch_max_operations: int = setting(
        500, "CONNECTOR_BATCH_MAX_OPERATIONS", "Flush a batch at this many operations.", ge=1, le=10_000
    )
    batch_max_bytes: int = setting(
        450_000,
        "CONNECTOR_BATCH_MAX_BYTES",
        "Flush before the serialized /api/v2/batch body would exceed this (Customer.io limit 500 KB).",
        ge=33_000,
        le=499_000,
    )
    linger_seconds: float = setting(
        0.2, "CONNECTOR_LINGER_SECONDS", "Flush a partial batch after this long.", gt=0, le=60
    )
    max_operation_bytes: int = setting(
        32_000, "CONNECTOR_MAX_OPERATION_BYTES", "Largest serialized operation sent.", ge=1_000, le=32_000
    )
    lanes_per_workspace: int = setting(
        16,
        "CONNECTOR_LANES",
        "Ordering lanes per workspace: a person's operations go through one lane, in order.",
        ge=1,
        le=256,
    )
    max_in_flight: int = setting(
        16,
        "CONNECTOR_MAX_IN_FLIGHT",
        "Upper bound of the adaptive (AIMD) in-flight request limit per workspace.",
        ge=1,
        le=256,
    )
    # 500: Customer.io's soft Track limit is 1,000 req/s, "not strictly enforced"; each replica limits itself,
    # so two replicas stay within it, while one replica's ceiling (500 × ~320 operations) is far above what a
    # process delivers. A lower real limit costs no data: 429 → AIMD cut + a Retry-After hold for the workspace.
    rate_limit_per_second: float = setting(
        500.0,
        "CONNECTOR_RATE_LIMIT",
        "Track API requests per second per workspace, per replica. Throughput per workspace = rate × operations "
        "per request (up to CONNECTOR_BATCH_MAX_OPERATIONS): 500 × ~320 ≈ 160,000 operations/s. Customer.io's "
        "soft limit is 1,000 req/s per workspace, summed over replicas; 429s are retried (Retry-After honoured).",
        gt=0,
    )
    request_timeout_seconds: float = setting(
        10.0, "CONNECTOR_REQUEST_TIMEOUT_SECONDS", "Timeout of every HTTP request.", gt=0
    )
    retry_initial_seconds: float = setting(
        0.2, "CONNECTOR_RETRY_INITIAL_SECONDS", "First retry backoff ceiling (full jitter).", ge=0
    )
    retry_max_seconds: float = setting(30.0, "CONNECTOR_RETRY_MAX_SECONDS", "Largest backoff between retries.", ge=0)
    retry_after_cap_seconds: float = setting(
        120.0, "CONNECTOR_RETRY_AFTER_CAP_SECONDS", "Largest Retry-After honoured.", ge=0
    )
    auth_reprobe_seconds: float = setting(
        30.0, "CONNECTOR_AUTH_REPROBE_SECONDS", "How often a workspace with rejected keys is re-checked.", gt=0
    )
    max_buffered_operations: int = setting(
        10_000,
        "CONNECTOR_MAX_BUFFERED_OPERATIONS",
        "Operations waiting to be delivered, for the whole process, shared by the workspaces (memory bound).",
        ge=100,
    )
    max_buffered_bytes: int = setting(
        16_777_216,
        "CONNECTOR_MAX_BUFFERED_BYTES",
        "Serialized bytes of the operations waiting to be delivered, for the whole process (memory bound).",
        ge=1_048_576,
    )
    max_poll_records: int = setting(2_000, "CONNECTOR_MAX_POLL_RECORDS", "Records taken from Kafka per fetch.", ge=1)
    fetch_max_bytes: int = setting(
        8_388_608, "CONNECTOR_FETCH_MAX_BYTES", "Bytes fetched from Kafka per request.", ge=1_048_576
    )
    fetch_budget_bytes: int = setting(
        16_777_216,
        "CONNECTOR_FETCH_BUDGET_BYTES",
        "Kafka read-ahead for the whole process, divided among the partitions assigned (memory bound; "
        "each partition fetches 1–2 MiB).",
        ge=1_048_576,
    )
    max_poll_interval_seconds: float = setting(
        300.0,
        "CONNECTOR_MAX_POLL_INTERVAL_SECONDS",
        "Kafka's max.poll.interval: a member that does not poll for this long is put out of the group.",
        ge=1,
    )
    commit_interval_seconds: float = setting(
        1.0, "CONNECTOR_COMMIT_INTERVAL_SECONDS", "How often resolved offsets are committed.", gt=0
    )
    shutdown_timeout_seconds: float = setting(
        20.0, "CONNECTOR_SHUTDOWN_TIMEOUT_SECONDS", "Deadline to flush and commit on SIGTERM.", gt=0
    )


@dataclass(frozen=True, slots=True)
class MappingSettings:
    """How Segment-spec messages become Customer.io operations."""

    convert_iso_timestamps: bool = setting(
        True, "CONNECTOR_CONVERT_ISO_TIMESTAMPS", "ISO-8601 strings in traits/properties → Unix seconds."
    )
    omit_empty_values: bool = setting(
        True, "CONNECTOR_OMIT_EMPTY_VALUES", 'Drop null and "" attributes so existing values are kept.'
    )
    attribute_prefix: str = setting("", "CONNECTOR_ATTRIBUTE_PREFIX", "Prefix for custom attribute names (e.g. app_).")
    default_object_type_id: str = setting(
        "1", "CONNECTOR_DEFAULT_OBJECT_TYPE_ID", "object_type_id of group calls without traits.objectTypeId."
    )
    oversize_policy: OversizePolicy = setting(
        "dead_letter",
        "CONNECTOR_OVERSIZE_POLICY",
        "What to do with values over Customer.io's limits: dead_letter the record or truncate.",
    )
    device_add_events: tuple[str, ...] = setting(
        ("Application Installed", "Application Opened", "Device Created or Updated"),
        "CONNECTOR_DEVICE_ADD_EVENTS",
        "Track events that register context.device.token (else properties.device.token).",
    )
    device_delete_events: tuple[str, ...] = setting(
        ("Application Uninstalled", "Device Deleted"),
        "CONNECTOR_DEVICE_DELETE_EVENTS",
        "Track events that remove context.device.token (else properties.device.token).",
    )
    delete_events: tuple[str, ...] = setting(
        ("User Deleted",), "CONNECTOR_DELETE_EVENTS", "Track events that delete the person."
    )
    object_delete_events: tuple[str, ...] = setting(
        ("Object Deleted",),
        "CONNECTOR_OBJECT_DELETE_EVENTS",
        "Track events that delete the object properties.objectId (object delete).",
    )
    relationship_delete_events: tuple[str, ...] = setting(
        ("Relationship Deleted",),
        "CONNECTOR_RELATIONSHIP_DELETE_EVENTS",
        "Track events that remove the person's relationship to properties.objectId.",
    )
    suppress_events: tuple[str, ...] = setting(
        ("User Suppressed",), "CONNECTOR_SUPPRESS_EVENTS", "Track events that suppress the person."
    )
    unsuppress_events: tuple[str, ...] = setting(
        ("User Unsuppressed",), "CONNECTOR_UNSUPPRESS_EVENTS", "Track events that unsuppress the person."
    )
    segment_add_events: tuple[str, ...] = setting(
        ("Added to Segment",),
        "CONNECTOR_SEGMENT_ADD_EVENTS",
        "Track events that add the person to manual segment properties.segmentId (v1 add_customers).",
    )
    segment_remove_events: tuple[str, ...] = setting(
        ("Removed from Segment",),
        "CONNECTOR_SEGMENT_REMOVE_EVENTS",
        "Track events that remove the person from manual segment properties.segmentId (v1 remove_customers).",
    )
    delivery_metric_events: tuple[str, ...] = setting(
        ("Report Delivery Event",),
        "CONNECTOR_DELIVERY_METRIC_EVENTS",
        "Track events reporting properties.metric of properties.deliveryId (v1 /api/v1/metrics).",
    )
    allow_event_names: tuple[str, ...] = setting(
        (), "CONNECTOR_ALLOW_EVENTS", "If set, only these track event names are sent."
    )
    deny_event_names: tuple[str, ...] = setting((), "CONNECTOR_DENY_EVENTS", "Track event names never sent (filtered).")
    allow_types: tuple[str, ...] = setting(
        (), "CONNECTOR_ALLOW_TYPES", "If set, only these message types are sent (identify, track, …)."
    )
    deny_types: tuple[str, ...] = setting((), "CONNECTOR_DENY_TYPES", "Message types never sent (filtered).")
    identify_timestamp: IdentifyTimestamp = setting(
        "omit",
        "CONNECTOR_IDENTIFY_TIMESTAMP",
        "Timestamp sent on identify: omit (Customer.io's receive time), now (the connector's clock) or event "
        "(the message's own; a late one may be ignored, docs/operations.md).",
    )


# Customer.io retries a webhook for up to 7 days, possibly with its original timestamp (reference §6.2):
# a tighter window would refuse genuine retries. One more day covers clock skew and the 1-hour pauses.
WEBHOOK_MAX_AGE_DEFAULT = 8 * 86_400


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Customer.io reporting webhooks → Kafka."""

    port: int = setting(8080, "CONNECTOR_WEBHOOK_PORT", "Port of the webhook listener.", ge=1, le=65535)
    host: str = setting("0.0.0.0", "CONNECTOR_WEBHOOK_HOST", "Address the webhook listener binds.")
    path: str = setting("/webhooks/customerio", "CONNECTOR_WEBHOOK_PATH", "Route of the webhook listener.")
    topic: str = setting("cio-reporting-events", "CONNECTOR_WEBHOOK_TOPIC", "Topic of the normalized webhook events.")
    signing_keys: tuple[Secret, ...] = setting(
        (),
        "CIO_WEBHOOK_SIGNING_KEYS",
        "Comma-separated signing keys (several during rotation) of CONNECTOR_WEBHOOK_PATH. Each workspace of the "
        "config file with webhook_signing_keys also has its own path, CONNECTOR_WEBHOOK_PATH/{workspace name}.",
    )
    event_names: WebhookEventNames = setting(
        "rudderstack",
        "CONNECTOR_WEBHOOK_EVENT_NAMES",
        "Track event names of the normalized webhooks: rudderstack (Email Dropped, In-App Message Link Clicked…) "
        "or customerio (Customer.io's own Journeys names: Email Suppressed, In-App Clicked…).",
    )
    max_body_bytes: int = setting(1_000_000, "CONNECTOR_WEBHOOK_MAX_BODY_BYTES", "Larger bodies get 413.", ge=1_024)
    read_timeout_seconds: float = setting(
        5.0,
        "CONNECTOR_WEBHOOK_READ_TIMEOUT_SECONDS",
        "A body not fully received within this → 408 and the connection is closed.",
        gt=0,
    )
    max_concurrent_reads: int = setting(
        64,
        "CONNECTOR_WEBHOOK_MAX_CONCURRENT_READS",
        "Bodies read at once (each up to the max body size); beyond it → 503 with Retry-After.",
        ge=1,
    )
    max_timestamp_age_seconds: int | None = setting(
        WEBHOOK_MAX_AGE_DEFAULT,
        "CONNECTOR_WEBHOOK_MAX_AGE_SECONDS",
        "Signatures older or further ahead than this get 401 (replay window): Customer.io's 7-day retry "
        "window plus a day. Empty: off.",
        ge=1,
    )
    produce_timeout_seconds: float = setting(
        3.0, "CONNECTOR_WEBHOOK_PRODUCE_TIMEOUT_SECONDS", "No Kafka ack within this → 503.", gt=0
    )
    dedup_window_seconds: float = setting(
        3600.0, "CONNECTOR_WEBHOOK_DEDUP_SECONDS", "Repeated event_ids within this window are not produced again.", ge=0
    )
    dedup_max_entries: int = setting(
        100_000, "CONNECTOR_WEBHOOK_DEDUP_MAX", "Most event_ids remembered for deduplication.", ge=0
    )


@dataclass(frozen=True, slots=True)
class TransactionalSettings:
    """Records that trigger a transactional email through the App API."""

    topic: str | None = setting(
        None, "CONNECTOR_TRANSACTIONAL_TOPIC", "Topic whose matching track events send transactional email."
    )
    event_name: str = setting(
        "Transactional Email Requested",
        "CONNECTOR_TRANSACTIONAL_EVENT",
        "Track event name that carries transactional_message_id, to and message_data in properties.",
    )
    delivery_topic: str | None = setting(
        None, "CONNECTOR_TRANSACTIONAL_DELIVERY_TOPIC", "If set, returned delivery_ids are produced here."
    )
    rate_limit_per_second: float = setting(
        10.0, "CONNECTOR_APP_RATE_LIMIT", "App API requests per second per workspace.", gt=0
    )


@dataclass(frozen=True, slots=True)
class SchemaRegistrySettings:
    """A Confluent-compatible Schema Registry, for records in its wire format (Avro, JSON Schema)."""

    url: str | None = setting(
        None,
        "CONNECTOR_SCHEMA_REGISTRY_URL",
        "Schema Registry base URL (Confluent REST API). Unset: framed JSON Schema records still decode, "
        "framed Avro records are dead-lettered as undecodable.",
    )
    username: str | None = setting(None, "CONNECTOR_SCHEMA_REGISTRY_USERNAME", "Schema Registry basic-auth user.")
    password: Secret | None = setting(
        None, "CONNECTOR_SCHEMA_REGISTRY_PASSWORD", "Schema Registry basic-auth password (secret)."
    )
    ca_file: str | None = setting(
        None, "CONNECTOR_SCHEMA_REGISTRY_CA_FILE", "CA bundle (PEM) to verify an https registry."
    )
    cache_size: int = setting(
        1000,
        "CONNECTOR_SCHEMA_REGISTRY_CACHE_SIZE",
        "Schemas kept in memory (least recently used evicted); each id is fetched once while cached.",
        ge=1,
    )


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Process-level settings."""

    metrics_port: int = setting(
        9464, "CONNECTOR_METRICS_PORT", "Port of /metrics, /healthz and /readyz.", ge=1, le=65535
    )
    metrics_host: str = setting("0.0.0.0", "CONNECTOR_METRICS_HOST", "Address the metrics server binds.")
    log_level: LogLevel = setting("INFO", "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR.")
    log_format: LogFormat = setting(
        "auto",
        "LOG_FORMAT",
        "json (one object per line, for containers), text (one readable line, for a terminal), or auto: "
        "text when stderr is a terminal, else json.",
    )
    event_loop: EventLoopChoice = setting(
        "auto",
        "CONNECTOR_EVENT_LOOP",
        "Event loop of sink and webhooks: asyncio, uvloop (the [fast] extra), or auto: uvloop when installed, "
        "else asyncio.",
    )


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    """One Customer.io workspace: credentials, region and which records feed it.

    From the environment (``CIO_SITE_ID`` …) comes one workspace named ``default`` fed by every
    input topic; several workspaces are declared in the YAML file under ``workspaces:``.
    """

    name: str = setting("default", None, "Name used in logs, metrics and the routing header.")
    site_id: str = setting("", "CIO_SITE_ID", "Track API site id.")
    api_key: Secret | None = setting(None, "CIO_API_KEY", "Track API key (secret).")
    app_api_key: Secret | None = setting(None, "CIO_APP_API_KEY", "App API key (secret, optional).")
    region: Region = setting("auto", "CIO_REGION", "us, eu, or auto (asked once at start-up).")
    topics: tuple[str, ...] = setting((), None, "Input topics feeding this workspace (empty: all).")
    attribute_prefix: str | None = setting(None, None, "Overrides the mapping attribute prefix.")
    rate_limit_per_second: float | None = setting(None, None, "Overrides CONNECTOR_RATE_LIMIT.", gt=0)
    max_in_flight: int | None = setting(None, None, "Overrides CONNECTOR_MAX_IN_FLIGHT.", ge=1)
    webhook_signing_keys: tuple[Secret, ...] = setting(
        (),
        None,
        "Reporting-webhook signing keys of this workspace (several during rotation): its webhooks are accepted "
        "at CONNECTOR_WEBHOOK_PATH/{name}, signed with one of these keys.",
    )


@dataclass(frozen=True, slots=True)
class RouteOverride:
    """Send records of a topic and/or event name to a workspace, or map them with another prefix."""

    topic: str | None = setting(None, None, "Match records of this topic.")
    event: str | None = setting(None, None, "Match track events of this name.")
    workspace: str | None = setting(None, None, "Send matches to this workspace.")
    attribute_prefix: str | None = setting(None, None, "Map matches with this attribute prefix.")


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """Per-topic settings, from the YAML file's ``topics:`` mapping (topic name → settings)."""

    name: str = setting("", None, "The input topic these settings apply to.")
    header_workspaces: tuple[str, ...] = setting(
        (),
        None,
        "Workspaces this topic's records may name in CONNECTOR_WORKSPACE_HEADER (empty: the header is refused).",
    )
    mapping: RecordShape | None = setting(
        None,
        None,
        "Declarative mapping of this topic's records to Segment messages (docs/inputs.md); compiled at load.",
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the process needs, validated."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    endpoints: EndpointSettings = field(default_factory=EndpointSettings)
    sink: SinkSettings = field(default_factory=SinkSettings)
    mapping: MappingSettings = field(default_factory=MappingSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    transactional: TransactionalSettings = field(default_factory=TransactionalSettings)
    schema_registry: SchemaRegistrySettings = field(default_factory=SchemaRegistrySettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    workspaces: tuple[WorkspaceSettings, ...] = ()
    routes: tuple[RouteOverride, ...] = ()
    topics: tuple[TopicSettings, ...] = ()

    def workspace(self, name: str) -> WorkspaceSettings:
        """The workspace of that name (KeyError if none)."""
        for ws in self.workspaces:
            if ws.name == name:
                return ws
        raise KeyError(name)

    def topic_shapes(self) -> dict[str, RecordShape]:
        """Topic name → its declarative mapping, for the topics that have one."""
        return {topic.name: topic.mapping for topic in self.topics if topic.mapping is not None}


SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaSettings,
    "endpoints": EndpointSettings,
    "sink": SinkSettings,
    "mapping": MappingSettings,
    "webhook": WebhookSettings,
    "transactional": TransactionalSettings,
    "schema_registry": SchemaRegistrySettings,
    "service": ServiceSettings,
}

Role = Literal["sink", "webhooks", "run", "check", "none"]

# Which settings each service role reads: its sections, and for the sink the workspace (CIO_*) settings.
# ``--help`` of run, sink and webhooks lists them; ``validate`` checks each role's requirements.
ROLE_SECTIONS: dict[str, tuple[str, ...]] = {
    "run": (*SECTIONS, "workspace"),
    "sink": ("kafka", "endpoints", "sink", "mapping", "transactional", "schema_registry", "service", "workspace"),
    "webhooks": ("kafka", "webhook", "service"),
}

# Variables read outside the settings above (none of them configures the service itself): ``validate``
# knows them, so it does not call them misspelt.
OTHER_ENVIRONMENT: dict[str, str] = {
    "CONNECTOR_CONFIG": "Path of the optional YAML file (same as --config).",
    "CIO_CONNECTOR_CACHE": "Development tools: where downloaded Kafka jars are cached.",
    "CIO_CONNECTOR_COMPILE": "Build: compile the hot modules when building a wheel (setup.py).",
}
