"""The Schema Registry client against the fake registry over real sockets: each id fetched once, a 404
answered, an outage waited out (never answered), credentials sent and never logged, the cache bounded."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connector.config import SchemaRegistrySettings, Secret
from connector.devtools.kafka_security import Pki
from connector.fake_registry.server import FakeSchemaRegistry
from connector.metrics import Metrics
from connector.sink.framed import RegisteredSchema, UnusableSchema
from connector.sink.retry import RetryPolicy
from connector.sink.schema_registry import NOT_FOUND_LOOKUPS, RegistryUnavailableError, SchemaRegistry
from tests.sink.memory_sink import wait_for

AVRO = '{"type":"record","name":"E","fields":[{"name":"type","type":"string"}]}'
FAST = RetryPolicy(initial_seconds=0.01, max_seconds=0.05)


@pytest.fixture
async def registry() -> AsyncIterator[FakeSchemaRegistry]:
    async with FakeSchemaRegistry() as server:
        for n in range(3):  # ids 1, 2, 3
            server.state.register("s-value", {"schema": AVRO.replace('"E"', f'"E{n}"')})
        yield server


@pytest.fixture
async def client(registry: FakeSchemaRegistry) -> AsyncIterator[SchemaRegistry]:
    schemas = SchemaRegistry(SchemaRegistrySettings(url=registry.url + "/"), FAST)
    yield schemas
    await schemas.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_each_id_is_fetched_once_however_often_it_is_asked_for(
    registry: FakeSchemaRegistry, client: SchemaRegistry
) -> None:
    assert client.cached(1) is None
    for _ in range(5):
        client.request(1)
    await wait_for(lambda: client.cached(1) is not None, "schema 1 cached")
    client.request(1)
    schema = client.cached(1)
    assert isinstance(schema, RegisteredSchema)
    assert schema.kind == "AVRO"
    assert client.fetching == 0
    assert registry.state.lookups[1] == 1


async def test_an_unknown_id_is_answered_schema_not_found_and_cached(
    registry: FakeSchemaRegistry, client: SchemaRegistry
) -> None:
    client.request(99)
    await wait_for(lambda: client.cached(99) is not None, "the 404 cached")
    assert client.cached(99) == UnusableSchema(99, "schema_not_found", "schema id 99: not found in the registry")
    client.request(99)
    assert registry.state.lookups[99] == NOT_FOUND_LOOKUPS  # believed after a few lookups, then never asked again


async def test_a_new_schema_the_registry_replica_has_not_caught_up_with_is_found_on_a_later_lookup(
    registry: FakeSchemaRegistry, client: SchemaRegistry
) -> None:
    """A new schema version: its first records arrive while the replica asked still answers 40403. They
    wait and decode; before, the first 404 was cached and every record of the new version dead-lettered."""
    schema_id = registry.state.register("s-value", {"schema": AVRO.replace('"E"', '"Fresh"')})
    registry.state.replica_lag[schema_id] = NOT_FOUND_LOOKUPS - 1
    client.request(schema_id)
    await wait_for(lambda: client.cached(schema_id) is not None, "the new schema answered")
    assert isinstance(client.cached(schema_id), RegisteredSchema)
    assert registry.state.lookups[schema_id] == NOT_FOUND_LOOKUPS


async def test_an_outage_is_retried_until_the_registry_answers(
    registry: FakeSchemaRegistry, client: SchemaRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="connector.sink.schema_registry")
    registry.state.unavailable = True
    client.request(2)
    await wait_for(lambda: len(caplog.records) >= 3, "three failed attempts")
    assert client.cached(2) is None
    assert client.fetching == 1
    assert "HTTP 503" in caplog.records[0].fields["error"]  # type: ignore[attr-defined]
    registry.state.unavailable = False
    await wait_for(lambda: client.cached(2) is not None, "schema 2 after the outage")
    assert isinstance(client.cached(2), RegisteredSchema)


async def test_a_404_that_is_not_the_registrys_answer_is_waited_out_naming_the_url_setting(
    registry: FakeSchemaRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A URL missing its path (Apicurio without /apis/ccompat/v7) answers 404 to every id, without the
    registry's error code: the records wait with a warning naming the setting, never all dead-lettered."""
    caplog.set_level("WARNING", logger="connector.sink.schema_registry")
    client = SchemaRegistry(SchemaRegistrySettings(url=registry.url + "/wrong/prefix"), FAST)
    try:
        client.request(1)
        await wait_for(lambda: len(caplog.records) >= 2, "two failed attempts")
        assert client.cached(1) is None
        assert client.fetching == 1
        error = caplog.records[0].fields["error"]  # type: ignore[attr-defined]
        assert "HTTP 404" in error
        assert "CONNECTOR_SCHEMA_REGISTRY_URL" in error
        with pytest.raises(RegistryUnavailableError, match="CONNECTOR_SCHEMA_REGISTRY_URL"):
            await client.fetch(2)  # what cio-connector map reports as registry_unavailable
    finally:
        await client.close()


async def test_metrics_show_an_outage_while_it_lasts_and_count_each_lookup_by_outcome(
    registry: FakeSchemaRegistry,
) -> None:
    metrics = Metrics()
    client = SchemaRegistry(SchemaRegistrySettings(url=registry.url), FAST, metrics=metrics)

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    def lookups(outcome: str) -> float:
        return sample("connector_schema_registry_lookups_total", outcome=outcome)

    try:
        registry.state.unavailable = True
        client.request(1)
        await wait_for(lambda: lookups("unavailable") >= 2, "two refused lookups")
        assert sample("connector_schema_fetches_in_progress") == 1  # the outage shows: one id waited for
        registry.state.unavailable = False
        client.request(99)
        await wait_for(lambda: client.cached(1) is not None and client.cached(99) is not None, "both answered")
        assert (lookups("ok"), lookups("schema_not_found")) == (1, NOT_FOUND_LOOKUPS)
        assert sample("connector_schema_fetches_in_progress") == 0
    finally:
        await client.close()


async def test_a_registry_not_listening_yet_is_waited_for() -> None:
    port = free_port()
    schemas = SchemaRegistry(SchemaRegistrySettings(url=f"http://127.0.0.1:{port}"), FAST)
    try:
        schemas.request(1)
        await wait_for(lambda: schemas.fetching == 1, "a fetch in progress")
        async with FakeSchemaRegistry(port=port) as late:
            late.state.register("s", {"schema": AVRO})
            await wait_for(lambda: schemas.cached(1) is not None, "schema 1 once the registry listens")
    finally:
        await schemas.close()


async def test_credentials_are_sent_and_the_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    async with FakeSchemaRegistry(credentials=("reader", "pa55word")) as registry:
        registry.state.register("s", {"schema": AVRO})
        wrong = SchemaRegistry(
            SchemaRegistrySettings(url=registry.url, username="reader", password=Secret("not-it-either")), FAST
        )
        right = SchemaRegistry(
            SchemaRegistrySettings(url=registry.url, username="reader", password=Secret("pa55word")), FAST
        )
        try:
            wrong.request(1)
            right.request(1)
            await wait_for(lambda: right.cached(1) is not None, "schema 1 with the right password")
            await wait_for(lambda: any("HTTP 401" in str(r.__dict__) for r in caplog.records), "a 401 retried")
            assert wrong.cached(1) is None  # a rejected credential is waited out, not a dead letter
        finally:
            await wrong.close()
            await right.close()
    logged = "\n".join(str(r.__dict__) for r in caplog.records)
    assert "pa55word" not in logged
    assert "not-it-either" not in logged


async def test_the_cache_keeps_the_most_recently_used_schemas_within_its_bound(registry: FakeSchemaRegistry) -> None:
    schemas = SchemaRegistry(SchemaRegistrySettings(url=registry.url, cache_size=2), FAST)
    try:
        for schema_id in (1, 2):
            schemas.request(schema_id)
            await wait_for(lambda i=schema_id: schemas.cached(i) is not None, f"schema {schema_id}")  # type: ignore[misc]
        assert schemas.cached(1) is not None  # 1 is now the most recently used: 2 goes first
        schemas.request(3)
        await wait_for(lambda: schemas.cached(3) is not None, "schema 3")
        assert schemas.cached(2) is None
        assert schemas.cached(1) is not None
    finally:
        await schemas.close()


def test_a_registry_client_needs_a_url() -> None:
    with pytest.raises(ValueError, match="CONNECTOR_SCHEMA_REGISTRY_URL"):
        SchemaRegistry(SchemaRegistrySettings(), FAST)


MONEY = '{"type":"record","name":"Money","namespace":"shop","fields":[{"name":"cents","type":"long"}]}'
PAID = '{"type":"record","name":"Paid","namespace":"shop","fields":[{"name":"total","type":"shop.Money"}]}'


async def test_the_schemas_an_avro_schema_references_are_fetched_with_it(
    registry: FakeSchemaRegistry, client: SchemaRegistry
) -> None:
    registry.state.register("money", {"schema": MONEY})
    reference = {"name": "shop.Money", "subject": "money", "version": 1}
    paid = registry.state.register("paid-value", {"schema": PAID, "references": [reference]})
    dangling = registry.state.register(
        "other", {"schema": PAID, "references": [{"name": "shop.Money", "subject": "gone", "version": 1}]}
    )
    client.request(paid)
    client.request(dangling)
    await wait_for(lambda: client.cached(paid) is not None and client.cached(dangling) is not None, "both answered")
    resolved = client.cached(paid)
    assert isinstance(resolved, RegisteredSchema)
    assert "shop.Money" in resolved.avro["__named_schemas"]
    assert client.cached(dangling) == UnusableSchema(
        dangling, "schema_not_found", f"schema id {dangling}: referenced subject 'gone' version 1 not found"
    )


async def test_an_https_registry_is_verified_against_the_configured_ca_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = Pki.create(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(tmp_path / "broker.pem", tmp_path / "broker.key")
    caplog.set_level("WARNING", logger="connector.sink.schema_registry")
    async with FakeSchemaRegistry(ssl_context=served) as registry:
        registry.state.register("s", {"schema": AVRO})
        trusted = SchemaRegistry(SchemaRegistrySettings(url=registry.url, ca_file=str(pki.ca)), FAST)
        untrusted = SchemaRegistry(SchemaRegistrySettings(url=registry.url, ca_file=str(pki.other_ca)), FAST)
        try:
            trusted.request(1)
            untrusted.request(1)
            await wait_for(lambda: trusted.cached(1) is not None, "schema 1 over https")
            await wait_for(lambda: len(caplog.records) >= 2, "the untrusted client retrying")
            assert untrusted.cached(1) is None
            assert "ClientConnectorCertificateError" in caplog.records[0].fields["error"]  # type: ignore[attr-defined]
        finally:
            await trusted.close()
            await untrusted.close()
