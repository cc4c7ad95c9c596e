"""The shipped GOV.UK Frontend files match the pinned version and their manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from exchange.web.assets import Assets, AssetsError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "exchange" / "web" / "static" / "govuk"
MANIFEST = json.loads((SHIPPED / "MANIFEST.json").read_text("utf-8"))


def test_manifest_version_is_the_pinned_version() -> None:
    """MANIFEST.json names the version package.json pins exactly."""
    pinned = json.loads((ROOT / "web-assets" / "package.json").read_text("utf-8"))
    assert pinned["dependencies"]["govuk-frontend"] == MANIFEST["version"]


def test_manifest_version_is_the_locked_version() -> None:
    """MANIFEST.json names the version package-lock.json resolved."""
    lock = json.loads((ROOT / "web-assets" / "package-lock.json").read_text("utf-8"))
    assert lock["packages"]["node_modules/govuk-frontend"]["version"] == MANIFEST["version"]


def test_every_shipped_file_matches_its_hash() -> None:
    """Each file the manifest names has the SHA-256 it records."""
    for name, digest in MANIFEST["files"].items():
        assert hashlib.sha256((SHIPPED / name).read_bytes()).hexdigest() == digest, name


def test_every_shipped_file_is_in_the_manifest() -> None:
    """No file sits in the shipped folder without a line in the manifest."""
    present = {
        path.relative_to(SHIPPED).as_posix() for path in SHIPPED.rglob("*") if path.is_file()
    }
    assert present - {"MANIFEST.json"} == set(MANIFEST["files"])


def test_files_the_stylesheet_names_are_shipped() -> None:
    """Every /assets/ URL inside the stylesheet resolves to a shipped file."""
    css = (SHIPPED / "govuk-frontend.min.css").read_text("utf-8")
    named = {part.split(")")[0] for part in css.split("url(/assets/")[1:]}
    assert named
    assert named <= set(MANIFEST["files"])


def test_load_refuses_an_edited_asset(tmp_path: Path) -> None:
    """Loading a copy with one byte changed in a shipped file raises AssetsError."""
    copy = tmp_path / "govuk"
    shutil.copytree(SHIPPED, copy)
    css = copy / "govuk-frontend.min.css"
    css.write_bytes(css.read_bytes() + b" ")
    with pytest.raises(AssetsError, match=r"govuk-frontend\.min\.css"):
        Assets.load(copy)


def test_load_reads_the_package_data() -> None:
    """The installed package's assets load, with the manifest's version."""
    assets = Assets.load()
    assert assets.version == MANIFEST["version"]
    assert set(assets.files) == set(MANIFEST["files"])


def test_url_names_the_version() -> None:
    """An asset's URL carries the version, so that a new version is fetched afresh."""
    assets = Assets.load()
    assert assets.url("govuk-frontend.min.css") == (
        f"/assets/govuk-frontend.min.css?v={MANIFEST['version']}"
    )


def test_url_of_an_unknown_asset_is_refused() -> None:
    """Asking for the URL of a file that is not shipped raises ValueError."""
    with pytest.raises(ValueError, match="shipped asset"):
        Assets.load().url("govuk-frontend.css")
