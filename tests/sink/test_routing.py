"""Routing rules: header (opt-in per topic), overrides, topics, catch-all, prefixes, transactional flag (pure)."""

from __future__ import annotations

import pytest

from connector.config import (
    MappingSettings,
    RouteOverride,
    Settings,
    SinkSettings,
    TopicSettings,
    TransactionalSettings,
    WorkspaceSettings,
)
from connector.errors import ConfigError
from connector.sink.mapping.model import Message, MessageContext, Operation, Rejection
from connector.sink.routing import MAX_QUOTED_HEADER_BYTES, Router, Target

TRACK: Message = {"type": "track", "event": "Order Completed", "userId": "u1"}
IDENTIFY: Message = {"type": "identify", "userId": "u1"}


# Where the header is on in these tests, topics a, b, c and tx may name every workspace below.
ANY_WORKSPACE = ("us-brand", "eu-brand", "catch-all", "other")


def _settings(
    *workspaces: WorkspaceSettings,
    routes: tuple[RouteOverride, ...] = (),
    prefix: str = "",
    tx_topic: str | None = None,
    header: str = "cio-workspace",
    topics: tuple[TopicSettings, ...] | None = None,
) -> Settings:
    if topics is None:
        declared = {ws.name for ws in workspaces}
        allowed = tuple(name for name in ANY_WORKSPACE if name in declared)
        topics = tuple(TopicSettings(name=t, header_workspaces=allowed) for t in ("a", "b", "c", "tx"))
    return Settings(
        workspaces=workspaces,
        routes=routes,
        topics=topics,
        mapping=MappingSettings(attribute_prefix=prefix),
        sink=SinkSettings(input_topics=("a", "b", "c"), workspace_header=header),
        transactional=TransactionalSettings(topic=tx_topic),
    )


US = WorkspaceSettings(name="us-brand", topics=("a",))
EU = WorkspaceSettings(name="eu-brand", topics=("b",), attribute_prefix="eu_")
ALL = WorkspaceSettings(name="catch-all")


def _target(router: Router, topic: str, header: bytes | None = None, message: Message = TRACK) -> Target:
    result = router.route(topic, header, message)
    assert isinstance(result, Target), result
    return result


@pytest.mark.parametrize(
    ("topic", "header", "expected"),
    [
        ("a", None, "us-brand"),
        ("b", None, "eu-brand"),
        ("c", None, "catch-all"),
        ("a", b"eu-brand", "eu-brand"),
        ("c", b"us-brand", "us-brand"),
        ("a", b"", "us-brand"),
    ],
)
def test_workspace_by_header_then_topics_then_catch_all(topic: str, header: bytes | None, expected: str) -> None:
    """The header wins, then the topic lists, then the single workspace without topics; empty header is absent."""
    router = Router(_settings(US, EU, ALL))
    assert _target(router, topic, header).workspace == expected


def test_unknown_header_name_is_not_allowed() -> None:
    """A header naming no configured workspace is refused like any name off the list, quoting the name."""
    result = Router(_settings(US, ALL)).route("a", b"mars", TRACK)
    assert result == Rejection(
        "workspace_not_allowed",
        "topic 'a' may not choose workspace 'mars' by the cio-workspace header (not in topics.a.header_workspaces)",
    )


def test_header_off_by_default() -> None:
    """Out of the box no header is read: the workspace header setting is empty."""
    assert SinkSettings().workspace_header == ""


@pytest.mark.parametrize("header", [b"eu-brand", b"mars", b"x" * 10_000])
def test_header_off_is_ignored_and_the_topic_rules_decide(header: bytes) -> None:
    """With the header off, whatever it holds, the topic's owner and the routes choose the workspace."""
    settings = _settings(US, EU, ALL, routes=(RouteOverride(topic="c", workspace="eu-brand"),), header="")
    router = Router(settings)
    assert _target(router, "a", header).workspace == "us-brand"
    assert _target(router, "b", header).workspace == "eu-brand"
    assert _target(router, "c", header).workspace == "eu-brand"  # the override, not the header


def test_header_names_only_workspaces_on_the_topic_allow_list() -> None:
    """A topic's header may name its listed workspaces; another workspace is workspace_not_allowed."""
    topics = (TopicSettings(name="a", header_workspaces=("us-brand", "catch-all")),)
    router = Router(_settings(US, EU, ALL, topics=topics))
    assert _target(router, "a", b"catch-all").workspace == "catch-all"
    assert _target(router, "a", b"us-brand").workspace == "us-brand"
    refused = router.route("a", b"eu-brand", TRACK)
    assert isinstance(refused, Rejection)
    assert refused.reason == "workspace_not_allowed"
    assert "topic 'a'" in refused.message
    assert "'eu-brand'" in refused.message


@pytest.mark.parametrize("topic", ["b", "c"])
def test_topic_without_an_allow_list_may_not_use_the_header(topic: str) -> None:
    """Header on but nothing listed for the topic: every non-empty header is refused there, even its owner's."""
    topics = (TopicSettings(name="a", header_workspaces=("eu-brand",)),)
    router = Router(_settings(US, EU, ALL, topics=topics))
    owner = "eu-brand" if topic == "b" else "catch-all"
    for name in (b"us-brand", owner.encode()):
        refused = router.route(topic, name, TRACK)
        assert isinstance(refused, Rejection)
        assert refused.reason == "workspace_not_allowed"
    assert _target(router, topic, b"").workspace == owner  # an empty header is still absent
    assert _target(router, topic, None).workspace == owner


def test_allowed_header_beats_an_override_but_a_refused_one_is_not_overridden() -> None:
    """An override does not rescue a refused header: the record is dead-lettered, not routed elsewhere."""
    routes = (RouteOverride(topic="a", workspace="eu-brand"),)
    topics = (TopicSettings(name="a", header_workspaces=("us-brand",)),)
    router = Router(_settings(US, EU, ALL, routes=routes, topics=topics))
    assert _target(router, "a", b"us-brand").workspace == "us-brand"
    refused = router.route("a", b"catch-all", TRACK)
    assert isinstance(refused, Rejection)
    assert refused.reason == "workspace_not_allowed"


def test_oversized_header_value_is_quoted_bounded() -> None:
    """A producer's huge or binary header value is quoted at most MAX_QUOTED_HEADER_BYTES long, with its size."""
    value = "é".encode() * 50_000 + b"\xff"
    refused = Router(_settings(US, ALL)).route("a", value, TRACK)
    assert isinstance(refused, Rejection)
    assert refused.reason == "workspace_not_allowed"
    assert len(refused.message) < 300
    assert f"({len(value)} bytes)" in refused.message
    assert refused.message.encode("utf-8")  # a valid header value for the dead letter
    assert MAX_QUOTED_HEADER_BYTES < 100


def test_allow_list_naming_an_unknown_workspace_is_a_config_error() -> None:
    """The router refuses an allow-list naming no configured workspace, naming the key."""
    topics = (TopicSettings(name="a", header_workspaces=("us-brand", "mars")),)
    with pytest.raises(ConfigError, match=r"^topics\.a\.header_workspaces: no workspace named 'mars'$"):
        Router(_settings(US, topics=topics))


def test_unrouted_topic_is_no_route() -> None:
    """Without a catch-all workspace, an unlisted topic is rejected."""
    result = Router(_settings(US, EU)).route("c", None, TRACK)
    assert isinstance(result, Rejection)
    assert result.reason == "no_route"
    assert "'c'" in result.message


def test_two_catch_alls_take_nothing() -> None:
    """With two workspaces without topics, neither takes unlisted topics; the header still routes."""
    other = WorkspaceSettings(name="other")
    router = Router(_settings(US, ALL, other))
    assert isinstance(router.route("c", None, TRACK), Rejection)
    assert _target(router, "c", b"other").workspace == "other"


def test_single_default_workspace_takes_everything() -> None:
    """The one workspace from the environment (no topics) takes every topic."""
    router = Router(_settings(WorkspaceSettings()))
    assert _target(router, "anything", message=IDENTIFY).workspace == "default"


def test_topic_in_two_workspaces_is_a_config_error() -> None:
    """Two workspaces listing the same topic are refused at start-up."""
    twin = WorkspaceSettings(name="twin", topics=("a",))
    with pytest.raises(ConfigError, match="already feeds workspace 'us-brand'"):
        Router(_settings(US, twin))


@pytest.mark.parametrize(
    ("routes", "topic", "message", "expected"),
    [
        # topic override beats the topic lists
        ((RouteOverride(topic="a", workspace="eu-brand"),), "a", TRACK, "eu-brand"),
        # event override matches track events of that name, on any topic
        ((RouteOverride(event="Order Completed", workspace="eu-brand"),), "a", TRACK, "eu-brand"),
        # … but never a non-track message
        ((RouteOverride(event="Order Completed", workspace="eu-brand"),), "a", IDENTIFY, "us-brand"),
        # an identify carrying an "event" key is still not a track event
        (
            (RouteOverride(event="Order Completed", workspace="eu-brand"),),
            "a",
            {"type": "identify", "event": "Order Completed"},
            "us-brand",
        ),
        # topic+event needs both
        ((RouteOverride(topic="a", event="Other", workspace="eu-brand"),), "a", TRACK, "us-brand"),
        ((RouteOverride(topic="a", event="Order Completed", workspace="eu-brand"),), "a", TRACK, "eu-brand"),
        # first match wins, whatever its shape
        (
            (
                RouteOverride(event="Order Completed", workspace="catch-all"),
                RouteOverride(topic="a", event="Order Completed", workspace="eu-brand"),
            ),
            "a",
            TRACK,
            "catch-all",
        ),
        (
            (
                RouteOverride(topic="a", event="Order Completed", workspace="eu-brand"),
                RouteOverride(topic="a", workspace="catch-all"),
            ),
            "a",
            TRACK,
            "eu-brand",
        ),
        # an override routes a topic no workspace lists
        ((RouteOverride(topic="z", workspace="us-brand"),), "z", IDENTIFY, "us-brand"),
        # a prefix-only override leaves the workspace to the topic rules
        ((RouteOverride(topic="b", attribute_prefix="x_"),), "b", TRACK, "eu-brand"),
    ],
)
def test_route_overrides(routes: tuple[RouteOverride, ...], topic: str, message: Message, expected: str) -> None:
    """Overrides match on topic and/or track event name, first match wins, before the topic lists."""
    router = Router(_settings(US, EU, ALL, routes=routes))
    assert _target(router, topic, message=message).workspace == expected


def test_header_beats_override() -> None:
    """The header's workspace wins over an override naming another."""
    router = Router(_settings(US, EU, routes=(RouteOverride(topic="a", workspace="eu-brand"),)))
    assert _target(router, "a", b"us-brand").workspace == "us-brand"


def test_prefix_only_override_without_any_workspace_is_no_route() -> None:
    """A prefix-only override on an unlisted topic without catch-all still has nowhere to go."""
    router = Router(_settings(US, routes=(RouteOverride(topic="z", attribute_prefix="x_"),)))
    result = router.route("z", None, TRACK)
    assert isinstance(result, Rejection)
    assert result.reason == "no_route"


@pytest.mark.parametrize(
    ("routes", "topic", "header", "expected"),
    [
        ((), "a", None, "g_"),  # global
        ((), "b", None, "eu_"),  # workspace's
        ((RouteOverride(topic="b", attribute_prefix="o_"),), "b", None, "o_"),  # override's (prefix only)
        ((RouteOverride(topic="a", workspace="eu-brand"),), "a", None, "eu_"),  # override without prefix
        ((RouteOverride(topic="a", workspace="eu-brand", attribute_prefix="o_"),), "a", None, "o_"),
        # the override's prefix is meant for its workspace; the header sent the record elsewhere
        ((RouteOverride(topic="a", workspace="eu-brand", attribute_prefix="o_"),), "a", b"us-brand", "g_"),
        ((RouteOverride(topic="a", workspace="eu-brand", attribute_prefix="o_"),), "a", b"eu-brand", "o_"),
        # a prefix-only override applies wherever the header sends the record
        ((RouteOverride(topic="a", attribute_prefix="o_"),), "a", b"eu-brand", "o_"),
    ],
)
def test_attribute_prefix(routes: tuple[RouteOverride, ...], topic: str, header: bytes | None, expected: str) -> None:
    """Prefix: the matched override's, else the workspace's, else the global mapping's."""
    router = Router(_settings(US, EU, routes=routes, prefix="g_"))
    mapping = _target(router, topic, header).mapping
    assert mapping.attribute_prefix == expected
    assert mapping.device_add_events == MappingSettings().device_add_events  # only the prefix differs


@pytest.mark.parametrize(
    ("topic", "message", "expected"),
    [
        ("tx", {"type": "track", "event": "Transactional Email Requested"}, True),
        ("tx", {"type": "track", "event": "Order Completed"}, False),
        ("tx", {"type": "identify", "event": "Transactional Email Requested"}, False),
        ("a", {"type": "track", "event": "Transactional Email Requested"}, False),
    ],
)
def test_transactional_flag(topic: str, message: Message, expected: bool) -> None:
    """Transactional only for track events with the configured name on the transactional topic."""
    router = Router(_settings(US, ALL, tx_topic="tx"))
    assert _target(router, topic, message=message).transactional is expected


def test_transactional_flag_with_override_and_header() -> None:
    """The transactional flag does not depend on how the workspace was chosen."""
    message: Message = {"type": "track", "event": "Transactional Email Requested"}
    router = Router(
        _settings(
            US, EU, routes=(RouteOverride(topic="tx", workspace="eu-brand", attribute_prefix="o_"),), tx_topic="tx"
        )
    )
    target = _target(router, "tx", message=message)
    assert target == Target("eu-brand", MappingSettings(attribute_prefix="o_"), True, target.mapper)
    assert _target(router, "tx", b"us-brand", message).transactional is True


def test_repeated_routes_return_the_same_precomputed_target() -> None:
    """The hot path hands out precomputed Targets instead of building new ones."""
    router = Router(_settings(US, EU, ALL))
    assert router.route("c", None, TRACK) is router.route("c", None, IDENTIFY)
    assert router.route("a", b"eu-brand", TRACK) is router.route("b", None, TRACK)
    assert router.workspaces == ("us-brand", "eu-brand", "catch-all")


def _identify_body(target: Target) -> bytes:
    mapped = target.mapper.map(
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}}, MessageContext("t", 0, 0, 0, 0)
    )
    assert isinstance(mapped, tuple)
    operation: Operation = mapped[0]
    return operation.body


def test_each_target_maps_with_its_own_prefix() -> None:
    """The Target's mapper applies the prefix routing chose: the workspace's, an override's, or the global one."""
    router = Router(
        _settings(US, EU, routes=(RouteOverride(topic="c", workspace="us-brand", attribute_prefix="o_"),), prefix="g_")
    )
    assert b'"g_plan":"pro"' in _identify_body(_target(router, "a"))
    assert b'"eu_plan":"pro"' in _identify_body(_target(router, "b"))
    assert b'"o_plan":"pro"' in _identify_body(_target(router, "c"))


def test_targets_with_the_same_settings_share_one_mapper() -> None:
    """One Mapper per distinct mapping settings, built by the Router (no per-message lookup or cache)."""
    router = Router(_settings(US, ALL))
    plain, catch_all = _target(router, "a"), _target(router, "zzz")
    assert plain.workspace != catch_all.workspace
    assert plain.mapper is catch_all.mapper
    assert plain.mapper is not _target(Router(_settings(US, ALL)), "a").mapper


@pytest.mark.parametrize("topic", ["a", "b", "c"])
@pytest.mark.parametrize("message", [TRACK, IDENTIFY])
def test_fixed_target_is_what_route_answers_without_a_header(topic: str, message: Message) -> None:
    """Without overrides, a topic's fixed Target (the sink's per-topic shortcut) is route()'s answer
    for every message of it that carries no workspace header."""
    router = Router(_settings(US, EU, ALL, tx_topic="tx"))
    assert router.fixed(topic) == _target(router, topic, None, message)


def test_no_fixed_target_where_the_message_decides() -> None:
    """Route overrides, the transactional topic and a topic no workspace takes are routed per message."""
    with_route = Router(_settings(US, ALL, routes=(RouteOverride(event="Order Completed", workspace="us-brand"),)))
    assert with_route.fixed("c") is None
    assert Router(_settings(US, ALL, tx_topic="tx")).fixed("tx") is None
    assert Router(_settings(US)).fixed("c") is None
