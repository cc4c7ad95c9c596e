"""Copy the built files the web pages serve from the pinned npm packages into the Python package.

``make assets`` runs ``npm ci`` here (the versions pinned in ``package.json`` and
``package-lock.json``) and then this script, which copies into ``exchange/web/static/govuk/``:

- from GOV.UK Frontend (``node_modules/govuk-frontend/dist/govuk/``), the stylesheet and the
  JavaScript module, flattened so that the stylesheet's ``/assets/images/...`` paths resolve;
- from GOV.UK's accessible autocomplete (``node_modules/accessible-autocomplete/dist/``), its
  built script and stylesheet, which the recipients page alone loads.

The GDS Transport font and the crown are for services on GOV.UK only, and this service is
not one: GOV.UK Frontend's ``@font-face`` rules are taken out (so its font stack falls back
to Arial, as GOV.UK Frontend's own setting for services off GOV.UK does) and neither the
fonts nor the crown icons are shipped. The one image the stylesheet itself names (the
crest of the GOV.UK footer's copyright logo, which no page here shows) is shipped so that
every address in the stylesheet resolves. Source maps are left out: the pages do not need
them.

It then writes ``exchange/web/static/MANIFEST.json``: each package's version and, for every
file served under ``/assets/``, where it comes from (a package, or ``own`` for the few
files of this project's own kept in ``exchange/web/static/`` itself, such as
``recipients.js``) and its SHA-256. A test checks the versions against the pins and the
hashes against the files, so that a hand-edited asset or a stale copy fails. After editing
one of our own files, ``python3 web-assets/ship.py --own`` rehashes just those (no Node
needed), keeping the packages' entries as they are. Only the standard library is used, so
no virtual environment is needed to run it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "exchange" / "web" / "static"
#: Where the packages' files go; our own files sit in STATIC itself.
TARGET = STATIC / "govuk"
MANIFEST = STATIC / "MANIFEST.json"
#: What a file of this project's own (not from a package) is marked as coming from.
OWN = "own"

#: What the pages use of each package, as (path in its ``dist/``, path under ``/assets/``).
SHIPPED: dict[str, tuple[tuple[str, str], ...]] = {
    "govuk-frontend": (
        ("govuk/govuk-frontend.min.css", "govuk-frontend.min.css"),
        ("govuk/govuk-frontend.min.js", "govuk-frontend.min.js"),
        ("govuk/assets/images/govuk-crest.svg", "images/govuk-crest.svg"),
    ),
    "accessible-autocomplete": (
        ("accessible-autocomplete.min.js", "accessible-autocomplete.min.js"),
        ("accessible-autocomplete.min.css", "accessible-autocomplete.min.css"),
    ),
}
#: Our own files in ``exchange/web/static/``, served under ``/assets/`` by the same name.
OWN_FILES = ("recipients.js", "recipients.css")
#: GOV.UK Frontend's font faces (GDS Transport, for GOV.UK only), taken out when shipped.
FONT_FACE = re.compile(r"@font-face\{[^}]*\}")


def _pinned_version(package: str) -> str:
    """Return the version ``package.json`` pins for ``package``, refusing a range."""
    pin = json.loads((HERE / "package.json").read_text("utf-8"))["dependencies"][package]
    if not pin[:1].isdigit():
        raise SystemExit(f"package.json must pin {package} exactly, not {pin!r}")
    return str(pin)


def _installed_version(package: str) -> str:
    """Return the version of ``package`` in ``node_modules``, refusing one not pinned."""
    path = HERE / "node_modules" / package / "package.json"
    version = str(json.loads(path.read_text("utf-8"))["version"])
    if version != _pinned_version(package):
        raise SystemExit(f"node_modules holds {package} {version}; run npm ci first")
    return version


def _shipped_bytes(package: str, source: Path, shipped: str) -> bytes:
    """Return what is shipped of ``source``: GOV.UK Frontend's CSS without its font faces."""
    data = source.read_bytes()
    if package == "govuk-frontend" and shipped.endswith(".css"):
        text, count = FONT_FACE.subn("", data.decode("utf-8"))
        if count == 0:
            raise SystemExit("the stylesheet has no @font-face rule to take out: check ship.py")
        data = text.encode("utf-8")
    return data


def _entry(origin: str, path: Path) -> dict[str, str]:
    return {"from": origin, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _own_entries() -> dict[str, dict[str, str]]:
    """Return the manifest's entries for our own files."""
    return {name: _entry(OWN, STATIC / name) for name in OWN_FILES}


def _write(packages: dict[str, str], files: dict[str, dict[str, str]]) -> None:
    manifest = {"packages": packages, "files": dict(sorted(files.items()))}
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")


def ship_packages() -> None:
    """Replace the shipped copy with the installed packages' files and write the manifest."""
    versions = {package: _installed_version(package) for package in SHIPPED}
    if TARGET.exists():
        shutil.rmtree(TARGET)
    files: dict[str, dict[str, str]] = {}
    for package, shipped_files in SHIPPED.items():
        dist = HERE / "node_modules" / package / "dist"
        for source, shipped in shipped_files:
            destination = TARGET / shipped
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(_shipped_bytes(package, dist / source, shipped))
            files[shipped] = _entry(package, destination)
    _write(versions, {**files, **_own_entries()})
    shipped_words = ", ".join(f"{package} {version}" for package, version in versions.items())
    sys.stdout.write(f"shipped {shipped_words}: {len(files)} files in {TARGET}\n")


def rehash_own() -> None:
    """Rewrite the manifest's entries for our own files, keeping the packages' as they are."""
    manifest = json.loads(MANIFEST.read_text("utf-8"))
    files = {k: v for k, v in manifest["files"].items() if v["from"] != OWN}
    _write(manifest["packages"], {**files, **_own_entries()})
    sys.stdout.write(f"rehashed our own files: {', '.join(OWN_FILES)}\n")


def main(argv: list[str]) -> None:
    """``ship.py``: ship the packages and our files; ``ship.py --own``: our files only."""
    if argv == ["--own"]:
        rehash_own()
    elif not argv:
        ship_packages()
    else:
        raise SystemExit("usage: ship.py [--own]")


if __name__ == "__main__":
    main(sys.argv[1:])
