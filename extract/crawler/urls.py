"""URL normalization, so one page reached by different spellings is fetched once."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute http(s) URL without fragment, lower-case scheme and host, no default port, ``/`` for an empty path.

    Returns None for anything that is not http(s) (mailto:, javascript:, data:) or has no host.
    """
    if base is not None:
        url = urljoin(base, url.strip())
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # bad port or IPv6 literal
        return None
    scheme = parts.scheme.lower()
    try:  # ASCII (punycode) host names: the form DNS, the address guard and httpx's connections all see
        host = (parts.hostname or "").rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def origin(url: str) -> str:
    """``scheme://host[:port]``: the unit robots.txt and politeness apply to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
