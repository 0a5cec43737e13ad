"""What the fake knows: workspaces, faults, rate limits, and what it accepted. No I/O.

The server asks ``FakeState`` how to treat each request (``admit``, ``should_reset``, ``latency_seconds``)
and tells it what happened (``record_operations``, ``record_email``, ``count``). Tests in the same
event loop call the same methods (``fake.state.set_faults(error_ratio=1.0)``) instead of the HTTP
control API, which is a thin JSON layer over them.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Literal

import orjson

Region = Literal["us", "eu"]
UNKNOWN_WORKSPACE: Final = "(unknown)"
MAX_THROTTLE_ENTRIES: Final = 10_000
ERROR_STATUSES: Final = (500, 502, 503)

_environment_ids = itertools.count(1)


def _next_environment_id() -> int:
    return next(_environment_ids)


@dataclass(frozen=True, slots=True)
class Workspace:
    """One Customer.io workspace the fake serves; it lives in exactly one region."""

    name: str
    site_id: str
    api_key: str
    region: Region
    app_api_key: str | None = None
    environment_id: int = field(default_factory=_next_environment_id)


@dataclass(slots=True)
class Faults:
    """Faults applied to every Track and App API request (not to ``/_fake/``)."""

    error_ratio: float = 0.0  # share of requests answered 500/502/503
    reset_ratio: float = 0.0  # share of connections aborted without an answer
    latency_ms: float = 0.0  # added before answering
    rate_limit_per_second: float | None = None  # Track API token bucket per workspace → 429
    app_rate_limit_per_second: float | None = None  # App API token bucket per workspace → 429
    # Operations whose `name` is listed are rejected as Customer.io might for reasons a client cannot
    # check (e.g. per-person limits): per item in a 207 (poison_status 207) or the whole batch (400).
    poison_names: tuple[str, ...] = ()
    poison_status: int = 207
    # Answer 200 but ignore a person identify whose timestamp (else the receive time) is older than the
    # profile's last update: the behaviour a third party reports and Customer.io has not confirmed
    # (reference Addendum E). Ignored identifies are counted, not recorded.
    ignore_stale_identifies: bool = False


@dataclass(slots=True)
class Burst:
    """The next ``remaining`` requests (of ``workspace``, or of any when None) get ``status``."""

    workspace: str | None
    remaining: int
    status: int = 429
    retry_after: float | None = 1.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """How to answer a request instead of serving it."""

    status: int
    cause: Literal["revoked", "burst", "rate_limited", "error"]
    retry_after: float | None = None  # whole seconds


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, holding at most one second's worth (at least one token)."""

    rate: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 if one was there, else the seconds until one will be."""
        capacity = max(1.0, self.rate)
        self.tokens = min(capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class FakeState:
    """Workspaces, faults and records shared by the US and EU listeners of one fake."""

    def __init__(
        self,
        workspaces: Iterable[Workspace],
        *,
        faults: Faults | None = None,
        max_recorded: int | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.workspaces: tuple[Workspace, ...] = tuple(workspaces)
        self._by_name = {ws.name: ws for ws in self.workspaces}
        self._by_site = {ws.site_id: ws for ws in self.workspaces}
        self._by_app_key = {ws.app_api_key: ws for ws in self.workspaces if ws.app_api_key}
        if len(self._by_name) != len(self.workspaces) or len(self._by_site) != len(self.workspaces):
            raise ValueError("workspace names and site ids must be unique")
        self.faults = faults or Faults()
        self.clock = clock
        self._random = random.Random(seed)
        self._bursts: list[Burst] = []
        self._revoked: set[str] = set()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        # Operations are kept serialized, in flat tuples: bytes are invisible to the garbage collector,
        # so 100,000 recorded operations do not slow every collection down (measured: half the CPU per batch).
        self._records: deque[tuple[str, str, str, bytes, float]] = deque(maxlen=max_recorded)
        self.emails: list[dict[str, Any]] = []
        # (workspace, person) → the timestamp of its last applied identify, kept while stale identifies
        # are ignored. A person is keyed by its identifier as sent ("id:42"): the fake links no identities.
        self._profile_updates: dict[tuple[str, str], int] = {}
        self.metrics: list[dict[str, Any]] = []  # accepted /api/v1/metrics bodies, with their workspace
        # Manual segment membership: (workspace, segment id) → {(id_type, id)}; kept like a workspace's data.
        self._segments: dict[tuple[str, int], set[tuple[str, str]]] = {}
        self.clear_stats()

    # --- credentials ------------------------------------------------------------------------------------

    def track_workspace(self, site_id: str, api_key: str) -> Workspace | None:
        """The workspace these Track credentials belong to, or None."""
        ws = self._by_site.get(site_id)
        return ws if ws is not None and secrets.compare_digest(ws.api_key, api_key) else None

    def app_workspace(self, app_api_key: str) -> Workspace | None:
        """The workspace of this App API key, or None."""
        return self._by_app_key.get(app_api_key)

    def workspace(self, name: str) -> Workspace:
        """The workspace called ``name``; KeyError if there is none."""
        return self._by_name[name]

    # --- faults ------------------------------------------------------------------------------------------

    def set_faults(self, **changes: Any) -> Faults:
        """Change some fault settings (the ``Faults`` field names); ValueError on a bad value."""
        allowed = {f.name for f in fields(Faults)}
        for name, value in changes.items():
            if name not in allowed:
                raise ValueError(f"unknown fault {name!r}")
            _check_fault(name, value)
        for name, value in changes.items():
            setattr(self.faults, name, tuple(value) if name == "poison_names" else value)
        if {"rate_limit_per_second", "app_rate_limit_per_second"} & changes.keys():
            self._buckets.clear()
        return self.faults

    def add_burst(
        self, count: int, status: int = 429, retry_after: float | None = 1.0, workspace: str | None = None
    ) -> None:
        """Answer the next ``count`` requests of ``workspace`` (any when None) with ``status``."""
        if workspace is not None and workspace not in self._by_name:
            raise ValueError(f"unknown workspace {workspace!r}")
        if type(count) is not int or count < 0 or type(status) is not int or not 100 <= status <= 599:
            raise ValueError("burst needs a count ≥ 0 and an HTTP status")
        if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
            raise ValueError("retry_after must be a number ≥ 0 or null")
        self._bursts = [b for b in self._bursts if b.workspace != workspace]
        if count:
            self._bursts.append(Burst(workspace, count, status, retry_after))

    def revoke(self, name: str) -> None:
        """Make the workspace's keys answer 401 until ``restore``."""
        self.workspace(name)
        self._revoked.add(name)

    def restore(self, name: str) -> None:
        """Accept the workspace's keys again."""
        self.workspace(name)
        self._revoked.discard(name)

    def describe_faults(self) -> dict[str, Any]:
        """Faults, pending bursts and revoked workspaces as JSON-ready values."""
        return {**asdict(self.faults), "bursts": [asdict(b) for b in self._bursts], "revoked": sorted(self._revoked)}

    def latency_seconds(self) -> float:
        """Delay to add before answering."""
        return self.faults.latency_ms / 1000.0

    def should_reset(self) -> bool:
        """Whether to abort this connection without answering."""
        return self.faults.reset_ratio > 0 and self._random.random() < self.faults.reset_ratio

    def admit(self, ws: Workspace, api: Literal["track", "app"]) -> Refusal | None:
        """Decide whether an authenticated request is served: revoked, burst, rate limit, random error."""
        now = self.clock()
        self._note_arrival(ws.name, now)
        refusal = self._refusal(ws, api, now)
        if refusal is not None and (refusal.status == 429 or refusal.retry_after is not None):
            entry = {"at": now, "status": refusal.status, "retry_after": refusal.retry_after, "next_request_at": None}
            self._throttled.setdefault(ws.name, deque(maxlen=MAX_THROTTLE_ENTRIES)).append(entry)
            self._awaiting_next.setdefault(ws.name, []).append(entry)
        return refusal

    def _refusal(self, ws: Workspace, api: str, now: float) -> Refusal | None:
        if ws.name in self._revoked:
            return Refusal(401, "revoked")
        for burst in self._bursts:
            if burst.workspace in (None, ws.name):
                burst.remaining -= 1
                if burst.remaining <= 0:
                    self._bursts.remove(burst)
                # Retry-After is sent in whole seconds, rounded up; the timeline records what was sent.
                retry_after = None if burst.retry_after is None else float(math.ceil(burst.retry_after))
                return Refusal(burst.status, "burst", retry_after)
        rate = self.faults.rate_limit_per_second if api == "track" else self.faults.app_rate_limit_per_second
        if rate is not None:
            bucket = self._buckets.get((ws.name, api))
            if bucket is None:
                bucket = self._buckets[ws.name, api] = TokenBucket(rate, max(1.0, rate), now)
            wait = bucket.take(now)
            if wait > 0:
                return Refusal(429, "rate_limited", float(max(1, math.ceil(wait))))
        if self.faults.error_ratio > 0 and self._random.random() < self.faults.error_ratio:
            return Refusal(self._random.choice(ERROR_STATUSES), "error")
        return None

    def _note_arrival(self, name: str, now: float) -> None:
        waiting = self._awaiting_next.pop(name, None)
        for entry in waiting or ():
            entry["next_request_at"] = now

    # --- records -----------------------------------------------------------------------------------------

    def record_operations(self, ws: Workspace, api: Literal["v1", "v2"], ops: list[bytes], now: float) -> None:
        """Keep accepted operations, given serialized (up to ``max_recorded``, oldest dropped), and count them."""
        self._accepted[ws.name] += len(ops)
        if self._records.maxlen != 0:
            name, region, append = ws.name, ws.region, self._records.append
            for op in ops:
                append((name, region, api, op, now))

    def ignores(self, ws: Workspace, op: Mapping[str, Any], now: float) -> bool:
        """Whether an accepted operation is ignored as a stale identify (``ignore_stale_identifies``).

        The update's time is its ``timestamp``, else ``now`` (the receive time). An equal time is applied:
        what Customer.io does with ties is unconfirmed. A v2 operation that passed the rules is assumed.
        """
        if not self.faults.ignore_stale_identifies or op.get("type") != "person" or op.get("action") != "identify":
            return False
        ((kind, value),) = op["identifiers"].items()
        key = (ws.name, f"{kind}:{value}")
        at = op.get("timestamp")
        at = int(now) if at is None else at
        last = self._profile_updates.get(key)
        if last is not None and at < last:
            self._ignored[ws.name] += 1
            return True
        self._profile_updates[key] = at
        return False

    def count_rejected(self, ws: Workspace, n: int) -> None:
        """Count operations rejected by the rules."""
        self._rejected[ws.name] += n

    def record_email(self, ws: Workspace, message: Mapping[str, Any]) -> dict[str, Any]:
        """Keep an accepted transactional email; return the API's answer (delivery id, queued at)."""
        answer = {"delivery_id": secrets.token_urlsafe(18), "queued_at": int(self.clock())}
        self.emails.append({"workspace": ws.name, "region": ws.region, **answer, "message": message})
        return answer

    def record_metric(self, ws: Workspace, body: Mapping[str, Any]) -> None:
        """Keep an accepted delivery metric (``POST /api/v1/metrics``)."""
        self.metrics.append({"workspace": ws.name, "region": ws.region, **body})

    def change_segment(self, ws: Workspace, segment_id: int, action: str, id_type: str, ids: Iterable[str]) -> None:
        """Apply an accepted ``add_customers``/``remove_customers`` call to the segment's membership."""
        members = self._segments.setdefault((ws.name, segment_id), set())
        entries = {(id_type, value) for value in ids}
        if action == "add_customers":
            members |= entries
        else:
            members -= entries

    def segment_members(self, workspace: str, segment_id: int) -> set[tuple[str, str]]:
        """The (id_type, id) pairs now in a manual segment of ``workspace``."""
        return set(self._segments.get((workspace, segment_id), ()))

    def describe_segments(self) -> dict[str, dict[str, list[list[str]]]]:
        """Every manual segment's members as JSON-ready values: workspace → segment id → [[id_type, id]]."""
        result: dict[str, dict[str, list[list[str]]]] = {}
        for (workspace, segment_id), members in sorted(self._segments.items()):
            result.setdefault(workspace, {})[str(segment_id)] = [list(m) for m in sorted(members)]
        return result

    def count(self, workspace: str, region: str, status: int | str) -> None:
        """Count one answered (or reset) request."""
        self._requests[workspace, region, str(status)] += 1

    def count_redirect(self, ws: Workspace) -> None:
        """Count a request redirected to its workspace's region (not accepted)."""
        self._redirected[ws.name] += 1

    def operations_for(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """Accepted operations in arrival order, optionally of one workspace.

        Each is ``{"workspace", "region", "api", "operation", "received_at"}``; ``operation`` is the
        operation as received (v2) or its v2-shaped equivalent (v1).
        """
        return [
            {"workspace": name, "region": region, "api": api, "operation": orjson.loads(op), "received_at": at}
            for name, region, api, op, at in self._records
            if workspace is None or name == workspace
        ]

    def clear_operations(self) -> None:
        """Forget accepted operations, emails and metrics (stats and segment membership are kept)."""
        self._records.clear()
        self.emails.clear()
        self.metrics.clear()

    def clear_stats(self) -> None:
        """Reset every counter and the 429 timeline."""
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._redirected: Counter[str] = Counter()
        self._accepted: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._ignored: Counter[str] = Counter()
        self._throttled: dict[str, deque[dict[str, Any]]] = {}
        self._awaiting_next: dict[str, list[dict[str, Any]]] = {}

    def stats(self) -> dict[str, Any]:
        """Counters as JSON-ready values (see the control API for the shape)."""
        requests: dict[str, dict[str, dict[str, int]]] = {}
        for (workspace, region, status), n in sorted(self._requests.items()):
            requests.setdefault(workspace, {}).setdefault(region, {})[status] = n
        return {
            "requests": requests,
            "redirected": dict(self._redirected),
            "accepted_operations": dict(self._accepted),
            "rejected_operations": dict(self._rejected),
            "ignored_operations": dict(self._ignored),
            "throttled": {name: [dict(e) for e in entries] for name, entries in self._throttled.items()},
        }


def _check_fault(name: str, value: Any) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if name == "ignore_stale_identifies":
        if not isinstance(value, bool):
            raise ValueError("ignore_stale_identifies must be true or false")
    elif name == "poison_names":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("poison_names must be a list of strings")
    elif name == "poison_status":
        if value not in (207, 400):
            raise ValueError("poison_status must be 207 or 400")
    elif name.endswith("_ratio"):
        if not number or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    elif name == "latency_ms":
        if not number or value < 0:
            raise ValueError("latency_ms must be ≥ 0")
    elif value is not None and (not number or value <= 0):
        raise ValueError(f"{name} must be > 0 or null")


def apply_fault_changes(state: FakeState, body: Mapping[str, Any]) -> None:
    """Apply a ``POST /_fake/faults`` body: fault fields, and optionally ``burst``; ValueError if invalid."""
    changes = {k: v for k, v in body.items() if k != "burst"}
    burst = body.get("burst")
    if burst is not None and not isinstance(burst, dict):
        raise ValueError("burst must be an object")
    for name, value in changes.items():
        if name not in {f.name for f in fields(Faults)}:
            raise ValueError(f"unknown fault {name!r}")
        _check_fault(name, value)
    if burst is not None:
        state.add_burst(
            burst.get("count", 1), burst.get("status", 429), burst.get("retry_after", 1.0), burst.get("workspace")
        )
    state.set_faults(**changes)
