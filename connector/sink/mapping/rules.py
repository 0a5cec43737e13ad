"""What the operation helpers (devices, v2 operations) need of the mapping settings, as one value (pure).

The ``Mapper`` builds a ``Rules`` from its settings once and passes it to ``plan_device`` and
``plan_operation``, so those helpers never reach back into the ``Mapper``: the mapping modules import
each other one way only (no cycle, not even for types).
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.sink.mapping.attributes import Attributes, Names


@dataclass(frozen=True, slots=True)
class Rules:
    """Attribute limits and names for stored attributes, the oversize policy, and the event allow/deny lists."""

    attributes: Attributes
    plain_names: Names  # names without the custom-attribute prefix (device and v2-operation attributes)
    truncate: bool  # oversize_policy == "truncate"
    allow_events: frozenset[str] | None  # None: every event name is allowed
    deny_events: frozenset[str]

    def event_allowed(self, name: str) -> bool:
        """Whether the allow/deny lists let a track event of this name through."""
        return (self.allow_events is None or name in self.allow_events) and name not in self.deny_events
