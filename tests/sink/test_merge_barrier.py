"""A merge (Segment ``alias``) reaches Customer.io only after its secondary's earlier operations.

The merge travels in the primary's lane, the secondary's operations in theirs: without the cross-lane
barrier a retried batch of the secondary arrives after the merge and re-creates the merged-away person.
Real sockets to the fake Customer.io (``tests.sink.test_delivery.delivering``); operations are mapped from
Segment messages by the real mapper, so the merge's ``after_key`` is the one the sink would carry.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from connector.config import MappingSettings
from connector.sink.mapping.mapper import map_message
from connector.sink.mapping.model import MessageContext, Operation
from connector.sink.retry import RetryPolicy
from tests.sink.memory_sink import wait_for
from tests.sink.test_delivery import Harness, delivering

SETTINGS = MappingSettings()
CTX = MessageContext("events", 0, 0, 0, 1_700_000_000_000)
LANES = 2


@dataclass(frozen=True, slots=True)
class SlowRetry(RetryPolicy):
    """Every retry waits a whole second: a batch answered 503 is still waiting when the merge is sent."""

    def delay(self, attempt: int, retry_after: float | None = None, rng: object = None) -> float:  # noqa: ARG002 - RetryPolicy.delay
        return 1.0


def mapped(message: dict[str, Any]) -> Operation:
    """The one operation the sink maps ``message`` to."""
    result = map_message(message, CTX, SETTINGS)
    assert isinstance(result, tuple)
    (operation,) = result
    return operation


def identify(user_id: str) -> Operation:
    """A Segment identify of ``user_id``."""
    return mapped({"type": "identify", "userId": user_id, "traits": {"plan": "pro"}})


def alias(previous_id: str, user_id: str) -> Operation:
    """A Segment alias: ``previous_id`` merged into ``user_id``."""
    return mapped({"type": "alias", "previousId": previous_id, "userId": user_id})


def lane_of(user_id: str) -> int:
    """The lane the delivery gives the person ``user_id`` (lane affinity is ``hash`` within the process)."""
    return hash(identify(user_id).order_key) % LANES


def in_lane(prefix: str, lane: int) -> str:
    """A user id starting with ``prefix`` whose operations travel in ``lane``."""
    return next(name for i in itertools.count() if lane_of(name := f"{prefix}{i}") == lane)


def arrivals(h: Harness) -> list[tuple[str, str]]:
    """(action, person) of each operation the fake accepted, in arrival order (a merge: its secondary)."""
    result = []
    for record in h.fake.state.operations_for("acme"):
        op = record["operation"]
        person = op["secondary"]["id"] if op["action"] == "merge" else op["identifiers"]["id"]
        result.append((str(op["action"]), str(person)))
    return result


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_alias_names_its_secondary_as_the_person_to_wait_for(previous_id: str, user_id: str) -> None:
    """The mapper gives a merge the secondary's order key: the key of that person's own operations."""
    merge = map_message({"type": "alias", "previousId": previous_id, "userId": user_id}, CTX, SETTINGS)
    own = map_message({"type": "identify", "userId": previous_id}, CTX, SETTINGS)
    if isinstance(merge, tuple) and isinstance(own, tuple):
        assert merge[0].after_key == own[0].order_key
        assert own[0].after_key is None


def test_a_v2_merge_names_its_secondary_as_the_person_to_wait_for() -> None:
    """A v2 ``merge`` message gets the same key as the secondary's own operations (email case-folded)."""
    merge = mapped({"type": "person", "action": "merge", "primary": {"id": "new"}, "secondary": {"email": "Old@X.io"}})
    own = mapped({"type": "person", "action": "identify", "identifiers": {"email": "old@x.io"}})
    assert merge.order_key == "id:new"
    assert merge.after_key == own.order_key


async def test_merge_waits_for_the_secondarys_retried_identify_in_another_lane() -> None:
    """identify "old" answered 503 once, then alias old → new from another lane: the merge arrives last."""
    old = in_lane("old", 0)
    new = in_lane("new", 1)
    async with delivering(lanes=LANES, policy=SlowRetry()) as h:
        h.fake.state.add_burst(1, status=503, retry_after=None, workspace="acme")
        h.send(identify(old))
        await wait_for(lambda: h.requests(503) == 1, "the identify answered 503")
        h.send(alias(old, new))
        await wait_for(lambda: len(h.resolved.tickets) == 2, "both operations resolved")
        assert arrivals(h) == [("identify", old), ("merge", old)]
        assert h.delivery.buffered == h.delivery.buffered_bytes == 0
        assert not h.delivery.partitions_buffered()


async def test_merge_with_its_secondary_in_the_same_lane_goes_in_the_same_batch() -> None:
    """Same lane: lane order already suffices; no extra batch, one request for identify and merge."""
    old = in_lane("old", 0)
    new = in_lane("new", 0)
    async with delivering(lanes=LANES) as h:
        h.send(identify(old), alias(old, new))
        await wait_for(lambda: len(h.resolved.tickets) == 2, "both operations resolved")
        assert arrivals(h) == [("identify", old), ("merge", old)]
        assert h.requests(200) == 1


async def test_interleaved_aliases_both_ways_between_two_lanes_deliver_everything_in_order() -> None:
    """Aliases crossing between the lanes in both directions, with batches failing at random: no deadlock,
    every operation delivered once, and each merge after every earlier identify of its secondary."""
    a = [in_lane(f"a{i}-", 0) for i in range(8)]
    b = [in_lane(f"b{i}-", 1) for i in range(8)]
    operations: list[Operation] = []
    for i in range(8):
        operations += [identify(a[i]), identify(b[i])]
        operations.append(alias(a[i], b[i]) if i % 2 else alias(b[i], a[i]))
        operations.append(identify(a[i - 1]))  # a later operation of a merged-away person: not held back
    async with delivering(lanes=LANES, max_in_flight=2) as h:
        h.fake.state.set_faults(error_ratio=0.3)
        start = 0
        for size in itertools.cycle((1, 3, 2, 5)):  # batches closed at varying points
            if start >= len(operations):
                break
            h.send(*operations[start : start + size])
            start += size
        await wait_for(lambda: len(h.resolved.tickets) == len(operations), "every operation resolved", timeout=60)
        got = arrivals(h)
        assert sorted(got) == sorted(_seen_as(op) for op in operations)
        for position, (action, person) in enumerate(got):
            if action == "merge":
                merge_at = operations.index(next(op for op in operations if _seen_as(op) == (action, person)))
                earlier = operations[:merge_at].count(identify(person))
                assert earlier >= 1
                assert got[:position].count(("identify", person)) >= earlier, (person, got)
        assert h.delivery.buffered == h.delivery.buffered_bytes == 0


def _seen_as(operation: Operation) -> tuple[str, str]:
    """How ``arrivals`` shows ``operation``."""
    op = orjson.loads(operation.body)
    person = op["secondary"]["id"] if op["action"] == "merge" else op["identifiers"]["id"]
    return str(op["action"]), str(person)
