"""Typed, frozen settings: declared in ``settings.py``, loaded and documented by ``loading.py``.

Everything public is re-exported here, so ``from connector.config import Settings, load_settings``
is the one import the rest of the connector uses.
"""

from connector.config.loading import documented_settings, load_settings, markdown_table, sasl_extensions
from connector.config.settings import (
    DEFAULT_APP_URL_EU,
    DEFAULT_APP_URL_US,
    DEFAULT_TRACK_URL_EU,
    DEFAULT_TRACK_URL_US,
    SECTIONS,
    EndpointSettings,
    KafkaSettings,
    LogLevel,
    MappingSettings,
    OversizePolicy,
    Region,
    Role,
    RouteOverride,
    SchemaRegistrySettings,
    Secret,
    ServiceSettings,
    Settings,
    SinkSettings,
    TopicSettings,
    TransactionalSettings,
    WebhookEventNames,
    WebhookSettings,
    WorkspaceSettings,
    setting,
)

__all__ = [
    "DEFAULT_APP_URL_EU",
    "DEFAULT_APP_URL_US",
    "DEFAULT_TRACK_URL_EU",
    "DEFAULT_TRACK_URL_US",
    "SECTIONS",
    "EndpointSettings",
    "KafkaSettings",
    "LogLevel",
    "MappingSettings",
    "OversizePolicy",
    "Region",
    "Role",
    "RouteOverride",
    "SchemaRegistrySettings",
    "Secret",
    "ServiceSettings",
    "Settings",
    "SinkSettings",
    "TopicSettings",
    "TransactionalSettings",
    "WebhookEventNames",
    "WebhookSettings",
    "WorkspaceSettings",
    "documented_settings",
    "load_settings",
    "markdown_table",
    "sasl_extensions",
    "setting",
]
