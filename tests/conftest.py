"""The real Kafka broker behind the integration tests (other fixtures live in the subfolders' conftest files).

``kafka_bootstrap`` comes from ``connector.devtools.kafka_local.provide_broker()``: $KAFKA_BOOTSTRAP_SERVERS,
else an ``apache/kafka`` container when Docker answers, else a local JVM (Java 17+; jars cached by Maven).
It starts once per session, on first use. When no broker can be had the tests that need one fail with a
message saying how to get one; they are never skipped.

Hypothesis profiles (registered here, before any test module builds its ``settings``):

- ``ci``: loaded by ``make test`` and whenever CI is detected. Derandomized, so a failure reproduces with
  the same inputs on any machine; no deadline and no ``too_slow`` health check, the two checks that measure
  wall time and therefore fail on a busy machine rather than on a bad test. The size and filter checks
  stay on: they count inputs, not seconds, so under derandomize they pass or fail the same everywhere.
- ``dev``: the default of a bare ``pytest``. Random inputs with the example database, so each run explores
  more; no deadline; the health checks stay on, with ``too_slow`` at Hypothesis' own 30 s draw budget.

``HYPOTHESIS_PROFILE`` (or ``pytest --hypothesis-profile``) picks another one.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Awaitable, Iterator
from typing import NoReturn, Protocol

import pytest
from hypothesis import HealthCheck, is_hypothesis_test, settings

from connector.config import KafkaSettings
from connector.devtools.kafka_local import HOW_TO_GET_A_BROKER, LocalKafka, provide_broker
from connector.kafka import ensure_topics

# Wall-time checks: on a shared 2-core machine they fail because of the neighbours, not the test.
WALL_TIME_HEALTH_CHECKS = (HealthCheck.too_slow,)

# Test modules import this file again as ``tests.conftest`` (for TopicFactory). So: an explicit parent (the
# profiles do not inherit whatever is loaded by then), and the profile is loaded by the hook below, once.
_STOCK = settings.get_profile("default")
settings.register_profile(
    "ci",
    _STOCK,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=WALL_TIME_HEALTH_CHECKS,
)
settings.register_profile("dev", _STOCK, deadline=None, print_blob=True)
IN_CI = os.environ.get("CI", "").lower() not in {"", "0", "false"}  # GitHub Actions and most CIs set CI=true


def pytest_configure(config: pytest.Config) -> None:
    """Load the profile before any test module is imported; ``--hypothesis-profile`` (its plugin) wins."""
    if config.getoption("--hypothesis-profile", default=None) is None:
        settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under the ci profile, a property test whose own ``@settings`` brings back a wall-time check fails.

    A test's ``settings(suppress_health_check=[...])`` replaces the profile's list instead of adding to it,
    so one written without ``HealthCheck.too_slow`` (or with a deadline) would be flaky under load again.
    """
    active = settings.default
    if active is None or not set(WALL_TIME_HEALTH_CHECKS) <= set(active.suppress_health_check):
        return
    for item in items:
        function = getattr(item, "function", None)
        if function is None or not is_hypothesis_test(function):
            continue
        own = getattr(function, "_hypothesis_internal_use_settings", None)
        if not isinstance(own, settings):
            raise pytest.UsageError(f"{item.nodeid}: cannot read its Hypothesis settings (Hypothesis changed?)")
        missing = [check.name for check in WALL_TIME_HEALTH_CHECKS if check not in own.suppress_health_check]
        if missing or own.deadline is not None:
            raise pytest.UsageError(
                f"{item.nodeid}: its @settings would fail on a busy machine (deadline={own.deadline}, "
                f"health checks not suppressed: {missing}); use deadline=None and add the profile's "
                "suppress_health_check: [*settings().suppress_health_check, ...]"
            )


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
        failure: str | None
        try:
            bootstrap = stack.enter_context(provide_broker())
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the test must fail saying how to fix it
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
    failure: str | None
    try:
        kafka.start()
    except Exception as exc:  # noqa: BLE001 - see kafka_bootstrap
        failure = str(exc)
    else:
        failure = None
    if failure is not None:
        kafka.close()
        _fail_without_broker(failure)
    yield kafka
    kafka.close()
