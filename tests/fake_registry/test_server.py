"""The fake Schema Registry keeps Confluent's rules, over real HTTP, and confluent-kafka's own client and
serializers work against it (so the tests' wire-format records are the real ones)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.fake_registry.server import FakeSchemaRegistry

AVRO = '{"type":"record","name":"E","fields":[{"name":"type","type":"string"}]}'
JSON_SCHEMA = '{"type":"object","properties":{"type":{"type":"string"}}}'


@pytest.fixture
async def registry() -> AsyncIterator[FakeSchemaRegistry]:
    async with FakeSchemaRegistry() as server:
        yield server


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_ids_are_global_and_the_same_schema_keeps_its_id(registry: FakeSchemaRegistry) -> None:
    base = registry.url
    assert await call("POST", f"{base}/subjects/a-value/versions", {"schema": AVRO}) == (200, {"id": 1})
    assert await call("POST", f"{base}/subjects/b-value/versions", {"schema": AVRO}) == (200, {"id": 1})
    json_body = {"schema": JSON_SCHEMA, "schemaType": "JSON"}
    assert await call("POST", f"{base}/subjects/a-value/versions", json_body) == (200, {"id": 2})
    assert await call("GET", f"{base}/schemas/ids/1") == (200, {"schema": AVRO})  # no schemaType for Avro
    assert await call("GET", f"{base}/schemas/ids/2") == (200, {"schema": JSON_SCHEMA, "schemaType": "JSON"})
    status, latest = await call("GET", f"{base}/subjects/a-value/versions/latest")
    assert (status, latest["version"], latest["id"]) == (200, 2, 2)
    assert await call("GET", f"{base}/subjects") == (200, ["a-value", "b-value"])


async def test_unknown_ids_and_subjects_are_confluents_404s(registry: FakeSchemaRegistry) -> None:
    assert await call("GET", f"{registry.url}/schemas/ids/42") == (
        404,
        {"error_code": 40403, "message": "Schema 42 not found"},
    )
    status, body = await call("GET", f"{registry.url}/subjects/nope/versions/1")
    assert (status, body["error_code"]) == (404, 40401)
    assert registry.state.lookups[42] == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"schema": 5}, id="schema not a string"),
        pytest.param({"schema": "{not json"}, id="Avro schema not JSON"),
        pytest.param({"schema": "{}", "schemaType": "XML"}, id="unknown schema type"),
        pytest.param({"schema": "{}", "references": [{"name": "X"}]}, id="reference without subject"),
        pytest.param({"schema": "{}", "references": [{"name": "X", "subject": "s", "version": "v"}]}, id="bad version"),
    ],
)
async def test_invalid_schemas_are_error_42201(registry: FakeSchemaRegistry, body: dict[str, Any]) -> None:
    status, answer = await call("POST", f"{registry.url}/subjects/s/versions", body)
    assert (status, answer["error_code"]) == (422, 42201)
    assert registry.state.schemas == {}


async def test_an_outage_on_demand_answers_503_to_everything(registry: FakeSchemaRegistry) -> None:
    await call("POST", f"{registry.url}/subjects/s/versions", {"schema": AVRO})
    registry.state.unavailable = True
    status, body = await call("GET", f"{registry.url}/schemas/ids/1")
    assert (status, body["error_code"]) == (503, 50003)
    assert registry.state.refused == 1
    registry.state.unavailable = False
    assert (await call("GET", f"{registry.url}/schemas/ids/1"))[0] == 200


async def test_with_credentials_every_request_needs_them() -> None:
    async with FakeSchemaRegistry(credentials=("reader", "s3cret")) as registry:
        status, body = await call("GET", f"{registry.url}/subjects")
        assert (status, body["error_code"]) == (401, 40101)
        assert (await call("GET", f"{registry.url}/subjects", headers=basic("reader", "guess")))[0] == 401
        assert (await call("GET", f"{registry.url}/subjects", headers={"Authorization": "Basic !!"}))[0] == 401
        assert await call("GET", f"{registry.url}/subjects", headers=basic("reader", "s3cret")) == (200, [])


async def test_confluent_kafkas_serializers_register_and_frame_against_it(registry: FakeSchemaRegistry) -> None:
    def serialize() -> tuple[bytes, bytes]:
        context = SerializationContext("orders", MessageField.VALUE)
        with SchemaRegistryClient({"url": registry.url}) as client:
            avro = AvroSerializer(client, AVRO)({"type": "track"}, context)
            json = JSONSerializer(JSON_SCHEMA, client)({"type": "track"}, context)
        assert avro is not None
        assert json is not None
        return avro, json

    avro, json = await asyncio.to_thread(serialize)
    assert avro == b"\x00\x00\x00\x00\x01" + b"\x0atrack"
    assert json == b'\x00\x00\x00\x00\x02{"type":"track"}'
    assert registry.state.subjects == {"orders-value": [1, 2]}
