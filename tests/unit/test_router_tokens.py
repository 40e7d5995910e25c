"""Feedback tokens: sign, verify, tamper, expire, rotate (pure; time passed in)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_rollout.router.tokens import (
    KEY_ENV,
    TokenClaims,
    TokenError,
    TokenSigner,
    hash_user,
    load_keys,
)

K1, K2 = b"first-key-0123456789abcdef", b"second-key-0123456789abcdef"
NOW = 1_700_000_000


def issue(signer: TokenSigner, now: float = NOW, user: str | None = "alice") -> str:
    return signer.issue(
        ns="ns", dep="app", rel="r1", coh="beta", rid="req-1", user_id=user, now=now
    )


def test_round_trip() -> None:
    signer = TokenSigner([K1], ttl_seconds=60)
    claims = signer.verify(issue(signer), now=NOW + 59)
    assert claims == TokenClaims("ns", "app", "r1", "beta", "req-1", hash_user("alice"), NOW + 60)


def test_raw_user_id_never_in_token() -> None:
    token = issue(TokenSigner([K1]), user="alice@example.com")
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert b"alice" not in payload and b"example" not in payload
    assert json.loads(payload)["uh"] == hash_user("alice@example.com")
    assert len(hash_user("x")) == 16 and hash_user(None) == hash_user("") == ""


def test_expiry() -> None:
    signer = TokenSigner([K1], ttl_seconds=60)
    token = issue(signer)
    with pytest.raises(TokenError) as err:
        signer.verify(token, now=NOW + 60)
    assert err.value.reason == "expired"


def test_wrong_key_and_tampering() -> None:
    token = issue(TokenSigner([K1]))
    with pytest.raises(TokenError) as err:
        TokenSigner([K2]).verify(token, now=NOW)
    assert err.value.reason == "bad_signature"
    payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["rel"] = "r2"  # re-encode a changed payload, keep the old signature
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (
        f"{forged}.{sig}",
        f"{payload}.{sig[::-1]}",
        f"{payload}x.{sig}",
        f"{payload}.",
        payload,
        "",
        "a.b.c",
        "é.é",
        f"{payload}.!!!",
    ):
        with pytest.raises(TokenError):
            TokenSigner([K1]).verify(bad, now=NOW)


def test_rotation_first_signs_all_verify() -> None:
    old = issue(TokenSigner([K1]))
    rotated = TokenSigner([K2, K1])
    assert rotated.verify(old, now=NOW).rel == "r1"
    new = issue(rotated)
    assert TokenSigner([K2]).verify(new, now=NOW).rel == "r1"
    with pytest.raises(TokenError):
        TokenSigner([K1]).verify(new, now=NOW)
    rotated.set_keys([K2])
    with pytest.raises(TokenError):
        rotated.verify(old, now=NOW)


def test_key_requirements() -> None:
    with pytest.raises(ValueError):
        TokenSigner([])
    with pytest.raises(ValueError):
        TokenSigner([b"short"])
    with pytest.raises(ValueError):
        TokenSigner([K1], ttl_seconds=0)


def test_load_keys(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_bytes(b"# rotation: first signs\n" + K2 + b"\n\n" + K1 + b"\n")
    assert load_keys(str(f)) == [K2, K1]
    assert load_keys(None, env={KEY_ENV: f"{K1.decode()} {K2.decode()}"}) == [K1, K2]
    assert load_keys(None, env={}) == []
    f.write_text("# nothing\n")
    with pytest.raises(ValueError):
        load_keys(str(f))


@given(st.text(max_size=80), st.text(max_size=40), st.integers(0, 10**6))
def test_any_claims_round_trip(rid: str, user: str, ttl: int) -> None:
    signer = TokenSigner([K1], ttl_seconds=ttl + 1)
    token = signer.issue(ns="n", dep="d", rel="r", coh="c", rid=rid, user_id=user, now=NOW)
    assert signer.verify(token, now=NOW + ttl).rid == rid


@given(st.text(max_size=200))
def test_garbage_never_verifies(garbage: str) -> None:
    with pytest.raises(TokenError):
        TokenSigner([K1]).verify(garbage, now=NOW)


def test_trace_reference_rides_along_and_old_tokens_still_verify() -> None:
    signer = TokenSigner([K1], ttl_seconds=60)
    ref = "4bf92f3577b34da6a3ce929d0e0e4736" + "00f067aa0ba902b7"
    token = signer.issue(
        ns="ns", dep="app", rel="r1", coh="beta", rid="req-1", user_id=None, now=NOW, trc=ref
    )
    assert signer.verify(token, now=NOW).trc == ref
    # Tokens issued without tracing (or before it existed) carry no `trc` at all.
    plain = issue(signer)
    payload = json.loads(base64.urlsafe_b64decode(plain.split(".")[0] + "=="))
    assert "trc" not in payload
    assert signer.verify(plain, now=NOW).trc == ""
