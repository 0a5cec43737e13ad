"""Settings loaded and validated once at start-up, and the settings table generated for the docs.

Sources, lowest precedence first: field defaults (``connector.config.settings``), the YAML file
(``--config`` or ``CONNECTOR_CONFIG``), environment variables.

Errors are one line naming the key: ``CIO_REGION: must be one of us, eu, auto (got 'mars')``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
import re
import ssl
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from connector.config.settings import (
    MSK_EXTRA_MODULE,
    SECTIONS,
    EndpointSettings,
    KafkaSettings,
    LogFormat,
    LogLevel,
    Role,
    RouteOverride,
    SchemaRegistrySettings,
    Secret,
    Settings,
    SinkSettings,
    TopicSettings,
    WorkspaceSettings,
)
from connector.errors import ConfigError
from connector.sink.mapping.shapes import DEBEZIUM_DELETE_EVENT, compile_shape

_EXTENSION_KEY = re.compile(r"[A-Za-z]+")
_EXTENSION_VALUE = re.compile(r"[\x21-\x7E \t\r\n]+")
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_KEY_LISTS = frozenset({"webhook_signing_keys"})  # workspace secrets that are lists of keys

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
    doc = read_yaml(path) if path else {}

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
        key = sorted(doc, key=str)[0]
        raise ConfigError(str(key), "unknown top-level key in the config file" + did_you_mean(key, TOP_LEVEL_KEYS))

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
    if sections["kafka"].aws_region is None and env.get("AWS_DEFAULT_REGION"):
        sections["kafka"] = dataclasses.replace(sections["kafka"], aws_region=env["AWS_DEFAULT_REGION"].strip())
    settings = Settings(workspaces=workspaces, routes=routes, topics=topics, **sections)
    _check_consistency(settings)
    check_role(settings, role)
    return settings


TOP_LEVEL_KEYS = (*SECTIONS, "workspaces", "routes", "topics")


def did_you_mean(name: object, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate to a misspelt name, or "" when none is close."""
    close = closest(str(name), candidates)
    return f" (did you mean {close!r}?)" if close else ""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``name`` most likely misspells: first one it abbreviates word by word
    (``batch_max_ops`` → ``batch_max_operations``), else the most similar (difflib), else None."""
    pool = list(candidates)
    words = name.lower().split("_")
    for candidate in pool:
        theirs = candidate.lower().split("_")
        if len(theirs) == len(words) and all(map(_abbreviates, words, theirs)):
            return candidate
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return close[0] if close else None


def _abbreviates(short: str, word: str) -> bool:
    """``short`` keeps ``word``'s first letter and some of the others, in order (ops → operations)."""
    if not short or short[0] != word[:1]:
        return False
    rest = iter(word)
    return all(letter in rest for letter in short)


def read_yaml(path: str) -> dict[str, Any]:
    """The config file's top-level mapping ({} when empty); ConfigError naming CONNECTOR_CONFIG otherwise."""
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
    for secret in ("api_key", "app_api_key", "webhook_signing_keys"):
        env_name = raw.pop(f"{secret}_env", None)
        file_name = raw.pop(f"{secret}_file", None)
        if env_name is not None:
            if str(env_name) not in env:
                raise ConfigError(f"{where}.{secret}_env", f"environment variable {env_name} is not set")
            raw[secret] = env[str(env_name)]
        elif file_name is not None:
            try:
                text = Path(str(file_name)).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{where}.{secret}_file", f"cannot read {file_name}: {exc.strerror}") from None
            # A key list may be a file of one key per line (rotation: old and new) or comma-separated.
            raw[secret] = ",".join(text.splitlines()) if secret in _KEY_LISTS else text
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
        raw_mapping = fields.pop("mapping", None)
        topic = typing.cast(TopicSettings, _build(TopicSettings, fields, {}, key_prefix=where, use_env=False))
        if raw_mapping is not None:  # compiled (and so validated) here, once: a bad mapping never starts
            topic = dataclasses.replace(topic, mapping=compile_shape(raw_mapping, f"{where}.mapping"))
        topics.append(topic)
    return tuple(topics)


def _build(
    cls: type[Any], raw: dict[str, Any], env: Mapping[str, str], *, key_prefix: str, use_env: bool = True
) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names, key=str)
    if unknown:
        raise ConfigError(f"{key_prefix}.{unknown[0]}", "unknown setting" + did_you_mean(unknown[0], names))
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


def _coerce(tp: Any, value: Any, key: str, from_env: bool, rules: Mapping[str, Any]) -> Any:  # noqa: C901 - one branch per setting type
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
        items = _as_list(value, key)
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


def _as_list(value: Any, key: str) -> list[Any]:
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
    _check_endpoints(settings.endpoints)
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
        _check_mapping(topic, settings.mapping.delete_events)
    _check_webhook_paths(settings)
    _check_input_topics(settings.sink)
    _check_start_from(settings.sink)
    _check_bootstrap_servers(settings.kafka)
    _check_kafka_security(settings.kafka)
    _check_schema_registry(settings.schema_registry)


def _check_endpoints(endpoints: EndpointSettings) -> None:
    """Each Customer.io base URL is http(s) without user:password@ (aiohttp refuses to combine those with
    the API key's Authorization header, and the password would show in --print-config)."""
    for url_field in dataclasses.fields(EndpointSettings):
        url = getattr(endpoints, url_field.name)
        if not url.startswith(("http://", "https://")):
            shown = repr(url) if "@" not in url else "a value with credentials"
            raise ConfigError(str(url_field.metadata["env"]), f"must be an http(s) URL (got {shown})")
        if "@" in url.split("/", 3)[2]:  # not quoted back: it holds a password
            raise ConfigError(
                str(url_field.metadata["env"]), "must not hold credentials; the workspace's API keys authenticate"
            )


def _check_schema_registry(registry: SchemaRegistrySettings) -> None:
    """An http(s) URL, a readable CA file, and basic-auth credentials in pairs."""
    url = registry.url
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError("CONNECTOR_SCHEMA_REGISTRY_URL", f"must be an http(s) URL (got {url!r})")
    if url is not None and "@" in url.split("/", 3)[2]:  # not quoted back: it holds a password
        raise ConfigError(
            "CONNECTOR_SCHEMA_REGISTRY_URL",
            "must not hold credentials; use CONNECTOR_SCHEMA_REGISTRY_USERNAME and _PASSWORD",
        )
    if registry.ca_file is not None and not os.access(registry.ca_file, os.R_OK):
        raise ConfigError("CONNECTOR_SCHEMA_REGISTRY_CA_FILE", f"cannot read {registry.ca_file}")
    if (registry.username is None) != (registry.password is None):
        missing = (
            "CONNECTOR_SCHEMA_REGISTRY_PASSWORD" if registry.password is None else "CONNECTOR_SCHEMA_REGISTRY_USERNAME"
        )
        raise ConfigError(missing, "basic auth needs both CONNECTOR_SCHEMA_REGISTRY_USERNAME and _PASSWORD")


def _check_mapping(topic: TopicSettings, delete_events: tuple[str, ...]) -> None:
    if topic.mapping is not None and topic.mapping.deletes_people and DEBEZIUM_DELETE_EVENT not in delete_events:
        raise ConfigError(
            f"topics.{topic.name}.mapping.preset",
            f"debezium deletes people with the event {DEBEZIUM_DELETE_EVENT!r}: keep it in CONNECTOR_DELETE_EVENTS",
        )


def _check_webhook_paths(settings: Settings) -> None:
    """CONNECTOR_WEBHOOK_PATH is a plain absolute path, and a workspace with webhook keys is served at
    CONNECTOR_WEBHOOK_PATH/<name>: one path segment. (The listener routes these paths itself.)"""
    path = settings.webhook.path
    if not path.startswith("/") or "{" in path or "}" in path:
        raise ConfigError("CONNECTOR_WEBHOOK_PATH", f"must start with '/' and contain no '{{' or '}}' (got {path!r})")
    for i, ws in enumerate(settings.workspaces):
        if ws.webhook_signing_keys and "/" in ws.name:
            raise ConfigError(
                f"workspaces[{i}].name", "must not contain '/' with webhook_signing_keys (it is a URL path segment)"
            )


def sasl_extensions(kafka: KafkaSettings) -> dict[str, str]:
    """KAFKA_SASL_OAUTH_EXTENSIONS as a mapping (validated at start-up)."""
    return dict(item.split("=", 1) for item in kafka.sasl_oauth_extensions)


def _check_kafka_security(kafka: KafkaSettings) -> None:  # noqa: C901 - one check per mode and setting, one message each
    """Each security mode gets what it needs, or one line naming the missing or wrong setting."""
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(kafka, name)
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(_env_of(KafkaSettings, name), f"cannot read {path}")
    if kafka.ssl_keyfile is not None and kafka.ssl_certfile is None:
        raise ConfigError("KAFKA_SSL_CERTFILE", "required with KAFKA_SSL_KEYFILE (the client certificate)")
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        _check_tls_files(kafka)
    if not kafka.security_protocol.startswith("SASL_"):
        return
    mechanism = kafka.sasl_mechanism
    if mechanism is None:
        raise ConfigError("KAFKA_SASL_MECHANISM", f"{kafka.security_protocol} needs a mechanism")
    if mechanism == "GSSAPI":
        raise ConfigError(
            "KAFKA_SASL_MECHANISM",
            "GSSAPI (Kerberos) is not supported; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM",
        )
    if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        if kafka.sasl_username is None:
            raise ConfigError("KAFKA_SASL_USERNAME", f"required with KAFKA_SASL_MECHANISM={mechanism}")
        if kafka.sasl_password is None:
            raise ConfigError("KAFKA_SASL_PASSWORD", f"required with KAFKA_SASL_MECHANISM={mechanism}")
    elif mechanism == "OAUTHBEARER":
        url = kafka.sasl_oauth_token_url
        if url is None:
            raise ConfigError("KAFKA_SASL_OAUTH_TOKEN_URL", "required with KAFKA_SASL_MECHANISM=OAUTHBEARER")
        if not url.startswith(("https://", "http://")):
            raise ConfigError("KAFKA_SASL_OAUTH_TOKEN_URL", f"must be an http(s) URL (got {url!r})")
        if not kafka.sasl_oauth_client_id:
            raise ConfigError("KAFKA_SASL_OAUTH_CLIENT_ID", "required with KAFKA_SASL_MECHANISM=OAUTHBEARER")
        if kafka.sasl_oauth_client_secret is None:
            raise ConfigError("KAFKA_SASL_OAUTH_CLIENT_SECRET", "required with KAFKA_SASL_MECHANISM=OAUTHBEARER")
        for item in kafka.sasl_oauth_extensions:
            key, sep, value = item.partition("=")
            # RFC 7628 §3.1: key = 1*(ALPHA), "auth" is reserved; value = printable ASCII and spaces.
            if not sep or not _EXTENSION_KEY.fullmatch(key) or key == "auth" or not _EXTENSION_VALUE.fullmatch(value):
                raise ConfigError(
                    "KAFKA_SASL_OAUTH_EXTENSIONS",
                    f"each item must be key=value with a letters-only key other than auth (got {key or item!r})",
                )
    elif mechanism == "AWS_MSK_IAM":
        if kafka.security_protocol != "SASL_SSL":
            raise ConfigError("KAFKA_SECURITY_PROTOCOL", "AWS_MSK_IAM needs SASL_SSL")
        if kafka.aws_region is None:
            raise ConfigError("AWS_REGION", "required with KAFKA_SASL_MECHANISM=AWS_MSK_IAM (or AWS_DEFAULT_REGION)")
        if not _AWS_REGION.fullmatch(kafka.aws_region):
            raise ConfigError("AWS_REGION", f"not an AWS region name (got {kafka.aws_region!r})")
        if importlib.util.find_spec(MSK_EXTRA_MODULE) is None:
            raise ConfigError(
                "KAFKA_SASL_MECHANISM",
                "AWS_MSK_IAM needs the optional extra msk: pip install 'cio-connector[msk]' (the Docker image has it)",
            )


class _EncryptedKeyError(Exception):
    """Raised by the passphrase callback: OpenSSL would otherwise prompt on the terminal for one."""


def _no_passphrase() -> str:
    raise _EncryptedKeyError


def _check_tls_files(kafka: KafkaSettings) -> None:
    """The CA bundle, client certificate and key load as the Kafka clients will load them.

    OpenSSL's own errors ("PEM lib (_ssl.c:3926)") name no file and would surface as a traceback when the
    first client starts; here each problem is one line naming the setting.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for name, path in (("KAFKA_SSL_CAFILE", kafka.ssl_cafile), ("KAFKA_SSL_CERTFILE", kafka.ssl_certfile)):
        if path is not None:
            try:
                context.load_verify_locations(cafile=path)
            except (ssl.SSLError, OSError):
                raise ConfigError(name, f"{path} holds no PEM certificate") from None
    if kafka.ssl_certfile is None:
        return
    try:
        context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile, password=_no_passphrase)
    except _EncryptedKeyError:
        raise ConfigError(
            "KAFKA_SSL_KEYFILE",
            "the private key is encrypted (has a passphrase), which is not supported: "
            "decrypt it (openssl pkey -in KEY -out KEY.plain)",
        ) from None
    except (ssl.SSLError, OSError) as exc:
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            raise ConfigError(
                "KAFKA_SSL_KEYFILE", "the private key does not belong to the certificate in KAFKA_SSL_CERTFILE"
            ) from None
        if kafka.ssl_keyfile is None:
            raise ConfigError(
                "KAFKA_SSL_KEYFILE", f"required: {kafka.ssl_certfile} holds no private key next to the certificate"
            ) from None
        raise ConfigError("KAFKA_SSL_KEYFILE", f"{kafka.ssl_keyfile} holds no PEM private key") from None


def _env_of(cls: type[Any], name: str) -> str:
    return str(next(f.metadata["env"] for f in dataclasses.fields(cls) if f.name == name))


def _check_start_from(sink: SinkSettings) -> None:
    from connector.sink.start import parse_start_from

    try:
        parse_start_from(sink.start_from)
    except ValueError as exc:
        raise ConfigError("CONNECTOR_START_FROM", str(exc)) from None


def _check_bootstrap_servers(kafka: KafkaSettings) -> None:
    """Each broker is host:port with a numeric port (aiokafka would fail later with a traceback)."""
    addresses = [part.strip() for part in kafka.bootstrap_servers.split(",") if part.strip()]
    if not addresses:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS", "required: at least one host:port")
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS", f"each broker must be host:port (got {address!r})")


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


def check_role(settings: Settings, role: Role) -> None:
    """Raise ConfigError naming the first setting ``role`` requires and lacks."""
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
    has_workspace_keys = any(ws.webhook_signing_keys for ws in settings.workspaces)
    if role in ("webhooks", "run") and not settings.webhook.signing_keys and not has_workspace_keys:
        raise ConfigError(
            "CIO_WEBHOOK_SIGNING_KEYS",
            "required: at least one reporting-webhook signing key (or webhook_signing_keys on a workspace "
            "in the config file)",
        )


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
