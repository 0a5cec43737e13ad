"""The real Kafka broker behind the integration tests (other fixtures live in the subfolders' conftest files).

``kafka_bootstrap`` comes from ``connector.devtools.kafka_local.provide_broker()``: $KAFKA_BOOTSTRAP_SERVERS,
else an ``apache/kafka`` container when Docker answers, else a local JVM (Java 17+; jars cached by Maven).
It starts once per session, on first use. When no broker can be had the tests that need one fail with a
message saying how to get one; they are never skipped.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Awaitable, Iterator
from typing import NoReturn, Protocol

import pytest

from connector.config import KafkaSettings
from connector.devtools.kafka_local import HOW_TO_GET_A_BROKER, LocalKafka, provide_broker
from connector.kafka import ensure_topics


class TopicFactory(Protocol):
    """``await topic_factory(partitions=3)`` creates a topic with a fresh name and returns the name."""

    def __call__(self, partitions: int = 1, *, prefix: str | None = None) -> Awaitable[str]: ...


def _fail_without_broker(reason: str) -> NoReturn:
    message = reason if HOW_TO_GET_A_BROKER in reason else f"{reason}\n{HOW_TO_GET_A_BROKER}"
    pytest.fail(f"This test needs a Kafka broker. {message}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of the session's broker."""
    with contextlib.ExitStack() as stack:
        try:
            bootstrap = stack.enter_context(provide_broker())
        except Exception as exc:  # whatever went wrong, the test must fail saying how to fix it
            failure = str(exc)
        else:
            failure = None
        if failure is not None:  # outside the except block: no chained traceback in the report
            _fail_without_broker(failure)
        yield bootstrap


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings pointing at the session's broker."""
    return KafkaSettings(bootstrap_servers=kafka_bootstrap)


@pytest.fixture
def topic_factory(kafka_settings: KafkaSettings, request: pytest.FixtureRequest) -> TopicFactory:
    """Creates topics named after the test plus a random suffix, so tests never share one."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:120]

    async def create(partitions: int = 1, *, prefix: str | None = None) -> str:
        name = f"{prefix or stem}-{uuid.uuid4().hex[:12]}"
        await ensure_topics(kafka_settings, {name: partitions})
        return name

    return create


@pytest.fixture
def restartable_kafka() -> Iterator[LocalKafka]:
    """A started broker of the test's own (own port and data directory) that it may stop, kill and start again.

    Always a local JVM, whatever the session broker is: ``stop()`` keeps the data and the port, so
    ``start()`` brings back the same broker with its records. Data is removed after the test.
    """
    kafka = LocalKafka()
    try:
        kafka.start()
    except Exception as exc:  # see kafka_bootstrap
        failure = str(exc)
    else:
        failure = None
    if failure is not None:
        kafka.close()
        _fail_without_broker(failure)
    yield kafka
    kafka.close()
