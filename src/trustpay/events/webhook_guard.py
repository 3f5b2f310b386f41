"""Where a webhook may go: URL checks and the SSRF guard (I/O: DNS lookups).

A merchant chooses the URL and the platform makes the request, so the URL must
not be a way into the platform's own network. The host is resolved and every
address it resolves to is judged (:func:`webhook_model.refused_address`) when
the endpoint is registered AND again before each delivery, and the request is
then sent to the very address that was judged (see :class:`Target`), so a DNS
answer that changes in between (DNS rebinding) cannot redirect it.
``TRUSTPAY_WEBHOOK_ALLOW_PRIVATE=1`` lifts the address rule (tests, ``make run``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from trustpay.errors import InvalidRequest
from trustpay.events.webhook_model import refused_address

MAX_URL_LENGTH = 2048
Resolver = Callable[[str, int], list[str]]


class UrlRefused(InvalidRequest):
    code = "url_not_allowed"


class InvalidUrl(InvalidRequest):
    code = "invalid_url"


@dataclass(frozen=True)
class Target:
    url: str  # as the merchant registered it
    host: str  # for the Host header and TLS (SNI, certificate check)
    port: int
    address: str  # the checked IP the request is sent to


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> Target:
    """A webhook URL that may be used now, with the address to send to; raises
    :class:`InvalidUrl` (malformed, unresolvable) or :class:`UrlRefused` (SSRF)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidUrl(f"url: at most {MAX_URL_LENGTH} characters", param="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidUrl(f"url: {exc}", param="url") from None
    if parts.scheme not in ("https", "http"):
        raise InvalidUrl("url: use an https:// (or http://) URL", param="url")
    host = parts.hostname
    if not host:
        raise InvalidUrl("url: the URL has no host", param="url")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and screens; receivers check our signature instead.
        raise InvalidUrl("url: user name or password in the URL is not allowed", param="url")
    if parts.fragment:
        raise InvalidUrl("url: a fragment (#…) is never sent; remove it", param="url")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError, ValueError):  # ValueError: e.g. a NUL byte in the host
        raise InvalidUrl(f"url: the host {host!r} does not resolve", param="url") from None
    if not addresses:
        raise InvalidUrl(f"url: the host {host!r} does not resolve", param="url")
    if not allow_private:
        for address in addresses:
            why = refused_address(address)
            if why is not None:
                raise UrlRefused(f"url: {host} resolves to a non-public address ({why})", param="url")
    return Target(url=url, host=host, port=port, address=addresses[0])
