"""The ``cio-identify-timestamp`` record header: the sink honours it per record, refuses a bad value, and
``dlq replay --fresh-timestamps`` writes it (sink in memory, the fake Customer.io over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from connector.dlq_replay import replay_headers
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import Record
from tests.sink.memory_sink import EVENTS, FAKE, record, run_sink

IDENTIFY = {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}, "timestamp": "2025-01-01T00:00:00Z"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE]) as server:
        yield server


async def test_the_header_sets_the_policy_of_its_record_and_a_bad_value_is_dead_lettered(fake: FakeCustomerIO) -> None:
    value = orjson.dumps(IDENTIFY)
    records = [
        record(0, value, headers=(("cio-identify-timestamp", b"event"),)),
        record(1, value),  # the default policy: omit
        record(2, value, headers=(("cio-identify-timestamp", b"later"),)),
    ]
    outcome = await run_sink(fake, records)
    assert set(outcome.committed.values()) == {3}
    sent = [r["operation"] for r in fake.state.operations_for()]
    assert [op.get("timestamp") for op in sent] == [1_735_689_600, None]
    assert list(outcome.dead_letters) == [(EVENTS, 2)]
    headers = outcome.dead_letters[EVENTS, 2]
    assert headers["cio-dlq-reason"] == b"invalid_field"
    assert headers["cio-dlq-message"] == b"cio-identify-timestamp header: must be event, now or omit"


def test_fresh_timestamps_replaces_the_header_and_keeps_the_others() -> None:
    headers = (("trace", b"t"), ("cio-identify-timestamp", b"event"), ("cio-dlq-reason", b"rejected"))
    dead = Record("dlq", 0, 5, 0, b"k", b"v", headers)
    fresh = replay_headers(dead, fresh_timestamps=True)
    assert [v for k, v in fresh if k == "cio-identify-timestamp"] == [b"omit"]
    assert ("trace", b"t") in fresh
    assert not any(k.startswith("cio-dlq-") for k, _ in fresh)
    assert ("cio-identify-timestamp", b"event") in replay_headers(dead)  # without the flag: kept as it was
