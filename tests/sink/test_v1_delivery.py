"""Track API v1 calls (segment membership, delivery metrics) through WorkspaceDelivery and the fake.

They travel the person's lane like batch operations: sent after the person's earlier operations and
before their later ones, consecutive ids of one segment call merged up to 1,000, retried, dead-lettered
and probed like batches. Operations are built by the real mapper so the requests are the ones the sink sends.
"""

from __future__ import annotations

from typing import Any

import orjson

from connector.config import load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import Partition, Record
from connector.sink.mapping.mapper import Mapper
from connector.sink.mapping.model import MessageContext, Operation
from connector.sink.tickets import DeadLetterReason, Ticket
from tests.sink.memory_sink import EVENTS, FAKE, record, run_sink, wait_for
from tests.sink.test_delivery import PARTITION, RecordingPolicy, delivering, event

MAPPER = Mapper(load_settings({}).mapping)
CTX = MessageContext("events", 0, 0, 0, 1_735_689_600_000)


def mapped(message: dict[str, Any]) -> Operation:
    """The one operation the sink's mapper makes of ``message``."""
    result = MAPPER.map(message, CTX)
    assert isinstance(result, tuple), result
    (operation,) = result
    return operation


def segment(user: str, segment_id: int = 12, event_name: str = "Added to Segment") -> Operation:
    """A segment membership change of ``user``."""
    return mapped({"type": "track", "userId": user, "event": event_name, "properties": {"segmentId": segment_id}})


def identify(user: str) -> Operation:
    """A person identify of ``user``."""
    return mapped({"type": "identify", "userId": user, "traits": {"plan": "pro"}})


def metric(delivery_id: str, name: str = "opened") -> Operation:
    """A delivery metric report."""
    return mapped(
        {"type": "track", "event": "Report Delivery Event", "properties": {"deliveryId": delivery_id, "metric": name}}
    )


def kinds(records: list[dict[str, Any]]) -> list[str]:
    """What the fake received, in arrival order: ``type.action`` of each recorded call or operation."""
    return [f"{r['operation']['type']}.{r['operation'].get('action', r['operation'].get('metric'))}" for r in records]


async def test_2500_segment_adds_in_one_lane_become_three_calls_of_at_most_1000_ids() -> None:
    """Consecutive adds to one segment merge: 1,000 + 1,000 + 500 ids, every person a member, all resolved."""
    async with delivering() as h:
        tickets = h.send(*(segment(f"u{i}") for i in range(2500)))
        await wait_for(lambda: len(h.resolved.tickets) == 2500, "2,500 tickets resolved", timeout=60)
        calls = [r["operation"] for r in h.fake.state.operations_for("acme")]
        assert [len(c["ids"]) for c in calls] == [1000, 1000, 500]
        assert [i for c in calls for i in c["ids"]] == [f"u{i}" for i in range(2500)]
        assert {(c["segment_id"], c["action"], c["id_type"]) for c in calls} == {(12, "add_customers", "id")}
        assert h.fake.state.segment_members("acme", 12) == {("id", f"u{i}") for i in range(2500)}
        assert h.requests(200) == 3
        assert all(t.dead_letter is None for t in tickets)
        assert h.delivery.buffered == h.delivery.buffered_bytes == 0


async def test_a_persons_identify_segment_change_and_event_arrive_in_that_order() -> None:
    """A v1 call closes the open batch and is sent on its own, between the person's earlier and later ops."""
    async with delivering() as h:
        h.send(
            identify("p1"),
            segment("p1"),
            event("after-add", person="p1"),
            segment("p1", event_name="Removed from Segment"),
            event("after-remove", person="p1"),
        )
        await wait_for(lambda: len(h.resolved.tickets) == 5, "5 tickets resolved")
        records = h.fake.state.operations_for("acme")
        assert kinds(records) == [
            "person.identify",
            "segment.add_customers",
            "person.event",
            "segment.remove_customers",
            "person.event",
        ]
        assert h.requests(200) == 5
        assert h.fake.state.segment_members("acme", 12) == set()


async def test_only_neighbouring_calls_with_the_same_segment_id_type_and_action_merge() -> None:
    """Another segment, action or id type starts a new call; so does any operation in between."""
    async with delivering() as h:
        h.send(
            segment("a"),
            segment("b"),
            segment("c", segment_id=13),
            segment("d@example.com", segment_id=13),
            segment("e", segment_id=13, event_name="Removed from Segment"),
            event("between", person="f"),
            segment("f", segment_id=13, event_name="Removed from Segment"),
        )
        await wait_for(lambda: len(h.resolved.tickets) == 7, "7 tickets resolved")
        calls = [
            (c["operation"]["type"], c["operation"].get("segment_id"), c["operation"].get("ids"))
            for c in h.fake.state.operations_for("acme")
        ]
        assert calls == [
            ("segment", 12, ["a", "b"]),
            ("segment", 13, ["c"]),
            ("segment", 13, ["d@example.com"]),
            ("segment", 13, ["e"]),
            ("person", None, None),
            ("segment", 13, ["f"]),
        ]


async def test_each_delivery_metric_is_its_own_call_between_batches() -> None:
    """A metric after an open batch is sent right after it (not held for the linger), then the next batch."""
    async with delivering() as h:
        h.send(event("e0"), metric("d1"), metric("d2", "clicked"), event("e1"))
        await wait_for(lambda: len(h.resolved.tickets) == 4, "4 tickets resolved")
        assert kinds(h.fake.state.operations_for("acme")) == [
            "person.event",
            "metric.opened",
            "metric.clicked",
            "person.event",
        ]
        assert [(m["delivery_id"], m["metric"]) for m in h.fake.state.metrics] == [("d1", "opened"), ("d2", "clicked")]


async def test_a_metric_after_a_batch_is_ready_without_a_flush() -> None:
    """The one-item call behind a closed batch goes out at once; the linger (60 s here) is not waited for."""
    async with delivering() as h:
        for offset, operation in enumerate((event("e0"), metric("d1"))):
            ticket = Ticket(Record(PARTITION.topic, 0, offset, 0, None, b"{}", ()), PARTITION, 1, h.resolved)
            h.delivery.submit(operation, ticket)
            ticket.seal()
        await wait_for(lambda: len(h.resolved.tickets) == 2, "the batch and the metric sent without a flush")
        assert kinds(h.fake.state.operations_for("acme")) == ["person.event", "metric.opened"]


async def test_a_400_on_a_merged_call_dead_letters_only_the_bad_id() -> None:
    """Customer.io refuses the whole call: it is bisected like a batch; the good ids are still added."""
    async with delivering() as h:
        good = segment("a")
        bad = good._replace(body=orjson.dumps("x" * 200), order_key="id:bad")  # over the 150-byte id limit
        tickets = h.send(good, bad, segment("c"))
        await wait_for(lambda: len(h.resolved.tickets) == 3, "3 tickets resolved")
        assert [t.dead_letter for t in tickets] == [
            None,
            DeadLetterReason(
                "rejected",
                "Customer.io rejected the operation: ids[0]: longer than 150 bytes",
                h.delivery.name,
                400,
            ),
            None,
        ]
        assert h.fake.state.segment_members("acme", 12) == {("id", "a"), ("id", "c")}


async def test_5xx_on_a_v1_call_is_retried_until_delivered_once() -> None:
    """Transient failures are retried with backoff, like a batch; the metric is recorded once."""
    policy = RecordingPolicy()
    async with delivering(policy=policy) as h:
        h.fake.state.add_burst(3, 503, retry_after=None, workspace="acme")
        tickets = h.send(metric("d1"))
        await wait_for(lambda: len(h.resolved.tickets) == 1, "the metric delivered")
        assert tickets[0].dead_letter is None
        assert policy.asked == [(1, None), (2, None), (3, None)]
        assert len(h.fake.state.metrics) == 1


async def test_401_on_a_v1_call_stops_the_workspace_until_the_key_works() -> None:
    """Credentials rejected on a segment call: nothing dead-lettered, the call is the probe, then delivered."""
    async with delivering() as h:
        h.fake.state.revoke("acme")
        tickets = h.send(segment("p1"))
        await wait_for(lambda: not h.ready(), "the workspace stopped")
        await wait_for(lambda: h.requests(401) >= 2, "two probes")
        assert h.resolved.tickets == []
        h.fake.state.restore("acme")
        await wait_for(lambda: len(h.resolved.tickets) == 1, "delivered after the restore")
        assert h.ready()
        assert tickets[0].dead_letter is None
        assert h.fake.state.segment_members("acme", 12) == {("id", "p1")}


async def test_the_sink_commits_v1_calls_once_resolved_and_dead_letters_bad_ones() -> None:
    """Through the runner: every offset committed; the bad segment id dead-lettered naming the field."""
    messages: list[dict[str, Any]] = [
        {"type": "identify", "userId": "p1", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "p1", "event": "Added to Segment", "properties": {"segmentId": 5}},
        {"type": "track", "userId": "p2", "event": "Added to Segment", "properties": {"segmentId": -5}},
        {"type": "track", "event": "Report Delivery Event", "properties": {"deliveryId": "d1", "metric": "converted"}},
    ]
    async with FakeCustomerIO([FAKE]) as fake:
        outcome = await run_sink(fake, [record(i, orjson.dumps(m)) for i, m in enumerate(messages)])
        assert outcome.committed == {Partition(EVENTS, 0): 4}
        assert set(outcome.dead_letters) == {(EVENTS, 2)}
        headers = outcome.dead_letters[EVENTS, 2]
        assert headers["cio-dlq-reason"] == b"invalid_field"
        assert headers["cio-dlq-message"] == b"properties.segmentId: must be a positive integer segment id (got number)"
        assert fake.state.segment_members(FAKE.name, 5) == {("id", "p1")}
        assert [(m["delivery_id"], m["metric"]) for m in fake.state.metrics] == [("d1", "converted")]
