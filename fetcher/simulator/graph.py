"""How Microsoft Graph words its answers, sans I/O: response headers and the error JSON for each status."""

from __future__ import annotations

import datetime
import email.utils

import orjson

CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
# Graph's usual error code per status, used when a scripted fault gives no body of its own.
ERROR_CODES = {
    400: ("BadRequest", "Invalid request."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Forbidden", "Insufficient privileges to complete the operation."),
    404: ("ResourceNotFound", "Resource not found."),
    405: ("MethodNotAllowed", "The HTTP method is not allowed for the resource."),
    409: ("Conflict", "Conflict."),
    429: ("TooManyRequests", "Too many requests. Please try again later."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceNotAvailable", "The service is temporarily unavailable. Please try again later."),
    504: ("GatewayTimeout", "The gateway timed out."),
}
MISSING_ROLE_MESSAGE = (
    "Missing application roles. API required roles: SecurityEvents.Read.All, SecurityEvents.ReadWrite.All. "
    "Application roles: ."
)
# The Security API's refusal of a signed-in user without a role that reads Secure Score.
USER_ROLE_MESSAGE = (
    "Auth token does not contain valid permissions or user does not have valid roles. Please see document at "
    "https://learn.microsoft.com/graph/api/resources/security-error-codes"
)
_DIAGNOSTIC = (
    '{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SECURESCORE-SIM"}}'
)


def missing_scope_message(scopes: tuple[str, ...]) -> str:
    """Graph's refusal of a delegated token without the permission the API needs."""
    return (
        "Missing scope permissions on the request. API requires one of 'SecurityEvents.Read.All, "
        f"SecurityEvents.ReadWrite.All'. Scopes on the request '{', '.join(scopes)}'"
    )


def headers(request_id: str, client_request_id: str) -> dict[str, str]:
    """The headers every Graph answer carries."""
    return {
        "Content-Type": CONTENT_TYPE,
        "request-id": request_id,
        "client-request-id": client_request_id,
        "x-ms-ags-diagnostic": _DIAGNOSTIC,
        "Strict-Transport-Security": "max-age=31536000",
        "Cache-Control": "no-cache",
        "Vary": "Accept-Encoding",
    }


def www_authenticate(authority: str) -> str:
    return (
        f'Bearer realm="", authorization_uri="{authority}/common/oauth2/authorize", '
        'client_id="00000003-0000-0000-c000-000000000000"'
    )


def error_body(code: str, message: str, *, request_id: str, client_request_id: str, now: datetime.datetime) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
    )


def not_found_message(resource: str) -> str:
    return f"Resource '{resource}' does not exist or one of its queried reference-property objects are not present."


def default_error(status: int) -> tuple[str, str]:
    """(code, message) Graph would send with `status`."""
    return ERROR_CODES.get(status, ("UnknownError", f"The service answered {status}."))


def retry_after(seconds: float, *, as_date: bool, now: datetime.datetime) -> str:
    """A Retry-After value: whole seconds (rounded up, as Graph sends them) or an HTTP-date."""
    if as_date:
        return email.utils.format_datetime(now + datetime.timedelta(seconds=seconds), usegmt=True)
    whole = int(seconds) if seconds == int(seconds) else int(seconds) + 1
    return str(whole)
