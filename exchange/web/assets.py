"""The GOV.UK Frontend files the pages use, shipped as package data and served at /assets/.

``make assets`` copies them from the version pinned in ``web-assets/`` into
``exchange/web/static/govuk/`` with a ``MANIFEST.json`` of their SHA-256 hashes. The node
reads them once at start through :mod:`importlib.resources` (so an installed wheel needs no
source tree and no Node), checks each against the manifest, and serves only the files the
manifest names: no path from a request ever reaches the file system.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from aiohttp import web

#: Content types by file suffix; the manifest is the web app manifest the template links.
CONTENT_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/manifest+json",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
#: A year, for URLs that name the version (``?v=``) and so change when the files do.
LONG_CACHE: Final = "public, max-age=31536000, immutable"
#: A day, for the URLs the stylesheet and web app manifest name without a version.
SHORT_CACHE: Final = "public, max-age=86400"


class AssetsError(Exception):
    """The shipped assets do not match their manifest: the installation is damaged."""


@dataclass(frozen=True)
class Asset:
    """One shipped file, held in memory."""

    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True)
class Assets:
    """The shipped GOV.UK Frontend files, by their path under ``/assets/``."""

    version: str
    files: dict[str, Asset]

    @classmethod
    def load(cls, folder: Traversable | None = None) -> Assets:
        """Read and check the shipped files (the package's own unless ``folder`` is given)."""
        if folder is None:
            folder = resources.files("exchange.web") / "static" / "govuk"
        manifest = json.loads((folder / "MANIFEST.json").read_text("utf-8"))
        files: dict[str, Asset] = {}
        for name, digest in manifest["files"].items():
            body = folder.joinpath(*name.split("/")).read_bytes()
            if hashlib.sha256(body).hexdigest() != digest:
                raise AssetsError(f"the web asset {name} does not match MANIFEST.json")
            suffix = name[name.rfind(".") :]
            files[name] = Asset(body, CONTENT_TYPES[suffix], f'"{digest[:32]}"')
        return cls(str(manifest["version"]), files)

    def url(self, name: str) -> str:
        """Return the URL of a shipped file, naming the version so that caches refresh."""
        if name not in self.files:
            raise ValueError("name must be a shipped asset")
        return f"/assets/{name}?v={self.version}"

    async def serve(self, request: web.Request) -> web.Response:
        """Answer ``GET /assets/{name}`` from memory, with cache headers and an ETag."""
        asset = self.files.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound
        cache = LONG_CACHE if request.query.get("v") == self.version else SHORT_CACHE
        headers = {"Cache-Control": cache, "ETag": asset.etag}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=asset.body, headers={**headers, "Content-Type": asset.content_type}
        )
