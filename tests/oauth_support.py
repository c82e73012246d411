"""Helpers for the OAuth tests: PKCE pairs, client registration, and the consent-form driver."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]
REDIRECT_URI = "https://partner.example/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden_fields(html: str) -> dict[str, str]:
    import html as html_lib

    return {
        m.group(1): html_lib.unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
    }


@dataclass
class Flow:
    """One authorization request, driven through the consent forms over plain HTTP."""

    http: Client
    client_id: str
    scope: str = "orders:read"
    redirect_uri: str = REDIRECT_URI
    state: str = "st-123"

    def __post_init__(self) -> None:
        self.verifier, self.challenge = pkce_pair()

    def params(self, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            **overrides,
        }
        return {k: v for k, v in params.items() if v is not None}

    async def sign_in(self, credential: str) -> str:
        """The consent page's HTML after signing in with ``credential``."""
        page = await self.http.get("/oauth/authorize", params=self.params(), allow_redirects=False)
        assert page.status == 200, await page.text()
        form = {**hidden_fields(await page.text()), "credential": credential, "action": "sign_in"}
        signed = await self.http.post("/oauth/authorize", data=form, allow_redirects=False)
        assert signed.status == 303, await signed.text()
        consent = await self.http.get(signed.headers["Location"], allow_redirects=False)
        assert consent.status == 200
        return await consent.text()

    async def decide(self, consent_html: str, action: str) -> dict[str, str]:
        form = {**hidden_fields(consent_html), "action": action}
        resp = await self.http.post("/oauth/authorize", data=form, allow_redirects=False)
        assert resp.status == 303, await resp.text()
        location = resp.headers["Location"]
        assert location.startswith(self.redirect_uri + "?")
        return query(location)

    async def code(self, credential: str) -> str:
        answer = await self.decide(await self.sign_in(credential), "approve")
        assert answer["state"] == self.state
        return answer["code"]

    async def exchange(self, code: str, secret: str | None, **extra: str) -> Any:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
            **extra,
        }
        headers = basic(self.client_id, secret) if secret else {}
        if secret is None:
            form["client_id"] = self.client_id
        return await self.http.post("/oauth/token", data=form, headers=headers)


async def register_client(
    http: Client,
    admin_key: str,
    *,
    type: str = "confidential",
    scopes: tuple[str, ...] = ("orders:read", "orders:write", "customers:read"),
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
    name: str = "Partner App",
) -> dict[str, Any]:
    resp = await http.post(
        "/v1/oauth/clients",
        json={"name": name, "type": type, "scopes": list(scopes), "redirect_uris": list(redirect_uris)},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def create_key(http: Client, admin_key: str, **body: Any) -> str:
    resp = await http.post("/v1/api_keys", json=body, headers={"Authorization": f"Bearer {admin_key}"})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["key"])
