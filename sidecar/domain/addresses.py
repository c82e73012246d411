"""Where webhooks may be delivered: public addresses only, so an endpoint cannot aim the sidecar at
itself, its cloud's metadata service (169.254.169.254) or the private network (SSRF).

Pure. ``check_public_host`` runs when an endpoint's URL is set (literal addresses and ``localhost``
names); the delivery's HTTP client asks ``is_public`` of every address a host name resolves to,
at delivery time, so a name that later resolves to a private address is refused too.
``SIDECAR_WEBHOOK__ALLOW_PRIVATE_URLS`` turns both off (development, tests, a private mesh).
"""

from __future__ import annotations

import ipaddress
import socket

from sidecar.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: NAT64's well-known prefix: the last 32 bits are an IPv4 address the gateway connects to.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, shared (CGNAT), reserved,
    unspecified or multicast; an IPv6 address carrying an IPv4 one is judged by that."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            return is_public(inner)
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, legacy IPv4 spellings (``127.1``, ``0x7f000001``,
    ``2130706433``) included, as the system resolver would read them; ``None`` for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone id does not change the address
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def check_public_host(host: str) -> None:
    """Refuse a URL host that is a non-public literal address or a ``localhost`` name."""
    name = host.lower().rstrip(".")
    literal = literal_address(name)
    if (literal is not None and not is_public(literal)) or name == "localhost" or name.endswith(".localhost"):
        raise InvalidRequest(
            "url must not point at a loopback, private, link-local or otherwise non-public address "
            "(SIDECAR_WEBHOOK__ALLOW_PRIVATE_URLS=true allows it)",
            reason="private_url",
        )
