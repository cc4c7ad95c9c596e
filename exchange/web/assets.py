"""The files the pages use, shipped as package data and served at /assets/.

``make assets`` copies the built files of the npm packages pinned in ``web-assets/`` (GOV.UK
Frontend, and GOV.UK's accessible autocomplete for the recipients page) into
``exchange/web/static/govuk/``; a few small files of this project's own (such as
``recipients.js``) sit in ``exchange/web/static/`` itself. ``exchange/web/static/MANIFEST.json``
records each package's version and, for every file served, where it comes from (a package,
or ``own``) and its SHA-256. The node reads the files once at start through
:mod:`importlib.resources` (so an installed wheel needs no source tree and no Node), checks
each against the manifest, and serves only the files the manifest names: no path from a
request ever reaches the file system.
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
#: A year, for URLs that name the file's hash (``?v=``) and so change when the file does.
LONG_CACHE: Final = "public, max-age=31536000, immutable"
#: A day, for the URLs the stylesheet and web app manifest name without a version.
SHORT_CACHE: Final = "public, max-age=86400"
#: What the manifest says a file of this project's own comes from.
OWN: Final = "own"
#: Where the packages' files sit, under the static folder; our own files sit in it directly.
PACKAGES_FOLDER: Final = "govuk"
#: Hex digits of a file's SHA-256 in its URL's ``?v=``.
VERSION_DIGITS: Final = 16


class AssetsError(Exception):
    """The shipped assets do not match their manifest: the installation is damaged."""


@dataclass(frozen=True)
class Asset:
    """One shipped file, held in memory."""

    body: bytes
    content_type: str
    digest: str

    @property
    def etag(self) -> str:
        """The file's ETag: part of its hash."""
        return f'"{self.digest[:32]}"'

    @property
    def version(self) -> str:
        """What its URL's ``?v=`` carries: part of its hash, so an edit changes the URL."""
        return self.digest[:VERSION_DIGITS]


@dataclass(frozen=True)
class Assets:
    """The shipped files, by their path under ``/assets/``, and the packages' versions."""

    packages: dict[str, str]
    files: dict[str, Asset]

    @classmethod
    def load(cls, folder: Traversable | None = None) -> Assets:
        """Read and check the shipped files (the package's own unless ``folder`` is given)."""
        if folder is None:
            folder = resources.files("exchange.web") / "static"
        manifest = json.loads((folder / "MANIFEST.json").read_text("utf-8"))
        files: dict[str, Asset] = {}
        for name, entry in manifest["files"].items():
            place = folder if entry["from"] == OWN else folder / PACKAGES_FOLDER
            body = place.joinpath(*name.split("/")).read_bytes()
            digest = str(entry["sha256"])
            if hashlib.sha256(body).hexdigest() != digest:
                raise AssetsError(f"the web asset {name} does not match MANIFEST.json")
            suffix = name[name.rfind(".") :]
            files[name] = Asset(body, CONTENT_TYPES[suffix], digest)
        return cls({str(k): str(v) for k, v in manifest["packages"].items()}, files)

    def url(self, name: str) -> str:
        """Return the URL of a shipped file, naming its hash so that caches refresh."""
        asset = self.files.get(name)
        if asset is None:
            raise ValueError("name must be a shipped asset")
        return f"/assets/{name}?v={asset.version}"

    async def serve(self, request: web.Request) -> web.Response:
        """Answer ``GET /assets/{name}`` from memory, with cache headers and an ETag."""
        asset = self.files.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound
        cache = LONG_CACHE if request.query.get("v") == asset.version else SHORT_CACHE
        headers = {"Cache-Control": cache, "ETag": asset.etag}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=asset.body, headers={**headers, "Content-Type": asset.content_type}
        )
