"""The fake registry's rules, without HTTP (pure).

Rules (those of Confluent's Schema Registry that its clients rely on):
- registering a schema under a subject answers its id; ids start at 1 and are global: the same schema text
  (and type and references) registered again, under any subject, gets the same id, and a subject lists
  each schema once, as versions 1, 2, …;
- ``schemaType`` is AVRO when absent; AVRO, JSON and PROTOBUF are accepted, anything else is error 42201
  (invalid schema), as is an Avro or JSON schema that is not JSON;
- an unknown id or subject is error 40403 or 40401 (HTTP 404); the answer for an id omits ``schemaType``
  for Avro, as Confluent's does;
- with ``unavailable`` set, every request is answered 503 (error 50003), a registry outage on demand
  (counted in ``refused``);
- ``replica_lag[id] = n``: the next n lookups of a registered id answer 40403, as a replica that has not
  caught up with a new schema does.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SCHEMA_TYPES = frozenset({"AVRO", "JSON", "PROTOBUF"})


class RegistryError(Exception):
    """An error answer: HTTP status, Confluent ``error_code`` and message."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class StoredSchema:
    """One registered schema."""

    schema: str
    schema_type: str
    references: tuple[tuple[str, str, int], ...] = ()  # (name, subject, version)

    def answer(self) -> dict[str, Any]:
        """The ``GET /schemas/ids/{id}`` body."""
        body: dict[str, Any] = {"schema": self.schema}
        if self.schema_type != "AVRO":
            body["schemaType"] = self.schema_type
        if self.references:
            body["references"] = [{"name": n, "subject": s, "version": v} for n, s, v in self.references]
        return body


@dataclass
class RegistryState:
    """Schemas by id, subjects' versions, and counters of lookups (for tests)."""

    unavailable: bool = False
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    lookups: Counter[int] = field(default_factory=Counter)  # GET /schemas/ids/{id} received, per id
    refused: int = 0  # requests answered 503 while unavailable
    # Per id, lookups still answered 40403 although it is registered: a replica that has not caught up yet.
    replica_lag: Counter[int] = field(default_factory=Counter)

    def register(self, subject: str, body: Any) -> int:
        """Register ``body`` (a POST /subjects/{subject}/versions request) under ``subject``: its id."""
        stored = _parse(body)
        schema_id = next((i for i, s in self.schemas.items() if s == stored), None)
        if schema_id is None:
            schema_id = len(self.schemas) + 1
            self.schemas[schema_id] = stored
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def by_id(self, schema_id: int) -> StoredSchema:
        """The schema of an id, or error 40403."""
        self.lookups[schema_id] += 1
        stored = self.schemas.get(schema_id)
        if self.replica_lag[schema_id] > 0:
            self.replica_lag[schema_id] -= 1
            stored = None
        if stored is None:
            raise RegistryError(404, 40403, f"Schema {schema_id} not found")
        return stored

    def version(self, subject: str, version: str) -> dict[str, Any]:
        """``GET /subjects/{subject}/versions/{version}`` (a number or ``latest``)."""
        versions = self.subjects.get(subject)
        if not versions:
            raise RegistryError(404, 40401, f"Subject '{subject}' not found.")
        if version == "latest":
            number = len(versions)
        elif version.isdigit() and 1 <= int(version) <= len(versions):
            number = int(version)
        else:
            raise RegistryError(404, 40402, f"Version {version} not found.")
        schema_id = versions[number - 1]
        return {"subject": subject, "version": number, "id": schema_id, **self.schemas[schema_id].answer()}


def _parse(body: Any) -> StoredSchema:
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise RegistryError(422, 42201, "Invalid schema: 'schema' must be a string")
    schema_type = body.get("schemaType") or "AVRO"
    if schema_type not in SCHEMA_TYPES:
        raise RegistryError(422, 42201, f"Invalid schema type {schema_type!r}")
    if schema_type in ("AVRO", "JSON"):
        try:
            json.loads(body["schema"])
        except ValueError:
            raise RegistryError(422, 42201, f"Invalid schema: {schema_type} schema is not JSON") from None
    try:
        references = tuple((str(r["name"]), str(r["subject"]), int(r["version"])) for r in body.get("references") or ())
    except (TypeError, KeyError, ValueError):
        raise RegistryError(422, 42201, "Invalid schema: references need name, subject and version") from None
    return StoredSchema(body["schema"], schema_type, references)
