"""One polite HTTP hop: per-host slot, limits on time, bytes and content type, retries with backoff on 429/5xx."""

from __future__ import annotations

import asyncio
import email.utils
from datetime import UTC, datetime

import httpx

from extract.crawler.config import CrawlConfig
from extract.crawler.exchange import HttpExchange, media_type
from extract.crawler.politeness import Politeness
from extract.crawler.records import FetchRefused
from extract.crawler.urls import origin
from extract.crawler.warc import WarcRecorder

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def retry_after_s(value: str, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _server_ip(response: httpx.Response) -> str:
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    return str(address[0]) if address else ""


class Fetcher:
    """Fetches single URLs (never follows redirects) and writes complete page exchanges to the WARC recorder."""

    def __init__(
        self, client: httpx.AsyncClient, politeness: Politeness, config: CrawlConfig, recorder: WarcRecorder | None
    ) -> None:
        self._client = client
        self._politeness = politeness
        self._config = config
        self._recorder = recorder

    async def get(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        content_types: tuple[str, ...] | None = None,
        archive: bool = True,
    ) -> HttpExchange:
        """GET ``url``; retried on 429/5xx/network errors. ``content_types``: refuse 2xx bodies of other types.
        ``archive``: write the returned exchange to the WARC; off for robots.txt and sitemaps, which are not corpus
        content and would otherwise be read back as documents. Retried attempts are not written: one response per
        URL per crawl, so a reader taking the newest answer per URL never takes a 429 over the 200 that followed.

        Returns the last response (which may still be a 429/5xx once retries or the wait budget run out);
        raises FetchRefused for limits (``too_large``, ``timeout``, ``bad_content_type``) and network failures.
        """
        config = self._config
        gate = self._politeness.gate(origin(url))
        loop = asyncio.get_running_loop()
        for attempt in range(config.retries + 1):
            last_attempt = attempt == config.retries
            backoff = config.backoff_s * 2**attempt
            async with gate.slot():
                try:
                    exchange = await self._once(url, headers or {}, content_types)
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    if last_attempt:
                        reason = "timeout" if isinstance(exc, httpx.TimeoutException) else "network_error"
                        raise FetchRefused(reason, f"{type(exc).__name__}: {exc}") from None
                    gate.pause_until(loop.time() + backoff)
                    continue
            if exchange.status not in RETRY_STATUSES or last_attempt:
                break
            wait = retry_after_s(exchange.header("retry-after"), datetime.now(UTC))
            wait = backoff if wait is None else wait
            if wait > config.max_retry_wait_s:  # more patience than configured: give this page up
                break
            gate.pause_until(loop.time() + wait)
        # Reached by a break: the last attempt either breaks or raises.
        if archive and self._recorder is not None:
            exchange.warc_file = self._recorder.write(exchange)
        return exchange

    async def _once(self, url: str, headers: dict[str, str], content_types: tuple[str, ...] | None) -> HttpExchange:
        config = self._config
        started_at = datetime.now(UTC)
        try:
            async with asyncio.timeout(config.page_deadline_s):
                async with self._client.stream("GET", url, headers=headers) as response:
                    server_ip = _server_ip(response)  # while the connection is open
                    self._check_headers(response, content_types)
                    body = await self._read_body(response)
        except TimeoutError:
            raise FetchRefused(
                "timeout", f"no complete response within page_deadline_s={config.page_deadline_s}"
            ) from None
        except httpx.DecodingError as exc:
            raise FetchRefused("bad_response", f"cannot decode body: {exc}") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise FetchRefused("bad_url", str(exc)) from None
        return HttpExchange(
            url=url,
            request_headers=[(k, v) for k, v in response.request.headers.multi_items()],
            status=response.status_code,
            reason_phrase=response.reason_phrase,
            http_version=response.http_version,
            response_headers=[(k, v) for k, v in response.headers.multi_items()],
            body=body,
            started_at=started_at,
            ip=server_ip,
        )

    def _check_headers(self, response: httpx.Response, content_types: tuple[str, ...] | None) -> None:
        if content_types is not None and response.is_success:
            ctype = media_type(response.headers.get("content-type", ""))
            if ctype not in content_types:
                raise FetchRefused(
                    "bad_content_type", f"{ctype or 'no Content-Type'} not in {', '.join(content_types)}"
                )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._config.max_bytes:
            raise FetchRefused("too_large", f"Content-Length {declared} > max_bytes {self._config.max_bytes}")

    async def _read_body(self, response: httpx.Response) -> bytes:
        # Counting decoded bytes also stops compression bombs.
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self._config.max_bytes:
                raise FetchRefused("too_large", f"body exceeds max_bytes {self._config.max_bytes}")
        return bytes(body)
