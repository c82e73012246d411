"""The sidecar's one exception tree.

Every error carries a public ``code`` (CONTRACT.md's upper-case codes), an HTTP ``status`` and a
``reason``: a stable snake_case string for logs and metric labels. No error ever carries a
presented key, token or secret.
"""

from __future__ import annotations


class SidecarError(Exception):
    """Base class; never raised directly."""

    code = "SERVER_ERROR"
    status = 500
    default_reason = "internal_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


class InvalidRequest(SidecarError):
    """The request body, query or parameters failed validation."""

    code = "INVALID_REQUEST"
    status = 400
    default_reason = "invalid_request"


class Unauthorized(SidecarError):
    """Credentials missing, unknown, malformed, revoked or expired; ``reason`` says which."""

    code = "UNAUTHENTICATED"
    status = 401
    default_reason = "unauthenticated"


class InvalidApiKey(Unauthorized):
    """The presented API key is malformed, fails its checksum, or is unknown."""

    code = "INVALID_API_KEY"
    default_reason = "api_key_invalid"


class ExpiredApiKey(Unauthorized):
    """The API key is past its ``expires_at``."""

    code = "EXPIRED_API_KEY"
    default_reason = "api_key_expired"


class RevokedApiKey(Unauthorized):
    """The API key was revoked."""

    code = "REVOKED_API_KEY"
    default_reason = "api_key_revoked"


class InvalidToken(Unauthorized):
    """The presented JWT is malformed, badly signed, or fails a claim check."""

    code = "INVALID_TOKEN"
    default_reason = "token_invalid"


class TokenExpired(Unauthorized):
    """The presented JWT is past its ``exp``."""

    code = "TOKEN_EXPIRED"
    default_reason = "token_expired"


class BrowserCredentialRefused(Unauthorized):
    """A credential refused because of the browser ``Origin`` it came with; ``key_type`` for metrics."""

    def __init__(self, message: str, *, reason: str | None = None, key_type: str = "none") -> None:
        super().__init__(message, reason=reason)
        self.key_type = key_type


class SecretKeyInBrowser(BrowserCredentialRefused):
    """A secret or restricted key arrived with a browser ``Origin``: it is in a web page, so it has leaked."""

    code = "SECRET_KEY_IN_BROWSER"
    default_reason = "secret_key_from_browser"


class OriginNotAllowed(BrowserCredentialRefused):
    """A publishable key was used from an origin its ``allowed_origins`` do not name."""

    code = "ORIGIN_NOT_ALLOWED"
    default_reason = "origin_not_allowed"


class CorsRefused(SidecarError):
    """A CORS preflight from an origin, method or header we do not allow (no credential was sent)."""

    code = "ORIGIN_NOT_ALLOWED"
    status = 403
    default_reason = "cors_refused"


class Forbidden(SidecarError):
    """Authenticated, but the credential lacks a scope; the message names it."""

    code = "INSUFFICIENT_PERMISSIONS"
    status = 403
    default_reason = "insufficient_permissions"


class NotFound(SidecarError):
    """No such object (or not visible to the caller)."""

    code = "NOT_FOUND"
    status = 404
    default_reason = "not_found"


class Conflict(SidecarError):
    """The request conflicts with the current state (e.g. revoking a revoked key)."""

    code = "CONFLICT"
    status = 409
    default_reason = "conflict"


class RateLimited(SidecarError):
    """Over the rate limit; ``retry_after`` is in seconds."""

    code = "RATE_LIMITED"
    status = 429
    default_reason = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        reason: str | None = None,
        limit: int | None = None,
        remaining: int = 0,
        reset: int | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after
        #: for the ``RateLimit-Limit``/``-Remaining``/``-Reset`` headers, when known
        self.limit = limit
        self.remaining = remaining
        self.reset = reset


class Unavailable(SidecarError):
    """A dependency (store, cache) cannot answer, so the service cannot decide."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    default_reason = "dependency_unavailable"


class Overloaded(Unavailable):
    """More requests in flight than this process takes at once; ``retry_after`` is in seconds."""

    default_reason = "overloaded"

    def __init__(self, message: str, *, retry_after: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class RequestTimeout(SidecarError):
    """The client did not send its whole request body in time."""

    code = "REQUEST_TIMEOUT"
    status = 408
    default_reason = "body_timeout"


class ConfigError(SidecarError):
    """Configuration (settings or a YAML file) is invalid; raised before the process listens."""

    code = "CONFIG_ERROR"
    default_reason = "config_invalid"


class SignatureInvalid(Unauthorized):
    """A webhook signature is missing, malformed, stale, replayed or matches no secret.

    ``reason`` is one of ``missing_header``, ``malformed_header``, ``timestamp_outside_tolerance``,
    ``no_matching_signature`` or ``replayed``.
    """

    code = "INVALID_SIGNATURE"
    default_reason = "no_matching_signature"


class OAuthError(SidecarError):
    """An OAuth 2.0 protocol error, rendered as RFC 6749 §5.2 ``{"error", "error_description"}``.

    ``code`` is the RFC's error code verbatim. On the authorization endpoint, an error that
    carries ``redirect_uri`` goes back to the client (§4.1.2.1) with ``state``; one without it
    is shown to the user, because the redirect target itself could not be trusted.
    """

    code = "invalid_request"
    status = 400
    default_reason = "oauth_invalid_request"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        redirect_uri: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.redirect_uri = redirect_uri
        self.state = state


class OAuthInvalidRequest(OAuthError):
    """A parameter is missing, repeated, malformed or unsupported (``invalid_request``)."""


class InvalidClient(OAuthError):
    """Client authentication failed: unknown client, wrong secret, or no authentication."""

    code = "invalid_client"
    status = 401
    default_reason = "oauth_invalid_client"


class InvalidGrant(OAuthError):
    """The code or refresh token is invalid, expired, revoked, reused or not the client's."""

    code = "invalid_grant"
    default_reason = "oauth_invalid_grant"


class UnauthorizedClient(OAuthError):
    """This client may not use this grant type or response type."""

    code = "unauthorized_client"
    default_reason = "oauth_unauthorized_client"


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"
    default_reason = "oauth_unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    code = "unsupported_response_type"
    default_reason = "oauth_unsupported_response_type"


class InvalidScope(OAuthError):
    """A requested scope is unknown or wider than the client (or the merchant) may have."""

    code = "invalid_scope"
    default_reason = "oauth_invalid_scope"


class AccessDenied(OAuthError):
    """The resource owner denied the request."""

    code = "access_denied"
    status = 403
    default_reason = "oauth_access_denied"


class InvalidTarget(OAuthError):
    """RFC 8693 §2.2.2: the requested ``audience`` or ``resource`` is not one we issue tokens for."""

    code = "invalid_target"
    default_reason = "oauth_invalid_target"


class UnsupportedTokenType(OAuthError):
    """RFC 7009 §2.2.1: the server cannot revoke this type of token."""

    code = "unsupported_token_type"
    default_reason = "oauth_unsupported_token_type"
