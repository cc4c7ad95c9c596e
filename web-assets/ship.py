"""Copy the built GOV.UK Frontend files the web pages serve into the Python package.

``make assets`` runs ``npm ci`` here (the version pinned in ``package.json`` and
``package-lock.json``) and then this script, which copies the stylesheet, the JavaScript
module, the fonts, the images the page template and the stylesheet reference, and the web
app manifest from ``node_modules/govuk-frontend/dist/govuk/`` into
``exchange/web/static/govuk/``, flattened so that the stylesheet's ``/assets/fonts/...`` and
``/assets/images/...`` paths resolve. It then writes ``MANIFEST.json`` there: the package's
version and the SHA-256 of every shipped file, which a test checks against the pin and the
files, so that a hand-edited asset or a stale copy fails. Source maps are left out: the
pages do not need them. Only the standard library is used, so no virtual environment is
needed to run it.
"""

from __future__ import annotations

import hashlib
import json
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
    ("assets/manifest.json", "manifest.json"),
)
#: Folders copied whole: the fonts and images the stylesheet, template and manifest name.
SHIPPED_FOLDERS = (("assets/fonts", "fonts"), ("assets/images", "images"))
#: Images no page references (the Open Graph image needs an absolute URL the node lacks).
LEFT_OUT = frozenset({"images/govuk-opengraph-image.png"})


def _pinned_version() -> str:
    """Return the version ``package.json`` pins, refusing a range."""
    pin = json.loads((HERE / "package.json").read_text("utf-8"))["dependencies"]["govuk-frontend"]
    if not pin[:1].isdigit():
        raise SystemExit(f"package.json must pin govuk-frontend exactly, not {pin!r}")
    return str(pin)


def _files() -> list[tuple[Path, str]]:
    """Return every file to ship, as (source, path under ``/assets/``)."""
    files = [(DIST / source, target) for source, target in SHIPPED]
    for source, target in SHIPPED_FOLDERS:
        for path in sorted((DIST / source).iterdir()):
            shipped = f"{target}/{path.name}"
            if path.is_file() and shipped not in LEFT_OUT:
                files.append((path, shipped))
    return files


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
        shutil.copyfile(source, destination)
        hashes[shipped] = hashlib.sha256(destination.read_bytes()).hexdigest()
    manifest = {"package": "govuk-frontend", "version": version, "files": hashes}
    (TARGET / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    sys.stdout.write(f"shipped govuk-frontend {version}: {len(hashes)} files in {TARGET}\n")


if __name__ == "__main__":
    main()
