"""Configuration: the only module that reads environment variables and ``config/*.yaml`` files.

Built once at start-up (``load_settings``) and passed down; a bad value stops the process with a
message naming the variable, before it listens.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from sidecar.domain.rbac import RoleModel
from sidecar.domain.tables import TableModel
from sidecar.errors import ConfigError


class KeyCacheSettings(BaseModel):
    """The in-process cache of verified keys in front of the store."""

    model_config = ConfigDict(frozen=True)
    max_entries: int = Field(100_000, ge=0, description="bound on cached lookups (hits and misses)")
    ttl_s: float = Field(30.0, ge=0, description="how long a found key is trusted without the store")
    negative_ttl_s: float = Field(5.0, ge=0, description="how long a well-formed unknown key stays unknown")


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
    dashboard_session_ttl_s: int = Field(1800, ge=60, le=86_400, description="dashboard sign-in lifetime")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    key_cache: KeyCacheSettings = KeyCacheSettings()
    redis: RedisSettings = RedisSettings()

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
