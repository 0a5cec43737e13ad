"""Which workspace a message goes to, and with which mapping settings (pure).

Rules, in order (``docs/workspaces.md`` has the user-facing version):

1. The workspace header (``SinkSettings.workspace_header``, off when empty), only where the record's
   topic allows it: a name in the topic's ``header_workspaces`` wins. Any other non-empty value is a
   ``workspace_not_allowed`` rejection (producers must not pick another team's workspace); an empty
   header counts as absent, and with the header off no header is ever read.
2. Route overrides (``routes:``), first match wins. An override matches on its ``topic`` and/or its
   ``event`` (the name of a ``track`` message; other message types never match an ``event``).
   An override with a ``workspace`` sends the message there (unless the header already chose one).
3. The workspace whose ``topics`` lists the record's topic.
4. The one workspace with empty ``topics``, if exactly one has none; it takes every other topic.
5. Otherwise: ``no_route``.

The attribute prefix is the matched override's, else the chosen workspace's, else the global mapping's.
An override's prefix applies only if the message ends up in the workspace the override names (or the
override names none). ``transactional`` is true for ``track`` messages named
``TransactionalSettings.event_name`` on ``TransactionalSettings.topic``.

``route`` runs once per message: everything is precomputed into dictionaries, and the answer for a
topic without header or override is cached. The Router builds one ``Mapper`` per distinct mapping
settings and hands it out in the ``Target``, so the sink maps with it directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from connector.config import MappingSettings, Settings
from connector.errors import ConfigError
from connector.sink.mapping.mapper import Mapper
from connector.sink.mapping.model import Message, Rejection

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # mypy is not installed at run time: the decorator only matters when mypyc compiles
    _Class = TypeVar("_Class")

    def mypyc_attr(*_: object, **__: object) -> Callable[[_Class], _Class]:  # type: ignore[misc]
        return lambda cls: cls


# The header value is the producer's: at most this much of it is quoted in a dead letter's message.
MAX_QUOTED_HEADER_BYTES = 64
_NOTHING_ALLOWED: dict[bytes, str] = {}


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes: a workspace name, the mapping settings to use (and the Mapper built from
    them), and whether it is a transactional send (App API) rather than a Track API operation."""

    workspace: str
    mapping: MappingSettings
    transactional: bool
    mapper: Mapper = field(compare=False, repr=False)  # derived from ``mapping``


@dataclass(frozen=True, slots=True)
class _Pair:
    """The two precomputed Targets of one (workspace, mapping): plain and transactional."""

    plain: Target
    transactional: Target

    @classmethod
    def of(cls, workspace: str, mapping: MappingSettings, mapper: Mapper) -> _Pair:
        return cls(Target(workspace, mapping, False, mapper), Target(workspace, mapping, True, mapper))

    def pick(self, transactional: bool) -> Target:
        return self.transactional if transactional else self.plain


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (setup.py), and tests subclass it
class Router:
    """Routes messages to workspaces by header, overrides and topics (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:  # noqa: C901 - precomputes every routing table once
        """Precompute every Target. Raises ConfigError if two workspaces list the same topic."""
        self._mappers: dict[MappingSettings, Mapper] = {}  # one per distinct settings (they are frozen)
        self._by_workspace: dict[str, _Pair] = {}
        self._topic_workspace: dict[str, str] = {}
        for i, ws in enumerate(settings.workspaces):
            mapping = (
                settings.mapping
                if ws.attribute_prefix is None
                else dataclasses.replace(settings.mapping, attribute_prefix=ws.attribute_prefix)
            )
            self._by_workspace[ws.name] = _Pair.of(ws.name, mapping, self._mapper(mapping))
            for topic in ws.topics:
                owner = self._topic_workspace.setdefault(topic, ws.name)
                if owner != ws.name:
                    raise ConfigError(f"workspaces[{i}].topics", f"topic {topic!r} already feeds workspace {owner!r}")
        catch_all = [ws.name for ws in settings.workspaces if not ws.topics]
        self._catch_all = catch_all[0] if len(catch_all) == 1 else None

        self._overrides = settings.routes
        # First-match lookup without a loop: for each key shape, the index of the first override with it.
        self._by_topic_event: dict[tuple[str, str], int] = {}
        self._by_topic: dict[str, int] = {}
        self._by_event: dict[str, int] = {}
        # Per override and workspace: the Target pair with the override's prefix (when it has one).
        self._override_pairs: dict[tuple[int, str], _Pair] = {}
        for i, route in enumerate(settings.routes):
            if route.topic is not None and route.event is not None:
                self._by_topic_event.setdefault((route.topic, route.event), i)
            elif route.topic is not None:
                self._by_topic.setdefault(route.topic, i)
            elif route.event is not None:
                self._by_event.setdefault(route.event, i)
            if route.attribute_prefix is not None:
                names = [route.workspace] if route.workspace is not None else list(self._by_workspace)
                for name in names:
                    mapping = dataclasses.replace(settings.mapping, attribute_prefix=route.attribute_prefix)
                    self._override_pairs[(i, name)] = _Pair.of(name, mapping, self._mapper(mapping))

        self._header = settings.sink.workspace_header
        # Per topic, the header values it may use → the workspace each names. A topic without an entry
        # may name none: the header is an opt-in per topic, never a default.
        self._header_allowed: dict[str, dict[bytes, str]] = {}
        if self._header:
            for topic_settings in settings.topics:
                allowed = self._header_allowed.setdefault(topic_settings.name, {})
                for name in topic_settings.header_workspaces:
                    if name not in self._by_workspace:
                        raise ConfigError(
                            f"topics.{topic_settings.name}.header_workspaces", f"no workspace named {name!r}"
                        )
                    allowed[name.encode()] = name
        self._tx_topic = settings.transactional.topic
        self._tx_event = settings.transactional.event_name
        self._topic_cache: dict[str, _Pair | Rejection] = {}

    def _mapper(self, mapping: MappingSettings) -> Mapper:
        mapper = self._mappers.get(mapping)
        if mapper is None:
            mapper = self._mappers[mapping] = Mapper(mapping)
        return mapper

    @property
    def workspaces(self) -> tuple[str, ...]:
        """Names of the configured workspaces, in declaration order."""
        return tuple(self._by_workspace)

    def route(self, topic: str, workspace_header: bytes | None, message: Message) -> Target | Rejection:
        """The Target of one message from ``topic``, or a Rejection (``no_route``, ``workspace_not_allowed``)
        saying why there is none. ``workspace_header`` is ignored while the header is off."""
        event: str | None = None
        if message.get("type") == "track":
            name = message.get("event")
            if isinstance(name, str):
                event = name
        transactional = topic == self._tx_topic and event is not None and event == self._tx_event

        header_ws: str | None = None
        if workspace_header and self._header:
            header_ws = self._header_allowed.get(topic, _NOTHING_ALLOWED).get(workspace_header)
            if header_ws is None:
                return self._not_allowed(topic, workspace_header)

        index = self._match_override(topic, event) if self._overrides else None
        if index is None:
            if header_ws is not None:
                return self._by_workspace[header_ws].pick(transactional)
            pair = self._topic_cache.get(topic)
            if pair is None:
                pair = self._topic_cache[topic] = self._by_topic_rule(topic)
            return pair if isinstance(pair, Rejection) else pair.pick(transactional)

        route = self._overrides[index]
        workspace = header_ws or route.workspace or self._topic_workspace.get(topic) or self._catch_all
        if workspace is None:
            return self._no_route(topic)
        # Present only where the override's prefix applies: its own workspace, or any if it names none.
        pair = self._override_pairs.get((index, workspace)) or self._by_workspace[workspace]
        return pair.pick(transactional)

    def fixed(self, topic: str) -> Target | None:
        """The Target of every message from ``topic`` without a workspace header, when it does not depend
        on the message: no route overrides, not the transactional topic, and a workspace takes the topic.
        None: ``route`` must decide per message."""
        if self._overrides or topic == self._tx_topic:
            return None
        pair = self._by_topic_rule(topic)
        return None if isinstance(pair, Rejection) else pair.plain

    def _match_override(self, topic: str, event: str | None) -> int | None:
        """Index of the first override matching ``topic``/``event``, or None."""
        best = self._by_topic.get(topic)
        if event is not None:
            for index in (self._by_topic_event.get((topic, event)), self._by_event.get(event)):
                if index is not None and (best is None or index < best):
                    best = index
        return best

    def _by_topic_rule(self, topic: str) -> _Pair | Rejection:
        workspace = self._topic_workspace.get(topic) or self._catch_all
        return self._no_route(topic) if workspace is None else self._by_workspace[workspace]

    def _no_route(self, topic: str) -> Rejection:
        header = f", or name one in the {self._header} header" if self._header_allowed.get(topic) else ""
        return Rejection(
            "no_route", f"no workspace takes topic {topic!r}: list it in a workspace's topics or add a route{header}"
        )

    def _not_allowed(self, topic: str, value: bytes) -> Rejection:
        # Same answer for an unknown name and a known one the topic may not use: the dead letter tells
        # producers nothing about which workspaces exist.
        shown = repr(value[:MAX_QUOTED_HEADER_BYTES].decode("utf-8", "replace"))
        if len(value) > MAX_QUOTED_HEADER_BYTES:
            shown += f"… ({len(value)} bytes)"
        return Rejection(
            "workspace_not_allowed",
            f"topic {topic!r} may not choose workspace {shown} by the {self._header} header "
            f"(not in topics.{topic}.header_workspaces)",
        )
