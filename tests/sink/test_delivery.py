"""WorkspaceDelivery against the fake Customer.io over real sockets: what becomes of a batch for each answer.

No broker: tickets are built directly, as the runner would, and resolve into a ``Resolved`` list. Retry
bounds are tiny so every test runs in well under a second, except the Retry-After one (the fake sends
whole seconds). The Retry-After hold is read on a ``ManualClock``: the test decides when it has passed.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson
import pytest
from prometheus_client import CollectorRegistry

from connector.cio.client import CustomerIOClient
from connector.cio.region import pin
from connector.config import load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.kafka import Partition, Record
from connector.metrics import Metrics
from connector.sink.delivery import FAILING_AFTER_ATTEMPTS, WorkspaceDelivery
from connector.sink.mapping.model import Operation
from connector.sink.retry import RetryPolicy
from connector.sink.tickets import DeadLetterReason, Ticket
from tests.sink.memory_sink import ManualClock, Resolved, wait_for

FAKE_WS = Workspace("acme", "acme-site", "acme-key", "us")
PARTITION = Partition("events", 0)
POISON_MESSAGE = "Customer.io rejected the operation: name: operation rejected (poison fault)"


@dataclass(frozen=True, slots=True)
class RecordingPolicy(RetryPolicy):
    """Tiny backoff that remembers every ``(attempt, retry_after)`` a lane asked a delay for."""

    initial_seconds: float = 0.001
    max_seconds: float = 0.005
    asked: list[tuple[int, float | None]] = field(default_factory=list)

    def delay(self, attempt: int, retry_after: float | None = None, rng: object = None) -> float:  # noqa: ARG002 - RetryPolicy.delay
        self.asked.append((attempt, retry_after))
        return RetryPolicy.delay(self, attempt, retry_after)


@dataclass
class Harness:
    """A started delivery to the fake's ``acme`` workspace, and what the test needs around it."""

    delivery: WorkspaceDelivery
    metrics: Metrics
    fake: FakeCustomerIO
    resolved: Resolved
    offsets: int = 0

    def send(self, *operations: Operation) -> list[Ticket]:
        """Submit one record per operation (as the runner does: hold, then seal) and close the batches."""
        tickets = []
        for operation in operations:
            record = Record(PARTITION.topic, 0, self.offsets, int(time.time() * 1000), None, b"{}", ())
            self.offsets += 1
            ticket = Ticket(record, PARTITION, 1, self.resolved)
            self.delivery.submit(operation, ticket)
            ticket.seal()
            tickets.append(ticket)
        self.delivery.flush()
        return tickets

    # Methods rather than the properties themselves, which mypy would narrow from one assert to the next.
    def congested(self) -> bool:
        """The delivery's ``congested``."""
        return self.delivery.congested

    def ready(self) -> bool:
        """The delivery's ``ready``."""
        return self.delivery.ready

    def failing(self) -> bool:
        """The delivery's ``failing``."""
        return self.delivery.failing

    def sample(self, name: str, **labels: str) -> float:
        """A metric's value for this workspace (0.0 when never set)."""
        value = self.metrics.registry.get_sample_value(name, {"workspace": self.delivery.name, **labels})
        return value or 0.0

    def requests(self, status: int) -> int:
        """Requests the fake answered with ``status``."""
        counts: dict[str, int] = self.fake.state.stats()["requests"].get("acme", {}).get("us", {})
        return counts.get(str(status), 0)

    def accepted_names(self) -> list[str]:
        """Names of the operations the fake accepted, in arrival order."""
        return [str(op["operation"]["name"]) for op in self.fake.state.operations_for("acme")]


def event(name: str, person: str = "p1") -> Operation:
    """A person event the fake accepts (unless ``name`` is poisoned)."""
    body = orjson.dumps({"type": "person", "action": "event", "identifiers": {"id": person}, "name": name})
    return Operation(body, person, "person.event")


@contextlib.asynccontextmanager
async def delivering(
    *,
    policy: RetryPolicy | None = None,
    clock: Callable[[], float] = time.monotonic,
    lanes: int = 1,
    max_in_flight: int = 4,
) -> AsyncIterator[Harness]:
    """The fake, and a started delivery to it whose batches close only on ``flush`` (long linger)."""
    async with FakeCustomerIO([FAKE_WS]) as fake:
        settings = load_settings(
            {
                "CIO_SITE_ID": FAKE_WS.site_id,
                "CIO_API_KEY": FAKE_WS.api_key,
                "CIO_REGION": "us",
                "CIO_TRACK_URL_US": fake.us_url,
                "CONNECTOR_INPUT_TOPICS": PARTITION.topic,
                "CONNECTOR_LANES": str(lanes),
                "CONNECTOR_LINGER_SECONDS": "60",
                "CONNECTOR_AUTH_REPROBE_SECONDS": "0.01",
            },
            role="sink",
        )
        metrics = Metrics(CollectorRegistry())
        async with CustomerIOClient(10.0, metrics) as client:
            delivery = WorkspaceDelivery(
                pin(settings.workspaces[0], settings.endpoints, "us"),
                client,
                settings.sink,
                policy or RecordingPolicy(),
                rate_per_second=1000.0,
                max_in_flight=max_in_flight,
                metrics=metrics,
                is_current=lambda _ticket: True,
                clock=clock,
            )
            delivery.start()
            try:
                yield Harness(delivery, metrics, fake, Resolved())
            finally:
                await delivery.stop()


async def test_200_delivers_every_operation_once_in_order() -> None:
    """One request; every ticket resolves once, as delivered; nothing stays buffered."""
    async with delivering() as h:
        tickets = h.send(*(event(f"e{i}") for i in range(5)))
        await wait_for(lambda: len(h.resolved.tickets) == 5, "5 tickets resolved")
        assert h.accepted_names() == [f"e{i}" for i in range(5)]
        assert h.requests(200) == 1
        assert sorted(h.resolved.offsets) == [t.record.offset for t in tickets]
        assert all(t.dead_letter is None and t.outcome == "delivered" for t in tickets)
        assert h.delivery.buffered == h.delivery.buffered_bytes == 0
        assert h.sample("connector_operations_total", outcome="delivered") == 5


async def test_207_dead_letters_only_the_rejected_items_with_customer_ios_message() -> None:
    """Items named by batch_index get Customer.io's message; the rest are delivered; nothing is resent."""
    async with delivering() as h:
        h.fake.state.set_faults(poison_names=["Bad"], poison_status=207)
        tickets = h.send(event("ok0"), event("Bad"), event("ok2"), event("Bad"), event("ok4"))
        await wait_for(lambda: len(h.resolved.tickets) == 5, "5 tickets resolved")
        rejected = DeadLetterReason("rejected", POISON_MESSAGE, h.delivery.name, 207)
        assert [t.dead_letter for t in tickets] == [None, rejected, None, rejected, None]
        assert h.accepted_names() == ["ok0", "ok2", "ok4"]
        assert h.requests(207) == 1
        assert sum(h.fake.state.stats()["requests"]["acme"]["us"].values()) == 1
        assert h.sample("connector_operations_total", outcome="dead_lettered") == 2
        assert h.sample("connector_operations_total", outcome="delivered") == 3


async def test_400_is_bisected_down_to_the_single_bad_items() -> None:
    """A whole-batch 400 hides the culprits: halves are resent until each bad item stands alone."""
    async with delivering() as h:
        h.fake.state.set_faults(poison_names=["Bad"], poison_status=400)
        names = ["ok0", "ok1", "Bad", "ok3", "ok4", "Bad", "ok6", "ok7"]
        tickets = h.send(*(event(n) for n in names))
        await wait_for(lambda: len(h.resolved.tickets) == 8, "8 tickets resolved")
        rejected = DeadLetterReason("rejected", POISON_MESSAGE, h.delivery.name, 400)
        assert [t.dead_letter for t in tickets] == [rejected if n == "Bad" else None for n in names]
        # Every good operation delivered once, in the order submitted (halves go in order).
        assert h.accepted_names() == [n for n in names if n != "Bad"]
        # Refused: [0-7] [0-3] [2,3] [2] [4-7] [4,5] [5]; accepted: [0,1] [3] [4] [6,7].
        assert (h.requests(400), h.requests(200)) == (7, 4)
        assert h.delivery.buffered == 0


async def test_401_stops_the_workspace_and_the_probe_resumes_it_once_the_key_is_restored() -> None:
    """Nothing is dead-lettered while the key is rejected; the held batch is re-probed, then delivered once."""
    async with delivering() as h:
        h.fake.state.revoke("acme")
        tickets = h.send(event("e0"), event("e1"))
        await wait_for(lambda: not h.ready(), "the workspace stopped")
        assert h.congested()
        assert h.delivery.stopped_reason == "Track API key rejected (401)"
        assert h.sample("connector_workspace_ready") == 0
        # Re-probed periodically (CONNECTOR_AUTH_REPROBE_SECONDS), still holding its records meanwhile.
        await wait_for(lambda: h.requests(401) >= 3, "three probes")
        assert h.resolved.tickets == []
        assert h.delivery.buffered == 2
        assert h.sample("connector_auth_failures_total", api="track") >= 3

        h.fake.state.restore("acme")
        await wait_for(lambda: len(h.resolved.tickets) == 2, "both tickets resolved")
        assert h.ready()
        assert not h.congested()
        assert h.sample("connector_workspace_ready") == 1
        assert all(t.dead_letter is None for t in tickets)
        assert h.accepted_names() == ["e0", "e1"]


async def test_a_workspace_stopped_at_start_up_sends_its_first_batch_as_the_probe() -> None:
    """Keys rejected at start-up: the first batch waits one re-probe period, then its 200 resumes delivery."""
    async with delivering() as h:
        h.delivery.mark_stopped("Track API key rejected (401)")
        assert not h.ready()
        h.send(event("e0"))
        await wait_for(lambda: len(h.resolved.tickets) == 1, "the probe delivered")
        assert h.ready()
        assert h.accepted_names() == ["e0"]


def _other_lane_person(delivery_lanes: int, person: str) -> str:
    """A person whose operations go through another lane than ``person``'s (str hashes vary per process)."""
    lane = hash(person) % delivery_lanes
    return next(p for p in (f"q{i}" for i in range(100)) if hash(p) % delivery_lanes != lane)


async def test_429_holds_the_whole_workspace_until_retry_after_has_passed() -> None:
    """Retry-After: 1 holds every lane of the workspace until the clock is 1 s past the 429; then both go."""
    clock = ManualClock()
    policy = RecordingPolicy()
    async with delivering(policy=policy, clock=clock, lanes=2) as h:
        h.fake.state.add_burst(1, 429, retry_after=1, workspace="acme")
        answered_at = clock.now  # the clock stands still: the 429 is handled at this time
        h.send(event("first", person="p1"))
        await wait_for(lambda: h.requests(429) == 1, "the 429")
        await wait_for(lambda: h.delivery.hold_until > 0, "the hold")
        assert h.delivery.hold_until == answered_at + 1.0
        assert policy.asked == [(1, 1.0)]
        assert h.congested()
        assert not h.failing()  # congested by the hold alone

        # Another lane's batch must wait too: the hold is the workspace's, not the lane's.
        h.send(event("second", person=_other_lane_person(2, "p1")))
        readings = clock.readings
        # Each reading is a lane checking the hold before a request; three readings span a full re-check
        # (a lane sleeps out the remaining hold between readings), so a request sent regardless would be in.
        await wait_for(lambda: clock.readings >= readings + 3, "the lanes checking the hold")
        assert h.requests(200) == 0
        clock.advance(0.999)
        assert h.congested()

        clock.advance(0.001)
        assert not h.congested()
        await wait_for(lambda: len(h.resolved.tickets) == 2, "both delivered after the hold")
        assert sorted(h.accepted_names()) == ["first", "second"]
        assert h.requests(429) == 1
        assert h.sample("connector_retries_total", cause="429") == 1


async def test_5xx_is_retried_with_growing_backoff_until_it_succeeds() -> None:
    """Failures are backpressure, not loss: the workspace reports failing, then recovers and delivers once."""
    policy = RecordingPolicy()
    async with delivering(policy=policy) as h:
        h.fake.state.set_faults(error_ratio=1.0)
        tickets = h.send(event("e0"))
        await wait_for(h.failing, "the workspace failing")
        assert h.congested()
        assert len(policy.asked) >= FAILING_AFTER_ATTEMPTS
        assert h.resolved.tickets == []

        h.fake.state.set_faults(error_ratio=0.0)
        await wait_for(lambda: len(h.resolved.tickets) == 1, "the ticket resolved")
        assert not h.failing()
        assert not h.congested()
        assert tickets[0].dead_letter is None
        assert h.accepted_names() == ["e0"]
        retries = len(policy.asked)
        # Each retry asked the policy for the next attempt's backoff (the ceiling doubles per attempt).
        assert policy.asked == [(n, None) for n in range(1, retries + 1)]
        assert h.sample("connector_retries_total", cause="5xx") == retries


async def test_the_concurrency_limit_falls_on_failures_and_rises_on_successes() -> None:
    """AIMD: each 5xx multiplies the limit by 0.7, each success adds 1/limit, up to CONNECTOR_MAX_IN_FLIGHT."""
    async with delivering(max_in_flight=4) as h:

        def limit() -> float:
            return h.sample("connector_concurrency_limit")

        assert limit() == 4.0
        h.fake.state.add_burst(3, 503, retry_after=None, workspace="acme")
        h.send(event("e0"))
        await wait_for(lambda: len(h.resolved.tickets) == 1, "delivered after three 503s")
        expected = 4.0 * 0.7**3
        expected += 1 / expected
        assert limit() == pytest.approx(expected)

        seen = [limit()]
        for i in range(1, 12):
            h.send(event(f"e{i}"))
            await wait_for(lambda: len(h.resolved.tickets) == len(seen) + 1, f"batch {i} delivered")
            seen.append(limit())
        # Rises with every success until the maximum, and never passes it.
        assert all(b > a or b == a == 4.0 for a, b in itertools.pairwise(seen)), seen
        assert seen[-1] == 4.0
