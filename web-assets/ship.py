"""Copy the built GOV.UK Frontend files the web pages serve into the Python package.

``make assets`` runs ``npm ci`` here (the version pinned in ``package.json`` and
``package-lock.json``) and then this script, which copies the stylesheet and the JavaScript
module from ``node_modules/govuk-frontend/dist/govuk/`` into ``exchange/web/static/govuk/``,
flattened so that the stylesheet's ``/assets/images/...`` paths resolve.

The GDS Transport font and the crown are for services on GOV.UK only, and this service is
not one: the stylesheet's ``@font-face`` rules are taken out (so its font stack falls back
to Arial, as GOV.UK Frontend's own setting for services off GOV.UK does) and neither the
fonts nor the crown icons are shipped. The one image the stylesheet itself names (the
crest of the GOV.UK footer's copyright logo, which no page here shows) is shipped so that
every address in the stylesheet resolves. It then writes ``MANIFEST.json`` there: the package's
version and the SHA-256 of every shipped file, which a test checks against the pin and the
files, so that a hand-edited asset or a stale copy fails. Source maps are left out: the
pages do not need them. Only the standard library is used, so no virtual environment is
needed to run it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "node_modules" / "govuk-frontend"
DIST = PACKAGE / "dist" / "govuk"
TARGET = HERE.parent / "exchange" / "web" / "static" / "govuk"

#: What the pages use, as (path in ``dist/govuk/``, path under ``/assets/``).
SHIPPED = (
    ("govuk-frontend.min.css", "govuk-frontend.min.css"),
    ("govuk-frontend.min.js", "govuk-frontend.min.js"),
    ("assets/images/govuk-crest.svg", "images/govuk-crest.svg"),
)
#: The stylesheet's font faces (GDS Transport, for GOV.UK only), taken out when shipped.
FONT_FACE = re.compile(r"@font-face\{[^}]*\}")


def _pinned_version() -> str:
    """Return the version ``package.json`` pins, refusing a range."""
    pin = json.loads((HERE / "package.json").read_text("utf-8"))["dependencies"]["govuk-frontend"]
    if not pin[:1].isdigit():
        raise SystemExit(f"package.json must pin govuk-frontend exactly, not {pin!r}")
    return str(pin)


def _files() -> list[tuple[Path, str]]:
    """Return every file to ship, as (source, path under ``/assets/``)."""
    return [(DIST / source, target) for source, target in SHIPPED]


def _shipped_bytes(source: Path, shipped: str) -> bytes:
    """Return what is shipped of ``source``: the stylesheet without its font faces."""
    data = source.read_bytes()
    if shipped.endswith(".css"):
        text, count = FONT_FACE.subn("", data.decode("utf-8"))
        if count == 0:
            raise SystemExit("the stylesheet has no @font-face rule to take out: check ship.py")
        data = text.encode("utf-8")
    return data


def main() -> None:
    """Replace the shipped copy with the installed package's files and write the manifest."""
    version = json.loads((PACKAGE / "package.json").read_text("utf-8"))["version"]
    if version != _pinned_version():
        raise SystemExit(f"node_modules holds govuk-frontend {version}; run npm ci first")
    if TARGET.exists():
        shutil.rmtree(TARGET)
    hashes: dict[str, str] = {}
    for source, shipped in _files():
        destination = TARGET / shipped
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(_shipped_bytes(source, shipped))
        hashes[shipped] = hashlib.sha256(destination.read_bytes()).hexdigest()
    manifest = {"package": "govuk-frontend", "version": version, "files": hashes}
    (TARGET / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    sys.stdout.write(f"shipped govuk-frontend {version}: {len(hashes)} files in {TARGET}\n")


if __name__ == "__main__":
    main()
