"""Browser origins: which web origins may call us, and which credentials may come from a browser.

An origin is the exact ``scheme://host[:port]`` a browser sends in ``Origin`` (RFC 6454 §6.1):
lower case, no path, no trailing slash, the default port left out. Two checks live here:

* ``BrowserOrigins.allows``: the origins of ``SIDECAR_CORS__ALLOWED_ORIGINS``, which decide
  whether a browser may read our answers at all (CORS).
* ``BrowserOrigins.check``: what a credential presented *with* an ``Origin`` may do. A secret
  or restricted key in a browser has leaked (it is in a page anyone can read), so it is refused;
  a publishable key with ``allowed_origins`` is refused from any other origin. Without ``Origin``
  (a server, ``curl``) neither check applies: the header is the browser's word, and only a
  browser's word constrains what other websites can make their visitors' browsers do.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from sidecar.errors import OriginNotAllowed, SecretKeyInBrowser
from sidecar.models import CredentialType, KeyType, Principal

MAX_ORIGIN_LENGTH = 512
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str:
    """The serialized origin of ``value`` (``https://App.example:443`` → ``https://app.example``).

    Raises ``ValueError`` naming the problem for anything that is not exactly an origin:
    a wildcard, a path, a query, credentials, or a scheme other than http/https.
    """
    text = value.strip()
    if not text or len(text) > MAX_ORIGIN_LENGTH or not text.isascii():
        raise ValueError("an origin is scheme://host[:port], e.g. https://app.example.com")
    if "*" in text:
        raise ValueError(f"{text!r}: origins are exact; wildcards are not allowed")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: the port is not a number") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{text!r}: an origin is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{text!r}: an origin has no path, query, fragment or user")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def normalize_origins(values: Iterable[str]) -> tuple[str, ...]:
    """Each origin normalized, duplicates dropped, order kept; ``ValueError`` on the first bad one."""
    return tuple(dict.fromkeys(normalize_origin(v) for v in values))


def request_origin(header: str | None) -> str | None:
    """The ``Origin`` a browser sent, as compared with our lists: ``None`` when there was none.

    A value that is not an http(s) origin (``null`` from a sandboxed frame or a ``file:`` page)
    is kept verbatim: it matches no list, and it still says "a browser sent this".
    """
    if header is None or not header.strip():
        return None
    try:
        return normalize_origin(header)
    except ValueError:
        return header.strip()[:MAX_ORIGIN_LENGTH]


class BrowserOrigins:
    """The configured CORS origins, and the rules for credentials that arrive with an ``Origin``."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = frozenset(normalize_origins(allowed))

    @property
    def allowed(self) -> frozenset[str]:
        return self._allowed

    def allows(self, origin: str | None) -> bool:
        """Whether a browser page from ``origin`` may read our answers (CORS)."""
        return origin is not None and origin in self._allowed

    def check(self, principal: Principal, origin: str | None) -> None:
        """Refuse a secret/restricted key from a browser, and a publishable key from a foreign origin."""
        if origin is None or principal.credential_type is not CredentialType.API_KEY:
            return
        key_type = principal.key_type.value if principal.key_type else "none"
        if principal.key_type in (KeyType.SECRET, KeyType.RESTRICTED):
            raise SecretKeyInBrowser(
                "a secret or restricted key was sent from a browser: treat it as leaked, roll it, and use a "
                "publishable key or a session token in browser code",
                reason="secret_key_from_browser",
                key_type=key_type,
            )
        allowed = principal.allowed_origins
        if principal.key_type is KeyType.PUBLISHABLE and allowed and origin not in allowed:
            raise OriginNotAllowed(
                "this publishable key may not be used from this origin (see its allowed_origins)",
                reason="origin_not_allowed",
                key_type=key_type,
            )
