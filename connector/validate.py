"""``cio-connector validate``: everything about the configuration that can be checked without the network.

Errors (exit 2) are what makes ``run``, ``sink`` or ``webhooks`` refuse to start: an invalid value, an
unknown key in the config file, routes that contradict each other, a role's missing requirement.
Warnings (exit 0) are what the connector silently ignores: an unknown ``CONNECTOR_*``, ``CIO_*`` or
``KAFKA_*`` variable (with "did you mean"), two sources of the same secret, a setting that another makes
irrelevant. The known variables are derived from the declarations (``connector.config.settings``), plus
those a YAML ``*_env`` key names.

``effective_config`` lists every value with its source (default, env or yaml); secrets are masked, and the
printed text is masked once more against every configured secret value.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from connector.config import (
    SECTIONS,
    Role,
    RouteOverride,
    Secret,
    Settings,
    TopicSettings,
    WorkspaceSettings,
    load_settings,
)
from connector.config.loading import TOP_LEVEL_KEYS, check_role, closest, did_you_mean, read_yaml
from connector.config.settings import OTHER_ENVIRONMENT, ROLE_SECTIONS
from connector.errors import ConfigError

SERVICE_ROLES = ("run", "sink", "webhooks")
ENV_PREFIXES = ("CONNECTOR_", "CIO_", "KAFKA_")
# A workspace's secrets: each given inline, by ``<key>_env`` (a variable's name) or ``<key>_file``.
SECRET_SOURCES = ("api_key", "app_api_key", "webhook_signing_keys")
WORKSPACE_ENV = ("CIO_SITE_ID", "CIO_API_KEY", "CIO_APP_API_KEY", "CIO_REGION")
MASK = "***"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: ``error`` stops the service from starting, ``warning`` is something it ignores."""

    level: Literal["error", "warning"]
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.key}: {self.message}"


@dataclass(frozen=True, slots=True)
class Report:
    """The findings, the loaded settings (None when they do not load) and each role's verdict."""

    findings: tuple[Finding, ...]
    settings: Settings | None
    roles: dict[str, str | None]  # role → None when it can start, else the one-line reason

    @property
    def ok(self) -> bool:
        """No error (warnings allowed)."""
        return not any(f.level == "error" for f in self.findings)


def known_variables(doc: Mapping[str, Any]) -> set[str]:
    """Every variable name the connector reads: the declared settings', the other documented ones, and
    those the config file names in ``api_key_env``/``app_api_key_env``."""
    names = set(OTHER_ENVIRONMENT)
    for cls in (*SECTIONS.values(), WorkspaceSettings):
        names.update(str(f.metadata["env"]) for f in dataclasses.fields(cls) if f.metadata.get("env"))
    for item in _workspace_items(doc):
        names.update(str(item[f"{s}_env"]) for s in SECRET_SOURCES if item.get(f"{s}_env") is not None)
    return names


def validate(
    env: Mapping[str, str], config_path: str | None, role: str | None = None, *, some_role: bool = True
) -> Report:
    """Validate the YAML file (``config_path`` or ``CONNECTOR_CONFIG``) and ``env``; never raises ConfigError.

    With ``role``, that role's requirements are errors; without, each role is reported, and with
    ``some_role`` it is an error that none of them could start.
    """
    path = config_path or env.get("CONNECTOR_CONFIG") or None
    try:
        doc = read_yaml(path) if path else {}
    except ConfigError as exc:
        return Report((Finding("error", exc.key, exc.reason),), None, {})
    findings = list(unknown_keys(doc))
    findings += unknown_variables(env, known_variables(doc))
    findings += conflicting_sources(doc, env)
    settings: Settings | None = None
    try:
        settings = load_settings(env, config_path, role="none")
        _check_routes(settings)
    except ConfigError as exc:
        if not any(f.key == exc.key for f in findings):  # an unknown key is already reported, with all others
            findings.append(Finding("error", exc.key, exc.reason))
    roles: dict[str, str | None] = {}
    if settings is not None:
        findings += ignored_settings(settings)
        for name in (role,) if role else SERVICE_ROLES:
            try:
                check_role(settings, typing.cast(Role, name))
                roles[name] = None
            except ConfigError as exc:
                roles[name] = str(exc)
        if role and roles[role] is not None:
            findings.append(Finding("error", f"role {role}", str(roles[role])))
        elif not role and some_role and all(reason is not None for reason in roles.values()):
            findings.append(Finding("error", "roles", "none of run, sink or webhooks has what it needs (see below)"))
    return Report(tuple(findings), settings, roles)


def _check_routes(settings: Settings) -> None:
    """The sink's own routing tables: a topic fed to two workspaces is refused at start-up."""
    from connector.sink.routing import Router

    Router(settings)


def unknown_keys(doc: Mapping[str, Any]) -> Iterator[Finding]:
    """Every key of the config file the loader does not know, each with its closest known key."""
    for key, value in doc.items():
        if key not in TOP_LEVEL_KEYS:
            yield Finding(
                "error", str(key), "unknown top-level key in the config file" + did_you_mean(key, TOP_LEVEL_KEYS)
            )
        elif key in SECTIONS and isinstance(value, dict):
            yield from _unknown_in(value, _field_names(SECTIONS[key]), str(key))
    for i, item in enumerate(_workspace_items(doc)):
        secrets = [f"{s}{suffix}" for s in SECRET_SOURCES for suffix in ("_env", "_file")]
        yield from _unknown_in(item, [*_field_names(WorkspaceSettings), *secrets], f"workspaces[{i}]")
    routes = doc.get("routes")
    for i, item in enumerate(routes if isinstance(routes, list) else []):
        if isinstance(item, dict):
            yield from _unknown_in(item, _field_names(RouteOverride), f"routes[{i}]")
    topics = doc.get("topics")
    for name, item in (topics if isinstance(topics, dict) else {}).items():
        if isinstance(item, dict):
            yield from _unknown_in(item, [n for n in _field_names(TopicSettings) if n != "name"], f"topics.{name}")


def _unknown_in(raw: Mapping[str, Any], names: list[str], where: str) -> Iterator[Finding]:
    for key in raw:
        if key not in names:
            yield Finding("error", f"{where}.{key}", "unknown setting" + did_you_mean(key, names))


def _field_names(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _workspace_items(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = doc.get("workspaces")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def unknown_variables(env: Mapping[str, str], known: Iterable[str]) -> Iterator[Finding]:
    """``CONNECTOR_*``, ``CIO_*`` and ``KAFKA_*`` variables nothing reads: most likely misspelt."""
    known = sorted(known)
    for name in sorted(env):
        if name.startswith(ENV_PREFIXES) and name not in known:
            close = closest(name, known)
            hint = f" (did you mean {close}?)" if close else ""
            yield Finding("warning", name, f"unknown variable, ignored{hint}")


def conflicting_sources(doc: Mapping[str, Any], env: Mapping[str, str]) -> Iterator[Finding]:
    """The same secret given twice in a workspace, and workspace variables the config file overrides."""
    for i, item in enumerate(_workspace_items(doc)):
        for secret in SECRET_SOURCES:
            given = [key for key in (secret, f"{secret}_env", f"{secret}_file") if item.get(key) is not None]
            if len(given) > 1:
                used = f"{secret}_env" if f"{secret}_env" in given else f"{secret}_file"
                ignored = ", ".join(key for key in given if key != used)
                yield Finding(
                    "warning",
                    f"workspaces[{i}].{secret}",
                    f"set by {' and '.join(given)}: {used} is used, {ignored} ignored",
                )
    if doc.get("workspaces"):
        for name in WORKSPACE_ENV:
            if name in env:
                yield Finding(
                    "warning", name, "ignored: the config file declares workspaces (set it in each one there)"
                )


def ignored_settings(settings: Settings) -> Iterator[Finding]:
    """Settings given a value that another setting makes irrelevant."""
    kafka = settings.kafka
    defaults = type(kafka)()
    for f in dataclasses.fields(kafka):
        value = getattr(kafka, f.name)
        if value == getattr(defaults, f.name):
            continue
        if f.name.startswith("sasl_") and not kafka.security_protocol.startswith("SASL_"):
            yield _ignored(f.metadata["env"], f"KAFKA_SECURITY_PROTOCOL is {kafka.security_protocol}, not SASL_*")
        elif f.name.startswith("ssl_") and kafka.security_protocol not in ("SSL", "SASL_SSL"):
            yield _ignored(f.metadata["env"], f"KAFKA_SECURITY_PROTOCOL is {kafka.security_protocol}, without TLS")
    tx = settings.transactional
    if tx.topic is None:
        tx_defaults = type(tx)()
        for f in dataclasses.fields(tx):
            if getattr(tx, f.name) != getattr(tx_defaults, f.name):
                yield _ignored(f.metadata["env"], "CONNECTOR_TRANSACTIONAL_TOPIC is not set")
    yield from _unread_topics(settings)
    if not settings.sink.workspace_header:
        for topic in settings.topics:
            if topic.header_workspaces:
                yield _ignored(f"topics.{topic.name}.header_workspaces", "CONNECTOR_WORKSPACE_HEADER is not set")


def _unread_topics(settings: Settings) -> Iterator[Finding]:
    """``topics.<name>`` entries for a topic the sink does not consume: most likely a misspelt topic name,
    whose records would then be read as Segment JSON (and dead-lettered) instead of through the mapping."""
    consumed = settings.sink.input_topics
    if not consumed or settings.sink.input_topic_pattern is not None:
        return  # no sink here, or topics by pattern: a topic name cannot be checked offline
    for topic in settings.topics:
        if topic.name not in consumed:
            close = closest(topic.name, consumed)
            hint = f" (did you mean {close}?)" if close else ""
            yield _ignored(f"topics.{topic.name}", f"not one of CONNECTOR_INPUT_TOPICS{hint}")


def _ignored(key: object, because: str) -> Finding:
    return Finding("warning", str(key), f"ignored: {because}")


# ---------------------------------------------------------------------------------------------------
# The effective configuration
# ---------------------------------------------------------------------------------------------------


def effective_config(settings: Settings, env: Mapping[str, str], doc: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(setting, value, source) for every setting; secrets are ``***``. Source: default, yaml or env NAME."""
    rows: list[tuple[str, str, str]] = []
    for section, cls in SECTIONS.items():
        section_doc = doc.get(section)
        raw: Mapping[str, Any] = section_doc if isinstance(section_doc, dict) else {}
        values = getattr(settings, section)
        for f in dataclasses.fields(cls):
            env_name = f.metadata.get("env")
            if env_name and env_name in env:
                source = f"env {env_name}"
            elif f.name in raw:
                source = "yaml"
            elif section == "kafka" and f.name == "aws_region" and values.aws_region is not None:
                source = "env AWS_DEFAULT_REGION"
            else:
                source = "default"
            rows.append((f"{section}.{f.name}", show(getattr(values, f.name)), source))
    items = _workspace_items(doc)
    for i, ws in enumerate(settings.workspaces):
        item = items[i] if i < len(items) else None
        rows += [
            (f"workspaces[{i}].{f.name}", show(getattr(ws, f.name)), _workspace_source(f, item, env))
            for f in dataclasses.fields(WorkspaceSettings)
        ]
    for i, route in enumerate(settings.routes):
        rows += [(f"routes[{i}].{f.name}", show(getattr(route, f.name)), "yaml") for f in dataclasses.fields(route)]
    topics_doc = doc.get("topics")
    raw_topics = {str(k): v for k, v in topics_doc.items()} if isinstance(topics_doc, dict) else {}
    for topic in settings.topics:
        raw_topic = raw_topics.get(topic.name)  # str: YAML reads a topic named 2024 as a number
        given = raw_topic if isinstance(raw_topic, dict) else {}
        rows += [
            (f"topics.{topic.name}.{f.name}", show(getattr(topic, f.name)), "yaml" if f.name in given else "default")
            for f in dataclasses.fields(topic)
            if f.name != "name"
        ]
    return rows


def _workspace_source(f: dataclasses.Field[Any], item: Mapping[str, Any] | None, env: Mapping[str, str]) -> str:
    if item is None:  # the one workspace of the CIO_* variables
        env_name = f.metadata.get("env")
        return f"env {env_name}" if env_name and env_name in env else "default"
    if item.get(f"{f.name}_env") is not None:
        return f"env {item[f'{f.name}_env']} (yaml {f.name}_env)"
    if item.get(f"{f.name}_file") is not None:
        return f"file (yaml {f.name}_file)"
    return "yaml" if f.name in item else "default"


def show(value: Any) -> str:
    """A value as the config file would spell it; a secret as ``***``."""
    if isinstance(value, Secret):
        return MASK
    if value is None:
        return "(none)"
    if isinstance(value, tuple):
        return ",".join(show(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def format_config(rows: list[tuple[str, str, str]]) -> str:
    """An aligned table: SETTING, VALUE, SOURCE; no trailing newline."""
    table = [("SETTING", "VALUE", "SOURCE"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    return "\n".join(f"{key:<{widths[0]}}  {value:<{widths[1]}}  {source}".rstrip() for key, value, source in table)


def format_report(report: Report) -> str:
    """Findings, then each role's verdict, then a summary line; no trailing newline."""
    lines = [str(f) for f in report.findings]
    for role, reason in report.roles.items():
        lines.append(f"role {role}: {'ok' if reason is None else reason}")
    errors = sum(f.level == "error" for f in report.findings)
    warnings = len(report.findings) - errors
    verdict = "configuration valid" if report.ok else "configuration invalid"
    lines.append(f"{verdict}: {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)


def secret_values(settings: Settings | None, env: Mapping[str, str], doc: Mapping[str, Any]) -> list[str]:
    """Every configured secret's value (to mask printed text with), including those that did not load."""
    values = [
        env[name]
        for name in (*WORKSPACE_ENV[1:3], "KAFKA_SASL_PASSWORD", "KAFKA_SASL_OAUTH_CLIENT_SECRET")
        if name in env
    ]
    values += [part for part in env.get("CIO_WEBHOOK_SIGNING_KEYS", "").split(",") if part.strip()]
    for item in _workspace_items(doc):
        for secret in SECRET_SOURCES:
            inline = item.get(secret)
            if isinstance(inline, str):
                values += inline.split(",")  # a key list may be comma-separated
            elif isinstance(inline, list):
                values += [str(key) for key in inline]
            if item.get(f"{secret}_env") is not None and str(item[f"{secret}_env"]) in env:
                values += env[str(item[f"{secret}_env"])].split(",")
    if settings is not None:
        values += [k.reveal() for k in settings.webhook.signing_keys]
        for ws in settings.workspaces:
            values += [k.reveal() for k in (ws.api_key, ws.app_api_key, *ws.webhook_signing_keys) if k is not None]
        kafka = settings.kafka
        values += [s.reveal() for s in (kafka.sasl_password, kafka.sasl_oauth_client_secret) if s is not None]
    return values


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value of 4 characters or more replaced by ``***`` (longest first)."""
    for value in sorted({s.strip() for s in secrets}, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, MASK)
    return text


def role_settings(role: str) -> list[tuple[str, str, str]]:
    """(variable, config file key, default) of every setting ``role`` reads, in documentation order."""
    rows: list[tuple[str, str, str]] = []
    for section in ROLE_SECTIONS[role]:
        cls = SECTIONS.get(section, WorkspaceSettings)
        prefix = "workspaces[]" if cls is WorkspaceSettings else section
        for f in dataclasses.fields(cls):
            if f.metadata.get("env"):
                default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                shown = "(none)" if default in ("", ()) else show(default)
                rows.append((str(f.metadata["env"]), f"{prefix}.{f.name}", shown))
    return rows
