"""Kafka → Customer.io end to end: real broker, the fake Customer.io on real sockets, the real service."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.config import KafkaSettings, load_settings
from connector.devtools.samples import SampleEvents
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.sink.mapping.mapper import map_message
from connector.sink.mapping.model import MessageContext
from tests.integration.harness import (
    DEMO,
    committed_and_end,
    connector_env,
    free_port,
    group_members,
    messages_as_records,
    produce,
    read_all,
    running,
    start_process,
    wait_for,
)

pytestmark = pytest.mark.integration

OTHER = Workspace("other", "other-site", "other-key", "us")


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    """The fake Customer.io with two US workspaces."""
    async with FakeCustomerIO([DEMO, OTHER]) as server:
        yield server


def canonical(op: dict[str, Any]) -> bytes:
    return orjson.dumps(op, option=orjson.OPT_SORT_KEYS)


def expected_operations(messages: list[dict[str, Any]]) -> collections.Counter[bytes]:
    """What the mapping makes of the messages (ids come from messageId, so offsets do not matter)."""
    settings = load_settings({})
    expected: collections.Counter[bytes] = collections.Counter()
    for i, message in enumerate(messages):
        mapped = map_message(message, MessageContext("t", 0, i, 0, 0), settings.mapping)
        assert isinstance(mapped, tuple), mapped
        expected.update(canonical(orjson.loads(op.body)) for op in mapped)
    return expected


def received(fake: FakeCustomerIO, workspace: str = "demo") -> collections.Counter[bytes]:
    return collections.Counter(canonical(r["operation"]) for r in fake.state.operations_for(workspace))


def sample_messages(count: int, seed: int = 7, users: int = 500) -> list[dict[str, Any]]:
    samples = SampleEvents(seed=seed, users=users)
    now = int(time.time() * 1000)
    return [samples.message(now - 1000 * (count - i)) for i in range(count)]


async def assert_fully_committed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> None:
    positions = await committed_and_end(kafka, group, topic, partitions)
    assert all(committed == end for committed, end in positions), positions


async def test_twenty_thousand_records_all_delivered_and_committed(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """20,000 mixed records: every operation reaches Customer.io, duplicates are identical, offsets reach the end."""
    topic, dlq = await topic_factory(partitions=4), await topic_factory()
    messages = sample_messages(20_000)
    expected = expected_operations(messages)
    await produce(kafka_settings, topic, messages_as_records(messages))
    settings = load_settings(connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq), role="sink")
    async with running(settings) as connector:
        await wait_for(
            lambda: sum(fake.state.stats()["accepted_operations"].values()) >= expected.total(), 120, "all operations"
        )
        await wait_for(lambda: connector.sample("connector_commits_total", {"outcome": "ok"}) > 0, 10, "a commit")
        await wait_for(
            lambda: (
                connector.sample("connector_records_completed_total", {"topic": topic, "outcome": "delivered"})
                >= 20_000
            ),
            30,
            "the delivered counter",
        )
        consumed = connector.sample("connector_records_consumed_total", {"topic": topic})
        delivered = connector.sample("connector_records_completed_total", {"topic": topic, "outcome": "delivered"})
    got = received(fake)
    assert set(got) == set(expected), "operations differ from the mapping of the records"
    assert all(got[op] >= n for op, n in expected.items())
    assert consumed == delivered == 20_000
    await assert_fully_committed(kafka_settings, settings.sink.group_id, topic, 4)


async def test_faults_are_retried_until_delivered(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """20% 5xx, 5% connection resets and a 429 burst with Retry-After: everything delivered, nothing dead-lettered."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    messages = sample_messages(5_000, seed=11)
    expected = expected_operations(messages)
    await produce(kafka_settings, topic, messages_as_records(messages))
    fake.state.set_faults(error_ratio=0.2, reset_ratio=0.05)
    fake.state.add_burst(5, status=429, retry_after=1.0, workspace="demo")
    settings = load_settings(connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq), role="sink")
    async with running(settings) as connector:
        await wait_for(lambda: set(received(fake)) >= set(expected), 120, "all operations despite faults")
        retries = sum(
            connector.sample("connector_retries_total", {"workspace": "default", "cause": c})
            for c in ("5xx", "429", "network")
        )
        dead = connector.sample("connector_records_completed_total", {"topic": topic, "outcome": "dead_lettered"})
    assert retries > 0
    assert dead == 0
    throttled = fake.state.stats()["throttled"]["demo"]
    assert len(throttled) == 5, "the 429 burst was not hit"
    # Retry-After holds the whole workspace: after the burst's last 429, the next request comes ≥ 1 s later.
    last = max(throttled, key=lambda entry: entry["at"])
    assert last["next_request_at"] is not None
    assert last["next_request_at"] - last["at"] >= 0.95
    assert (await read_all(kafka_settings, dlq, expect=1, timeout=2)) == []


async def test_kill_9_then_restart_loses_nothing(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """kill -9 mid-run, restart: every operation arrives, and re-sent events keep their original ids."""
    topic, dlq = await topic_factory(partitions=3), await topic_factory()
    messages = sample_messages(20_000, seed=3)
    expected = expected_operations(messages)
    await produce(kafka_settings, topic, messages_as_records(messages))
    fake.state.set_faults(latency_ms=20)  # slow enough to be killed mid-run
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_RATE_LIMIT="50")
    first = start_process(env, "sink", tmp_path / "first.log")
    try:
        await wait_for(lambda: fake.state.stats()["accepted_operations"].get("demo", 0) > 2_000, 60, "some deliveries")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    before = fake.state.stats()["accepted_operations"].get("demo", 0)
    assert before < expected.total(), "the run finished before it could be killed"
    fake.state.set_faults(latency_ms=0)
    second = start_process({**env, "CONNECTOR_RATE_LIMIT": "2000"}, "sink", tmp_path / "second.log")
    try:
        await wait_for(lambda: set(received(fake)) >= set(expected), 120, "everything after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, (tmp_path / "second.log").read_text()[-2000:]
    got = received(fake)
    assert set(got) == set(expected)
    ids: dict[str, bytes] = {}
    for record in fake.state.operations_for("demo"):
        op = record["operation"]
        if "id" in op:  # an event re-sent after the crash is byte-identical, id included
            assert ids.setdefault(op["id"], canonical(op)) == canonical(op)
    await assert_fully_committed(kafka_settings, f"group-{dlq}", topic, 3)


async def test_rejected_credentials_hold_records_while_other_workspace_flows(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """One workspace answering 401: its records stay uncommitted, the other keeps delivering, readiness names it."""
    good_topic, bad_topic, dlq = await topic_factory(), await topic_factory(), await topic_factory()
    config = tmp_path / "workspaces.yaml"
    config.write_text(
        f"""
workspaces:
  - {{name: demo, site_id: demo-site, api_key: demo-key, region: us, topics: [{good_topic}]}}
  - {{name: other, site_id: other-site, api_key: other-key, region: us, topics: [{bad_topic}]}}
"""
    )
    env = connector_env(
        kafka_settings.bootstrap_servers, fake, [good_topic, bad_topic], dlq, CONNECTOR_AUTH_REPROBE_SECONDS="0.5"
    )
    for key in ("CIO_SITE_ID", "CIO_API_KEY", "CIO_REGION"):
        env.pop(key)
    settings = load_settings(env, str(config), role="sink")
    good, bad = sample_messages(2_000, seed=5), sample_messages(500, seed=6)
    async with running(settings) as connector:
        fake.state.revoke("other")
        await produce(kafka_settings, bad_topic, messages_as_records(bad))
        await produce(kafka_settings, good_topic, messages_as_records(good))
        await wait_for(lambda: set(received(fake, "demo")) >= set(expected_operations(good)), 60, "good workspace")
        await wait_for(lambda: connector.sample("connector_workspace_ready", {"workspace": "other"}) == 0, 10, "401")
        status, body = await connector.readyz()
        assert status == 503
        assert body["checks"]["workspace:other"]["ready"] is False
        assert "401" in body["checks"]["workspace:other"]["detail"]
        assert body["checks"]["workspace:demo"]["ready"] is True
        await asyncio.sleep(1.0)
        assert [c for c, _ in await committed_and_end(kafka_settings, settings.sink.group_id, bad_topic, 1)] == [0]
        assert received(fake, "other") == collections.Counter()
        assert (await read_all(kafka_settings, dlq, expect=1, timeout=1)) == []  # never dead-lettered

        fake.state.restore("other")  # the operator fixed the key: the re-probe resumes delivery
        await wait_for(lambda: set(received(fake, "other")) >= set(expected_operations(bad)), 60, "recovery")
        await wait_for(lambda: connector.sample("connector_workspace_ready", {"workspace": "other"}) == 1, 5, "ready")
    await assert_fully_committed(kafka_settings, settings.sink.group_id, bad_topic, 1)


async def test_a_long_credential_outage_keeps_the_group_membership(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """Every partition paused for longer than max.poll.interval: still polled, so no rebalance, no re-read."""
    topic, dlq = await topic_factory(), await topic_factory()
    env = connector_env(
        kafka_settings.bootstrap_servers,
        fake,
        [topic],
        dlq,
        CONNECTOR_AUTH_REPROBE_SECONDS="0.5",
        CONNECTOR_MAX_POLL_INTERVAL_SECONDS="1",
    )
    settings = load_settings(env, role="sink")
    messages = sample_messages(300, seed=8)
    async with running(settings) as connector:
        fake.state.revoke("demo")
        await produce(kafka_settings, topic, messages_as_records(messages))
        await wait_for(lambda: connector.sample("connector_workspace_ready", {"workspace": "demo"}) == 0, 10, "401")
        await wait_for(lambda: connector.sample("connector_partitions_paused") == 1, 10, "all partitions paused")
        revoked_before = connector.sample("connector_partitions_revoked_total")
        await asyncio.sleep(3.5)  # over three poll intervals with nothing fetchable
        assert await group_members(kafka_settings, settings.sink.group_id) == 1  # still a member
        assert connector.sample("connector_partitions_revoked_total") == revoked_before
        assert connector.sample("connector_partitions_assigned") == 1
        fake.state.restore("demo")
        await wait_for(lambda: set(received(fake)) >= set(expected_operations(messages)), 60, "recovery")
    await assert_fully_committed(kafka_settings, settings.sink.group_id, topic, 1)


async def test_per_person_order_is_kept_under_random_failures(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """Interleaved identify/track for the same people, 30% failures: each person's operations arrive in order."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    now = int(time.time() * 1000)
    messages: list[dict[str, Any]] = []
    for seq in range(3_000):
        user = f"person-{seq % 40}"
        if seq % 2:
            message = {"type": "track", "userId": user, "event": "Step", "properties": {"seq": seq}}
        else:
            message = {"type": "identify", "userId": user, "traits": {"seq": seq}}
        messages.append({**message, "messageId": f"m-{seq}", "timestamp": now})
    await produce(kafka_settings, topic, messages_as_records(messages))
    fake.state.set_faults(error_ratio=0.3)
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_BATCH_MAX_OPERATIONS="25")
    async with running(load_settings(env, role="sink")):
        await wait_for(lambda: len(set(received(fake))) >= len(messages), 120, "all operations")
    seen: dict[str, list[int]] = collections.defaultdict(list)
    for record in fake.state.operations_for("demo"):
        op = record["operation"]
        seen[op["identifiers"]["id"]].append(int(op["attributes"]["seq"]))  # identify and track both carry it
    for person, sequence in seen.items():
        assert sequence == sorted(sequence), f"{person} received out of order: {sequence[:20]}"


async def test_undecodable_and_oversized_records_are_dead_lettered_with_reasons(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """Bad bytes and a too-large operation go to the dead-letter topic with headers; good ones are delivered."""
    topic, dlq = await topic_factory(), await topic_factory()
    good = sample_messages(50, seed=9)
    huge = {"type": "track", "userId": "u1", "event": "Big", "properties": {f"k{i}": "x" * 900 for i in range(40)}}
    records = [(b"k1", b"\xff\xfe not utf-8"), (b"k2", b"{not json"), (b"k3", orjson.dumps(huge))]
    await produce(kafka_settings, topic, [*records, *messages_as_records(good)])
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    async with running(load_settings(env, role="sink")) as connector:
        await wait_for(lambda: set(received(fake)) >= set(expected_operations(good)), 60, "good records")
        dead = await read_all(kafka_settings, dlq, expect=3)

        def completed_total() -> float:
            return sum(
                connector.sample("connector_records_completed_total", {"topic": topic, "outcome": outcome})
                for outcome in ("delivered", "dead_lettered", "filtered")
            )

        # Counters are published once per fetch loop; a second consumer joining in this process (read_all)
        # holds the sink's fetch for a moment, so wait for them rather than sample at once.
        await wait_for(lambda: completed_total() >= 53, 10, "completion counters")
        completed = {
            outcome: connector.sample("connector_records_completed_total", {"topic": topic, "outcome": outcome})
            for outcome in ("delivered", "dead_lettered", "filtered")
        }
        consumed = connector.sample("connector_records_consumed_total", {"topic": topic})
    by_key = {r.key: r for r in dead}
    assert set(by_key) == {b"k1", b"k2", b"k3"}
    assert by_key[b"k1"].header("cio-dlq-reason") == b"invalid_utf8"
    assert by_key[b"k2"].header("cio-dlq-reason") == b"not_json"
    assert by_key[b"k3"].header("cio-dlq-reason") in (b"too_large", b"limit_exceeded")
    assert by_key[b"k2"].value == b"{not json"  # the original value, untouched
    assert by_key[b"k2"].header("cio-dlq-source-topic") == topic.encode()
    assert by_key[b"k2"].header("cio-dlq-source-offset") == b"1"
    assert consumed == sum(completed.values()) == 53
    assert completed["dead_lettered"] == 3


async def test_sigterm_while_customerio_is_down_exits_in_time_without_committing(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """SIGTERM with retries under way: exit 0 within the shutdown deadline; undelivered records stay uncommitted."""
    topic, dlq = await topic_factory(), await topic_factory()
    await produce(kafka_settings, topic, messages_as_records(sample_messages(300, seed=21)))
    fake.state.set_faults(error_ratio=1.0)  # every request fails: the sink can only retry
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_SHUTDOWN_TIMEOUT_SECONDS="2")
    process = start_process(env, "sink", tmp_path / "sink.log")
    try:
        await wait_for(
            lambda: sum(fake.state.stats()["requests"].get("demo", {}).get("us", {}).values()) > 3, 30, "retries"
        )
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.to_thread(process.wait, 30)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, (tmp_path / "sink.log").read_text()[-2000:]
    assert took < 2 + 8, f"shutdown took {took:.1f}s"
    assert [c for c, _ in await committed_and_end(kafka_settings, env["CONNECTOR_GROUP_ID"], topic, 1)] == [0]


async def test_shutdown_does_not_wait_on_a_workspace_stopped_for_credentials(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """Stopping with records held by a workspace whose key was revoked completes long before the 600 s
    deadline (``running`` allows 60 s); the held records stay uncommitted and are not dead-lettered."""
    topic, dlq = await topic_factory(), await topic_factory()
    env = connector_env(
        kafka_settings.bootstrap_servers,
        fake,
        [topic],
        dlq,
        CONNECTOR_AUTH_REPROBE_SECONDS="0.5",
        CONNECTOR_SHUTDOWN_TIMEOUT_SECONDS="600",
    )
    settings = load_settings(env, role="sink")
    async with running(settings) as connector:
        fake.state.revoke("demo")
        await produce(kafka_settings, topic, messages_as_records(sample_messages(200, seed=31)))
        await wait_for(lambda: connector.sample("connector_workspace_ready", {"workspace": "demo"}) == 0, 30, "401")
        await wait_for(
            lambda: connector.sample("connector_records_consumed_total", {"topic": topic}) == 200, 30, "all fetched"
        )
        assert connector.sample("connector_records_in_flight") > 0
    # Leaving the block stops the service and fails if that takes over 60 s (the deadline is 600 s).
    assert [c for c, _ in await committed_and_end(kafka_settings, settings.sink.group_id, topic, 1)] == [0]
    assert received(fake) == collections.Counter()
    assert (await read_all(kafka_settings, dlq, expect=1, timeout=1)) == []


@pytest.mark.parametrize("status", [207, 400])
async def test_one_rejected_item_is_dead_lettered_alone(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, status: int
) -> None:
    """One invalid item in a batch (207 per item, or a whole-batch 400): only it is dead-lettered, with its reason."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    now = int(time.time())
    messages = [
        {"type": "track", "userId": f"u{i % 5}", "event": "Poison" if i == 137 else "Fine", "messageId": f"m{i}"}
        | {"timestamp": now}
        for i in range(400)
    ]
    await produce(kafka_settings, topic, messages_as_records(messages))
    fake.state.set_faults(poison_names=["Poison"], poison_status=status)
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_LANES="2")
    async with running(load_settings(env, role="sink")) as connector:
        dead = await read_all(kafka_settings, dlq, expect=1)
        await wait_for(lambda: len(fake.state.operations_for("demo")) >= 399, 60, "the good operations")

        def delivered_count() -> float:
            return connector.sample("connector_records_completed_total", {"topic": topic, "outcome": "delivered"})

        # Counters are published once per fetch loop: wait for them instead of sampling at once.
        await wait_for(lambda: delivered_count() >= 399, 30, "the delivered counter")
        delivered = delivered_count()
    names = [r["operation"]["name"] for r in fake.state.operations_for("demo")]
    assert len(names) == 399
    assert "Poison" not in names
    assert len(dead) == 1
    assert orjson.loads(dead[0].value or b"")["messageId"] == "m137"
    assert dead[0].header("cio-dlq-reason") == b"rejected"
    assert dead[0].header("cio-dlq-status") == str(status).encode()
    assert b"poison" in (dead[0].header("cio-dlq-message") or b"")
    assert delivered == 399


async def test_a_replica_joining_mid_run_loses_nothing_and_commits_everything(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """Scale-out: a second replica joins the group mid-run; partitions move, every operation arrives, all committed."""
    topic, dlq = await topic_factory(partitions=4), await topic_factory()
    messages = sample_messages(12_000, seed=13)
    expected = expected_operations(messages)
    await produce(kafka_settings, topic, messages_as_records(messages))
    fake.state.set_faults(latency_ms=30)  # slow enough that the rebalance happens mid-run
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_RATE_LIMIT="40")
    settings = load_settings(env, role="sink")
    async with running(settings) as first:
        await wait_for(lambda: fake.state.stats()["accepted_operations"].get("demo", 0) > 1_000, 60, "a first share")
        second = start_process({**env, "CONNECTOR_METRICS_PORT": str(free_port())}, "sink", tmp_path / "second.log")
        try:
            await wait_for(lambda: first.sample("connector_partitions_assigned") < 4, 60, "the rebalance")
            fake.state.set_faults(latency_ms=0)
            await wait_for(lambda: set(received(fake)) >= set(expected), 120, "everything after the rebalance")
            # Until both replicas have committed everything (each commits its own partitions).
            for _ in range(600):
                positions = await committed_and_end(kafka_settings, settings.sink.group_id, topic, 4)
                if all(committed == end for committed, end in positions):
                    break
                await asyncio.sleep(0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(second.wait, 60)
    assert code == 0, (tmp_path / "second.log").read_text()[-2000:]
    got = received(fake)
    assert set(got) == set(expected)
    await assert_fully_committed(kafka_settings, settings.sink.group_id, topic, 4)
