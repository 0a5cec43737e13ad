"""Deterministic ULIDs for event dedup ids (Customer.io deduplicates events by
their ULID ``id``): same seed and time → same id (pure).

A ULID is 128 bits written as 26 Crockford base-32 characters: a 48-bit millisecond timestamp (so ids
sort by time) followed by 80 bits that are random in the spec and here the first 10 bytes of the
BLAKE2b(-512) digest of a seed: the upstream message id, or the record's topic/partition/offset/index.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any, Final

from connector.sink.mapping.model import MessageContext
from connector.sink.mapping.validation import Invalid, json_type

CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CHARS: Final = frozenset(CROCKFORD)
# Every pair of base-32 digits, indexed by 10 bits: 13 lookups write a ULID. (base64.b32encode is pure
# Python on 3.11 and five times slower.)
_PAIRS: Final = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
_TIME_MASK: Final = (1 << 48) - 1


def ulid(ms: int, seed: bytes) -> str:
    """The ULID with time part ``ms`` (masked to 48 bits) and random part derived from ``seed``."""
    digest = blake2b(seed).digest()
    # The 80 random bits as two 40-bit halves: machine-sized ints, not an 80-bit bignum (faster in
    # CPython, and plain C arithmetic when compiled with mypyc).
    high = int.from_bytes(digest[:5], "big")
    low = int.from_bytes(digest[5:10], "big")
    t = ms & _TIME_MASK
    p = _PAIRS
    # 48 time bits are 10 digits (two leading zero bits); 80 random bits are exactly 16 digits.
    return (
        f"{p[t >> 40]}{p[(t >> 30) & 1023]}{p[(t >> 20) & 1023]}{p[(t >> 10) & 1023]}{p[t & 1023]}"
        f"{p[high >> 30]}{p[(high >> 20) & 1023]}{p[(high >> 10) & 1023]}{p[high & 1023]}"
        f"{p[low >> 30]}{p[(low >> 20) & 1023]}{p[(low >> 10) & 1023]}{p[low & 1023]}"
    )


def is_ulid(text: str) -> bool:
    """Whether ``text`` is a canonical (upper-case) ULID."""
    return len(text) == 26 and text[0] <= "7" and _CHARS.issuperset(text)


def record_ulid(ctx: MessageContext, ms: int | None) -> str:
    """The dedup ULID of a message without an upstream id: derived from where the record sits."""
    seed = f"record:{ctx.topic}/{ctx.partition}/{ctx.offset}/{ctx.index}"
    return ulid(ms if ms is not None and ms > 0 else 0, seed.encode("utf-8", "surrogatepass"))


def event_ulid(message: dict[str, Any], ctx: MessageContext, ms: int | None) -> str:
    """A message's dedup id: its ``messageId`` if that is a ULID, else derived from it or from the record."""
    message_id = message.get("messageId")
    if type(message_id) is str and message_id:
        if len(message_id) == 26 and is_ulid(message_id.upper()):
            return message_id.upper()
        seed = message_id
    elif message_id is None or message_id == "":
        return record_ulid(ctx, ms)
    elif isinstance(message_id, int | float) and not isinstance(message_id, bool):
        # str() of an int past 4,300 digits raises; JSON never carries one past 64 bits, other decoders may.
        if isinstance(message_id, int) and not -(2**63) <= message_id < 2**64:
            raise Invalid("invalid_field", "messageId: a number out of the 64-bit range")
        seed = str(message_id)
    elif isinstance(message_id, str):
        seed = str(message_id)  # a str subclass
    else:
        raise Invalid("invalid_field", f"messageId: must be a string (got {json_type(message_id)})")
    try:
        data = seed.encode()
    except UnicodeEncodeError:  # lone surrogates: still a stable seed
        data = seed.encode("utf-8", "surrogatepass")
    return ulid(ms or 0, b"message:" + data)
