"""Fetching the signed directory the authority publishes at an HTTPS address.

:class:`NoteFetcher` is the ``fetch`` port of
:class:`~exchange.service.directory_updates.DirectoryUpdates`: one GET of ``[directory]
url`` over TLS checked against ``[directory] ca`` (or the system's trust store), with a
deadline and a size limit, no redirects and no plain HTTP. Every way it can fail becomes one
:class:`~exchange.service.directory_updates.DirectoryFetchError` here, naming the address's
host and the kind of failure, never what the server sent.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from exchange.service.directory_updates import MAX_NOTE_LEN, DirectoryFetchError

#: Seconds a whole fetch may take: connecting, TLS, and reading up to 32 MiB.
FETCH_TIMEOUT: Final = 30.0
_CHUNK: Final = 64 * 1024


class NoteFetcher:
    """GETs the directory note at ``url`` (https only), at most ``max_len`` bytes."""

    def __init__(
        self,
        url: str,
        *,
        ca: Path | None = None,
        timeout: float = FETCH_TIMEOUT,
        max_len: int = MAX_NOTE_LEN,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("url must be an https:// address with a host name")
        self.url = url
        self.host = parts.hostname
        self.ca = ca
        self.timeout = timeout
        self.max_len = max_len

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=None if self.ca is None else str(self.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    async def __call__(self) -> bytes:
        """Return the note's bytes, or raise :class:`DirectoryFetchError`."""
        where = f"the directory address at {self.host}"
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(where)
        except TimeoutError:
            raise DirectoryFetchError(
                "timeout", f"{where} did not answer within {self.timeout:g} seconds"
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise DirectoryFetchError(
                "unreachable",
                f"{where} could not be reached over trusted TLS ({type(exc).__name__}); "
                "check directory.ca",
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise DirectoryFetchError(
                "unreachable", f"{where} could not be reached ({type(exc).__name__})"
            ) from None

    async def _get(self, where: str) -> bytes:
        connector = aiohttp.TCPConnector(ssl=self._ssl())
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(self.url, allow_redirects=False) as resp,
        ):
            if resp.status != 200:
                raise DirectoryFetchError(
                    "unreachable", f"{where} answered HTTP {resp.status}, not 200"
                )
            length = resp.content_length
            if length is not None and length > self.max_len:
                raise DirectoryFetchError("oversize", self._too_large(where))
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > self.max_len:
                    raise DirectoryFetchError("oversize", self._too_large(where))
            return bytes(body)

    def _too_large(self, where: str) -> str:
        return f"{where} sent more than the limit of {self.max_len:,} bytes"
