"""Signed, expiring feedback tokens.

A token is `<payload>.<signature>`, both url-safe base64 without padding. The
payload is compact JSON `{ns, dep, rel, coh, rid, uh, exp}`, plus `trc` (the
answer's trace and span id) when the answer was traced; the signature is
HMAC-SHA256 over the encoded payload. Several keys may be configured for
rotation: the first signs, every key verifies. The user id never appears in a
token, only `uh`, a truncated SHA-256 of it (pseudonymous, not anonymous: an
attacker who can enumerate user ids can recompute it).

Time is always passed in, so the module is pure and testable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TTL_SECONDS = 24 * 3600
MIN_KEY_BYTES = 16
MAX_TOKEN_CHARS = 2048
KEY_ENV = "LLM_ROLLOUT_FEEDBACK_KEY"


class TokenError(ValueError):
    """A token that cannot be trusted; `reason` is a short label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenClaims:
    ns: str
    dep: str
    rel: str
    coh: str
    rid: str
    uh: str
    exp: int
    trc: str = ""  # trace id + span id of the answer's span, hex; "" when not traced


def hash_user(user_id: str | None) -> str:
    """Pseudonymous id of a user: first 16 hex chars of SHA-256 ("" when anonymous)."""
    if not user_id:
        return ""
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs with the first key, verifies with any key."""

    def __init__(self, keys: list[bytes], ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        if ttl_seconds <= 0:
            raise ValueError("token ttl must be positive")
        self.ttl_seconds = ttl_seconds
        self._keys: list[bytes] = []
        self.set_keys(keys)

    def set_keys(self, keys: list[bytes]) -> None:
        """Replace the keys (rotation): the first signs, every one verifies."""
        if not keys:
            raise ValueError("at least one feedback token key is required")
        for key in keys:
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"feedback token keys must be at least {MIN_KEY_BYTES} bytes")
        self._keys = list(keys)

    def sign(self, claims: TokenClaims) -> str:
        c = claims
        data = {
            "ns": c.ns,
            "dep": c.dep,
            "rel": c.rel,
            "coh": c.coh,
            "rid": c.rid,
            "uh": c.uh,
            "exp": c.exp,
        }
        if c.trc:
            data["trc"] = c.trc
        payload = _b64e(json.dumps(data, separators=(",", ":")).encode())
        sig = hmac.new(self._keys[0], payload.encode("ascii"), hashlib.sha256).digest()
        return f"{payload}.{_b64e(sig)}"

    def issue(
        self,
        *,
        ns: str,
        dep: str,
        rel: str,
        coh: str,
        rid: str,
        user_id: str | None,
        now: float,
        trc: str = "",
    ) -> str:
        exp = int(now) + self.ttl_seconds
        return self.sign(TokenClaims(ns, dep, rel, coh, rid, hash_user(user_id), exp, trc))

    def verify(self, token: str, *, now: float) -> TokenClaims:
        """The claims of a genuine, unexpired token; raises TokenError otherwise."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise TokenError("malformed", "malformed token")
        payload, sig_text = token.split(".")
        try:
            sig = _b64d(sig_text)
        except (binascii.Error, ValueError) as exc:
            raise TokenError("malformed", "malformed token") from exc
        raw = payload.encode("ascii", "replace")
        if not any(
            hmac.compare_digest(hmac.new(key, raw, hashlib.sha256).digest(), sig)
            for key in self._keys
        ):
            raise TokenError("bad_signature", "token signature does not verify")
        try:
            data = json.loads(_b64d(payload))
            claims = TokenClaims(**data)
        except (ValueError, TypeError) as exc:  # signed by us, so should never happen
            raise TokenError("malformed", "malformed token payload") from exc
        if not isinstance(claims.exp, int) or claims.exp <= now:
            raise TokenError("expired", "token expired")
        return claims


def load_keys(key_file: str | None = None, env: dict[str, str] | None = None) -> list[bytes]:
    """Keys from a file (one per line, first signs; e.g. a mounted Secret) or the env var.

    Lines are used as raw bytes (blank lines and `#` comments skipped). The env
    var holds one key or several separated by whitespace.
    """
    if key_file:
        lines = Path(key_file).read_bytes().splitlines()
        keys = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith(b"#")]
        if not keys:
            raise ValueError(f"no key in {key_file}")
        return keys
    value = (os.environ if env is None else env).get(KEY_ENV, "")
    return [k.encode() for k in value.split()]
