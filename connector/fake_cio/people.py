"""The fake's people, as the App API shows them: folded from the operations it accepted. Pure.

``GET /v1/customers/{id}/attributes?id_type=…`` (App API docs, "Get a person's attributes") answers
``{"customer": {"id", "identifiers", "attributes", "timestamps", "unsubscribed", "devices"}}`` with every
attribute value a string. The fake has no store of its own: a person is every accepted ``person``
operation addressed by the same identifier, in arrival order — ``identify`` creates the person and merges attributes,
``add_device``/``delete_device`` keep the devices, ``delete`` forgets what came before. Operations older
than the fake's ``max_recorded`` window are forgotten too (a test fake, not a database).

Look-ups: ``id`` and ``cio_id`` match the identifier; ``email`` and ``phone`` match the identifier or the
attribute of that name (Customer.io keeps email as an attribute of people identified by id). A person
without a ``cio_id`` identifier gets a stable made-up one (``hash``), as Customer.io assigns its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

ID_TYPES: Final = frozenset({"id", "email", "phone", "cio_id"})

_CREATING: Final = frozenset({"identify", "add_device"})  # events alone make no profile here (unconfirmed)
Key = tuple[str, str]  # (identifier kind, value) an operation addressed the person by


def _key(op: Mapping[str, Any]) -> Key | None:
    identifiers = op.get("identifiers")
    if op.get("type") != "person" or not isinstance(identifiers, dict) or len(identifiers) != 1:
        return None
    ((kind, value),) = identifiers.items()
    return (kind, str(value)) if kind in ID_TYPES else None


def _text(value: Any) -> str:
    """An attribute value as the App API shows it: a string (JSON text for anything else)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def made_up_cio_id(key: Key) -> str:
    """The cio_id the fake gives a person that was never addressed by one (stable per identifier)."""
    return hashlib.sha256(f"{key[0]}:{key[1]}".encode()).hexdigest()[:12]


class _Person:
    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}
        self.timestamps: dict[str, int] = {}
        self.devices: dict[str, dict[str, Any]] = {}

    def apply(self, op: Mapping[str, Any], received_at: float) -> None:
        action = op.get("action")
        if action == "identify" and isinstance(op.get("attributes"), dict):
            for name, value in op["attributes"].items():
                self.attributes[name] = value
                self.timestamps[name] = int(received_at)
        elif action == "add_device" and isinstance(op.get("device"), dict):
            device = op["device"]
            self.devices[str(device.get("token"))] = {
                "id": str(device.get("token")),
                "platform": device.get("platform"),
                "last_used": device.get("last_used", int(received_at)),
                "attributes": {k: _text(v) for k, v in (device.get("attributes") or {}).items()},
            }
        elif action == "delete_device" and isinstance(op.get("device"), dict):
            self.devices.pop(str(op["device"].get("token")), None)


def _fold(operations: Iterable[Mapping[str, Any]]) -> dict[Key, _Person]:
    people: dict[Key, _Person] = {}
    for entry in operations:
        op = entry["operation"]
        key = _key(op) if isinstance(op, dict) else None
        if key is None:
            continue
        if op.get("action") == "delete":
            people.pop(key, None)
            continue
        if op.get("action") in _CREATING:
            people.setdefault(key, _Person())
        if key in people:
            people[key].apply(op, float(entry.get("received_at", 0)))
    return people


def _matches(key: Key, person: _Person, id_type: str, value: str) -> bool:
    if key == (id_type, value):
        return True
    if id_type == "cio_id":
        return made_up_cio_id(key) == value
    if id_type in ("email", "phone"):
        found = person.attributes.get(id_type)
        return isinstance(found, str) and found.lower() == value.lower()
    return False


def find_person(operations: Iterable[Mapping[str, Any]], id_type: str, value: str) -> dict[str, Any] | None:
    """The App API's ``customer`` object of the person ``id_type``/``value`` names; None when unknown.

    ``operations`` are ``FakeState.operations_for(workspace)`` entries. A person addressed by ``id`` wins
    over one addressed by email when both match an email look-up (the id profile is the one people see).
    """
    candidates = [(k, p) for k, p in _fold(operations).items() if _matches(k, p, id_type, value)]
    if not candidates:
        return None
    key, person = min(candidates, key=lambda kp: kp[0][0] != "id")
    identifiers: dict[str, str | None] = {
        "id": key[1] if key[0] == "id" else None,
        "email": key[1]
        if key[0] == "email"
        else _text(person.attributes["email"])
        if "email" in person.attributes
        else None,
        "cio_id": key[1] if key[0] == "cio_id" else made_up_cio_id(key),
    }
    return {
        "id": identifiers["id"],
        "identifiers": identifiers,
        "attributes": {name: _text(v) for name, v in person.attributes.items()},
        "timestamps": dict(person.timestamps),
        "unsubscribed": person.attributes.get("unsubscribed") in (True, "true"),
        "devices": list(person.devices.values()),
    }
