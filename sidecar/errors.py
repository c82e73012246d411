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
