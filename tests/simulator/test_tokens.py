"""JWTs done by hand: access tokens round-trip, and every tampering is caught."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from fetcher.simulator import tokens
from fetcher.simulator.tokens import TokenRejected

AUDIENCE = "https://127.0.0.1:8443"
TENANT = "4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f"


def _token(*, now: int | None = None, lifetime: int = 3600, roles: tuple[str, ...] = (tokens.GRAPH_ROLE,)) -> str:
    return tokens.issue_access_token(
        tokens.signing_key(), audience=AUDIENCE, tenant_id=TENANT, client_id="app", roles=roles,
        certificate_auth=False, now=now if now is not None else int(time.time()), lifetime=lifetime,
    )  # fmt: skip


def _verify(token: str) -> tokens.AccessClaims:
    return tokens.verify_access_token(
        token, tokens.signing_key(), audiences=frozenset({AUDIENCE}), now=int(time.time())
    )


def test_access_token_round_trips() -> None:
    claims = _verify(_token())
    assert (claims.tenant_id, claims.client_id, claims.roles) == (TENANT, "app", (tokens.GRAPH_ROLE,))


def test_token_without_consent_has_no_roles() -> None:
    assert _verify(_token(roles=())).roles == ()


def test_segments_signed_with_padding_are_read() -> None:
    """azure-identity keeps `=` padding in the segments it signs; the signature covers them as sent."""
    key = tokens.signing_key()
    header = {"typ": "JWT", "alg": "RS256", "kid": key.kid}
    claims = {"aud": AUDIENCE, "tid": TENANT, "appid": "app", "exp": int(time.time()) + 60}
    signing_input = b".".join(base64.urlsafe_b64encode(json.dumps(part).encode()) for part in (header, claims))
    signature = key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input.decode()}.{base64.urlsafe_b64encode(signature).decode()}"
    assert "=" in token
    assert _verify(token).tenant_id == TENANT


def test_changed_payload_fails_the_signature() -> None:
    head, _, signature = _token().split(".")
    forged = base64.urlsafe_b64encode(b'{"tid":"someone-else","aud":"https://127.0.0.1:8443"}').decode().rstrip("=")
    with pytest.raises(TokenRejected, match="Signature"):
        _verify(f"{head}.{forged}.{signature}")


def test_foreign_audience_is_rejected() -> None:
    token = _token()
    with pytest.raises(TokenRejected, match="audience"):
        tokens.verify_access_token(
            token, tokens.signing_key(), audiences=frozenset({"https://x"}), now=int(time.time())
        )


def test_expired_token_is_rejected_as_expired() -> None:
    with pytest.raises(TokenRejected) as caught:
        _verify(_token(now=int(time.time()) - 7200))
    assert caught.value.expired


@pytest.mark.parametrize("text", ["", "abc", "a.b", "!!.??.##"])
def test_garbage_is_not_a_token(text: str) -> None:
    with pytest.raises(TokenRejected):
        _verify(text)
