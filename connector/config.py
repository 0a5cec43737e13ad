"""Typed, frozen settings, parsed and validated once at start-up.

Sources, lowest precedence first: field defaults, the YAML file (``--config`` or ``CONNECTOR_CONFIG``),
environment variables. Every scalar setting is declared once below with its environment variable,
default and description; ``docs/configuration.md`` and the README table are generated from these
declarations (``python -m connector.config --markdown``), and a test keeps them in step.

Errors are one line naming the key: ``CIO_REGION: must be one of us, eu, auto (got 'mars')``.
Secrets are ``Secret`` values whose repr and str never show the value.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from connector.errors import ConfigError

Region = Literal["us", "eu", "auto"]
OversizePolicy = Literal["dead_letter", "truncate"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["auto", "json", "text"]

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
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = setting(
        None, "KAFKA_SASL_MECHANISM", "SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = setting(None, "KAFKA_SASL_USERNAME", "SASL user name.")
    sasl_password: Secret | None = setting(None, "KAFKA_SASL_PASSWORD", "SASL password (secret).")
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
    rate_limit_per_second: float = setting(
        100.0, "CONNECTOR_RATE_LIMIT", "Track API requests per second per workspace.", gt=0
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
        "Track events that register context.device.token.",
    )
    device_delete_events: tuple[str, ...] = setting(
        ("Application Uninstalled", "Device Deleted"),
        "CONNECTOR_DEVICE_DELETE_EVENTS",
        "Track events that remove context.device.token.",
    )
    delete_events: tuple[str, ...] = setting(
        ("User Deleted",), "CONNECTOR_DELETE_EVENTS", "Track events that delete the person."
    )
    suppress_events: tuple[str, ...] = setting(
        ("User Suppressed",), "CONNECTOR_SUPPRESS_EVENTS", "Track events that suppress the person."
    )
    unsuppress_events: tuple[str, ...] = setting(
        ("User Unsuppressed",), "CONNECTOR_UNSUPPRESS_EVENTS", "Track events that unsuppress the person."
    )
    allow_event_names: tuple[str, ...] = setting(
        (), "CONNECTOR_ALLOW_EVENTS", "If set, only these track event names are sent."
    )
    deny_event_names: tuple[str, ...] = setting((), "CONNECTOR_DENY_EVENTS", "Track event names never sent (filtered).")
    allow_types: tuple[str, ...] = setting(
        (), "CONNECTOR_ALLOW_TYPES", "If set, only these message types are sent (identify, track, …)."
    )
    deny_types: tuple[str, ...] = setting((), "CONNECTOR_DENY_TYPES", "Message types never sent (filtered).")


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
        (), "CIO_WEBHOOK_SIGNING_KEYS", "Comma-separated signing keys (several during rotation)."
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


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the process needs, validated."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    endpoints: EndpointSettings = field(default_factory=EndpointSettings)
    sink: SinkSettings = field(default_factory=SinkSettings)
    mapping: MappingSettings = field(default_factory=MappingSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    transactional: TransactionalSettings = field(default_factory=TransactionalSettings)
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


SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaSettings,
    "endpoints": EndpointSettings,
    "sink": SinkSettings,
    "mapping": MappingSettings,
    "webhook": WebhookSettings,
    "transactional": TransactionalSettings,
    "service": ServiceSettings,
}

Role = Literal["sink", "webhooks", "run", "check", "none"]


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def load_settings(
    environ: Mapping[str, str] | None = None, config_path: str | None = None, role: Role = "none"
) -> Settings:
    """Build settings from the YAML file (if any) and the environment; raise ConfigError on the first problem.

    ``role`` adds the requirements of a subcommand (the sink needs topics and a workspace, the webhook
    listener needs a signing key), checked after every value has been parsed.
    """
    env = dict(os.environ if environ is None else environ)
    path = config_path or env.get("CONNECTOR_CONFIG") or None
    doc = _read_yaml(path) if path else {}

    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        raw = doc.pop(name, None) or {}
        if not isinstance(raw, dict):
            raise ConfigError(name, "must be a mapping in the config file")
        sections[name] = _build(cls, raw, env, key_prefix=name)

    raw_workspaces = doc.pop("workspaces", None)
    raw_routes = doc.pop("routes", None) or []
    raw_topics = doc.pop("topics", None) or {}
    if doc:
        raise ConfigError(sorted(doc)[0], "unknown top-level key in the config file")

    if raw_workspaces:
        if not isinstance(raw_workspaces, list):
            raise ConfigError("workspaces", "must be a list in the config file")
        workspaces = tuple(_build_workspace(item, env, f"workspaces[{i}]") for i, item in enumerate(raw_workspaces))
    elif env.get("CIO_SITE_ID") or env.get("CIO_API_KEY") or env.get("CIO_REGION"):
        workspaces = (_build(WorkspaceSettings, {}, env, key_prefix="workspace"),)
    else:
        workspaces = ()

    if not isinstance(raw_routes, list):
        raise ConfigError("routes", "must be a list in the config file")
    routes = tuple(
        _build(RouteOverride, item, {}, key_prefix=f"routes[{i}]", use_env=False) for i, item in enumerate(raw_routes)
    )
    topics = _build_topics(raw_topics)
    settings = Settings(workspaces=workspaces, routes=routes, topics=topics, **sections)
    _check_consistency(settings)
    _check_role(settings, role)
    return settings


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("CONNECTOR_CONFIG", f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("CONNECTOR_CONFIG", f"{path} is not valid YAML{where}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError("CONNECTOR_CONFIG", f"{path} must hold a mapping at the top level")
    return doc


def _build_workspace(item: Any, env: Mapping[str, str], where: str) -> WorkspaceSettings:
    """A workspace from YAML. Secrets come inline, from ``<key>_env`` (a variable name) or ``<key>_file``."""
    if not isinstance(item, dict):
        raise ConfigError(where, "must be a mapping")
    raw = dict(item)
    for secret in ("api_key", "app_api_key"):
        env_name = raw.pop(f"{secret}_env", None)
        file_name = raw.pop(f"{secret}_file", None)
        if env_name is not None:
            if str(env_name) not in env:
                raise ConfigError(f"{where}.{secret}_env", f"environment variable {env_name} is not set")
            raw[secret] = env[str(env_name)]
        elif file_name is not None:
            try:
                raw[secret] = Path(str(file_name)).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{where}.{secret}_file", f"cannot read {file_name}: {exc.strerror}") from None
    if "name" not in raw:
        raise ConfigError(f"{where}.name", "required")
    return typing.cast(WorkspaceSettings, _build(WorkspaceSettings, raw, {}, key_prefix=where, use_env=False))


def _build_topics(raw: Any) -> tuple[TopicSettings, ...]:
    """Per-topic settings from the ``topics:`` mapping (topic name → its settings)."""
    if not isinstance(raw, dict):
        raise ConfigError("topics", "must be a mapping of topic name to settings in the config file")
    topics = []
    for key, value in raw.items():
        # YAML reads a topic named 2024 as a number; a topic name is its text.
        name = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
        where = f"topics.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(where, "a topic name must be a non-empty string")
        item = {} if value is None else value
        if not isinstance(item, dict):
            raise ConfigError(where, "must be a mapping")
        if "name" in item:
            raise ConfigError(f"{where}.name", "unknown setting")
        fields = {**item, "name": name}
        topics.append(typing.cast(TopicSettings, _build(TopicSettings, fields, {}, key_prefix=where, use_env=False)))
    return tuple(topics)


def _build(
    cls: type[Any], raw: dict[str, Any], env: Mapping[str, str], *, key_prefix: str, use_env: bool = True
) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{key_prefix}.{unknown[0]}", "unknown setting")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        env_name = f.metadata.get("env")
        if use_env and env_name and env_name in env:
            key, value, from_env = env_name, env[env_name], True
        elif f.name in raw:
            key, value, from_env = f"{key_prefix}.{f.name}", raw[f.name], False
        else:
            continue
        values[f.name] = _coerce(hints[f.name], value, key, from_env, f.metadata)
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str, from_env: bool, rules: Mapping[str, Any]) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (from_env and value == ""):
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(inner, value, key, from_env, rules)
    if origin is Literal:
        text = str(value).strip()
        if tp is LogLevel:
            text = text.upper()
        elif tp is LogFormat:
            text = text.lower()
        if text not in args:
            raise ConfigError(key, f"must be one of {', '.join(map(str, args))} (got {text!r})")
        return text
    if origin is tuple:
        items = _as_list(value, key, from_env)
        return tuple(_coerce(args[0], item, key, from_env, {}) for item in items)
    if tp is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str | int) or str(value) == "":
            raise ConfigError(key, "must be a non-empty string")
        return Secret(str(value))
    if tp is bool:
        return _as_bool(value, key)
    if tp is int or tp is float:
        return _check_range(_as_number(tp, value, key), key, rules)
    if tp is str:
        if isinstance(value, dict | list):
            raise ConfigError(key, "must be a string")
        return str(value)
    raise ConfigError(key, f"unsupported setting type {tp!r}")  # pragma: no cover - declaration bug


def _as_list(value: Any, key: str, from_env: bool) -> list[Any]:
    if isinstance(value, list | tuple):
        return [v for v in value if str(v).strip() != ""]
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    raise ConfigError(key, "must be a list or a comma-separated string")


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(key, f"must be true or false (got {value!r})")


def _as_number(tp: type[Any], value: Any, key: str) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(key, f"must be a number (got {value!r})")
    try:
        number = tp(str(value).strip().replace("_", "")) if isinstance(value, str) else tp(value)
    except (TypeError, ValueError):
        kind = "an integer" if tp is int else "a number"
        raise ConfigError(key, f"must be {kind} (got {value!r})") from None
    if tp is int and isinstance(value, float) and value != int(value):
        raise ConfigError(key, f"must be an integer (got {value!r})")
    return typing.cast(int | float, number)


def _check_range(number: int | float, key: str, rules: Mapping[str, Any]) -> int | float:
    if "ge" in rules and number < rules["ge"]:
        raise ConfigError(key, f"must be ≥ {rules['ge']} (got {number})")
    if "gt" in rules and number <= rules["gt"]:
        raise ConfigError(key, f"must be > {rules['gt']} (got {number})")
    if "le" in rules and number > rules["le"]:
        raise ConfigError(key, f"must be ≤ {rules['le']} (got {number})")
    return number


def _check_consistency(settings: Settings) -> None:
    for url_field in dataclasses.fields(EndpointSettings):
        url = getattr(settings.endpoints, url_field.name)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(str(url_field.metadata["env"]), f"must be an http(s) URL (got {url!r})")
    names = [ws.name for ws in settings.workspaces]
    for i, name in enumerate(names):
        if not name or name != name.strip():
            raise ConfigError(f"workspaces[{i}].name", "must be a non-empty name without surrounding spaces")
        if name in names[:i]:
            raise ConfigError(f"workspaces[{i}].name", f"duplicate workspace name {name!r}")
    for i, route in enumerate(settings.routes):
        if route.topic is None and route.event is None:
            raise ConfigError(f"routes[{i}]", "needs topic or event to match on")
        if route.workspace is not None and route.workspace not in names:
            raise ConfigError(f"routes[{i}].workspace", f"no workspace named {route.workspace!r}")
    for topic in settings.topics:
        for name in topic.header_workspaces:
            if name not in names:
                raise ConfigError(f"topics.{topic.name}.header_workspaces", f"no workspace named {name!r}")
    _check_input_topics(settings.sink)
    kafka = settings.kafka
    if kafka.security_protocol.startswith("SASL_") and (
        kafka.sasl_mechanism is None or kafka.sasl_username is None or kafka.sasl_password is None
    ):
        raise ConfigError(
            "KAFKA_SASL_MECHANISM", f"{kafka.security_protocol} needs a mechanism, user name and password"
        )


def _check_input_topics(sink: SinkSettings) -> None:
    """Topics by name or by pattern, never both; the pattern must be a regular expression."""
    pattern = sink.input_topic_pattern
    if pattern is None:
        return
    if sink.input_topics:
        raise ConfigError(
            "CONNECTOR_INPUT_TOPICS", "set either CONNECTOR_INPUT_TOPICS or CONNECTOR_INPUT_TOPIC_PATTERN, not both"
        )
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError("CONNECTOR_INPUT_TOPIC_PATTERN", f"not a regular expression ({exc})") from None


def _check_role(settings: Settings, role: Role) -> None:
    if role in ("sink", "run", "check"):
        if not settings.workspaces:
            raise ConfigError("CIO_SITE_ID", "required (or declare workspaces in the config file)")
        for i, ws in enumerate(settings.workspaces):
            label = (
                "CIO_SITE_ID"
                if ws.name == "default" and len(settings.workspaces) == 1
                else (f"workspaces[{i}].site_id")
            )
            if not ws.site_id:
                raise ConfigError(label, "required")
            if ws.api_key is None:
                key_label = "CIO_API_KEY" if label == "CIO_SITE_ID" else f"workspaces[{i}].api_key"
                raise ConfigError(key_label, "required")
    if role in ("sink", "run") and not settings.sink.input_topics and settings.sink.input_topic_pattern is None:
        raise ConfigError(
            "CONNECTOR_INPUT_TOPICS", "required (or CONNECTOR_INPUT_TOPIC_PATTERN): at least one topic to consume"
        )
    if role in ("webhooks", "run") and not settings.webhook.signing_keys:
        raise ConfigError("CIO_WEBHOOK_SIGNING_KEYS", "required: at least one reporting-webhook signing key")


# ---------------------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------------------


def documented_settings() -> Iterator[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting that has one, in order."""
    for cls in (*SECTIONS.values(), WorkspaceSettings):
        for f in dataclasses.fields(cls):
            env_name = f.metadata.get("env")
            if not env_name:
                continue
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            yield env_name, _format_default(default), str(f.metadata["help"])
    yield "CONNECTOR_CONFIG", "(none)", "Path of the optional YAML file (same as --config)."


def _format_default(value: Any) -> str:
    if value is None or value in ((), ""):
        return "(none)"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def markdown_table() -> str:
    """The configuration table for the README and docs."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for env_name, default, help_text in documented_settings():
        shown = default.replace("|", "\\|")
        lines.append(f"| `{env_name}` | `{shown}` | {help_text} |")
    return "\n".join(lines)


def _main(argv: list[str], write: Callable[[str], object]) -> int:
    if argv == ["--markdown"]:
        write(markdown_table() + "\n")
        return 0
    write("usage: python -m connector.config --markdown\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:], sys.stdout.write))
