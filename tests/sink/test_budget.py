"""The process-wide buffer budget: fair shares, blocked workspaces, hysteresis (pure)."""

from __future__ import annotations

import pytest

from connector.sink.budget import BufferBudget, Holding

OPS = 1_000
BYTES = 1_000_000


def flowing(operations: int, nbytes: int = 0) -> Holding:
    return Holding(operations, nbytes, blocked=False)


def blocked(operations: int, nbytes: int = 0) -> Holding:
    return Holding(operations, nbytes, blocked=True)


def test_the_bound_is_for_the_process_not_per_workspace() -> None:
    """Twenty workspaces holding 50 operations each fill a 1,000-operation budget: all intake stops."""
    budget = BufferBudget(OPS, BYTES)
    plan = budget.plan({f"ws{i}": flowing(50) for i in range(20)})
    assert plan.full
    assert plan.flush == frozenset(f"ws{i}" for i in range(20))  # open batches go out at once


def test_a_workspace_stops_at_its_fair_share_while_the_others_keep_fetching() -> None:
    """With four workspaces holding work, each may use a quarter; the one at it is held back alone."""
    budget = BufferBudget(OPS, BYTES)
    plan = budget.plan({"big": flowing(250), "a": flowing(10), "b": flowing(10), "c": flowing(10)})
    assert not plan.full
    assert plan.held_back == {"big"}
    assert plan.flush == {"big"}


def test_bytes_count_as_well_as_operations() -> None:
    """A few large operations reach the share through their bytes."""
    budget = BufferBudget(OPS, BYTES)
    plan = budget.plan({"large": flowing(10, 600_000), "small": flowing(10, 1_000)})
    assert plan.held_back == {"large"}


def test_intake_restarts_only_below_half_the_share() -> None:
    """Hysteresis: held back at the share, still held just under it, released under half of it."""
    budget = BufferBudget(OPS, BYTES)
    assert budget.plan({"a": flowing(500), "b": flowing(1)}).held_back == {"a"}
    assert budget.plan({"a": flowing(400), "b": flowing(1)}).held_back == {"a"}
    assert budget.plan({"a": flowing(249), "b": flowing(1)}).held_back == frozenset()


def test_the_process_bound_restarts_below_half_of_the_room() -> None:
    """Full at the bound, still full just under it, intake again under half of it."""
    budget = BufferBudget(OPS, BYTES)
    assert budget.plan({"a": flowing(1_000)}).full
    assert budget.plan({"a": flowing(600)}).full
    assert not budget.plan({"a": flowing(499)}).full


def test_a_stopped_workspace_is_held_back_and_never_starves_the_others() -> None:
    """It was alone and filled the whole budget when its key was revoked; the others still get room."""
    budget = BufferBudget(OPS, BYTES)
    plan = budget.plan({"stopped": blocked(1_000), "other": flowing(0)})
    assert plan.held_back == {"stopped"}
    assert not plan.full  # "other" may fetch its first records
    plan = budget.plan({"stopped": blocked(1_000), "other": flowing(200)})
    assert not plan.full
    assert "other" not in plan.held_back
    plan = budget.plan({"stopped": blocked(1_000), "other": flowing(500)})
    assert plan.held_back == {"stopped", "other"}  # "other" at its half; "stopped" counts only its half


def test_blocked_workspaces_do_not_keep_the_process_full() -> None:
    """Half the workspaces blocked at their share: the flowing half drains and intake restarts."""
    budget = BufferBudget(OPS, BYTES)
    holdings = {"s1": blocked(250), "s2": blocked(250), "f1": flowing(250), "f2": flowing(250)}
    assert budget.plan(holdings).full
    holdings |= {"f1": flowing(150), "f2": flowing(150)}
    assert budget.plan(holdings).full
    holdings |= {"f1": flowing(100), "f2": flowing(20)}
    assert not budget.plan(holdings).full


def test_records_waiting_outside_the_workspaces_count() -> None:
    """Dead letters and transactional sends waiting hold records too."""
    budget = BufferBudget(OPS, BYTES)
    assert budget.plan({"a": flowing(0)}, pending_records=1_000).full


def test_an_empty_budget_is_refused() -> None:
    """A budget of nothing would never let a record in."""
    with pytest.raises(ValueError, match="at least one operation"):
        BufferBudget(0, BYTES)
