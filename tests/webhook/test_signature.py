"""Reporting-webhook signature verification (pure)."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import Secret
from connector.errors import SignatureError
from connector.webhook.signature import REASONS, hmac_sha256, sign, verify

KEY = "new-signing-key"
OLD_KEY = "old-signing-key"
BODY = b'{"event_id":"01E4C4CT6YDC7Y5M7FE1GWWPQJ","object_type":"email","metric":"sent"}'
TS = "1735689845"
NOW = 1735689845.0
GOOD = sign(KEY, TS, BODY)


DEFAULTS: dict[str, object] = {"keys": (Secret(KEY),), "ts": TS, "sig": GOOD, "body": BODY, "now": NOW, "max_age": None}


def check(**overrides: object) -> str | None:
    """The SignatureError reason, or None when the signature is accepted."""
    a: dict[str, Any] = {**DEFAULTS, **overrides}
    try:
        verify(a["keys"], a["ts"], a["sig"], a["body"], now=a["now"], max_age=a["max_age"])
    except SignatureError as exc:
        return exc.reason
    return None


def test_sign_matches_the_documented_construction() -> None:
    """sign() is hex HMAC-SHA256 of "v0:" + timestamp + ":" + raw body, keyed with the UTF-8 key."""
    expected = hmac.new(KEY.encode(), b"v0:" + TS.encode() + b":" + BODY, hashlib.sha256).hexdigest()
    assert expected == GOOD
    assert len(GOOD) == 64
    assert GOOD.lower() == GOOD


@pytest.mark.parametrize(
    ("case", "kwargs", "reason"),
    [
        ("valid", {}, None),
        ("upper-case hex is accepted (hex case carries no meaning)", {"sig": GOOD.upper()}, None),
        ("surrounding whitespace is ignored", {"sig": f"  {GOOD} "}, None),
        ("wrong key", {"keys": (Secret("someone-else"),)}, "mismatch"),
        ("tampered body", {"body": BODY.replace(b"sent", b"sEnt")}, "mismatch"),
        ("body with a trailing newline", {"body": BODY + b"\n"}, "mismatch"),
        ("tampered timestamp", {"ts": "1735689846"}, "mismatch"),
        ("missing timestamp", {"ts": None}, "missing_headers"),
        ("missing signature", {"sig": None}, "missing_headers"),
        ("empty signature", {"sig": ""}, "missing_headers"),
        ("both missing", {"ts": None, "sig": None}, "missing_headers"),
        ("non-numeric timestamp", {"ts": "yesterday"}, "bad_timestamp"),
        ("fractional timestamp", {"ts": "1735689845.5"}, "bad_timestamp"),
        ("negative timestamp", {"ts": "-1"}, "bad_timestamp"),
        ("absurdly long timestamp", {"ts": "9" * 40}, "bad_timestamp"),
        ("non-ASCII digits", {"ts": "١٧٣٥٦٨٩٨٤٥"}, "bad_timestamp"),
        ("signature too short", {"sig": GOOD[:-2]}, "mismatch"),
        ("signature not hex", {"sig": "z" * 64}, "mismatch"),
        ("signature with a scheme prefix", {"sig": f"v0={GOOD}"}, "mismatch"),
        ("non-ASCII signature", {"sig": "é" * 64}, "mismatch"),
        ("64 characters with whitespace among the hex digits", {"sig": f"{GOOD[:30]} \t{GOOD[32:]}"}, "mismatch"),
        ("hex digits split by spaces", {"sig": " ".join(GOOD[i : i + 2] for i in range(0, 64, 2))}, "mismatch"),
        ("no keys configured", {"keys": ()}, "mismatch"),
        ("old key during rotation", {"keys": (Secret(OLD_KEY), Secret(KEY))}, None),
        ("new key during rotation", {"keys": (Secret(KEY), Secret(OLD_KEY))}, None),
        ("plain string keys", {"keys": (KEY,)}, None),
        ("old timestamp, no max age (default)", {"now": NOW + 7 * 86400}, None),
        ("within max age", {"now": NOW + 299, "max_age": 300}, None),
        ("stale when max age set", {"now": NOW + 301, "max_age": 300}, "stale"),
        ("too far in the future when max age set", {"now": NOW - 301, "max_age": 300}, "stale"),
        ("forgery reported as mismatch, not stale", {"sig": "0" * 64, "now": NOW + 999, "max_age": 300}, "mismatch"),
    ],
)
def test_signature_table(case: str, kwargs: dict[str, object], reason: str | None) -> None:
    """Each header/body/key combination is accepted or rejected with a reason from the closed set."""
    got = check(**kwargs)
    assert got == reason, case
    assert got is None or got in REASONS


def test_each_rotated_key_signs_on_its_own() -> None:
    """With two keys configured, bodies signed by either one verify; by a third one they do not."""
    keys = (Secret(OLD_KEY), Secret(KEY))
    for key in (OLD_KEY, KEY):
        assert check(keys=keys, sig=sign(key, TS, BODY)) is None
    assert check(keys=keys, sig=sign("third", TS, BODY)) == "mismatch"


def test_key_never_appears_in_the_error() -> None:
    """A SignatureError carries only the reason, never a key or the expected signature."""
    with pytest.raises(SignatureError) as info:
        verify((Secret(KEY),), TS, "0" * 64, BODY, now=NOW, max_age=None)
    assert KEY not in str(info.value)
    assert GOOD not in str(info.value)


_SIXTY_FOUR_HEX_DIGITS = re.compile(r"[0-9a-fA-F]{64}")
_SIGNATURE_TEXT = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=68),
    st.text(alphabet="0123456789abcdefABCDEF \t\n\u00e9\u0661xZ=", min_size=60, max_size=68),
    st.lists(st.sampled_from([GOOD[:32], GOOD[32:], " ", "\t", "0", "\u0661", "é"]), max_size=4).map("".join),
    st.text(max_size=70),
)


@given(signature=_SIGNATURE_TEXT)
def test_a_signature_header_is_well_formed_iff_it_is_64_hex_digits(signature: str) -> None:
    """Whatever the header holds, it passes the shape check exactly when, stripped, it is 64 hex digits."""
    reason = check(sig=signature)
    if _SIXTY_FOUR_HEX_DIGITS.fullmatch(signature.strip()):
        assert reason in (None, "mismatch")  # well-formed: decided by the MAC
        assert (reason is None) == (signature.strip().lower() == GOOD)
    else:
        assert reason == ("missing_headers" if not signature else "mismatch")


@given(key=st.binary(max_size=200), message=st.binary(max_size=2000))
def test_hmac_sha256_is_the_standard_hmac(key: bytes, message: bytes) -> None:
    """The pre-keyed HMAC equals hashlib's HMAC-SHA256 for every key length (over 64 bytes: hashed first)."""
    assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")
    assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")  # the key's states reused


def test_many_keys_each_verify_with_their_own_signature() -> None:
    """More keys than the pre-keyed table holds: every one still verifies its own body, and only its own."""
    keys = [f"key-{i}" for i in range(150)]
    for key in keys:
        assert check(keys=(key,), sig=sign(key, TS, BODY)) is None
        assert check(keys=(key,), sig=sign(key + "x", TS, BODY)) == "mismatch"
