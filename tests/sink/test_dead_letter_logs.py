"""A burst of dead letters logs the first few per reason and one summary line; metrics count every one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connector.fake_cio.server import FakeCustomerIO
from connector.sink.dlq import LOG_BURST
from tests.sink.memory_sink import FAKE, record, run_sink


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE]) as server:
        yield server


async def test_a_burst_of_dead_letters_logs_a_few_lines_and_a_summary(
    fake: FakeCustomerIO, caplog: pytest.LogCaptureFixture
) -> None:
    records = [record(offset, b"not json {") for offset in range(300)]
    records += [record(300 + offset, b"[1, 2]") for offset in range(2)]  # another reason, under the burst
    caplog.set_level("WARNING", logger="connector.sink.dlq")

    outcome = await run_sink(fake, records)

    assert len(outcome.dead_letters) == 302
    counted = outcome.metrics.registry.get_sample_value(
        "connector_dead_letters_total", {"workspace": "none", "reason": "not_json"}
    )
    assert counted == 300
    lines = [r for r in caplog.records if r.name == "connector.sink.dlq"]
    one_by_one = [r.fields["reason"] for r in lines if r.getMessage() == "Record dead-lettered."]  # type: ignore[attr-defined]
    assert sorted(one_by_one) == ["not_an_object"] * 2 + ["not_json"] * LOG_BURST
    summaries = [r.fields for r in lines if r.getMessage().startswith("Dead letters of the last")]  # type: ignore[attr-defined]
    assert [s["suppressed"] for s in summaries] == [{"not_json": 300 - LOG_BURST}]
