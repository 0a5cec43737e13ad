"""Pure parts of the operator commands: `person`'s identifier and workspace choice, `dlq inspect`'s preview."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import load_settings
from connector.dlq_inspect import VALUE_PREVIEW_CHARS, preview
from connector.errors import ConfigError
from connector.person_tool import Lookup, choose_workspace, parse_identifier
from connector.sink.mapping.identifiers import person


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", Lookup("id", "42")),
        (" ana@example.com ", Lookup("email", "ana@example.com")),
        ("cio_abc123", Lookup("cio_id", "abc123")),
        ("not@an-email", Lookup("id", "not@an-email")),
    ],
)
def test_identifier_kind_is_read_from_its_shape(text: str, expected: Lookup) -> None:
    assert parse_identifier(text) == expected


@given(st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and t.strip() != "cio_"))
def test_identifier_is_classified_exactly_as_the_sink_classifies_user_id(text: str) -> None:
    """The look-up uses the sink's own classification, so a person the sink wrote is found by the same string."""
    ((kind, value),) = person(text.strip(), "userId")[0].items()
    assert parse_identifier(text) == Lookup(kind, value)


@pytest.mark.parametrize("text", ["", "   ", "cio_", "x" * 151])
def test_an_unusable_identifier_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^identifier: "):
        parse_identifier(text)


def test_the_path_escapes_the_identifier() -> None:
    assert Lookup("email", "a+b@example.com").path == "/v1/customers/a%2Bb%40example.com/attributes?id_type=email"
    assert Lookup("id", "a/b?c").path == "/v1/customers/a%2Fb%3Fc/attributes?id_type=id"


def test_workspace_choice(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "workspaces:\n"
        "  - {name: a, site_id: s1, api_key: k1, region: us}\n"
        "  - {name: b, site_id: s2, api_key: k2, region: eu}\n"
    )
    settings = load_settings({}, str(config), role="none")
    assert choose_workspace(settings, "b").name == "b"
    with pytest.raises(ConfigError, match=r"^--workspace: required with several workspaces \(a, b\)"):
        choose_workspace(settings, None)
    with pytest.raises(ConfigError, match="no workspace named 'c'"):
        choose_workspace(settings, "c")


@given(st.binary(max_size=2000))
def test_a_value_preview_is_one_short_printable_line(value: bytes) -> None:
    shown = preview(value)
    assert "\n" not in shown
    assert shown.isprintable()
    assert len(shown.removesuffix("…")) <= VALUE_PREVIEW_CHARS * 10  # an escaped character: ≤ 10 (\\U0010ffff)


def test_a_long_value_is_cut_with_an_ellipsis() -> None:
    assert preview(b"x" * 500) == "x" * VALUE_PREVIEW_CHARS + "…"
    assert preview(b"ab\ncd") == "ab\\ncd"
    assert preview(None) == "(null)"
