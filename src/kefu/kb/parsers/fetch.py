"""Fetch a web page or file over HTTP(S) and parse it by its content type."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit

import httpx

from kefu import __version__
from kefu.errors import FetchError
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import DEFAULT_MAX_BYTES, Origin, human_size, iso_utc
from kefu.kb.parsers.dispatch import parse_origin

USER_AGENT = f"kefu/{__version__} (knowledge-base ingest)"


def fetch_url(
    url: str,
    *,
    client: httpx.Client | None = None,
    timeout: float = 20.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SourceDocument:
    """GET ``url`` (redirects followed, at most ``max_bytes`` read) and parse what it returns; its
    ``doc_id`` and ``source`` are ``url``, its ``updated_at`` the Last-Modified header."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"{url!r} is not an http:// or https:// address; give the page's full URL")
    try:
        if client is not None:
            return _fetch(client, url, timeout, max_bytes)
        with httpx.Client(headers={"User-Agent": USER_AGENT}) as own:
            return _fetch(own, url, timeout, max_bytes)
    except httpx.TimeoutException:
        raise FetchError(
            f"{url} did not answer within {timeout:g} s; try again later or check the address"
        ) from None
    except httpx.TooManyRedirects:
        raise FetchError(f"{url} redirects too many times; give the page's final address") from None
    except httpx.HTTPError as exc:
        raise FetchError(
            f"cannot fetch {url} ({type(exc).__name__}: {exc}); check the address and that this server "
            "can reach the site"
        ) from None


def _fetch(client: httpx.Client, url: str, timeout: float, max_bytes: int) -> SourceDocument:
    with client.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
        if response.status_code >= 400:
            raise FetchError(
                f"{url} answered HTTP {response.status_code} {response.reason_phrase}; check the address "
                "(and that the page is public)"
            )
        data = _read_capped(response, url, max_bytes)
        final_url = str(response.url)
        headers = response.headers
    origin = Origin(
        name=url,
        doc_id=url,
        source=url,
        updated_at=_last_modified(headers.get("last-modified")),
        meta={"final_url": final_url} if final_url != url else {},
    )
    return parse_origin(data, origin, _file_name(final_url), headers.get("content-type"), max_bytes)


def _read_capped(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            f"{url} is {human_size(int(declared))}, over the {human_size(max_bytes)} limit; "
            "split the document or raise the size limit"
        )
    data = bytearray()
    for piece in response.iter_bytes():
        data.extend(piece)
        if len(data) > max_bytes:
            raise FetchError(
                f"{url} is over the {human_size(max_bytes)} limit (stopped reading there); "
                "split the document or raise the size limit"
            )
    return bytes(data)


def _file_name(url: str) -> str:
    """The last path segment (for its extension), or the host for a site's root."""
    parts = urlsplit(url)
    return unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or parts.netloc


def _last_modified(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return iso_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError):
        return None
