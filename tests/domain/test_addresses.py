"""Which addresses webhooks may be delivered to (SSRF): public unicast only."""

from __future__ import annotations

import ipaddress

import pytest

from sidecar.domain.addresses import check_public_host, is_public, literal_address
from sidecar.errors import InvalidRequest


@pytest.mark.parametrize("text", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses(text: str) -> None:
    assert is_public(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_non_public_addresses(text: str) -> None:
    assert not is_public(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    ("host", "address"),
    [("127.1", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("fe80::1%eth0", "fe80::1")],
)
def test_legacy_and_zoned_literals_are_read_as_the_resolver_reads_them(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["hooks.example.com", "8.8.8.8", "2606:4700:4700::1111", "localhost.example.com"])
def test_public_hosts_pass(host: str) -> None:
    check_public_host(host)


@pytest.mark.parametrize("host", ["LOCALHOST", "localhost.", "x.localhost", "127.0.0.1", "0177.0.0.1", "[::1]"[1:-1]])
def test_private_hosts_are_refused_with_a_reason(host: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        check_public_host(host)
    assert exc.value.reason == "private_url"
