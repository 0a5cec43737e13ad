"""The exception tree. Every error says whether retrying can help.

    ConnectorError
    ├── ConfigError                 bad or missing setting; exit 2 with one line naming the key
    ├── DecodeError                 a webhook body is not a usable event (400)
    ├── DeliveryError               a request to Customer.io did not succeed
    │   ├── TransientDeliveryError  408/429/5xx, timeouts, connection errors: retry, then backpressure
    │   ├── PermanentDeliveryError  400/404/413/422: the payload is rejected (dead-letter)
    │   └── AuthError               401/403: the workspace is misconfigured; stop it, never dead-letter
    ├── BrokerUnavailableError      Kafka did not acknowledge in time (webhooks answer 503)
    │   ├── KafkaConnectError       a client cannot start: names the setting to fix and the reason
    │   ├── TopicNotCreatedError    the cluster refused to create a missing topic (e.g. no Create ACL)
    │   └── RecordTooLargeError     the producer or the broker refuses the record's size: resending it
    │                               unchanged cannot succeed
    └── SignatureError              webhook signature missing or wrong (401)

Foreign exceptions (aiohttp, aiokafka) are translated at the module that wraps the library, so nothing
above ``cio/client.py`` or ``kafka.py`` catches them. A record the sink cannot decode or map is not an
exception: the mapping layer returns a ``Rejection`` value (``sink/mapping/model.py``), dead-lettered.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error this package raises on purpose."""

    retriable: bool = False


class ConfigError(ConnectorError):
    """A setting is invalid or missing. ``str()`` is the one line shown to the user."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class DecodeError(ConnectorError):
    """Record bytes cannot be decoded into messages."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DeliveryError(ConnectorError):
    """A Customer.io request failed. ``status`` is the HTTP status, or None for network errors."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """Retrying later may succeed."""

    retriable = True


class PermanentDeliveryError(DeliveryError):
    """The request itself is rejected; resending it unchanged cannot succeed."""


class AuthError(DeliveryError):
    """Credentials were rejected; the workspace must stop until an operator fixes them."""


class BrokerUnavailableError(ConnectorError):
    """Kafka did not accept or acknowledge a record in time."""

    retriable = True


class KafkaConnectError(BrokerUnavailableError):
    """A Kafka client cannot start. ``str()`` is one line, ``SETTING: reason``, never a secret."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class TopicNotCreatedError(BrokerUnavailableError):
    """A topic that does not exist (as these credentials see it) could not be created."""

    retriable = False

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"topic {topic} does not exist and could not be created ({reason})")
        self.topic = topic
        self.reason = reason


class RecordTooLargeError(BrokerUnavailableError):
    """The record is larger than the producer or the topic accepts (a subclass, so callers that only
    answer "Kafka did not take it" keep doing so; the dead-letter writer tells it apart)."""

    retriable = False


class SignatureError(ConnectorError):
    """A webhook's signature headers are missing or do not match any configured key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
