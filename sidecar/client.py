"""A Python client for the sidecar, for other services: ``SidecarClient`` (async) and ``SyncSidecarClient``.

It retries with exponential backoff and full jitter on 429 (honouring ``Retry-After``, in seconds
or as an HTTP-date; a wait longer than ``RetryPolicy.max_delay_s`` is raised at once), on
502/503/504 and on connection errors, never on other 4xx; errors are typed by the API's code
(``REVOKED_API_KEY`` is ``RevokedApiKeyError``, an ``AuthenticationError``).
It depends only on aiohttp and the standard library, so a service can vendor it.

Receivers of the sidecar's signed webhooks check them with ``verify_webhook`` (or
``verify_webhook_async``), from ``sidecar.client_webhooks``, which uses the pure signature
module ``sidecar.domain.signatures``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp

from sidecar.client_webhooks import SyncReplayGuard as SyncReplayGuard
from sidecar.client_webhooks import WebhookVerificationError as WebhookVerificationError
from sidecar.client_webhooks import verify_webhook as verify_webhook
from sidecar.client_webhooks import verify_webhook_async as verify_webhook_async

T = TypeVar("T")
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class SidecarClientError(Exception):
    """Base class: ``code`` and ``status`` come from the API's JSON error body."""

    def __init__(self, message: str, *, code: str = "CLIENT_ERROR", status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class InvalidRequestError(SidecarClientError):
    """400 ``INVALID_REQUEST``."""


class AuthenticationError(SidecarClientError):
    """401: ``UNAUTHENTICATED``, or one of the subclasses below."""


class InvalidApiKeyError(AuthenticationError):
    """401 ``INVALID_API_KEY``: no such key, or a malformed one."""


class ExpiredApiKeyError(AuthenticationError):
    """401 ``EXPIRED_API_KEY``."""


class RevokedApiKeyError(AuthenticationError):
    """401 ``REVOKED_API_KEY``."""


class InvalidTokenError(AuthenticationError):
    """401 ``INVALID_TOKEN``."""


class TokenExpiredError(AuthenticationError):
    """401 ``TOKEN_EXPIRED``."""


class InvalidSignatureError(AuthenticationError):
    """401 ``INVALID_SIGNATURE``."""


class PermissionDeniedError(SidecarClientError):
    """403 ``INSUFFICIENT_PERMISSIONS``; the message names the missing scope."""


class NotFoundError(SidecarClientError):
    """404 ``NOT_FOUND``."""


class ConflictError(SidecarClientError):
    """409."""


class RateLimitedError(SidecarClientError):
    """429 ``RATE_LIMITED`` after the retries ran out; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, code: str, status: int, retry_after: float | None) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class ServerError(SidecarClientError):
    """5xx after the retries ran out."""


class ServiceUnavailableError(ServerError):
    """503 ``SERVICE_UNAVAILABLE`` after the retries ran out (the store or cache is away)."""


class SidecarConnectionError(SidecarClientError):
    """The sidecar could not be reached after the retries ran out."""


#: The API's error codes (``sidecar.errors``), each with its own exception.
_BY_CODE: dict[str, type[SidecarClientError]] = {
    "INVALID_REQUEST": InvalidRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "INVALID_API_KEY": InvalidApiKeyError,
    "EXPIRED_API_KEY": ExpiredApiKeyError,
    "REVOKED_API_KEY": RevokedApiKeyError,
    "INVALID_TOKEN": InvalidTokenError,
    "TOKEN_EXPIRED": TokenExpiredError,
    "INVALID_SIGNATURE": InvalidSignatureError,
    "INSUFFICIENT_PERMISSIONS": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "CONFLICT": ConflictError,
    "SERVICE_UNAVAILABLE": ServiceUnavailableError,
}
_BY_STATUS: dict[int, type[SidecarClientError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
}


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: float  # UNIX seconds


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` in seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class SidecarClient:
    """Async client. Use as ``async with SidecarClient(url, key) as client: ...``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        token_refresh_margin_s: float = 60.0,
        session: aiohttp.ClientSession | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._retry = retry or RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._margin = token_refresh_margin_s
        self._session = session
        self._owns_session = session is None
        self._sleep = sleep
        self._clock = clock
        self._tokens: dict[tuple[Any, ...], AccessToken] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """One API call with retries; returns the decoded JSON body (``None`` for an empty body)."""
        headers = {"Authorization": f"Bearer {self._api_key}"}
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                async with self._http().request(
                    method, self._base + path, json=json, params=query, headers=headers
                ) as resp:
                    body = await resp.read()
                    if resp.status < 400:
                        return await resp.json() if body else None
                    error = self._error(resp.status, body, resp.headers)
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                error = SidecarConnectionError(f"cannot reach the sidecar: {exc.__class__.__name__}")
            if attempt >= self._retry.max_retries or not _retryable(error):
                raise error
            delay = self._retry.backoff(attempt)
            if isinstance(error, RateLimitedError) and error.retry_after is not None:
                if error.retry_after > self._retry.max_delay_s:
                    raise error  # told to wait longer than we ever would: the caller decides
                delay = max(delay, error.retry_after)
            await self._sleep(delay)
            attempt += 1

    def _error(self, status: int, body: bytes, headers: Mapping[str, str]) -> SidecarClientError:
        code, message = "HTTP_ERROR", f"HTTP {status}"
        try:
            data = jsonlib.loads(body)
            code, message = str(data.get("error", code)), str(data.get("message", message))
        except (ValueError, AttributeError):
            pass
        if status == 429:
            retry_after = _retry_after(headers, self._clock())
            return RateLimitedError(message, code=code, status=status, retry_after=retry_after)
        by_code = _BY_CODE.get(code)
        if by_code is not None:
            return by_code(message, code=code, status=status)
        if status >= 500:
            return ServerError(message, code=code, status=status)
        return _BY_STATUS.get(status, SidecarClientError)(message, code=code, status=status)

    # --- the API ---------------------------------------------------------------------------

    async def validate_key(self) -> bool:
        """``True`` if the client's key is valid, ``False`` if the sidecar refuses it (401)."""
        try:
            await self.request("GET", "/v1/auth/validate")
        except AuthenticationError:
            return False
        return True

    async def permissions(self) -> dict[str, Any]:
        return dict(await self.request("GET", "/v1/auth/permissions"))

    async def token(
        self, *, role: str | None = None, permissions: list[str] | None = None, ttl: int | None = None
    ) -> str:
        """A session JWT for the key, reused until ``token_refresh_margin_s`` before it expires."""
        cache_key = (role, tuple(permissions) if permissions is not None else None, ttl)
        cached = self._tokens.get(cache_key)
        if cached is not None and cached.expires_at - self._margin > self._clock():
            return cached.token
        body = {k: v for k, v in {"role": role, "permissions": permissions, "ttl": ttl}.items() if v is not None}
        data = await self.request("POST", "/v1/auth/token", json=body or None)
        token = AccessToken(token=data["access_token"], expires_at=self._clock() + float(data["expires_in"]))
        self._tokens[cache_key] = token
        return token.token

    async def create_key(self, **fields: Any) -> dict[str, Any]:
        """Create a key (fields as ``POST /v1/api_keys``); the result's ``key`` is shown only here."""
        return dict(await self.request("POST", "/v1/api_keys", json=fields))

    async def list_keys(
        self, *, org_id: str | None = None, type: str | None = None, limit: int = 10, starting_after: str | None = None
    ) -> dict[str, Any]:
        params = {"org_id": org_id, "type": type, "limit": limit, "starting_after": starting_after}
        return dict(await self.request("GET", "/v1/api_keys", params=params))

    async def get_key(self, key_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/v1/api_keys/{key_id}"))

    async def revoke_key(self, key_id: str) -> dict[str, Any]:
        return dict(await self.request("DELETE", f"/v1/api_keys/{key_id}"))

    async def roll_key(self, key_id: str, *, expires_in: int = 0) -> dict[str, Any]:
        return dict(await self.request("POST", f"/v1/api_keys/{key_id}/roll", json={"expires_in": expires_in}))


def _retryable(error: SidecarClientError) -> bool:
    return isinstance(error, SidecarConnectionError) or error.status in RETRY_STATUSES


class SyncSidecarClient:
    """The same API, blocking: for scripts and synchronous services. Not thread-safe."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = SidecarClient(base_url, api_key, **options)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._client.close())
            self._loop.close()

    def validate_key(self) -> bool:
        return self._run(self._client.validate_key())

    def permissions(self) -> dict[str, Any]:
        return self._run(self._client.permissions())

    def token(self, **options: Any) -> str:
        return self._run(self._client.token(**options))

    def create_key(self, **fields: Any) -> dict[str, Any]:
        return self._run(self._client.create_key(**fields))

    def list_keys(self, **options: Any) -> dict[str, Any]:
        return self._run(self._client.list_keys(**options))

    def get_key(self, key_id: str) -> dict[str, Any]:
        return self._run(self._client.get_key(key_id))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self._run(self._client.revoke_key(key_id))

    def roll_key(self, key_id: str, *, expires_in: int = 0) -> dict[str, Any]:
        return self._run(self._client.roll_key(key_id, expires_in=expires_in))
