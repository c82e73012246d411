"""``SIDECAR_HASURA_WEBHOOK__*``: read from the environment, refused with a clear message when wrong."""

from __future__ import annotations

import pytest

from sidecar.errors import ConfigError
from sidecar.settings import load_settings


def test_variables_reach_the_webhook_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_HASURA_WEBHOOK__ANONYMOUS", "false")
    monkeypatch.setenv("SIDECAR_HASURA_WEBHOOK__CREDENTIAL_HEADER", "X-Api-Key")
    monkeypatch.setenv("SIDECAR_HASURA_WEBHOOK__CREDENTIAL_COOKIE", "sidecar_key")
    monkeypatch.setenv("SIDECAR_HASURA_WEBHOOK__SUBSCRIPTION_ROLES", '["operator", "manager"]')
    monkeypatch.setenv("SIDECAR_HASURA_WEBHOOK__MAX_CACHE_AGE_S", "15")
    hook = load_settings().hasura_webhook
    assert hook.anonymous is False
    assert (hook.credential_header, hook.credential_cookie) == ("X-Api-Key", "sidecar_key")
    assert hook.subscription_roles == ("operator", "manager")
    assert hook.max_cache_age_s == 15


@pytest.mark.parametrize(("value", "org"), [("org_shop", "org_shop"), ("", None)])
def test_the_anonymous_org_is_read_and_empty_means_none(
    monkeypatch: pytest.MonkeyPatch, value: str, org: str | None
) -> None:
    monkeypatch.setenv("SIDECAR_HASURA_WEBHOOK__ANONYMOUS_ORG_ID", value)
    assert load_settings().hasura_webhook.anonymous_org_id == org


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("CREDENTIAL_HEADER", "Origin", "does not forward"),
        ("CREDENTIAL_HEADER", "user-agent", "does not forward"),
        ("CREDENTIAL_HEADER", "Authorization", "already read"),
        ("CREDENTIAL_HEADER", "X Api Key", "not a valid HTTP header name"),
        ("CREDENTIAL_COOKIE", "a;b", "not a valid cookie name"),
        ("MAX_CACHE_AGE_S", "0", "greater than or equal to 1"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(f"SIDECAR_HASURA_WEBHOOK__{variable}", value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert f"SIDECAR_HASURA_WEBHOOK__{variable}" in error.value.message
    assert complaint in error.value.message
