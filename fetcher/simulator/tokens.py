"""JSON Web Tokens, done by hand with `cryptography`: the simulator's access tokens, the federated
(workload identity) tokens it hands out, and the client assertions azure-identity signs with a certificate.

Pure apart from the process-wide signing key; every check raises `TokenRejected` carrying the reason a real
service would give.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GRAPH_ROLE = "SecurityEvents.Read.All"
GRAPH_SCOPES = ("SecurityEvents.Read.All", "SecurityEvents.ReadWrite.All")  # either one reads secureScores
# Directory role template ids (`wids`) that may read Secure Score: Security Reader, Security Administrator,
# Global Reader, Global Administrator.
SECURITY_ROLE_IDS = (
    "5d6b6bb7-de71-4623-b4af-96380a352509",
    "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "62e90394-69f5-4237-9190-012177145e10",
)
FEDERATION_ISSUER = "https://oidc.simulator.invalid/securescore-fetcher"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenRejected(Exception):
    """A token or assertion failed a check; `reason` is the message the service would give."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


@dataclass(frozen=True)
class SigningKey:
    """The simulator's own RSA key: it signs access tokens and federated tokens."""

    private_key: rsa.RSAPrivateKey
    kid: str


@dataclass(frozen=True)
class RegisteredCertificate:
    """A client certificate registered on the simulated app: its public key and both thumbprints."""

    public_key: rsa.RSAPublicKey
    sha1_thumbprint: str  # base64url without padding, as in an `x5t` header
    sha256_thumbprint: str  # as in an `x5t#S256` header


@dataclass(frozen=True)
class Jwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class AccessClaims:
    """What a Graph request learns from a verified access token."""

    tenant_id: str
    client_id: str
    roles: tuple[str, ...]
    expires: int
    scopes: tuple[str, ...] = ()  # a delegated token's `scp`, split
    user: str | None = None  # a delegated token's user (its `upn`); None for an app-only token
    role_ids: tuple[str, ...] = ()  # a delegated token's `wids`

    @property
    def may_read_secure_score(self) -> bool:
        """The user holds a directory role that reads Secure Score (delegated tokens only)."""
        return any(role in SECURITY_ROLE_IDS for role in self.role_ids)


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    # azure-identity keeps the `=` padding in its assertion segments; other JWT libraries drop it.
    stripped = text.rstrip("=")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


@functools.cache
def signing_key() -> SigningKey:
    """The process-wide simulator key (made once: RSA key generation is slow)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(key, kid=_public_fingerprint(key.public_key()))


def _public_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    numbers = public_key.public_numbers()
    digest = hashlib.sha256(numbers.n.to_bytes(256, "big")).digest()
    return b64url_encode(digest[:20])


def registered_certificate(certificate_pem: bytes) -> RegisteredCertificate:
    """Register a client certificate from its PEM (a private key in the same PEM is ignored)."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("client certificates must carry an RSA key, as azure-identity requires")
    return RegisteredCertificate(
        public_key=public_key,
        sha1_thumbprint=b64url_encode(certificate.fingerprint(hashes.SHA1())),
        sha256_thumbprint=b64url_encode(certificate.fingerprint(hashes.SHA256())),
    )


def encode_rs256(claims: Mapping[str, Any], key: SigningKey) -> str:
    header = {"typ": "JWT", "alg": "RS256", "kid": key.kid, "x5t": key.kid}
    signing_input = f"{b64url_encode(orjson.dumps(header))}.{b64url_encode(orjson.dumps(dict(claims)))}"
    signature = key.private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url_encode(signature)}"


def decode(token: str) -> Jwt:
    """Split and parse a compact JWS without checking anything."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("JWT is not well formed, there are no dots (.).")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
        claims = orjson.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, orjson.JSONDecodeError) as error:
        raise TokenRejected("JWT is not well formed: a segment is not base64url JSON.") from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRejected("JWT is not well formed: header and payload must be JSON objects.")
    return Jwt(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def _verify_signature(jwt: Jwt, public_key: rsa.RSAPublicKey, algorithm: str) -> None:
    if algorithm == "RS256":
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    elif algorithm == "PS256":
        # RFC 7518: PS256 uses a salt as long as the hash, which is what azure-identity signs with.
        scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    else:
        raise TokenRejected(f"The signing algorithm '{algorithm}' is not supported.")
    try:
        public_key.verify(jwt.signature, jwt.signing_input, scheme, hashes.SHA256())
    except InvalidSignature as error:
        raise TokenRejected("Signature validation failed.") from error


def _check_lifetime(claims: Mapping[str, Any], now: int) -> None:
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise TokenRejected("The token has no expiry ('exp').")
    if exp <= now:
        raise TokenRejected("Lifetime validation failed, the token is expired.", expired=True)
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now:
        raise TokenRejected("Lifetime validation failed, the token is not yet valid.")


def issue_access_token(
    key: SigningKey,
    *,
    audience: str,
    tenant_id: str,
    client_id: str,
    roles: tuple[str, ...],
    certificate_auth: bool,
    now: int,
    lifetime: int,
) -> str:
    """An app-only access token shaped like Entra ID's v1 tokens for Microsoft Graph."""
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "app_displayname": "securescore-fetcher",
        "appid": client_id,
        "appidacr": "2" if certificate_auth else "1",
        "idp": f"https://sts.windows.net/{tenant_id}/",
        "idtyp": "app",
        "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{client_id}")),
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{client_id}")),
        "tid": tenant_id,
        "uti": b64url_encode(uuid.uuid4().bytes),
        "ver": "1.0",
    }
    if roles:
        # Entra ID leaves `roles` out entirely when no application permission was consented.
        claims["roles"] = list(roles)
    return encode_rs256(claims, key)


def verify_access_token(token: str, key: SigningKey, *, audiences: frozenset[str], now: int) -> AccessClaims:
    """Check signature, audience and lifetime of a simulator access token."""
    jwt = decode(token)
    if jwt.header.get("kid") != key.kid:
        raise TokenRejected("Signing key not found (kid does not match).")
    _verify_signature(jwt, key.private_key.public_key(), str(jwt.header.get("alg")))
    if jwt.claims.get("aud") not in audiences:
        raise TokenRejected("Invalid audience.")
    _check_lifetime(jwt.claims, now)
    tenant_id, client_id = jwt.claims.get("tid"), jwt.claims.get("appid")
    if not isinstance(tenant_id, str) or not isinstance(client_id, str):
        raise TokenRejected("The token carries no tenant or application.")
    roles = jwt.claims.get("roles", [])
    user = jwt.claims.get("upn") if jwt.claims.get("idtyp") == "user" else None
    return AccessClaims(
        tenant_id,
        client_id,
        tuple(str(role) for role in roles),
        int(jwt.claims["exp"]),
        scopes=tuple(str(jwt.claims.get("scp", "")).split()),
        user=str(user) if user is not None else None,
        role_ids=tuple(str(role) for role in jwt.claims.get("wids", [])),
    )


@dataclass(frozen=True)
class UserGrant:
    """Whom a delegated token is for: the user, the public client signed in to, and what was granted."""

    tenant_id: str
    client_id: str
    username: str  # the user principal name
    audience: str
    scopes: tuple[str, ...]  # the delegated permissions (`scp`), without the resource prefix
    role_ids: tuple[str, ...]  # the user's directory roles (`wids`)


def user_object_id(tenant_id: str, username: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{tenant_id.lower()}/{username.lower()}"))


def issue_user_token(key: SigningKey, grant: UserGrant, *, now: int, lifetime: int) -> str:
    """A delegated access token shaped like Entra ID's v1 tokens for Microsoft Graph (`idtyp` user, `scp`)."""
    oid = user_object_id(grant.tenant_id, grant.username)
    claims: dict[str, Any] = {
        "aud": grant.audience,
        "iss": f"https://sts.windows.net/{grant.tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "app_displayname": "public client",
        "appid": grant.client_id,
        "appidacr": "0",
        "idtyp": "user",
        "name": grant.username.split("@")[0],
        "oid": oid,
        "scp": " ".join(grant.scopes),
        "sub": b64url_encode(hashlib.sha256(f"{oid}/{grant.client_id}".encode()).digest()[:32]),
        "tid": grant.tenant_id,
        "unique_name": grant.username,
        "upn": grant.username,
        "uti": b64url_encode(uuid.uuid4().bytes),
        "ver": "1.0",
        "wids": list(grant.role_ids),
    }
    return encode_rs256(claims, key)


def issue_id_token(key: SigningKey, grant: UserGrant, *, issuer: str, now: int, lifetime: int) -> str:
    """The OpenID Connect id token MSAL reads the account from (`preferred_username`, `oid`, `tid`)."""
    oid = user_object_id(grant.tenant_id, grant.username)
    claims = {
        "aud": grant.client_id,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "name": grant.username.split("@")[0],
        "oid": oid,
        "preferred_username": grant.username,
        "sub": oid,
        "tid": grant.tenant_id,
        "ver": "2.0",
    }
    return encode_rs256(claims, key)


def client_info(grant: UserGrant) -> str:
    """Entra ID's `client_info`: base64url JSON of the user's object id and home tenant."""
    uid = user_object_id(grant.tenant_id, grant.username)
    return b64url_encode(orjson.dumps({"uid": uid, "utid": grant.tenant_id}))


def issue_federated_token(key: SigningKey, *, client_id: str, tenant_id: str, now: int, lifetime: int) -> str:
    """A token as a Kubernetes service account would present it to Entra ID for workload identity."""
    claims = {
        "aud": [FEDERATION_AUDIENCE],
        "iss": FEDERATION_ISSUER,
        "sub": federation_subject(client_id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "kubernetes.io": {"namespace": "securescore", "serviceaccount": {"name": "fetcher"}},
        "azure.workload.identity/tenant-id": tenant_id,
    }
    return encode_rs256(claims, key)


def federation_subject(client_id: str) -> str:
    """The subject the simulated app's federated credential trusts (one per app registration)."""
    return f"system:serviceaccount:securescore:fetcher:{client_id}"


def assertion_issuer(assertion: str) -> str | None:
    """The `iss` of an assertion, unverified: it tells a certificate assertion from a federated one."""
    issuer = decode(assertion).claims.get("iss")
    return issuer if isinstance(issuer, str) else None


def verify_certificate_assertion(
    assertion: str, certificate: RegisteredCertificate, *, client_id: str, token_url: str, now: int
) -> None:
    """Check a client assertion as Entra ID does: thumbprint, signature, issuer/subject, audience, lifetime."""
    jwt = decode(assertion)
    algorithm = str(jwt.header.get("alg"))
    _check_thumbprint(jwt.header, certificate, algorithm)
    _verify_signature(jwt, certificate.public_key, algorithm)
    if jwt.claims.get("iss") != client_id or jwt.claims.get("sub") != client_id:
        raise TokenRejected("The client assertion's 'iss' and 'sub' must both be the client id.")
    if jwt.claims.get("aud") != token_url:
        raise TokenRejected(f"The audience claim must be '{token_url}'.")
    _check_lifetime(jwt.claims, now)


def _check_thumbprint(header: Mapping[str, Any], certificate: RegisteredCertificate, algorithm: str) -> None:
    if algorithm == "PS256":
        presented, expected = header.get("x5t#S256"), certificate.sha256_thumbprint
    else:
        presented, expected = header.get("x5t"), certificate.sha1_thumbprint
    if not isinstance(presented, str) or presented.rstrip("=") != expected:
        raise TokenRejected(
            "The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: '{presented}']"
        )


def verify_federated_assertion(assertion: str, key: SigningKey, *, client_id: str, now: int) -> None:
    """Check a workload identity token against the simulator's issuer key and the app's federated credential."""
    jwt = decode(assertion)
    _verify_signature(jwt, key.private_key.public_key(), str(jwt.header.get("alg")))
    audience = jwt.claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if FEDERATION_AUDIENCE not in audiences:
        raise TokenRejected(f"The audience of the federated token must be '{FEDERATION_AUDIENCE}'.")
    if jwt.claims.get("sub") != federation_subject(client_id):
        raise TokenRejected("No matching federated identity record found for presented assertion subject.")
    _check_lifetime(jwt.claims, now)
