"""``cio-connector map`` with a Schema Registry: framed records are decoded with their writer schema, each id
fetched once; a registry that gives no usable answer is reported per record, once, never guessed at (the
fake registry over real sockets; ``run_map`` runs in a thread with its own event loop, as the CLI does)."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_writer

from connector.config import load_settings
from connector.fake_registry.server import FakeSchemaRegistry
from connector.map_tool import run_map
from tests.sink.test_runner_schemas import SCHEMA, avro


@pytest.fixture
async def registry() -> AsyncIterator[FakeSchemaRegistry]:
    async with FakeSchemaRegistry() as server:
        yield server


def framed_line(value: bytes) -> bytes:
    return orjson.dumps({"value_base64": base64.b64encode(value).decode()})


async def map_lines(env: dict[str, str], lines: list[bytes]) -> tuple[int, list[dict[str, Any]]]:
    settings = load_settings({"CONNECTOR_INPUT_TOPICS": "events", **env})
    out = io.StringIO()
    code = await asyncio.to_thread(run_map, settings, None, lines, out)
    return code, [orjson.loads(line) for line in out.getvalue().splitlines()]


async def test_framed_avro_records_are_mapped_with_their_writer_schema_fetched_once(
    registry: FakeSchemaRegistry,
) -> None:
    schema_id = registry.state.register("events-value", {"schema": orjson.dumps(SCHEMA).decode()})
    missing_id = schema_id + 41
    lines = [framed_line(avro(schema_id, "a1")), framed_line(avro(schema_id, "a2")), framed_line(avro(missing_id, "x"))]
    code, (first, second, missing) = await map_lines({"CONNECTOR_SCHEMA_REGISTRY_URL": registry.url}, lines)
    assert code == 0
    assert first["outcome"] == second["outcome"] == "delivered"
    assert [a["operations"][0]["body"]["identifiers"] for a in (first, second)] == [{"id": "a1"}, {"id": "a2"}]
    assert first["operations"][0]["body"]["name"] == "Avro"
    assert missing["dead_letter"]["reason"] == "schema_not_found"  # what the sink would dead-letter
    assert registry.state.lookups == {schema_id: 1, missing_id: 1}


async def test_an_unavailable_registry_is_reported_per_record_with_exit_code_1(registry: FakeSchemaRegistry) -> None:
    schema_id = registry.state.register("events-value", {"schema": orjson.dumps(SCHEMA).decode()})
    registry.state.unavailable = True
    plain = orjson.dumps({"type": "identify", "userId": "u1"})
    code, (framed, json_record) = await map_lines(
        {"CONNECTOR_SCHEMA_REGISTRY_URL": registry.url}, [framed_line(avro(schema_id, "a1")), plain]
    )
    assert code == 1
    assert framed["outcome"] == "registry_unavailable"
    assert framed["reason"].startswith("CONNECTOR_SCHEMA_REGISTRY_URL: schema id")
    assert "HTTP 503" in framed["reason"]
    assert json_record["outcome"] == "delivered"  # plain JSON needs no registry


async def test_without_a_registry_a_framed_record_says_which_setting_decodes_it() -> None:
    writer = io.BytesIO()
    schemaless_writer(writer, parse_schema(SCHEMA), {"type": "track", "userId": "u", "event": "E"})
    code, (answer,) = await map_lines({}, [framed_line(b"\x00\x00\x00\x00\x05" + writer.getvalue())])
    assert code == 0
    assert answer["outcome"] == "needs_network"
    assert "CONNECTOR_SCHEMA_REGISTRY_URL" in answer["reason"]
    assert "schema id 5" in answer["reason"]
