"""Declarative per-topic mappings end to end: the real broker, the connector, the fake Customer.io over HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from tests.conftest import TopicFactory
from tests.integration.harness import (
    committed_and_end,
    connector_env,
    produce,
    read_all,
    run_cli,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration


def product_config(path: Path, topic: str) -> str:
    path.write_text(
        f"""
topics:
  {topic}:
    mapping:
      type: track
      user_id: $.user.id
      event: $.action
      properties: $.details
      timestamp: $.at
      timestamp_format: unix_s
      rename: {{$.details.mail: email}}
      hash: [$.details.email]
"""
    )
    return str(path)


async def test_a_custom_json_shape_with_a_hashed_email_is_delivered_as_track(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """The product event arrives as a track event with the email hashed; a record without its user is
    dead-lettered as missing_field naming the path."""
    topic, dlq = await topic_factory(), await topic_factory()
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    settings = load_settings(env, product_config(tmp_path / "c.yaml", topic), role="sink")
    good = {
        "user": {"id": "u-1"},
        "action": "checkout",
        "at": 1_700_000_000,
        "details": {"mail": "ana@example.com", "total": 30},
    }
    anonymous = {"action": "checkout", "details": {}}
    async with running(settings):
        await produce(kafka_settings, topic, [(b"u-1", orjson.dumps(good)), (None, orjson.dumps(anonymous))])
        await wait_for(lambda: len(fake.state.operations_for("demo")) >= 1, 60, "the track event")
        (dead,) = await read_all(kafka_settings, dlq, 1, timeout=60)
    (delivered,) = [r["operation"] for r in fake.state.operations_for("demo")]
    assert (delivered["type"], delivered["action"], delivered["name"]) == ("person", "event", "checkout")
    assert delivered["identifiers"] == {"id": "u-1"}
    assert delivered["timestamp"] == 1_700_000_000
    assert delivered["attributes"] == {"email": hashlib.sha256(b"ana@example.com").hexdigest(), "total": 30}
    assert "ana@example.com" not in orjson.dumps(delivered).decode()
    assert dead.header("cio-dlq-reason") == b"missing_field"
    assert dead.header("cio-dlq-message") == b"user_id: $.user.id not found in the record"


async def test_a_debezium_users_table_becomes_identify_then_delete(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """Create (schema envelope) → identify with the row as attributes; delete (bare envelope) → person delete;
    the tombstone after the delete is skipped and committed, even with CONNECTOR_TOMBSTONES=dead_letter."""
    topic, dlq = await topic_factory(), await topic_factory()
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_TOMBSTONES="dead_letter")
    config = tmp_path / "c.yaml"
    config.write_text(f"topics:\n  {topic}:\n    mapping: {{preset: debezium, key: $.user_id}}\n")
    settings = load_settings(env, str(config), role="sink")
    row = {"user_id": 42, "email": "ana@example.com", "plan": "pro"}
    create = {
        "schema": {"type": "struct", "name": "db.public.users.Envelope"},
        "payload": {"op": "c", "before": None, "after": row, "ts_ms": 1_700_000_000_000},
    }
    delete = {"op": "d", "before": row, "after": None, "ts_ms": 1_700_000_100_000}
    async with running(settings) as connector:
        await produce(
            kafka_settings, topic, [(b"42", orjson.dumps(create)), (b"42", orjson.dumps(delete)), (b"42", None)]
        )
        await wait_for(lambda: len(fake.state.operations_for("demo")) >= 2, 60, "identify and delete")
        await wait_for(
            lambda: connector.sample("connector_records_skipped_total", {"topic": topic, "reason": "tombstone"}) == 1,
            60,
            "the tombstone skipped",
        )
    identify, deleted = (r["operation"] for r in fake.state.operations_for("demo"))
    assert (identify["action"], identify["identifiers"]) == ("identify", {"id": "42"})
    assert identify["attributes"]["email"] == "ana@example.com"
    assert identify["attributes"]["plan"] == "pro"
    assert (deleted["action"], deleted["identifiers"]) == ("delete", {"id": "42"})
    assert await committed_and_end(kafka_settings, f"group-{dlq}", topic, 1) == [(3, 3)]


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ("{type: track, user_id: $.user.id}", "event"),
        ("{type: track, user_id: user.id, event: E}", "user_id"),
        ("{preset: debezium, entity: object}", "object_type_id"),
    ],
)
def test_a_bad_mapping_exits_2_with_one_line_naming_the_topic_and_field(
    tmp_path: Path, mapping: str, field: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"topics:\n  orders:\n    mapping: {mapping}\n")
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "CONNECTOR_INPUT_TOPICS": "orders"}
    env |= {"CIO_SITE_ID": "s", "CIO_API_KEY": "k", "CONNECTOR_CONFIG": str(config)}
    result = run_cli(env, "sink")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"topics.orders.mapping.{field}:" in line


def test_debezium_refuses_to_start_when_user_deleted_no_longer_deletes(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("topics:\n  users:\n    mapping: {preset: debezium}\n")
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "CONNECTOR_INPUT_TOPICS": "users", "CONNECTOR_CONFIG": str(config)}
    env |= {"CIO_SITE_ID": "s", "CIO_API_KEY": "k", "CONNECTOR_DELETE_EVENTS": "Account Closed"}
    result = run_cli(env, "sink")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "topics.users.mapping.preset" in line
