"""Helpers for end-to-end tests: the connector in-process or as a process, against the real broker and fake."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from connector.app import run_service
from connector.config import KafkaSettings, Settings
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.kafka import Consumer, Partition, Producer, Record
from connector.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
# The fake's side of connector_env's one workspace (the App API key only matters to transactional sends).
DEMO = Workspace("demo", "demo-site", "demo-key", "us", app_api_key="demo-app-key")


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connector_env(kafka: str, fake: FakeCustomerIO, topics: Iterable[str], dlq: str, **extra: str) -> dict[str, str]:
    """Environment for a one-workspace connector against the fake (workspace `demo`, us)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "CONNECTOR_INPUT_TOPICS": ",".join(topics),
        "CONNECTOR_GROUP_ID": f"group-{dlq}",
        "CONNECTOR_START_FROM": "earliest",  # these tests produce before the sink starts
        "CONNECTOR_DLQ_TOPIC": dlq,
        "CIO_SITE_ID": "demo-site",
        "CIO_API_KEY": "demo-key",
        "CIO_REGION": "us",
        "CIO_TRACK_URL_US": fake.us_url,
        "CIO_TRACK_URL_EU": fake.eu_url,
        "CIO_APP_URL_US": fake.us_url,
        "CIO_APP_URL_EU": fake.eu_url,
        "CONNECTOR_METRICS_PORT": str(free_port()),
        "CONNECTOR_LINGER_SECONDS": "0.05",
        "CONNECTOR_RETRY_INITIAL_SECONDS": "0.01",
        "CONNECTOR_RETRY_MAX_SECONDS": "0.2",
        "CONNECTOR_COMMIT_INTERVAL_SECONDS": "0.2",
        "CONNECTOR_RATE_LIMIT": "2000",
        **extra,
    }


@dataclass
class InProcess:
    """A connector running in this event loop."""

    settings: Settings
    metrics: Metrics
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.service.metrics_port}"

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A metric's current value (0 when absent)."""
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        """Status and body of /readyz."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.ops_url}/readyz") as response:
            return response.status, await response.json()


@contextlib.asynccontextmanager
async def running(settings: Settings, role: str = "sink") -> AsyncIterator[InProcess]:
    """Run the service in-process until the block ends (then a graceful stop, which must succeed)."""
    stop = asyncio.Event()
    metrics = Metrics()
    task = asyncio.create_task(run_service(settings, role, stop, metrics))  # type: ignore[arg-type]
    connector = InProcess(settings, metrics, stop, task)
    deadline = time.monotonic() + 30
    while True:
        if task.done():
            task.result()  # raises the start-up failure
            raise AssertionError("connector exited during start-up")
        with contextlib.suppress(aiohttp.ClientError):
            status, _ = await connector.readyz()
            if status in (200, 503) and connector.sample("connector_partitions_assigned") > 0:
                break
        if time.monotonic() > deadline:
            raise AssertionError("connector did not get partitions within 30 s")
        await asyncio.sleep(0.1)
    try:
        yield connector
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def produce(kafka: KafkaSettings, topic: str, items: list[tuple[bytes | None, bytes | None]]) -> None:
    """Produce records (key, value) and wait for the acks."""
    producer = Producer(kafka, linger_ms=20)
    await producer.start()
    try:
        for start in range(0, len(items), 2000):
            chunk = items[start : start + 2000]
            await producer.send_many(topic, [(k, v, ()) for k, v in chunk])
    finally:
        await producer.stop()


def messages_as_records(messages: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes | None]]:
    """Key each Segment message by its user, as upstream producers do."""
    return [(str(m.get("userId") or m.get("anonymousId")).encode(), orjson.dumps(m)) for m in messages]


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until ``condition()`` holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def committed_and_end(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> list[tuple[int, int]]:
    """(committed offset, end offset) per partition of ``topic`` for ``group``."""
    consumer = Consumer(kafka, group)
    parts = [Partition(topic, p) for p in range(partitions)]
    try:
        await consumer.connect()
        ends = await consumer.end_offsets(parts)
        return [((await consumer.committed(p)) or 0, ends[p]) for p in parts]
    finally:
        await consumer.stop()


async def read_all(kafka: KafkaSettings, topic: str, expect: int, timeout: float = 20) -> list[Record]:
    """Records of ``topic`` from the beginning, until ``expect`` arrived or ``timeout``."""
    consumer = Consumer(kafka, f"reader-{time.time_ns()}")

    async def noop(_p: list[Partition]) -> None:
        return None

    records: list[Record] = []
    await consumer.start([topic], noop, noop)
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expect and time.monotonic() < deadline:
            records.extend(await consumer.fetch(300))
    finally:
        await consumer.stop()
    return records


def coverage_env() -> dict[str, str]:
    """This process's COVERAGE_* variables: under `make test` (coverage's patch = subprocess) they make a
    child `python -m connector` measure itself too. Add them to any child environment built from scratch."""
    return {name: value for name, value in os.environ.items() if name.startswith("COVERAGE_")}


def start_process(env: dict[str, str], command: str, log: Path) -> subprocess.Popen[bytes]:
    """`python -m connector <command>` as a child process with ``env`` (plus PATH)."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **coverage_env(), **env}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "connector", command], env=full, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m connector <args>` with ``env`` (plus PATH) and ``stdin``: the real command line, output captured.

    The child measures its own coverage under `make test` (``coverage_env``), as ``start_process``'s do."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **coverage_env(), **env}
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


async def group_members(kafka: KafkaSettings, group: str) -> int:
    """How many members the broker counts in consumer group ``group`` right now."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        (description,) = response.groups  # (error, group, state, protocol type, protocol, members)
        return len(description[5])
    finally:
        await admin.close()
