"""The only module that imports aiokafka: typed consumer and producer wrappers.

aiokafka ships no type information, so everything above this module sees plain dataclasses and the
small ``Consumer``/``Producer`` classes below. aiokafka exceptions are translated here: a failed
produce raises ``BrokerUnavailableError``, or its subclass ``RecordTooLargeError`` when the producer or
the broker refuses the record's size (resending it unchanged cannot succeed).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from connector.config import KafkaSettings
from connector.errors import BrokerUnavailableError, RecordTooLargeError
from connector.readahead import partition_fetch_bytes

Headers = tuple[tuple[str, bytes], ...]

# aiokafka's (and Kafka's) default max_request_size; also the broker's message.max.bytes default, less
# the 12 bytes of log overhead it allows on top.
DEFAULT_MAX_REQUEST_SIZE = 1_048_576
_DEFAULT_BATCH_SIZE = 16_384  # aiokafka's
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


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security options shared by consumers, producers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.reveal() if settings.sasl_password else None
    return options


def _tp(partition: Partition) -> Any:
    return TopicPartition(partition.topic, partition.partition)


def _partition(tp: Any) -> Partition:
    return Partition(tp.topic, tp.partition)


RebalanceCallback = Callable[[list[Partition]], Awaitable[None]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: RebalanceCallback, on_assigned: RebalanceCallback) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._on_revoked([_partition(tp) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._on_assigned([_partition(tp) for tp in assigned])


class Consumer:
    """A consumer-group member with manual commits.

    With ``fetch_budget_bytes``, the read-ahead kept in memory is bounded for the process: at every
    assignment each partition's fetch size becomes the budget divided by the partitions assigned
    (``readahead.py``), instead of a fixed size per partition.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        *,
        max_poll_records: int = 2000,
        fetch_max_bytes: int = 16_777_216,
        fetch_budget_bytes: int | None = None,
        auto_offset_reset: str = "earliest",
        **extra: Any,
    ) -> None:
        self._fetch_max_bytes = fetch_max_bytes
        self._fetch_budget_bytes = fetch_budget_bytes
        self._consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=max_poll_records,
            fetch_max_bytes=fetch_max_bytes,
            max_partition_fetch_bytes=partition_fetch_bytes(fetch_budget_bytes or fetch_max_bytes, 1, fetch_max_bytes),
            **extra,
        )

    async def start(self, topics: Sequence[str], on_revoked: RebalanceCallback, on_assigned: RebalanceCallback) -> None:
        """Join the group for ``topics``; rebalance callbacks run inside the consumer's poll."""

        async def assigned(partitions: list[Partition]) -> None:
            self._share_read_ahead()
            await on_assigned(partitions)

        self._consumer.subscribe(list(topics), listener=_Listener(on_revoked, assigned))
        await self._consumer.start()

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

    async def connect(self) -> None:
        """Connect without subscribing (offset and end-offset queries only)."""
        await self._consumer.start()

    async def stop(self) -> None:
        """Leave the group and close connections."""
        await self._consumer.stop()

    async def fetch(self, timeout_ms: int, max_records: int | None = None) -> list[Record]:
        """Records fetched since the last call, in partition order (may be empty)."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        records: list[Record] = []
        for messages in batches.values():
            records.extend(
                Record(
                    m.topic,
                    m.partition,
                    m.offset,
                    m.timestamp,
                    m.key,
                    m.value,
                    tuple(m.headers) if m.headers else (),
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
        self._producer = AIOKafkaProducer(
            **client_options(settings),
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            compression_type=compression,
            request_timeout_ms=30_000,
            max_request_size=max_request_size,
            # A batch larger than the topic's max.message.bytes is refused whole, small records with it:
            # never batch beyond the limit (one larger record still goes alone, and is sized by the caller).
            max_batch_size=min(_DEFAULT_BATCH_SIZE, max_request_size),
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
        """Connect to the cluster; raises BrokerUnavailableError when it cannot."""
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise BrokerUnavailableError(f"cannot connect to Kafka: {exc}") from exc
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
        except _TOO_LARGE as exc:
            raise RecordTooLargeError(f"Kafka rejected the record's size: {exc}") from exc
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka rejected the record: {exc}") from exc

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


async def ensure_topics(
    settings: KafkaSettings, topics: dict[str, int], replication: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create the topics that do not exist yet (name → partition count, with topic ``configs``); existing
    ones are left alone."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, n, replication, topic_configs=configs or {})
            for name, n in topics.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica created it first
                await admin.create_topics(missing)
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
