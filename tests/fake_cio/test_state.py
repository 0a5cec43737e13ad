"""Pure tests of the fake's state: credentials, faults, rate limits, bursts, records, the 429 timeline."""

from __future__ import annotations

import orjson
import pytest

from connector.fake_cio.state import ERROR_STATUSES, FakeState, Faults, TokenBucket, Workspace, apply_fault_changes

US = Workspace("us-ws", "us-site", "us-key", "us", "us-app")
OTHER = Workspace("other", "other-site", "other-key", "us")


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A fresh hand-driven clock."""
    return Clock()


@pytest.fixture
def state(clock: Clock) -> FakeState:
    """State with two US workspaces and the hand-driven clock."""
    return FakeState([US, OTHER], seed=7, clock=clock)


def test_credentials(state: FakeState) -> None:
    """Track credentials and app keys resolve to their workspace; anything else to None."""
    assert state.track_workspace("us-site", "us-key") is US
    assert state.track_workspace("us-site", "other-key") is None
    assert state.track_workspace("nope", "us-key") is None
    assert state.app_workspace("us-app") is US
    assert state.app_workspace("us-key") is None


def test_duplicate_workspaces_rejected() -> None:
    """Two workspaces may not share a name or site id."""
    with pytest.raises(ValueError, match="unique"):
        FakeState([US, Workspace("us-ws", "x", "y", "eu")])


def test_environment_ids_are_distinct() -> None:
    """Workspaces get distinct environment ids unless given one."""
    assert len({Workspace(f"w{i}", "s", "k", "us").environment_id for i in range(5)}) == 5


def test_token_bucket_refills() -> None:
    """A bucket holds one second of tokens and says how long until the next one."""
    bucket = TokenBucket(rate=2.0, tokens=2.0, updated=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0


def test_rate_limit_answers_429_with_retry_after(state: FakeState, clock: Clock) -> None:
    """Over the per-workspace rate the answer is 429 with whole Retry-After seconds; workspaces are separate."""
    state.set_faults(rate_limit_per_second=2.0)
    assert state.admit(US, "track") is None
    assert state.admit(US, "track") is None
    refusal = state.admit(US, "track")
    assert refusal is not None
    assert (refusal.status, refusal.cause, refusal.retry_after) == (429, "rate_limited", 1.0)
    assert state.admit(OTHER, "track") is None
    assert state.admit(US, "app") is None  # the App API has its own, unset, limit
    clock.now += 0.5
    assert state.admit(US, "track") is None


def test_app_rate_limit(state: FakeState) -> None:
    """The App API limit applies to App API requests only."""
    state.set_faults(app_rate_limit_per_second=1.0)
    assert state.admit(US, "app") is None
    refusal = state.admit(US, "app")
    assert refusal is not None
    assert refusal.status == 429
    assert state.admit(US, "track") is None


def test_burst_then_normal(state: FakeState) -> None:
    """A burst answers the workspace's next N requests with its status, then stops; others are untouched."""
    state.add_burst(2, status=503, retry_after=2.5, workspace="us-ws")
    assert state.admit(OTHER, "track") is None
    first, second = state.admit(US, "track"), state.admit(US, "app")
    assert first is not None
    assert second is not None
    assert (first.status, first.retry_after, second.status) == (503, 3.0, 503)  # whole seconds, rounded up
    assert state.admit(US, "track") is None
    assert state.describe_faults()["bursts"] == []


def test_burst_for_any_workspace(state: FakeState) -> None:
    """A burst without a workspace counts requests of every workspace."""
    state.add_burst(2)
    assert state.admit(US, "track") is not None
    assert state.admit(OTHER, "track") is not None
    assert state.admit(US, "track") is None


def test_revoke_and_restore(state: FakeState) -> None:
    """A revoked workspace answers 401 until restored; unknown names raise KeyError."""
    state.revoke("us-ws")
    refusal = state.admit(US, "track")
    assert refusal is not None
    assert (refusal.status, refusal.cause) == (401, "revoked")
    state.restore("us-ws")
    assert state.admit(US, "track") is None
    with pytest.raises(KeyError):
        state.revoke("nope")


def test_error_ratio_one_always_fails(state: FakeState) -> None:
    """error_ratio 1.0 answers every request 500, 502 or 503."""
    state.set_faults(error_ratio=1.0)
    statuses = {r.status for r in (state.admit(US, "track") for _ in range(50)) if r is not None}
    assert statuses <= set(ERROR_STATUSES)
    assert len(statuses) > 1


def test_reset_ratio(state: FakeState) -> None:
    """reset_ratio 0 never resets, 1 always does."""
    assert not state.should_reset()
    state.set_faults(reset_ratio=1.0)
    assert state.should_reset()


@pytest.mark.parametrize(
    "changes",
    [
        {"error_ratio": 1.5},
        {"reset_ratio": -0.1},
        {"latency_ms": -1},
        {"rate_limit_per_second": 0},
        {"error_ratio": "0.5"},
        {"error_ratio": True},
        {"unknown": 1},
    ],
)
def test_bad_faults_rejected(state: FakeState, changes: dict[str, object]) -> None:
    """Out-of-range or unknown fault settings raise ValueError and change nothing."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per field
        state.set_faults(**changes)
    assert state.faults == Faults()


def test_apply_fault_changes_json(state: FakeState) -> None:
    """The control API body sets faults and a burst together."""
    apply_fault_changes(
        state, {"latency_ms": 5, "rate_limit_per_second": None, "burst": {"workspace": "us-ws", "count": 1}}
    )
    described = state.describe_faults()
    assert described["latency_ms"] == 5
    assert described["bursts"] == [{"workspace": "us-ws", "remaining": 1, "status": 429, "retry_after": 1.0}]


@pytest.mark.parametrize(
    "body",
    [
        {"burst": 3},
        {"burst": {"workspace": "nope", "count": 1}},
        {"burst": {"count": -1}},
        {"burst": {"count": 1, "status": 42}},
        {"burst": {"count": 1, "retry_after": "soon"}},
        {"error_ratio": 2},
    ],
)
def test_apply_fault_changes_rejects(state: FakeState, body: dict[str, object]) -> None:
    """Invalid control bodies raise ValueError and leave faults as they were."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per field
        apply_fault_changes(state, body)
    assert state.faults == Faults()


def test_throttle_timeline(state: FakeState, clock: Clock) -> None:
    """Each 429 is logged with its Retry-After and the arrival of the workspace's next request."""
    state.add_burst(1, retry_after=1.0, workspace="us-ws")
    state.admit(US, "track")
    clock.now += 1.25
    state.admit(OTHER, "track")  # another workspace's request does not count
    assert state.stats()["throttled"]["us-ws"] == [
        {"at": 1000.0, "status": 429, "retry_after": 1.0, "next_request_at": None}
    ]
    state.admit(US, "track")
    entry = state.stats()["throttled"]["us-ws"][0]
    assert entry["next_request_at"] - entry["at"] == pytest.approx(1.25)


def test_records_capped_and_filtered(clock: Clock) -> None:
    """Only the newest max_recorded operations are kept, all are counted, and they read back per workspace."""
    state = FakeState([US, OTHER], max_recorded=2, clock=clock)
    state.record_operations(US, "v2", [b'{"n":1}', b'{"n":2}'], 5.0)
    state.record_operations(OTHER, "v1", [b'{"n":3}'], 6.0)
    assert state.operations_for() == [
        {"workspace": "us-ws", "region": "us", "api": "v2", "operation": {"n": 2}, "received_at": 5.0},
        {"workspace": "other", "region": "us", "api": "v1", "operation": {"n": 3}, "received_at": 6.0},
    ]
    assert [r["operation"] for r in state.operations_for("other")] == [{"n": 3}]
    assert state.stats()["accepted_operations"] == {"us-ws": 2, "other": 1}
    state.clear_operations()
    assert state.operations_for() == []


def test_record_email(state: FakeState) -> None:
    """Accepted emails get distinct delivery ids and the current time as queued_at."""
    first = state.record_email(US, {"to": "a@b.c"})
    second = state.record_email(US, {"to": "a@b.c"})
    assert first["delivery_id"] != second["delivery_id"]
    assert first["queued_at"] == 1000
    assert orjson.loads(orjson.dumps(state.emails))[0]["message"] == {"to": "a@b.c"}


def test_stats_counts(state: FakeState) -> None:
    """Answers are counted per workspace, region and status; clear_stats resets them."""
    state.count("us-ws", "us", 200)
    state.count("us-ws", "us", 200)
    state.count("us-ws", "eu", "reset")
    state.count_redirect(US)
    state.count_rejected(US, 3)
    stats = state.stats()
    assert stats["requests"] == {"us-ws": {"eu": {"reset": 1}, "us": {"200": 2}}}
    assert (stats["redirected"], stats["rejected_operations"]) == ({"us-ws": 1}, {"us-ws": 3})
    state.clear_stats()
    assert state.stats()["requests"] == {}


def _identify(user: str, timestamp: int | None = None) -> dict[str, object]:
    op: dict[str, object] = {"type": "person", "action": "identify", "identifiers": {"id": user}}
    if timestamp is not None:
        op["timestamp"] = timestamp
    return op


def test_stale_identifies_are_ignored_only_when_asked(state: FakeState, clock: Clock) -> None:
    """Reported, unconfirmed (reference Addendum E): an identify older than the last update is ignored."""
    assert not state.ignores(US, _identify("1", 2000), clock.now)
    assert not state.ignores(US, _identify("1", 1500), clock.now)  # off: every identify applies
    state.set_faults(ignore_stale_identifies=True)
    assert not state.ignores(US, _identify("1", 2000), clock.now)
    assert state.ignores(US, _identify("1", 1999), clock.now)  # older than the last update
    assert not state.ignores(US, _identify("1", 2000), clock.now)  # a tie applies
    assert not state.ignores(US, _identify("2", 1), clock.now)  # another person
    assert not state.ignores(OTHER, _identify("1", 1), clock.now)  # another workspace
    clock.now = 3000.0
    assert not state.ignores(US, _identify("1"), clock.now)  # no timestamp: the receive time, 3000
    assert state.ignores(US, _identify("1", 2500), clock.now)
    event = {"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "x", "timestamp": 1}
    assert not state.ignores(US, event, clock.now)  # only identifies
    assert state.stats()["ignored_operations"] == {"us-ws": 2}


def test_ignore_stale_identifies_must_be_a_boolean(state: FakeState) -> None:
    with pytest.raises(ValueError, match="ignore_stale_identifies must be true or false"):
        state.set_faults(ignore_stale_identifies="yes")
