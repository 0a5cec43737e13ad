"""Regions, several workspaces, transactional sends, compressed input and dead-letter replay, end to end."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.kafka import Producer
from tests.integration.harness import (
    ROOT,
    connector_env,
    coverage_env,
    messages_as_records,
    produce,
    read_all,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration

US = Workspace("us-brand", "us-site", "us-key", "us", app_api_key="us-app-key")
EU = Workspace("eu-brand", "eu-site", "eu-key", "eu", app_api_key="eu-app-key")


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    """The fake serving a US and an EU workspace on its two regional hosts."""
    async with FakeCustomerIO([US, EU]) as server:
        yield server


def write_config(path: Path, us_topic: str, eu_topic: str, extra: str = "") -> str:
    path.write_text(
        f"""
workspaces:
  - {{name: us-brand, site_id: us-site, api_key: us-key, app_api_key: us-app-key, region: auto, topics: [{us_topic}]}}
  - {{name: eu-brand, site_id: eu-site, api_key: eu-key, app_api_key: eu-app-key, region: auto, topics: [{eu_topic}]}}
{extra}"""
    )
    return str(path)


def env_without_default_workspace(kafka: str, fake: FakeCustomerIO, topics: list[str], dlq: str) -> dict[str, str]:
    env = connector_env(kafka, fake, topics, dlq)
    for key in ("CIO_SITE_ID", "CIO_API_KEY", "CIO_REGION"):
        env.pop(key)
    return env


def track(user: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Visited", "messageId": f"{user}-{n}", **extra}


async def test_eu_workspace_with_auto_region_never_touches_the_us_host(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """`auto` pins the EU workspace to the EU host: the US host sees only its region lookup."""
    us_topic, eu_topic, dlq = await topic_factory(), await topic_factory(), await topic_factory()
    env = env_without_default_workspace(kafka_settings.bootstrap_servers, fake, [us_topic, eu_topic], dlq)
    settings = load_settings(env, write_config(tmp_path / "c.yaml", us_topic, eu_topic), role="sink")
    eu_messages = [track(f"eu-{i % 10}", i) for i in range(300)]
    us_messages = [track(f"us-{i % 10}", i) for i in range(100)]
    async with running(settings) as connector:
        await produce(kafka_settings, eu_topic, messages_as_records(eu_messages))
        await produce(kafka_settings, us_topic, messages_as_records(us_messages))
        await wait_for(lambda: len(fake.state.operations_for("eu-brand")) >= 300, 60, "EU deliveries")
        await wait_for(lambda: len(fake.state.operations_for("us-brand")) >= 100, 60, "US deliveries")
        info = connector.sample("connector_workspace_info", {"workspace": "eu-brand", "region": "eu"})
    assert info == 1
    assert {r["region"] for r in fake.state.operations_for("eu-brand")} == {"eu"}
    eu_requests = fake.state.stats()["requests"]["eu-brand"]
    assert eu_requests["us"] == {"200": 1}, "the US host saw more than the region lookup"
    assert fake.state.stats()["redirected"].get("eu-brand", 0) == 0


async def test_check_prints_one_line_per_workspace_and_fails_on_a_rejected_key(
    fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """`cio-connector check`: one ok line, one failed line with the reason in words, exit 1, no key shown."""
    config = tmp_path / "c.yaml"
    config.write_text(
        """
workspaces:
  - {name: us-brand, site_id: us-site, api_key: us-key, app_api_key: us-app-key, region: auto}
  - {name: eu-brand, site_id: eu-site, api_key: sk-wrong-key-77, region: auto}
"""
    )
    env = {
        "PATH": "/usr/bin:/bin",
        **coverage_env(),
        "CIO_TRACK_URL_US": fake.us_url,
        "CIO_TRACK_URL_EU": fake.eu_url,
        "CIO_APP_URL_US": fake.us_url,
        "CIO_APP_URL_EU": fake.eu_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        "check",
        "--config",
        str(config),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode()
    assert process.returncode == 1, text + err.decode()
    lines = [line for line in text.splitlines() if "brand" in line]
    us_line = next(line for line in lines if "us-brand" in line)
    eu_line = next(line for line in lines if "eu-brand" in line)
    assert "ok" in us_line
    assert "401" in eu_line
    assert "rejected" in eu_line
    assert "sk-wrong-key-77" not in text + err.decode()


async def test_transactional_record_becomes_one_send_email_with_its_delivery_id(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """A transactional record → one POST /v1/send/email with the expected body; the delivery id is produced."""
    us_topic, eu_topic, dlq = await topic_factory(), await topic_factory(), await topic_factory()
    deliveries = await topic_factory()
    env = env_without_default_workspace(kafka_settings.bootstrap_servers, fake, [us_topic, eu_topic], dlq)
    env["CONNECTOR_TRANSACTIONAL_TOPIC"] = us_topic
    env["CONNECTOR_TRANSACTIONAL_DELIVERY_TOPIC"] = deliveries
    settings = load_settings(env, write_config(tmp_path / "c.yaml", us_topic, eu_topic), role="sink")
    message = {
        "type": "track",
        "event": "Transactional Email Requested",
        "userId": "user-7",
        "messageId": "txn-1",
        "properties": {
            "transactional_message_id": 42,
            "to": "ana@example.com",
            "message_data": {"order_id": "A-991", "total": 19.5},
        },
    }
    async with running(settings):
        await produce(kafka_settings, us_topic, [(b"user-7", orjson.dumps(message))])
        await wait_for(lambda: len(fake.state.emails) >= 1, 30, "the transactional send")
        produced = await read_all(kafka_settings, deliveries, expect=1)
    assert len(fake.state.emails) == 1
    sent = fake.state.emails[0]
    assert sent["workspace"] == "us-brand"
    assert sent["message"]["transactional_message_id"] == 42
    assert sent["message"]["to"] == "ana@example.com"
    assert sent["message"]["identifiers"] == {"id": "user-7"}
    assert sent["message"]["message_data"] == {"order_id": "A-991", "total": 19.5}
    assert fake.state.operations_for("us-brand") == []  # sent as email, not as a track event
    assert len(produced) == 1
    assert orjson.loads(produced[0].value or b"")["delivery_id"] == sent["delivery_id"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_records_compressed_by_librdkafka_are_delivered(
    kafka_settings: KafkaSettings, topic_factory: Any, codec: str
) -> None:
    """Records written by confluent-kafka (librdkafka) with each compression codec reach Customer.io intact."""
    from confluent_kafka import Producer as RdKafkaProducer

    topic, dlq = await topic_factory(), await topic_factory()
    demo = Workspace("demo", "demo-site", "demo-key", "us")
    messages = [track(f"user-{i % 7}", i, properties={"codec": codec, "n": i}) for i in range(200)]
    producer = RdKafkaProducer(
        {"bootstrap.servers": kafka_settings.bootstrap_servers, "compression.type": codec, "linger.ms": 50}
    )
    for key, value in messages_as_records(messages):
        producer.produce(topic, value=value, key=key)
    assert await asyncio.to_thread(producer.flush, 30) == 0
    async with FakeCustomerIO([demo]) as fake:
        env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
        async with running(load_settings(env, role="sink")):
            await wait_for(lambda: len(fake.state.operations_for("demo")) >= 200, 60, f"{codec} records")
        ops = [r["operation"] for r in fake.state.operations_for("demo")]
    assert sorted(op["attributes"]["n"] for op in ops) == list(range(200))
    assert {op["attributes"]["codec"] for op in ops} == {codec}


async def test_dlq_replay_reinjects_records_with_their_original_dedup_ids(
    kafka_settings: KafkaSettings, topic_factory: Any
) -> None:
    """Records dead-lettered by Customer.io come back through `dlq replay` and carry the same event ids."""
    topic, dlq = await topic_factory(), await topic_factory()
    demo = Workspace("demo", "demo-site", "demo-key", "us")
    # No messageId: the event ids derive from topic/partition/offset, which a replay must preserve.
    messages = [{"type": "track", "userId": f"u{i}", "event": "Paid", "timestamp": int(time.time())} for i in range(20)]
    await produce(kafka_settings, topic, messages_as_records(messages))
    async with FakeCustomerIO([demo]) as fake:
        env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
        fake.state.add_burst(1_000, status=400, retry_after=None, workspace="demo")  # a bad deploy
        async with running(load_settings(env, role="sink")):
            dead = await read_all(kafka_settings, dlq, expect=20)
        assert len(dead) == 20
        assert {r.header("cio-dlq-reason") for r in dead} == {b"rejected"}
        assert {r.header("cio-dlq-status") for r in dead} == {b"400"}
        fake.state.add_burst(0, workspace="demo")  # fixed

        replay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "connector",
            "dlq",
            "replay",
            env={"PATH": "/usr/bin:/bin", **coverage_env(), **env},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(replay.communicate(), 60)
        assert replay.returncode == 0, out.decode()
        assert "replayed 20 records" in out.decode()

        async with running(load_settings(env, role="sink")):
            await wait_for(lambda: len(fake.state.operations_for("demo")) >= 20, 60, "replayed deliveries")
        ids = {r["operation"]["id"] for r in fake.state.operations_for("demo")}

    # The ids the first attempt carried: map the original positions again.
    from connector.sink.mapping.mapper import map_message
    from connector.sink.mapping.model import MessageContext

    mapping = load_settings({}).mapping
    original = set()
    for record in dead:
        offset = int(record.header("cio-dlq-source-offset") or b"-1")
        ts = int(record.header("cio-dlq-source-timestamp") or b"0")
        mapped = map_message(orjson.loads(record.value or b""), MessageContext(topic, 0, offset, 0, ts), mapping)
        assert isinstance(mapped, tuple)
        original.add(orjson.loads(mapped[0].body)["id"])
    assert ids == original


async def test_sink_starts_when_only_some_workspaces_are_rejected_and_reports_them(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """A key rejected at start-up: the sink still starts, delivers for the good workspace, /readyz names the bad one."""
    us_topic, eu_topic, dlq = await topic_factory(), await topic_factory(), await topic_factory()
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
workspaces:
  - {{name: us-brand, site_id: us-site, api_key: us-key, region: auto, topics: [{us_topic}]}}
  - {{name: eu-brand, site_id: eu-site, api_key: not-the-key, region: auto, topics: [{eu_topic}]}}
"""
    )
    env = env_without_default_workspace(kafka_settings.bootstrap_servers, fake, [us_topic, eu_topic], dlq)
    env["CONNECTOR_SHUTDOWN_TIMEOUT_SECONDS"] = "1"  # the rejected workspace's records never resolve
    settings = load_settings(env, str(config), role="sink")
    async with running(settings) as connector:
        await produce(kafka_settings, us_topic, messages_as_records([track("u1", i) for i in range(50)]))
        await produce(kafka_settings, eu_topic, messages_as_records([track("e1", i) for i in range(5)]))
        await wait_for(lambda: len(fake.state.operations_for("us-brand")) >= 50, 60, "the good workspace")
        status, body = await connector.readyz()
        assert connector.sample("connector_workspace_ready", {"workspace": "eu-brand"}) == 0
    assert status == 503
    assert body["checks"]["workspace:eu-brand"]["ready"] is False
    assert "401" in body["checks"]["workspace:eu-brand"]["detail"]
    assert body["checks"]["workspace:us-brand"]["ready"] is True
    assert fake.state.operations_for("eu-brand") == []


async def produce_with_header(
    kafka: KafkaSettings, topic: str, messages: list[dict[str, Any]], workspace: bytes
) -> None:
    """Produce messages that each carry a `cio-workspace` header naming ``workspace``."""
    producer = Producer(kafka, linger_ms=20)
    await producer.start()
    try:
        headers = (("cio-workspace", workspace),)
        await producer.send_many(topic, [(key, value, headers) for key, value in messages_as_records(messages)])
    finally:
        await producer.stop()


def user_ids(fake: FakeCustomerIO, workspace: str) -> set[str]:
    return {str(r["operation"]["identifiers"]["id"]) for r in fake.state.operations_for(workspace)}


async def test_workspace_header_names_only_workspaces_on_the_topic_allow_list(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """Header on: allowed names are delivered there; a name off the topic's list is dead-lettered, never sent."""
    us_topic, eu_topic, shared, dlq = [await topic_factory() for _ in range(4)]
    env = env_without_default_workspace(kafka_settings.bootstrap_servers, fake, [us_topic, eu_topic, shared], dlq)
    env["CONNECTOR_WORKSPACE_HEADER"] = "cio-workspace"
    extra = f"""topics:
  {us_topic}: {{header_workspaces: [us-brand]}}
  {shared}: {{header_workspaces: [us-brand, eu-brand]}}
"""
    settings = load_settings(env, write_config(tmp_path / "c.yaml", us_topic, eu_topic, extra), role="sink")
    async with running(settings):
        # The US team's topic may name its own workspace, not the EU one; the EU topic may name none.
        await produce_with_header(kafka_settings, us_topic, [track(f"us-own-{i}", i) for i in range(5)], b"us-brand")
        await produce_with_header(kafka_settings, us_topic, [track(f"us-to-eu-{i}", i) for i in range(3)], b"eu-brand")
        await produce_with_header(kafka_settings, eu_topic, [track(f"eu-to-us-{i}", i) for i in range(2)], b"us-brand")
        await produce_with_header(kafka_settings, shared, [track(f"shared-eu-{i}", i) for i in range(4)], b"eu-brand")
        await produce_with_header(kafka_settings, shared, [track(f"shared-us-{i}", i) for i in range(4)], b"us-brand")
        dead = await read_all(kafka_settings, dlq, expect=5, timeout=60)
        await wait_for(lambda: len(fake.state.operations_for("us-brand")) >= 9, 60, "US deliveries")
        await wait_for(lambda: len(fake.state.operations_for("eu-brand")) >= 4, 60, "EU deliveries")

    assert user_ids(fake, "us-brand") == {f"us-own-{i}" for i in range(5)} | {f"shared-us-{i}" for i in range(4)}
    assert user_ids(fake, "eu-brand") == {f"shared-eu-{i}" for i in range(4)}
    assert len(dead) == 5
    assert {r.header("cio-dlq-reason") for r in dead} == {b"workspace_not_allowed"}
    by_user = {orjson.loads(r.value or b"")["userId"]: (r.header("cio-dlq-message") or b"").decode() for r in dead}
    assert set(by_user) == {f"us-to-eu-{i}" for i in range(3)} | {f"eu-to-us-{i}" for i in range(2)}
    assert f"topic '{us_topic}'" in by_user["us-to-eu-0"]
    assert "'eu-brand'" in by_user["us-to-eu-0"]
    assert f"topic '{eu_topic}'" in by_user["eu-to-us-0"]
    assert "'us-brand'" in by_user["eu-to-us-0"]


async def test_workspace_header_is_ignored_unless_enabled(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """By default a producer's `cio-workspace` header cannot move its records: the topic's owner gets them."""
    us_topic, eu_topic, dlq = await topic_factory(), await topic_factory(), await topic_factory()
    env = env_without_default_workspace(kafka_settings.bootstrap_servers, fake, [us_topic, eu_topic], dlq)
    settings = load_settings(env, write_config(tmp_path / "c.yaml", us_topic, eu_topic), role="sink")
    async with running(settings):
        await produce_with_header(kafka_settings, us_topic, [track(f"us-{i}", i) for i in range(5)], b"eu-brand")
        await wait_for(lambda: len(fake.state.operations_for("us-brand")) >= 5, 60, "US deliveries")
    assert user_ids(fake, "us-brand") == {f"us-{i}" for i in range(5)}
    assert fake.state.operations_for("eu-brand") == []
