"""Configuration: the only module that reads environment variables and ``config/*.yaml`` files.

Built once at start-up (``load_settings``) and passed down; a bad value stops the process with a
message naming the variable, before it listens.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from sidecar.domain.origins import normalize_origins
from sidecar.domain.rbac import RoleModel
from sidecar.domain.tables import TableModel
from sidecar.errors import ConfigError
from sidecar.models import KeyType


class KeyCacheSettings(BaseModel):
    """The in-process cache of verified keys in front of the store."""

    model_config = ConfigDict(frozen=True)
    max_entries: int = Field(100_000, ge=0, description="bound on cached lookups (hits and misses)")
    ttl_s: float = Field(30.0, ge=0, description="how long a found key is trusted without the store")
    negative_ttl_s: float = Field(5.0, ge=0, description="how long a well-formed unknown key stays unknown")


#: Client headers Hasura drops before calling a GET webhook (hasura-contract.md §1.4), lower case.
HASURA_DROPPED_HEADERS = frozenset(
    {
        "content-length", "content-md5", "user-agent", "host", "origin", "referer", "accept", "accept-encoding",
        "accept-language", "accept-datetime", "cache-control", "connection", "dnt", "content-type",
    }
)  # fmt: skip
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # RFC 9110 token: header and cookie names


class HasuraWebhookSettings(BaseModel):
    """``/v1/hasura/webhook``: anonymous access, browser credentials, cache hints, operation checks."""

    model_config = ConfigDict(frozen=True)
    anonymous: bool = Field(True, description="answer requests without credentials with anonymous_role")
    anonymous_role: str = Field("anonymous", min_length=1, max_length=64)
    anonymous_org_id: str | None = Field(
        None, max_length=128, description="X-Hasura-Org-Id of keyless anonymous requests; None: no org"
    )
    credential_header: str | None = Field(None, description="a header carrying a bare API key or token")
    credential_cookie: str | None = Field(None, description="a cookie carrying an API key or token")
    max_cache_age_s: int = Field(60, ge=1, le=86_400, description="Cache-Control max-age bound (revocation bound)")
    operation_checks: bool = Field(True, description="refuse mutations/subscriptions a credential may not run")
    subscription_roles: tuple[str, ...] | None = Field(None, description="roles that may subscribe; None: all")
    operation_cache_entries: int = Field(1024, ge=0, le=1_000_000)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="POST mode body limit")

    @field_validator("anonymous_org_id", mode="before")
    @classmethod
    def _blank_org_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("credential_header")
    @classmethod
    def _header_reaches_us(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _TOKEN.fullmatch(value):
            raise ValueError("not a valid HTTP header name")
        if value.lower() in HASURA_DROPPED_HEADERS or value.lower() in ("authorization", "cookie"):
            raise ValueError(f"Hasura does not forward {value!r} to a GET webhook, or it is already read")
        return value

    @field_validator("credential_cookie")
    @classmethod
    def _cookie_name(cls, value: str | None) -> str | None:
        if value is not None and not _TOKEN.fullmatch(value):
            raise ValueError("not a valid cookie name")
        return value


class WebhookSettings(BaseModel):
    """Signed outgoing webhooks (``SIDECAR_WEBHOOK__*``)."""

    model_config = ConfigDict(frozen=True)
    tolerance_s: int = Field(
        300, ge=1, le=86_400, description="signature timestamp tolerance, both ways (sidecar webhooks verify)"
    )
    roll_overlap_s: int = Field(
        86_400, ge=0, le=7 * 86_400, description="default time both secrets sign after a roll_secret"
    )
    hasura_events_secret: SecretStr | None = Field(
        None, description="shared secret Hasura's event triggers send; POST /v1/hasura/events is off without it"
    )
    hasura_events_header: str = Field("X-Sidecar-Events-Secret", min_length=1, max_length=128)
    allow_private_urls: bool = Field(
        False,
        description="let endpoints point at loopback, private and link-local addresses (off: SSRF protection)",
    )
    deliver: bool = Field(True, description="run the delivery worker in this process")
    delivery_timeout_s: float = Field(10.0, gt=0, le=300, description="per delivery attempt")
    delivery_max_attempts: int = Field(8, ge=1, le=50)
    delivery_backoff_base_s: float = Field(5.0, gt=0, description="first retry after about this long")
    delivery_backoff_max_s: float = Field(3600.0, gt=0, description="retries never wait longer than this")
    delivery_poll_interval_s: float = Field(1.0, gt=0, le=60, description="how often the outbox is checked")
    delivery_batch_size: int = Field(20, ge=1, le=1000, description="deliveries attempted at once")


class MetricsSettings(BaseModel):
    """``GET /metrics``: Prometheus exposition of the app's own registry."""

    model_config = ConfigDict(frozen=True)
    enabled: bool = Field(True, description="serve /metrics and record request metrics")
    bearer_token: SecretStr | None = Field(
        None, description="when set, /metrics requires 'Authorization: Bearer <token>'"
    )


class RequestLogSettings(BaseModel):
    """The one JSON line per request (see README, "Logs")."""

    model_config = ConfigDict(frozen=True)
    mode: Literal["all", "errors", "off"] = Field("all", description="which requests get a log line")
    quiet_routes: tuple[str, ...] = Field(
        ("/healthz", "/readyz", "/metrics"),
        description="route templates logged only when they fail (status >= 500), e.g. probes",
    )
    sample_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="fraction of successful (< 400) requests logged; errors always are"
    )


class LimitSettings(BaseModel):
    """What one client may ask of the server (``SIDECAR_LIMITS__*``); see README, "Security"."""

    model_config = ConfigDict(frozen=True)
    max_line_bytes: int = Field(8190, ge=1024, le=65_536, description="longest request line (method, URL)")
    max_field_bytes: int = Field(8190, ge=1024, le=65_536, description="longest header field (name or value)")
    max_headers: int = Field(100, ge=16, le=1000, description="most header fields in one request")
    keepalive_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="idle connections close; also the time a client has to send its headers"
    )
    body_timeout_s: float = Field(30.0, gt=0, le=600, description="time a client has to send a request body")
    max_concurrent_requests: int = Field(512, ge=1, le=100_000, description="requests in flight; beyond: 503")
    retry_after_s: int = Field(1, ge=1, le=3600, description="Retry-After of the 503 beyond max_concurrent_requests")


class RedisSettings(BaseModel):
    """Redis, used when ``SIDECAR_REDIS_URL`` is set: shared key cache, invalidations, rate limits."""

    model_config = ConfigDict(frozen=True)
    pool_size: int = Field(32, ge=1, le=4096, description="connections per process")
    timeout_s: float = Field(0.25, gt=0, le=30, description="per command; then the request falls back")
    connect_timeout_s: float = Field(0.5, gt=0, le=30)
    breaker_failures: int = Field(3, ge=1, description="consecutive failures that open the circuit")
    breaker_reset_s: float = Field(5.0, gt=0, description="how long an open circuit skips Redis")
    prefix: str = Field("sidecar:", min_length=1, max_length=64, description="namespace of our Redis keys")
    key_ttl_s: float = Field(60.0, ge=0, description="shared cache: how long a found key is kept")
    negative_ttl_s: float = Field(5.0, ge=0, description="shared cache: how long an unknown key is kept")


class RateLimitRule(BaseModel):
    """``requests`` per ``per_s`` seconds sustained, with bursts up to ``burst`` (default: ``requests``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    requests: int = Field(ge=1, le=10_000_000)
    per_s: float = Field(1.0, gt=0, le=86_400)
    burst: int | None = Field(None, ge=1, le=10_000_000)


class DefaultRateLimit(RateLimitRule):
    """The limit of a key that has no more specific one."""

    requests: int = Field(100, ge=1, le=10_000_000)
    burst: int | None = Field(200, ge=1, le=10_000_000)


class UnauthenticatedRateLimit(RateLimitRule):
    """The limit per client IP of calls with no credential or a wrong one."""

    requests: int = Field(10, ge=1, le=10_000_000)
    burst: int | None = Field(20, ge=1, le=10_000_000)


class RateLimitSettings(BaseModel):
    """Rate limits: per key (override > role > type > default), and per client IP when unauthenticated."""

    model_config = ConfigDict(frozen=True)
    enabled: bool = False
    default: DefaultRateLimit = DefaultRateLimit()
    by_type: dict[KeyType, RateLimitRule] = Field(
        default_factory=lambda: {KeyType.PUBLISHABLE: RateLimitRule(requests=50, per_s=1, burst=100)}
    )
    by_role: dict[str, RateLimitRule] = Field(default_factory=dict)
    by_key: dict[str, RateLimitRule] = Field(default_factory=dict, description="key id → its own limit")
    unauthenticated: UnauthenticatedRateLimit = UnauthenticatedRateLimit()
    trusted_proxy_hops: int = Field(0, ge=0, le=10, description="proxies whose X-Forwarded-For names the client")
    webhook: Literal["deny", "allow"] = Field(
        "deny", description="over the limit on the Hasura webhook: 401 (deny) or let it through, logged (allow)"
    )


JwtAlgorithm = Literal["RS256", "ES256", "EdDSA", "HS256"]
HS256_MIN_SECRET_BYTES = 32


class JwtSettings(BaseModel):
    """Session JWTs: how they are signed, what they claim, how signing keys rotate."""

    model_config = ConfigDict(frozen=True)
    algorithm: JwtAlgorithm = Field("RS256", description="RS256 (RSA-2048), ES256, EdDSA (Ed25519) or HS256")
    accepted_algorithms: tuple[JwtAlgorithm, ...] = Field(
        (), description="the algorithms a token may be signed with, checked first; empty: algorithm only"
    )
    ttl_s: int = Field(3600, ge=30, le=7 * 86_400, description="token lifetime; a request may only shorten it")
    issuer: str | None = Field(None, min_length=1, description="iss; the public URL, which it must equal if set")
    audience: str | None = Field("hasura", min_length=1, description="aud; set it empty to leave aud out")
    claims_namespace: str = Field("https://hasura.io/jwt/claims", min_length=1)
    claims_format: Literal["json", "stringified_json"] = "json"
    iat_backdate_s: int = Field(5, ge=0, le=300, description="Hasura v2 allows no skew on iat")
    clock_skew_s: int = Field(60, ge=0, le=600, description="tolerated clock difference between replicas")
    hs256_secret: SecretStr | None = Field(None, description="HS256 only: the raw secret, at least 32 bytes")
    key_files: tuple[Path, ...] = Field((), description="PEM private keys, oldest to newest; the newest signs")
    jwks_max_age_s: int = Field(300, ge=0, le=86_400, description="Cache-Control max-age of the JWKS")
    ring_reload_s: float = Field(30.0, gt=0, description="how often replicas re-read the signing keys")
    verified_cache_entries: int = Field(
        10_000, ge=0, le=1_000_000, description="verified session tokens remembered per process (LRU); 0: none"
    )

    @field_validator("issuer", "audience", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("accepted_algorithms")
    @classmethod
    def _accepts_what_signs(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        algorithm = info.data.get("algorithm")
        if not value or algorithm is None:
            return value
        if algorithm not in value:
            raise ValueError(f"must include the signing algorithm, {algorithm}")
        if "HS256" in value and len(set(value)) > 1:
            raise ValueError(
                "HS256 cannot be accepted beside another algorithm: with HS256 the only key is the shared "
                "secret, and without it there is no HS256 key"
            )
        return tuple(dict.fromkeys(value))

    def accepted(self) -> frozenset[str]:
        """The verification allowlist: ``accepted_algorithms``, or just the signing algorithm."""
        return frozenset(self.accepted_algorithms or (self.algorithm,))

    @model_validator(mode="after")
    def _check(self) -> JwtSettings:
        if self.algorithm == "HS256":
            secret = self.hs256_secret.get_secret_value().encode() if self.hs256_secret else b""
            if len(secret) < HS256_MIN_SECRET_BYTES:
                raise ValueError(f"HS256 needs hs256_secret of at least {HS256_MIN_SECRET_BYTES} bytes")
            if self.key_files:
                raise ValueError("key_files are for RS256, ES256 and EdDSA, not HS256")
        return self


class CorsSettings(BaseModel):
    """Browsers calling ``/v1/auth/token``, ``/v1/auth/validate``, ``/v1/auth/permissions`` and ``/oauth/token``."""

    model_config = ConfigDict(frozen=True)
    allowed_origins: tuple[str, ...] = Field(
        (), description="exact origins (scheme://host[:port]) whose pages may call those endpoints; no wildcard"
    )
    max_age_s: int = Field(600, ge=0, le=86_400, description="how long a browser may cache a preflight answer")

    @field_validator("allowed_origins")
    @classmethod
    def _exact_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return normalize_origins(value)


IdpAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]

#: Default claim names per provider: user, org, team, role. Clerk's are those of the JWT template
#: the README shows (org_id/org_role are also Clerk's own session-token v1 names); Auth0 puts
#: org_id in tokens of its Organizations, and custom claims under a namespace set by an Action.
PROVIDER_CLAIMS: dict[str, tuple[str, str, str, str]] = {
    "clerk": ("sub", "org_id", "team_id", "org_role"),
    "auth0": ("sub", "org_id", "https://stateset.com/team_id", "https://stateset.com/roles"),
    "generic": ("sub", "org_id", "team_id", "role"),
}


class TrustedIssuerSettings(BaseModel):
    """One external identity provider whose tokens the webhook and the token exchanges accept."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    issuer: str = Field(min_length=1, max_length=512, description="the tokens' iss, exactly")
    jwks_url: str = Field(min_length=1, max_length=2048, description="the provider's JWKS (https)")
    audience: str | None = Field(None, min_length=1, description="the aud its tokens must carry; None: not checked")
    algorithms: tuple[IdpAlgorithm, ...] = Field(("RS256",), min_length=1, description="accepted alg values")
    provider: Literal["clerk", "auth0", "generic"] = Field("generic", description="default claim names")
    user_claim: str | None = Field(None, min_length=1, description="default: the provider's (sub)")
    org_claim: str | None = Field(None, min_length=1)
    team_claim: str | None = Field(None, min_length=1)
    role_claim: str | None = Field(None, min_length=1)
    roles: dict[str, str] = Field(min_length=1, description="provider role value -> our role")
    jwks_max_age_s: int = Field(300, ge=30, le=86_400, description="JWKS lifetime when it sends no Cache-Control")

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http(s) URL")
        return value

    def claim_names(self) -> tuple[str, str, str, str]:
        """user, org, team and role claim names: the configured ones, else the provider's defaults."""
        user, org, team, role = PROVIDER_CLAIMS[self.provider]
        return (
            self.user_claim or user,
            self.org_claim or org,
            self.team_claim or team,
            self.role_claim or role,
        )


class OAuthSettings(BaseModel):
    """The OAuth 2.0 authorization server for partners (``/oauth/*``)."""

    model_config = ConfigDict(frozen=True)
    code_ttl_s: int = Field(60, ge=10, le=600, description="authorization code lifetime")
    access_ttl_s: int = Field(900, ge=60, le=86_400, description="access token lifetime")
    refresh_ttl_s: int = Field(30 * 86_400, ge=300, le=365 * 86_400, description="refresh token lifetime")
    session_ttl_s: int = Field(900, ge=60, le=86_400, description="consent page sign-in lifetime")
    cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto", description="Secure flag on the sign-in cookie; auto: over TLS or when the public URL is https"
    )
    idp_jwks_url: str | None = Field(None, description="an external identity provider's JWKS (e.g. Clerk's)")
    idp_issuer: str | None = Field(None, description="the provider's iss; required with idp_jwks_url")
    idp_audience: str | None = Field(None, description="the provider tokens' aud, if they carry one")
    idp_org_claim: str = Field("org_id", min_length=1, description="the claim naming the merchant's org")
    idp_role_claim: str = Field("org_role", min_length=1, description="the claim naming the merchant's role")
    idp_roles: dict[str, str] = Field(default_factory=dict, description="role claim value -> our role")

    @model_validator(mode="after")
    def _check_idp(self) -> OAuthSettings:
        if self.idp_jwks_url and not self.idp_issuer:
            raise ValueError("idp_issuer is required with idp_jwks_url")
        if self.idp_jwks_url and not self.idp_roles:
            raise ValueError("idp_roles must map at least one provider role to a role here")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SIDECAR_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        None, description="sqlite:///path or postgresql://…; default: SQLite file in data_dir"
    )
    database_pool_size: int = Field(10, ge=1, le=1000, description="PostgreSQL: connections per process, at most")
    database_timeout_s: float = Field(
        5.0, gt=0, le=300, description="PostgreSQL: connect/query timeout before a request gets 503"
    )
    redis_url: str | None = None
    bootstrap_admin_key: SecretStr | None = None
    master_key: SecretStr | None = Field(
        None, description="base64 of 32 bytes; encrypts stored secrets. Default: generated into data_dir"
    )
    default_org_id: str = Field("org_default", min_length=1)
    roles_file: Path | None = Field(None, description="default: the packaged config/roles.yaml")
    tables_file: Path | None = Field(None, description="default: the packaged config/tables.yaml")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    last_used_flush_s: float = Field(10.0, gt=0)
    shutdown_timeout_s: float = Field(
        20.0, gt=0, le=600, description="after SIGTERM: how long requests in flight may take to finish"
    )
    fast_lane: bool = Field(
        True, description="answer the webhook, the JWKS and token exchanges on the lean HTTP path; false: aiohttp"
    )
    dashboard_session_ttl_s: int = Field(1800, ge=60, le=86_400, description="dashboard sign-in lifetime")
    dashboard_cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto", description="Secure flag on the dashboard's cookies; auto: when the request came over TLS"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    key_cache: KeyCacheSettings = KeyCacheSettings()
    webhook: WebhookSettings = WebhookSettings()
    log_format: Literal["json", "text"] = "json"
    request_log: RequestLogSettings = RequestLogSettings()
    limits: LimitSettings = LimitSettings()
    metrics: MetricsSettings = MetricsSettings()
    prometheus_multiproc_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"),
        description="prometheus-client's own variable: set it (unprefixed) when several worker processes serve",
    )
    redis: RedisSettings = RedisSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    hasura_webhook: HasuraWebhookSettings = HasuraWebhookSettings()
    public_url: str | None = Field(
        None, description="the URL Hasura and clients reach the sidecar at; default http://host:port"
    )
    jwt: JwtSettings = JwtSettings()
    cors: CorsSettings = CorsSettings()
    trusted_issuers: tuple[TrustedIssuerSettings, ...] = Field(
        (), description="external identity providers (Clerk, Auth0, …) whose tokens are accepted"
    )

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def jwt_issuer(self) -> str:
        return self.jwt.issuer or self.base_url()

    @model_validator(mode="after")
    def _one_issuer(self) -> Settings:
        """Tokens, OAuth metadata (RFC 8414 §3.3: the URL it is served from), the ``iss`` of
        authorization responses (RFC 9207) and OpenID discovery name one issuer: the public URL."""
        if self.jwt.issuer is not None and self.jwt.issuer != self.base_url():
            raise ValueError(
                f"SIDECAR_JWT__ISSUER ({self.jwt.issuer}) differs from the public URL ({self.base_url()}): "
                "tokens, OAuth metadata and discovery share one issuer; set SIDECAR_PUBLIC_URL and leave "
                "SIDECAR_JWT__ISSUER empty"
            )
        return self

    oauth: OAuthSettings = OAuthSettings()

    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sidecar.db'}"


def load_settings(**overrides: object) -> Settings:
    """Settings from ``SIDECAR_*`` variables (plus ``overrides``); ``ConfigError`` names bad values."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, env_prefix="SIDECAR_")) from None


def describe_validation_error(exc: ValidationError, *, env_prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        if not err["loc"]:  # a check across settings names its variables itself
            lines.append(str(err["ctx"]["error"]) if "error" in err.get("ctx", {}) else err["msg"])
            continue
        name = (
            env_prefix + "__".join(str(p) for p in err["loc"]).upper()
            if env_prefix
            else ".".join(str(p) for p in err["loc"])
        )
        lines.append(f"{name}: {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def default_roles_text() -> str:
    return resources.files("sidecar").joinpath("config/roles.yaml").read_text(encoding="utf-8")


def default_tables_text() -> str:
    return resources.files("sidecar").joinpath("config/tables.yaml").read_text(encoding="utf-8")


def _read_yaml(path: Path | None, packaged: str, what: str) -> tuple[str, object]:
    where = str(path) if path else f"packaged {packaged}"
    try:
        text = (
            path.read_text(encoding="utf-8")
            if path
            else resources.files("sidecar").joinpath(f"config/{packaged}").read_text(encoding="utf-8")
        )
        return where, yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {what} file {where}: {exc}") from None


def load_role_model(path: Path | None) -> RoleModel:
    """Read and validate the roles file; errors name the file and the bad entry."""
    where, data = _read_yaml(path, "roles.yaml", "roles")
    try:
        return RoleModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_file_error(exc)}") from None


def load_table_model(path: Path | None, roles: RoleModel) -> TableModel:
    """Read and validate the tables file against the role model's resources; errors name the entry."""
    where, data = _read_yaml(path, "tables.yaml", "tables")
    try:
        model = TableModel.model_validate(data)
        model.check_resources(roles.resources)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_file_error(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return model


def describe_file_error(exc: ValidationError) -> str:
    """A config file's errors: the entry's path and the problem; model checks speak for themselves."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        problem = (
            str(err["ctx"]["error"]) if err["type"] == "value_error" and "error" in err.get("ctx", {}) else err["msg"]
        )
        lines.append(f"{where}: {problem}" if where else problem)
    return "; ".join(lines)
