"""The CLI's behaviour at the edges of its standard streams: a reader that goes away (`| head`) and a
closed stdin end the command with one line (or none), never a Python traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("CIO_", "CONNECTOR_", "KAFKA_"))},
    "CIO_SITE_ID": "site",
    "CIO_API_KEY": "track-secret-123",
    "CIO_REGION": "us",
    "CONNECTOR_INPUT_TOPICS": "events",
}


def test_map_piped_into_head_stops_quietly(tmp_path: Path) -> None:
    """`cio-connector map < big.jsonl | head -1`: the reader closes the pipe after one line."""
    records = tmp_path / "records.jsonl"
    records.write_bytes(
        b"".join(orjson.dumps({"type": "track", "event": "e", "userId": str(i)}) + b"\n" for i in range(20_000))
    )
    with records.open("rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "map"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    code = proc.wait(timeout=120)
    assert orjson.loads(first)["outcome"] == "delivered"
    assert "Traceback" not in stderr
    assert stderr == ""
    assert code == 141


def test_map_with_stdin_closed_is_one_line() -> None:
    script = f"exec {sys.executable} -m connector map <&-"
    done = subprocess.run(["sh", "-c", script], check=False, capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "cio-connector: error: stdin is closed: pipe the records in, e.g. cio-connector map < records.jsonl"
    ]
