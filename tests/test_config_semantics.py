"""Settings of the sink's Kafka semantics: isolation level, topic pattern, tombstones, errors tolerance."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connector.config import load_settings
from connector.errors import ConfigError

CREDENTIALS = {"CIO_SITE_ID": "site", "CIO_API_KEY": "track-secret-123"}
BOTH = ("CONNECTOR_INPUT_TOPICS", "CONNECTOR_INPUT_TOPIC_PATTERN")


@pytest.mark.parametrize(
    ("env", "key", "words"),
    [
        ({"KAFKA_ISOLATION_LEVEL": "committed"}, "KAFKA_ISOLATION_LEVEL", "read_committed, read_uncommitted"),
        ({"KAFKA_METADATA_MAX_AGE_SECONDS": "0"}, "KAFKA_METADATA_MAX_AGE_SECONDS", "must be > 0"),
        ({"CONNECTOR_TOMBSTONES": "drop"}, "CONNECTOR_TOMBSTONES", "skip, dead_letter"),
        ({"CONNECTOR_ERRORS_TOLERANCE": "some"}, "CONNECTOR_ERRORS_TOLERANCE", "all, none"),
        (
            {"CONNECTOR_INPUT_TOPICS": "", "CONNECTOR_INPUT_TOPIC_PATTERN": "events-(["},
            "CONNECTOR_INPUT_TOPIC_PATTERN",
            "not a regular expression",
        ),
    ],
)
def test_invalid_value_names_the_setting(env: dict[str, str], key: str, words: str) -> None:
    """Each bad value is one line starting with the variable's name."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**CREDENTIALS, "CONNECTOR_INPUT_TOPICS": "events", **env}, role="sink")
    message = str(caught.value)
    assert message.startswith(f"{key}: ")
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "topics", [{"CONNECTOR_INPUT_TOPICS": "a", "CONNECTOR_INPUT_TOPIC_PATTERN": "a.*"}, {}], ids=["both", "neither"]
)
def test_topics_and_pattern_are_exclusive_and_one_is_required(topics: dict[str, str]) -> None:
    """Both, or neither, is one line naming both settings."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**CREDENTIALS, **topics}, role="sink")
    assert all(name in str(caught.value) for name in BOTH)


def test_defaults_read_committed_skip_tombstones_tolerate_all() -> None:
    """Aborted transactions are not delivered, tombstones not dead-lettered, rejections dead-lettered."""
    settings = load_settings({**CREDENTIALS, "CONNECTOR_INPUT_TOPIC_PATTERN": "events\\..*"}, role="sink")
    assert settings.kafka.isolation_level == "read_committed"
    assert settings.sink.tombstones == "skip"
    assert settings.sink.errors_tolerance == "all"
    assert settings.sink.input_topic_pattern == "events\\..*"


def test_cli_exits_2_naming_both_settings() -> None:
    """`cio-connector sink` with topics and a pattern exits 2 with one line naming both."""
    env = {
        **CREDENTIALS,
        "CONNECTOR_INPUT_TOPICS": "a",
        "CONNECTOR_INPUT_TOPIC_PATTERN": "a.*",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "connector", "sink"], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert all(name in lines[0] for name in BOTH)
    assert "track-secret-123" not in result.stderr
