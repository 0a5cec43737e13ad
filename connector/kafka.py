"""The only module that imports aiokafka: typed consumer and producer wrappers.

aiokafka ships no type information, so everything above this module sees plain dataclasses and the
small ``Consumer``/``Producer`` classes below. aiokafka exceptions are translated here: a failed
produce raises ``BrokerUnavailableError``, or its subclass ``RecordTooLargeError`` when the producer or
the broker refuses the record's size (resending it unchanged cannot succeed).

A client that cannot start raises ``KafkaConnectError``, whose one line names the setting to fix and
the reason (``KAFKA_SASL_PASSWORD: SASL authentication failed (SCRAM-SHA-512)``): aiokafka only logs the
reason and raises "Unable to bootstrap", so ``diagnose()`` connects once more, alone, to find it.

The engine is typed against ``ConsumerLike`` and ``ProducerLike``, the methods it uses of those two
classes, so tests without a broker can pass in-memory objects of the same shape.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import aiokafka.conn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from connector.config import KafkaSettings
from connector.errors import BrokerUnavailableError, KafkaConnectError, RecordTooLargeError, TopicNotCreatedError
from connector.kafka_auth import TokenError, TokenSource, token_source
from connector.readahead import partition_fetch_bytes

Headers = tuple[tuple[str, bytes], ...]
Record3 = tuple[bytes | None, bytes, Headers]  # key, value, headers of a record to produce
_Row = tuple[bytes | None, bytes, list[tuple[str, bytes]]]  # the same as aiokafka's batch builder takes it

# aiokafka's (and Kafka's) default max_request_size; also the broker's message.max.bytes default, less
# the 12 bytes of log overhead it allows on top.
DEFAULT_MAX_REQUEST_SIZE = 1_048_576
MAX_BATCH_BYTES = 262_144  # the largest Kafka batch of one partition the producer builds (see Producer)
_DEFAULT_PARTITIONER = DefaultPartitioner()
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


class Partition(NamedTuple):
    """A topic partition (hashable, usable as a dict key)."""

    topic: str
    partition: int


# NamedTuples rather than frozen dataclasses: one is built per consumed record, and tuple construction
# and hashing run in C (measured: the frozen dataclass's __init__ and __hash__ were 10% of the sink's CPU).
class Record(NamedTuple):
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    def header(self, name: str) -> bytes | None:
        """The last value of a header, or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


_new_record = tuple.__new__  # in C: a NamedTuple's own __new__ is Python code, ~3% of the sink's CPU per record


def _record_of(tp: TopicPartition, raw: Any) -> Record:
    """A ``Record`` straight from one of aiokafka's raw records (its ``PartitionRecords._consumer_record``)."""
    headers = raw.headers
    return _new_record(
        Record,
        (tp.topic, tp.partition, raw.offset, raw.timestamp, raw.key, raw.value, tuple(headers) if headers else ()),
    )


class _RecordResults(collections.OrderedDict[TopicPartition, Any]):
    """A fetcher's finished fetches by partition (aiokafka's ``Fetcher._records``), whose records come out
    as ``Record`` rather than as aiokafka's ``ConsumerRecord``.

    aiokafka builds a ``ConsumerRecord`` (a dataclass of 11 fields, built in Python) per record, which
    ``Consumer.fetch`` then copied into a ``Record``: 5-6% of the sink's CPU per event under py-spy. Each
    fetch result's ``PartitionRecords`` gets ``_record_of`` as its own ``_consumer_record`` (an instance
    attribute: other consumers and aiokafka's class are untouched). Only a consumer without
    deserializers (the connector's never set any) is changed. Should aiokafka's internals move, records
    come out as ``ConsumerRecord`` again and ``Consumer.fetch`` converts them as before (slower, not
    wrong); tests/test_kafka_records.py fails then.

    It also frees a dropped fetch result at once. aiokafka's ``PartitionRecords`` and its suspended
    ``_unpack_records`` generator reference each other, and aiokafka only breaks that cycle when the
    records are read to the end. A result is dropped unread whenever its partition is paused (the sink's
    flow control pauses partitions all the time), revoked or reset; the cycle then keeps the whole fetched
    batch (up to ``max_partition_fetch_bytes``) alive until a full collection closes the generator, which
    CPython counts as nothing found. Measured: the sink's peak RSS followed the number of full collections
    (705 MB over a 1M-record backlog with the collector off). Removing a result here drops the iterator.
    """

    def __init__(self, results: collections.OrderedDict[TopicPartition, Any] | None = None) -> None:
        self._partition_records: dict[TopicPartition, Any] = {}  # kept: aiokafka forgets a dropped one's
        super().__init__(results or {})

    def __setitem__(self, tp: TopicPartition, result: Any) -> None:
        records = getattr(result, "_partition_records", None)
        if (
            records is not None
            and hasattr(records, "_consumer_record")
            and not getattr(records, "_key_deserializer", True)
            and not getattr(records, "_value_deserializer", True)
        ):
            records._consumer_record = _record_of
        replaced = self._partition_records.pop(tp, None)
        if replaced is not None and replaced is not records:
            _release(replaced)
        if records is not None:
            self._partition_records[tp] = records
        super().__setitem__(tp, result)

    def __delitem__(self, tp: TopicPartition) -> None:
        super().__delitem__(tp)
        records = self._partition_records.pop(tp, None)
        if records is not None:
            _release(records)

    def clear(self) -> None:
        super().clear()
        for records in self._partition_records.values():
            _release(records)
        self._partition_records.clear()


def _release(records: Any) -> None:
    """Break a dropped ``PartitionRecords``' cycle with its generator (if it has one still), freeing its batch."""
    if getattr(records, "_records_iterator", None) is not None:
        records._records_iterator = None


def build_records_directly(consumer: AIOKafkaConsumer) -> bool:
    """Have a started consumer's fetcher build ``Record``s (``_RecordResults``); whether it could."""
    fetcher: Any = getattr(consumer, "_fetcher", None)
    results = getattr(fetcher, "_records", None)
    if type(results) is not collections.OrderedDict:
        return isinstance(results, _RecordResults)
    fetcher._records = _RecordResults(results)
    return True


class _TokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """aiokafka's OAUTHBEARER callback over a ``kafka_auth`` token source.

    A token failure is raised to aiokafka as a connection error (what it expects from a connect attempt:
    anything else would escape its reconnect logic) and kept in ``failure`` for ``diagnose()``.
    """

    def __init__(self, source: TokenSource) -> None:
        self.source = source
        self.failure: TokenError | None = None

    async def token(self) -> str:
        try:
            token = await self.source.token()
        except TokenError as exc:
            self.failure = exc
            raise KafkaConnectionError(str(exc)) from None
        self.failure = None
        return token

    def extensions(self) -> dict[str, str]:
        return self.source.extensions()


class _OAuthAuthenticator(aiokafka.conn.OAuthAuthenticator):  # type: ignore[misc]
    """aiokafka's OAUTHBEARER exchange, plus the failure half of RFC 7628 §3.2.2.

    A broker that rejects the token answers with an error challenge and waits for the client's ``%x01``
    before failing the authentication. aiokafka 0.14 takes the challenge for success, and the broker then
    drops the connection on the next request without a reason; answering ``%x01`` gets the broker's
    SaslAuthenticationFailed with its message instead.
    """

    _acknowledged = False

    async def step(self, payload: bytes | None) -> Any:
        if self._token_sent and payload and not self._acknowledged:
            self._acknowledged = True
            return b"\x01", True
        return await super().step(payload)


aiokafka.conn.OAuthAuthenticator = _OAuthAuthenticator


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    """The TLS context of SSL and SASL_SSL: the CA bundle (or the system's), and the client certificate."""
    context = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security options shared by consumers, producers and admin clients.

    OAUTHBEARER and AWS_MSK_IAM get a token source of their own per client (each caches its token).
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        source = token_source(settings)
        if source is not None:
            # MSK's IAM authentication is OAUTHBEARER carrying the signer's token.
            options["sasl_mechanism"] = "OAUTHBEARER"
            options["sasl_oauth_token_provider"] = _TokenProvider(source)
        else:
            options["sasl_mechanism"] = settings.sasl_mechanism
            options["sasl_plain_username"] = settings.sasl_username
            options["sasl_plain_password"] = settings.sasl_password.reveal() if settings.sasl_password else None
    return options


async def start_client(client: Any, settings: KafkaSettings, options: dict[str, Any]) -> None:
    """``await client.start()``; on failure, stop it and raise KafkaConnectError with the reason found."""
    try:
        await client.start()
    except (KafkaError, TokenError, OSError) as exc:
        with contextlib.suppress(Exception):
            await client.stop() if hasattr(client, "stop") else await client.close()
        raise await diagnose(settings, options, exc) from None


async def diagnose(settings: KafkaSettings, options: dict[str, Any], failure: BaseException) -> KafkaConnectError:
    """Why clients with ``options`` cannot start: each bootstrap server is tried alone, TLS first."""
    provider = options.get("sasl_oauth_token_provider")
    if isinstance(failure, TokenError):
        return KafkaConnectError(failure.setting, failure.reason)
    refused = _not_authorized(settings, failure)
    if refused is not None:
        return refused
    reasons: list[KafkaConnectError] = []
    for server in settings.bootstrap_servers.split(","):
        host, _, port_text = server.strip().rpartition(":")
        try:
            port = int(port_text)
        except ValueError:
            return KafkaConnectError("KAFKA_BOOTSTRAP_SERVERS", f"{server.strip()!r} is not host:port")
        reason = await _diagnose_server(settings, options, host.strip("[]"), port)
        if reason is None:
            continue
        reasons.append(reason)
    if isinstance(provider, _TokenProvider) and provider.failure is not None:
        return KafkaConnectError(provider.failure.setting, provider.failure.reason)
    if reasons:
        return reasons[0]
    return KafkaConnectError("KAFKA_BOOTSTRAP_SERVERS", f"cannot connect to Kafka: {failure}")


def _not_authorized(settings: KafkaSettings, failure: BaseException) -> KafkaConnectError | None:
    """The connection worked but the credentials lack an ACL: say which, naming the setting of what is refused."""
    name = " ".join(map(str, getattr(failure, "args", ()))) or "?"
    kind = type(failure).__name__
    if isinstance(failure, GroupAuthorizationFailedError):
        return KafkaConnectError(
            "CONNECTOR_GROUP_ID", f"these credentials may not use consumer group {name} ({kind}): allow them Read on it"
        )
    if isinstance(failure, TopicAuthorizationFailedError):
        return KafkaConnectError(
            "CONNECTOR_INPUT_TOPICS",
            f"these credentials may not read topic {name} ({kind}): allow them Describe and Read",
        )
    if isinstance(failure, ClusterAuthorizationFailedError):
        return KafkaConnectError(
            _principal_setting(settings),
            f"these credentials may not produce ({kind}): allow them Write on the output topics "
            "(or IdempotentWrite on the cluster)",
        )
    return None


def _principal_setting(settings: KafkaSettings) -> str:
    """The setting that says who the client is to the broker's ACLs."""
    if settings.security_protocol.startswith("SASL_"):
        return {"OAUTHBEARER": "KAFKA_SASL_OAUTH_CLIENT_ID", "AWS_MSK_IAM": "KAFKA_SASL_MECHANISM"}.get(
            str(settings.sasl_mechanism), "KAFKA_SASL_USERNAME"
        )
    return "KAFKA_SSL_CERTFILE" if settings.ssl_certfile else "KAFKA_SECURITY_PROTOCOL"


_API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 8) + b"diagnose"


async def _diagnose_server(  # noqa: C901 - one diagnosis per way a connection fails
    settings: KafkaSettings, options: dict[str, Any], host: str, port: int
) -> KafkaConnectError | None:
    where = f"{host}:{port}"
    protocol = settings.security_protocol
    if protocol in ("SSL", "SASL_SSL"):
        # TLS alone first: certificate problems surface here with their reason (aiokafka loses it).
        try:
            async with asyncio.timeout(15):
                reader, writer = await asyncio.open_connection(host, port, ssl=options["ssl_context"])
                try:
                    writer.write(struct.pack(">i", len(_API_VERSIONS_V0)) + _API_VERSIONS_V0)
                    await writer.drain()
                    answered = len(await reader.read(4)) == 4
                finally:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
        except ssl.SSLCertVerificationError as exc:
            return KafkaConnectError(
                "KAFKA_SSL_CAFILE", f"TLS: the broker's certificate is not trusted ({exc.verify_message}) at {where}"
            )
        except ssl.SSLError as exc:
            alert = (exc.reason or str(exc)).lower().replace("_", " ")
            if "certificate required" in alert or (not settings.ssl_certfile and "alert" in alert):
                return KafkaConnectError(
                    "KAFKA_SSL_CERTFILE", f"TLS: the broker requires a client certificate at {where}"
                )
            if "alert" in alert and settings.ssl_certfile:
                return KafkaConnectError(
                    "KAFKA_SSL_CERTFILE", f"TLS: the broker refused the client certificate ({alert})"
                )
            return KafkaConnectError("KAFKA_SECURITY_PROTOCOL", f"TLS handshake with {where} failed ({alert})")
        except ConnectionResetError:  # connected, then dropped on the ClientHello: a listener without TLS
            return KafkaConnectError(
                "KAFKA_SECURITY_PROTOCOL",
                f"{where} closed the connection during the TLS handshake (does it expect no TLS?)",
            )
        except (OSError, TimeoutError) as exc:
            return _network(where, exc)
        if not answered:
            cause = "requires a client certificate" if not settings.ssl_certfile else "closed the TLS connection"
            return KafkaConnectError("KAFKA_SSL_CERTFILE", f"TLS: the broker {cause} at {where}")
    try:
        conn = await aiokafka.conn.create_conn(
            host,
            port,
            client_id=settings.client_id,
            request_timeout_ms=15_000,
            ssl_context=options.get("ssl_context"),
            security_protocol=protocol,
            sasl_mechanism=options.get("sasl_mechanism"),
            sasl_plain_username=options.get("sasl_plain_username"),
            sasl_plain_password=options.get("sasl_plain_password"),
            sasl_oauth_token_provider=options.get("sasl_oauth_token_provider"),
        )
        try:
            await conn.send(MetadataRequest([]))
        finally:
            conn.close()
    except SaslAuthenticationFailed:
        mechanism = settings.sasl_mechanism
        setting = {"OAUTHBEARER": "KAFKA_SASL_OAUTH_CLIENT_ID", "AWS_MSK_IAM": "AWS_REGION"}.get(
            str(mechanism), "KAFKA_SASL_PASSWORD"
        )
        rejected = " (the broker rejected the token)" if setting != "KAFKA_SASL_PASSWORD" else ""
        return KafkaConnectError(setting, f"SASL authentication failed ({mechanism}){rejected}")
    except UnsupportedSaslMechanismError:
        return KafkaConnectError(
            "KAFKA_SASL_MECHANISM", f"the broker at {where} does not offer {settings.sasl_mechanism}"
        )
    except (KafkaError, OSError, TimeoutError) as exc:
        provider = options.get("sasl_oauth_token_provider")
        if isinstance(provider, _TokenProvider) and provider.failure is not None:
            return KafkaConnectError(provider.failure.setting, provider.failure.reason)
        if isinstance(exc, OSError | TimeoutError):
            return _network(where, exc)
        if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            return KafkaConnectError(
                "KAFKA_SECURITY_PROTOCOL", f"{where} closed the connection (does it expect TLS?): {exc}"
            )
        if protocol == "SSL":  # TLS was fine (checked above): the listener wants a SASL exchange first
            return KafkaConnectError(
                "KAFKA_SECURITY_PROTOCOL", f"{where} closed the connection (does it expect SASL_SSL?): {exc}"
            )
        return KafkaConnectError("KAFKA_BOOTSTRAP_SERVERS", f"cannot connect to {where}: {exc}")
    return None


def _network(where: str, exc: BaseException) -> KafkaConnectError:
    if isinstance(exc, TimeoutError):
        return KafkaConnectError("KAFKA_BOOTSTRAP_SERVERS", f"no answer from {where}")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return KafkaConnectError("KAFKA_BOOTSTRAP_SERVERS", f"cannot connect to {where} ({reason.lower()})")


def _tp(partition: Partition) -> Any:
    return TopicPartition(partition.topic, partition.partition)


def _partition(tp: Any) -> Partition:
    return Partition(tp.topic, tp.partition)


def brokers_reachable(client: Any) -> bool:
    """Whether an aiokafka client's last cluster-metadata request was answered (for /readyz).

    Every client refreshes metadata when a request to a broker fails, so a broker that went away shows
    here within a request's time; an idle client notices at its periodic refresh. While unanswered, a
    new refresh is started in the background, so that each readiness probe also retries: a pod taken out
    of its Service gets no traffic that would, and would otherwise wait for the periodic refresh.
    """
    cluster = client.cluster
    if cluster._last_successful_refresh_ms >= cluster._last_refresh_ms:
        return True
    client.force_metadata_update()
    return False


RebalanceCallback = Callable[[list[Partition]], Awaitable[None]]


class ConsumerLike(Protocol):
    """What the sink needs of ``Consumer``: a group member with manual commits (tests pass a fake)."""

    async def start(
        self,
        topics: Sequence[str],
        on_revoked: RebalanceCallback,
        on_assigned: RebalanceCallback,
        *,
        pattern: str | None = None,
    ) -> None:
        """Join the group for ``topics`` (or ``pattern``); the callbacks run inside ``fetch`` on each rebalance."""
        ...

    async def position(self, partition: Partition) -> int | None:
        """The offset the next fetch of ``partition`` starts from, if known without waiting."""
        ...

    async def stop(self) -> None:
        """Leave the group and close connections."""
        ...

    async def fetch(self, timeout_ms: int, max_records: int | None = None) -> list[Record]:
        """Records fetched since the last call, each partition's together and in offset order."""
        ...

    async def commit(self, offsets: dict[Partition, int]) -> None:
        """Commit the next offset to read per partition; raise BrokerUnavailableError."""
        ...

    async def end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """Log-end offsets; raise BrokerUnavailableError."""
        ...

    def assignment(self) -> set[Partition]:
        """Partitions currently assigned to this member."""
        ...

    def pause(self, partitions: Iterable[Partition]) -> None:
        """Stop fetching these partitions; positions are kept."""
        ...

    def resume(self, partitions: Iterable[Partition]) -> None:
        """Fetch these partitions again."""
        ...


class RecordSender(Protocol):
    """What the webhook listener needs of ``Producer``: connected, and one acknowledged send."""

    @property
    def started(self) -> bool:
        """Whether the producer is connected."""
        ...

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        ack_timeout: float | None = None,
    ) -> None:
        """Produce one record and wait for its acknowledgement; raise BrokerUnavailableError."""
        ...


class BatchSender(Protocol):
    """What the webhook listener needs of ``Producer``: connected, and many records sent in one go."""

    @property
    def started(self) -> bool:
        """Whether the producer is connected."""
        ...

    async def send_batch(self, topic: str, records: Sequence[Record3]) -> list[BrokerUnavailableError | None]:
        """Produce ``records`` and wait for every ack; per record, None once acknowledged, else its error."""
        ...


class ProducerLike(RecordSender, Protocol):
    """What the sink and the app need of ``Producer``: also its size limit and batched sends."""

    @property
    def max_request_size(self) -> int:
        """Largest record this producer sends, as measured by ``Producer.record_size``."""
        ...

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes | None, Headers]]) -> None:
        """Produce several records and wait until all are acknowledged; raise BrokerUnavailableError."""
        ...


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: RebalanceCallback, on_assigned: RebalanceCallback) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._on_revoked([_partition(tp) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._on_assigned([_partition(tp) for tp in assigned])


class Consumer:
    """A consumer-group member with manual commits (``group_id`` None: a reader of assigned partitions that
    joins no group and cannot commit, e.g. ``dlq inspect``).

    With ``fetch_budget_bytes``, the read-ahead kept in memory is bounded for the process: at every
    assignment each partition's fetch size becomes the budget divided by the partitions assigned
    (``readahead.py``), instead of a fixed size per partition.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str | None,
        *,
        max_poll_records: int = 2000,
        fetch_max_bytes: int = 16_777_216,
        fetch_budget_bytes: int | None = None,
        auto_offset_reset: str = "earliest",
        **extra: Any,
    ) -> None:
        self._settings = settings
        self._options = client_options(settings)
        self._fetch_max_bytes = fetch_max_bytes
        self._fetch_budget_bytes = fetch_budget_bytes
        self._consumer = AIOKafkaConsumer(
            **self._options,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=max_poll_records,
            fetch_max_bytes=fetch_max_bytes,
            max_partition_fetch_bytes=partition_fetch_bytes(fetch_budget_bytes or fetch_max_bytes, 1, fetch_max_bytes),
            isolation_level=settings.isolation_level,
            metadata_max_age_ms=int(settings.metadata_max_age_seconds * 1000),
            **extra,
        )

    async def start(
        self,
        topics: Sequence[str],
        on_revoked: RebalanceCallback,
        on_assigned: RebalanceCallback,
        *,
        pattern: str | None = None,
    ) -> None:
        """Join the group for ``topics``, or for every topic matching ``pattern`` (``re.match``: anchor it);
        rebalance callbacks run inside the consumer's poll. Each assignment re-shares the read-ahead budget."""

        async def assigned(partitions: list[Partition]) -> None:
            self._share_read_ahead()
            await on_assigned(partitions)

        listener = _Listener(on_revoked, assigned)
        if pattern is not None:
            self._consumer.subscribe(pattern=pattern, listener=listener)
        else:
            self._consumer.subscribe(list(topics), listener=listener)
        await start_client(self._consumer, self._settings, self._options)
        build_records_directly(self._consumer)

    def _share_read_ahead(self) -> None:
        """Re-divide the read-ahead budget among the partitions now assigned (before any is fetched)."""
        if self._fetch_budget_bytes is None:
            return
        size = partition_fetch_bytes(self._fetch_budget_bytes, len(self._consumer.assignment()), self._fetch_max_bytes)
        # aiokafka reads this attribute each time it builds a fetch request; it has no public setter.
        self._consumer._fetcher._max_partition_fetch_bytes = size

    @property
    def partition_fetch_bytes(self) -> int:
        """Bytes each assigned partition is fetched ahead, as the consumer now asks the broker for."""
        fetcher = getattr(self._consumer, "_fetcher", None)
        if fetcher is None:  # not started: what it was built with
            return int(self._consumer._max_partition_fetch_bytes)
        return int(fetcher._max_partition_fetch_bytes)

    @property
    def reachable(self) -> bool:
        """Whether the brokers answer this consumer (``brokers_reachable``)."""
        return brokers_reachable(self._consumer._client)

    async def connect(self) -> None:
        """Connect without subscribing (offset and end-offset queries only)."""
        await start_client(self._consumer, self._settings, self._options)
        build_records_directly(self._consumer)

    async def stop(self) -> None:
        """Leave the group and close connections."""
        await self._consumer.stop()

    async def fetch(self, timeout_ms: int, max_records: int | None = None) -> list[Record]:
        """Records fetched since the last call, in partition order (may be empty)."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        records: list[Record] = []
        for messages in batches.values():
            if messages and type(messages[0]) is Record:  # built by the fetcher (_RecordResults): the usual case
                records.extend(messages)
                continue
            records.extend(
                _new_record(
                    Record,
                    (
                        m.topic,
                        m.partition,
                        m.offset,
                        m.timestamp,
                        m.key,
                        m.value,
                        tuple(m.headers) if m.headers else (),
                    ),
                )
                for m in messages
            )
        return records

    async def commit(self, offsets: dict[Partition, int]) -> None:
        """Commit ``offset`` (the next one to read) per partition."""
        try:
            await self._consumer.commit({_tp(p): o for p, o in offsets.items()})
        except KafkaError as exc:
            raise BrokerUnavailableError(f"commit failed: {exc}") from exc

    async def committed(self, partition: Partition) -> int | None:
        """The group's committed offset of a partition."""
        result: int | None = await self._consumer.committed(_tp(partition))
        return result

    async def end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """Log-end offsets, for lag."""
        try:
            ends = await self._consumer.end_offsets([_tp(p) for p in partitions])
        except KafkaError as exc:
            raise BrokerUnavailableError(f"cannot read end offsets: {exc}") from exc
        return {_partition(tp): offset for tp, offset in ends.items()}

    async def position(self, partition: Partition) -> int | None:
        """The offset the next ``fetch()`` of this partition starts from, if known without waiting.

        It is past every record already returned, and also past what is never returned as a record:
        aborted transactions' records, transaction markers, compacted-away offsets. None when the
        partition is not assigned or its position is still being looked up (after a rebalance).
        """
        try:
            # aiokafka returns at once when the position is known; timeout(0) cancels only a wait.
            async with asyncio.timeout(0):
                result: int = await self._consumer.position(_tp(partition))
        except (IllegalStateError, TimeoutError):
            return None
        return result

    def assignment(self) -> set[Partition]:
        """Partitions currently assigned to this member."""
        return {_partition(tp) for tp in self._consumer.assignment()}

    def pause(self, partitions: Iterable[Partition]) -> None:
        """Stop fetching these partitions (backpressure); positions are kept."""
        tps = [_tp(p) for p in partitions]
        if tps:
            self._consumer.pause(*tps)

    def resume(self, partitions: Iterable[Partition]) -> None:
        """Fetch these partitions again."""
        tps = [_tp(p) for p in partitions]
        if tps:
            self._consumer.resume(*tps)

    def seek(self, partition: Partition, offset: int) -> None:
        """Read ``partition`` from ``offset`` next (used to re-read abandoned records)."""
        self._consumer.seek(_tp(partition), offset)

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Take these partitions without joining the group (offset tools only; commits need this)."""
        self._consumer.assign([_tp(p) for p in partitions])

    async def beginning_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """First offsets still in the log (after retention)."""
        try:
            firsts = await self._consumer.beginning_offsets([_tp(p) for p in partitions])
        except KafkaError as exc:
            raise BrokerUnavailableError(f"cannot read beginning offsets: {exc}") from exc
        return {_partition(tp): offset for tp, offset in firsts.items()}

    async def offsets_for_time(self, partitions: Sequence[Partition], timestamp_ms: int) -> dict[Partition, int]:
        """Per partition, the first offset whose timestamp is at or after ``timestamp_ms``; partitions without
        such a record are left out."""
        try:
            found = await self._consumer.offsets_for_times({_tp(p): timestamp_ms for p in partitions})
        except KafkaError as exc:
            raise BrokerUnavailableError(f"cannot look offsets up by time: {exc}") from exc
        return {_partition(tp): hit.offset for tp, hit in found.items() if hit is not None}


class CachingPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as the Java client) with each key's hash remembered.

    The same key always gets the same partition as with ``DefaultPartitioner``; only the pure-Python
    murmur2 (~2 µs a record) is skipped for keys seen recently. At most ``max_keys`` hashes are kept:
    the table is emptied when full, so odd traffic can never grow it.
    """

    __slots__ = ("_hashes", "max_keys")

    def __init__(self, max_keys: int = 65_536) -> None:
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        """The partition of ``key`` among ``all_partitions``; a random available one for no key."""
        if key is None:
            return int(_DEFAULT_PARTITIONER(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def group_by_partition(
    records: Sequence[_Row],
    partitioner: Callable[[bytes | None, list[int], list[int]], int],
    partitions: list[int],
    available: list[int],
    max_record_size: int,
) -> tuple[dict[int, list[int]], list[int]]:
    """Indexes of ``records`` per partition (in order), and the indexes of those too large to send alone.

    Pure: the partition is what ``partitioner`` (the producer's own) gives for the key among ``partitions``,
    exactly what ``AIOKafkaProducer.send`` would have chosen; the size bound is the one it checks.
    """
    groups: dict[int, list[int]] = {}
    too_large: list[int] = []
    estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
    for index, (key, value, headers) in enumerate(records):
        if estimate(key, value, headers) > max_record_size:
            too_large.append(index)
            continue
        partition = partitioner(key, partitions, available)
        group = groups.get(partition)
        if group is None:
            groups[partition] = [index]
        else:
            group.append(index)
    return groups, too_large


class Producer:
    """An idempotent producer (acks=all) whose sends are awaited with a deadline."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        linger_ms: int = 5,
        compression: str | None = None,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
    ) -> None:
        self._settings = settings
        self._options = client_options(settings)
        self._partitioner = CachingPartitioner()
        self._producer = AIOKafkaProducer(
            **self._options,
            enable_idempotence=True,
            acks="all",
            partitioner=self._partitioner,
            linger_ms=linger_ms,
            compression_type=compression,
            request_timeout_ms=30_000,
            max_request_size=max_request_size,
            # A batch larger than the topic's max.message.bytes is refused whole, small records with it:
            # never batch beyond the limit (one larger record still goes alone, and is sized by the caller).
            # 256 KiB, not aiokafka's 16 KiB: a webhook batch (what arrived during one broker round trip)
            # split into two Kafka batches of a partition took two produce requests, one after the other's
            # ack (aiokafka sends one request per broker at a time). Not the whole 1 MiB either: a topic
            # whose max.message.bytes was lowered would refuse every full batch, records far below it too.
            max_batch_size=min(MAX_BATCH_BYTES, max_request_size),
        )
        self._max_request_size = max_request_size
        self._started = False

    @property
    def max_request_size(self) -> int:
        """Largest record this producer sends, as measured by ``record_size``."""
        return self._max_request_size

    @staticmethod
    def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
        """Upper bound of a record's size alone in a batch (what both the producer and the broker check)."""
        size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))
        return size

    async def start(self) -> None:
        """Connect to the cluster; raises KafkaConnectError (setting and reason) when it cannot."""
        await start_client(self._producer, self._settings, self._options)
        self._started = True

    async def stop(self, timeout: float = 10.0) -> None:
        """Flush and close; gives up after ``timeout`` seconds (Kafka unreachable) rather than hang."""
        if self._started:
            self._started = False
            try:
                async with asyncio.timeout(timeout):
                    await self._producer.stop()
            except TimeoutError:
                pass  # unacknowledged records were never acknowledged to anyone: nothing is lost

    @property
    def started(self) -> bool:
        """Whether start() succeeded and stop() has not been called."""
        return self._started

    @property
    def reachable(self) -> bool:
        """Whether started and the brokers answer this producer (``brokers_reachable``)."""
        return self._started and brokers_reachable(self._producer.client)

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        ack_timeout: float | None = None,
    ) -> None:
        """Produce one record and wait for the broker's acknowledgement (or raise BrokerUnavailableError)."""
        try:
            future = await self._producer.send(topic, value, key=key, headers=list(headers))
            if ack_timeout is None:
                await future
            else:
                # shield: on timeout the record may still be acknowledged later; the caller only
                # stops waiting (the webhook then answers 503 and Customer.io retries).
                await asyncio.wait_for(asyncio.shield(future), ack_timeout)
        except TimeoutError as exc:
            raise BrokerUnavailableError(f"no acknowledgement from Kafka within {ack_timeout}s") from exc
        except KafkaError as exc:
            raise _rejected(exc) from exc

    async def send_batch(self, topic: str, records: Sequence[Record3]) -> list[BrokerUnavailableError | None]:
        """Produce ``records``, one aiokafka batch per partition, and wait for every ack.

        Per record: None once acknowledged, else its error. A record larger than ``max_request_size``
        gets RecordTooLargeError and its batch-mates are sent without it (the check ``send()`` makes). A
        partition batch the broker refuses fails whole, as aiokafka's own batches of ``send()`` do: it is
        not resent record by record, because the idempotent producer has already spent the batch's
        sequence numbers (a resend would be out of order). Partitions
        are the ones ``send()`` would choose (the same partitioner). Only the first call for a topic
        waits for its metadata (at most ``request_timeout_ms``); the caller bounds its own wait.

        Why not ``send()`` per record: each costs a coroutine chain, a future and a RecordMetadata; a
        batch costs one future per partition.
        """
        producer = self._producer
        outcomes: list[BrokerUnavailableError | None] = [None] * len(records)
        try:
            partitions = list(await producer.partitions_for(topic))  # waits for metadata only the first time
        except KafkaError as exc:
            return [BrokerUnavailableError(f"Kafka rejected the records: {exc}")] * len(records)
        available = list(producer._metadata.available_partitions_for_topic(topic))
        rows = [(key, value, list(headers)) for key, value, headers in records]  # aiokafka's C builder wants lists
        groups, too_large = group_by_partition(rows, self._partitioner, partitions, available, self._max_request_size)
        for index in too_large:
            outcomes[index] = RecordTooLargeError(
                f"the record is larger than the producer's max_request_size ({self._max_request_size} bytes)"
            )
        sent: list[tuple[asyncio.Future[Any], list[int]]] = []
        for partition, indexes in groups.items():
            for members, batch in self._batches(rows, indexes):
                try:
                    sent.append((await producer.send_batch(batch, topic, partition=partition), members))
                except KafkaError as exc:
                    _fail(outcomes, members, exc)
        for ack, members in sent:
            try:
                await ack
            except KafkaError as exc:
                _fail(outcomes, members, exc)
        return outcomes

    def _batches(self, records: Sequence[_Row], indexes: list[int]) -> Iterable[tuple[list[int], Any]]:
        """Closed aiokafka batches of these records (in order; a new one when one is full), with their indexes.

        Closed: the records were already collected, so the sender takes the batch at once, not after
        ``linger_ms``.
        """
        batch = self._producer.create_batch()
        members: list[int] = []
        for index in indexes:
            key, value, headers = records[index]
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                yield members, batch
                batch, members = self._producer.create_batch(), []
                batch.append(timestamp=None, key=key, value=value, headers=headers)  # alone it fits: size checked
            members.append(index)
        batch.close()
        yield members, batch

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes | None, Headers]]) -> None:
        """Produce several records and wait until all are acknowledged."""
        try:
            futures = [
                await self._producer.send(topic, value, key=key, headers=list(headers)) for key, value, headers in items
            ]
            await asyncio.gather(*futures)
        except _TOO_LARGE as exc:
            raise RecordTooLargeError(f"Kafka rejected a record's size: {exc}") from exc
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka rejected a record: {exc}") from exc


def _rejected(exc: KafkaError) -> BrokerUnavailableError:
    """aiokafka's refusal of a record as the connector's error (RecordTooLargeError for its size)."""
    if isinstance(exc, _TOO_LARGE):
        return RecordTooLargeError(f"Kafka rejected the record's size: {exc}")
    return BrokerUnavailableError(f"Kafka rejected the record: {exc}")


def _fail(outcomes: list[BrokerUnavailableError | None], indexes: list[int], exc: KafkaError) -> None:
    """Record aiokafka's error for these records, translated to the connector's."""
    error = _rejected(exc)
    for index in indexes:
        outcomes[index] = error


# The replication factor of the topics the connector creates (dead letters, webhook events): that of any
# production topic, capped by the brokers there are. Kafka's "broker default" (-1) needs CreateTopics v4,
# which aiokafka does not send.
MAX_CREATED_REPLICATION = 3


def created_replication(brokers: int) -> int:
    """The replication factor for a topic created on a cluster of ``brokers`` brokers: 3, or fewer when the
    cluster has fewer (a one-broker development cluster gets 1)."""
    return max(1, min(MAX_CREATED_REPLICATION, brokers))


async def ensure_topics(
    settings: KafkaSettings,
    topics: dict[str, int],
    replication: int | None = None,
    configs: dict[str, str] | None = None,
) -> None:
    """Create the topics that do not exist yet (name → partition count, with topic ``configs``); existing
    ones are left alone. Raises TopicNotCreatedError for a topic the cluster refused to create (aiokafka
    returns those refusals, e.g. TopicAuthorizationFailedError without a Create ACL, instead of raising).

    ``replication`` None: ``created_replication`` of the cluster's broker count. A dead letter or a
    webhook acknowledged on one replica would be lost with that broker.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    options = client_options(settings)
    admin = AIOKafkaAdminClient(**options)
    await start_client(admin, settings, options)
    try:
        existing = set(await admin.list_topics())
        missing = {name: partitions for name, partitions in topics.items() if name not in existing}
        if missing:
            if replication is None:
                replication = created_replication(len((await admin.describe_cluster())["brokers"]))
            new = [NewTopic(name, n, replication, topic_configs=configs or {}) for name, n in missing.items()]
            response = await admin.create_topics(new)
            for topic, error_code, *rest in response.topic_errors:
                if error_code not in (0, TopicAlreadyExistsError.errno):  # exists: another replica created it
                    message = f": {rest[0]}" if rest and rest[0] else ""
                    raise TopicNotCreatedError(topic, f"{for_code(error_code).__name__}{message}")
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot create topics: {exc}") from exc
    finally:
        await admin.close()


async def topic_max_message_bytes(settings: KafkaSettings, topic: str) -> int | None:
    """The topic's effective ``max.message.bytes`` (its own or the broker's default); None when unreadable.

    Unreadable means the topic is missing or DescribeConfigs is not allowed: the caller falls back to a
    setting rather than failing.
    """
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    except (KafkaError, ValueError) as exc:
        raise BrokerUnavailableError(f"cannot read the configuration of topic {topic}: {exc}") from exc
    finally:
        await admin.close()
    for error_code, _message, _type, _name, entries in response.resources:
        if error_code != 0:
            return None
        for entry in entries:
            if entry[0] == "max.message.bytes" and entry[1] is not None:
                return int(entry[1])
    return None


async def probe_cluster(
    settings: KafkaSettings, read_topics: Sequence[str], group: str | None, write_topics: Sequence[str]
) -> list[tuple[str, bool, str]]:
    """``check``'s Kafka rows, (what, ok, reason): connect and authenticate; each input topic exists and
    the group's offsets can be read; each output topic exists with a leader for every partition.

    Nothing is written: a write permission cannot be proven without writing a record, so an output
    topic's row proves it is visible to these credentials (Describe), the service's own start proves Write.
    A missing output topic is reported but not a failure: the service creates it at start-up.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    options = client_options(settings)
    admin = AIOKafkaAdminClient(**options)
    mechanism = settings.sasl_mechanism if settings.security_protocol.startswith("SASL_") else None
    how = f"{settings.security_protocol}" + (f", {mechanism}" if mechanism else "")
    try:
        await start_client(admin, settings, options)
    except KafkaConnectError as exc:
        return [(f"connect ({how})", False, str(exc))]
    rows: list[tuple[str, bool, str]] = [(f"connect ({how})", True, "ok")]
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(None)}

        def topic_state(topic: str) -> str | None:
            info = described.get(topic)
            if info is None:
                return "missing (or not visible to these credentials)"
            if info["error_code"] != 0:
                return f"error {info['error_code']}"
            if any(p["leader"] < 0 for p in info["partitions"]):
                return "a partition has no leader"
            return None

        for topic in read_topics:
            problem = topic_state(topic)
            if problem is None and group:
                problem = await _group_offsets_problem(admin, group, topic)
            rows.append((f"read {topic} (group {group})", problem is None, problem or "ok"))
        for topic in write_topics:
            problem = topic_state(topic)
            if problem is not None and problem.startswith("missing"):
                rows.append((f"write {topic}", True, "missing; created at start-up"))
            else:
                rows.append((f"write {topic}", problem is None, problem or "ok"))
    except KafkaError as exc:
        rows.append(("describe topics", False, f"{type(exc).__name__}: {exc}"))
    finally:
        await admin.close()
    return rows


async def _group_offsets_problem(admin: Any, group: str, topic: str, attempts: int = 20) -> str | None:
    """Why ``group``'s committed offsets of ``topic`` cannot be read, or None.

    A retriable error (the group coordinator still loading, or not elected yet on a new cluster, whose
    first group use creates ``__consumer_offsets``) is asked again for up to ~10 s before it is reported.
    """
    for attempt in range(attempts):
        try:
            await admin.list_consumer_group_offsets(group, partitions=[TopicPartition(topic, 0)])
        except KafkaError as exc:
            if not exc.retriable or attempt == attempts - 1:
                return f"group {group} cannot read its offsets ({type(exc).__name__})"
        else:
            return None
        await asyncio.sleep(0.5)
    return None  # pragma: no cover - the loop returns


if TYPE_CHECKING:  # mypy proves the real classes keep the Protocols' shape
    _consumer_like: type[ConsumerLike] = Consumer
    _producer_like: type[ProducerLike] = Producer
    _batch_sender: type[BatchSender] = Producer


async def group_committed_offsets(settings: KafkaSettings, group: str) -> dict[Partition, int]:
    """Every committed offset of consumer group ``group`` (partitions it never committed are absent)."""
    from aiokafka.admin import AIOKafkaAdminClient

    options = client_options(settings)
    admin = AIOKafkaAdminClient(**options)
    await start_client(admin, settings, options)
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read the committed offsets of group {group}: {exc}") from exc
    finally:
        await admin.close()
    return {_partition(tp): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def group_member_count(settings: KafkaSettings, group: str) -> int:
    """How many members consumer group ``group`` has right now (0 for an empty or unknown group)."""
    from aiokafka.admin import AIOKafkaAdminClient

    options = client_options(settings)
    admin = AIOKafkaAdminClient(**options)
    await start_client(admin, settings, options)
    try:
        (response,) = await admin.describe_consumer_groups([group])
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot describe group {group}: {exc}") from exc
    finally:
        await admin.close()
    # DescribeGroups: (error_code, group_id, state, protocol_type, protocol, members, ...)
    return sum(len(description[5]) for description in response.groups)


async def topic_partitions(settings: KafkaSettings, topics: Sequence[str]) -> list[Partition]:
    """The partitions of these topics, in order; raises BrokerUnavailableError naming a missing topic."""
    from aiokafka.admin import AIOKafkaAdminClient

    options = client_options(settings)
    admin = AIOKafkaAdminClient(**options)
    await start_client(admin, settings, options)
    try:
        described = await admin.describe_topics(list(topics))
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read topic metadata: {exc}") from exc
    finally:
        await admin.close()
    numbers = {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described if t["error_code"] == 0}
    found: list[Partition] = []
    for topic in topics:
        if not numbers.get(topic):
            raise BrokerUnavailableError(f"topic {topic} does not exist")
        found.extend(Partition(topic, n) for n in numbers[topic])
    return found


async def list_topic_names(settings: KafkaSettings) -> list[str]:
    """Every topic of the cluster (for pattern subscriptions)."""
    options = client_options(settings)
    consumer = AIOKafkaConsumer(**options)
    await start_client(consumer, settings, options)
    try:
        return sorted(await consumer.topics())
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot list topics: {exc}") from exc
    finally:
        await consumer.stop()
