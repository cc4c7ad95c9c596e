"""The shipped web assets match the pinned npm packages and their manifest.

``exchange/web/static/MANIFEST.json`` names each package's version (GOV.UK Frontend, and the
accessible autocomplete the recipients page uses) and, for every file served, where it comes
from (a package, or ``own`` for this project's own files) and its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from exchange.web.assets import OWN, Assets, AssetsError

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "exchange" / "web" / "static"
SHIPPED = STATIC / "govuk"
MANIFEST = json.loads((STATIC / "MANIFEST.json").read_text("utf-8"))
PACKAGES = ("govuk-frontend", "accessible-autocomplete")


def _path(name: str) -> Path:
    """Return where a file the manifest names sits: ours in static/, packages' in govuk/."""
    return (STATIC if MANIFEST["files"][name]["from"] == OWN else SHIPPED) / name


def test_manifest_names_each_package() -> None:
    """MANIFEST.json names the two packages, and every file comes from one of them or is ours."""
    assert set(MANIFEST["packages"]) == set(PACKAGES)
    assert {entry["from"] for entry in MANIFEST["files"].values()} == {*PACKAGES, OWN}


@pytest.mark.parametrize("package", PACKAGES)
def test_manifest_version_is_the_pinned_version(package: str) -> None:
    """MANIFEST.json names the version package.json pins exactly."""
    pinned = json.loads((ROOT / "web-assets" / "package.json").read_text("utf-8"))
    assert pinned["dependencies"][package] == MANIFEST["packages"][package]


@pytest.mark.parametrize("package", PACKAGES)
def test_manifest_version_is_the_locked_version(package: str) -> None:
    """MANIFEST.json names the version package-lock.json resolved."""
    lock = json.loads((ROOT / "web-assets" / "package-lock.json").read_text("utf-8"))
    locked = lock["packages"][f"node_modules/{package}"]["version"]
    assert locked == MANIFEST["packages"][package]


def test_every_shipped_file_matches_its_hash() -> None:
    """Each file the manifest names has the SHA-256 it records."""
    for name, entry in MANIFEST["files"].items():
        assert hashlib.sha256(_path(name).read_bytes()).hexdigest() == entry["sha256"], name


def test_every_shipped_file_is_in_the_manifest() -> None:
    """No file sits in the static folders without a line in the manifest."""
    packaged = {p.relative_to(SHIPPED).as_posix() for p in SHIPPED.rglob("*") if p.is_file()}
    own = {p.name for p in STATIC.iterdir() if p.is_file()} - {"MANIFEST.json"}
    assert packaged == {n for n, e in MANIFEST["files"].items() if e["from"] != OWN}
    assert own == {n for n, e in MANIFEST["files"].items() if e["from"] == OWN}


def test_the_autocomplete_and_our_recipients_files_are_shipped() -> None:
    """The autocomplete's built script and stylesheet, and our module and stylesheet."""
    files = MANIFEST["files"]
    assert files["accessible-autocomplete.min.js"]["from"] == "accessible-autocomplete"
    assert files["accessible-autocomplete.min.css"]["from"] == "accessible-autocomplete"
    assert files["recipients.js"]["from"] == OWN
    assert files["recipients.css"]["from"] == OWN


def test_our_script_calls_the_autocomplete_on_the_select() -> None:
    """recipients.js enhances the select with the library: no inline script does."""
    script = (STATIC / "recipients.js").read_text("utf-8")
    assert "enhanceSelectElement" in script
    assert "getElementById('f-org')" in script


def test_files_the_stylesheet_names_are_shipped() -> None:
    """Every /assets/ URL inside the stylesheet resolves to a shipped file."""
    css = (SHIPPED / "govuk-frontend.min.css").read_text("utf-8")
    named = {part.split(")")[0] for part in css.split("url(/assets/")[1:]}
    assert named
    assert named <= set(MANIFEST["files"])


def test_load_refuses_an_edited_asset(tmp_path: Path) -> None:
    """Loading a copy with one byte changed in a package's file raises AssetsError."""
    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy)
    css = copy / "govuk" / "govuk-frontend.min.css"
    css.write_bytes(css.read_bytes() + b" ")
    with pytest.raises(AssetsError, match=r"govuk-frontend\.min\.css"):
        Assets.load(copy)


def test_load_refuses_an_edited_file_of_our_own(tmp_path: Path) -> None:
    """Our own files are checked too: an edit without rehashing (ship.py --own) is refused."""
    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy)
    script = copy / "recipients.js"
    script.write_bytes(script.read_bytes() + b"\n")
    with pytest.raises(AssetsError, match=r"recipients\.js"):
        Assets.load(copy)


def test_load_reads_the_package_data() -> None:
    """The installed package's assets load, with the manifest's versions and files."""
    assets = Assets.load()
    assert assets.packages == MANIFEST["packages"]
    assert set(assets.files) == set(MANIFEST["files"])


def test_url_names_the_file_hash() -> None:
    """An asset's URL carries part of its hash, so that a changed file is fetched afresh."""
    assets = Assets.load()
    digest = MANIFEST["files"]["recipients.js"]["sha256"]
    assert assets.url("recipients.js") == f"/assets/recipients.js?v={digest[:16]}"


def test_url_of_an_unknown_asset_is_refused() -> None:
    """Asking for the URL of a file that is not shipped raises ValueError."""
    with pytest.raises(ValueError, match="shipped asset"):
        Assets.load().url("govuk-frontend.css")
