"""Deterministic ULIDs: the canonical encoding, the time prefix, the seed-derived random part (pure)."""

from __future__ import annotations

import hashlib

import pytest

from connector.sink.mapping.model import MessageContext
from connector.sink.mapping.ulid import is_ulid, record_ulid, ulid


def reference(ms: int, seed: bytes) -> str:
    """The spec, bit by bit: 48-bit time then the first 80 bits of BLAKE2b-512(seed), 26 Crockford digits."""
    value = (ms << 80) | int.from_bytes(hashlib.blake2b(seed).digest()[:10], "big")
    return "".join("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(value >> (125 - 5 * i)) & 31] for i in range(26))


@pytest.mark.parametrize("ms", [0, 1, 1_469_918_176_385, 1_735_689_600_123, 2**48 - 1])
@pytest.mark.parametrize("seed", [b"", b"message:abc", "record:é/0/1/2".encode()])
def test_matches_the_reference_encoding(ms: int, seed: bytes) -> None:
    """The table-driven encoder equals the bit-by-bit definition."""
    assert ulid(ms, seed) == reference(ms, seed)
    assert is_ulid(ulid(ms, seed))


def test_time_prefix_matches_the_spec_example() -> None:
    """The ULID spec's example time 1469918176385 encodes as 01ARYZ6S41."""
    assert ulid(1_469_918_176_385, b"x").startswith("01ARYZ6S41")


def test_same_seed_same_id_and_ids_sort_by_time() -> None:
    """Deterministic for a seed; later milliseconds sort after earlier ones whatever the seed."""
    assert ulid(5, b"a") == ulid(5, b"a")
    assert ulid(5, b"a") != ulid(5, b"b")
    assert ulid(5, b"zzz") < ulid(6, b"aaa")


def test_record_ulid_is_derived_from_the_record_position() -> None:
    """Messages without an upstream id get an id from topic/partition/offset/index; no time → 0."""
    ctx = MessageContext("t", 1, 2, 3, 0)
    assert record_ulid(ctx, 10) == reference(10, b"record:t/1/2/3")
    assert record_ulid(ctx, None) == reference(0, b"record:t/1/2/3")
    assert record_ulid(ctx, -1) == reference(0, b"record:t/1/2/3")


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("01ARYZ6S41TSV4RRFFQ69G5FAV", True),
        ("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", True),
        ("8ZZZZZZZZZZZZZZZZZZZZZZZZZ", False),  # beyond 128 bits
        ("01ARYZ6S41TSV4RRFFQ69G5FA", False),
        ("01ARYZ6S41TSV4RRFFQ69G5FAI", False),  # I is not Crockford
        ("01aryz6s41tsv4rrffq69g5fav", False),  # canonical form is upper case
    ],
)
def test_is_ulid(text: str, valid: bool) -> None:
    """Only canonical 26-character Crockford ULIDs count."""
    assert is_ulid(text) is valid
