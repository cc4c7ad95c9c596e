"""The project's documents stand on their own: every link resolves inside the repository.

Every Markdown file in the repository is read; each relative link target (anchors and
queries ignored) must name a file or folder inside the repository, and no document may
name the outside design notes (``DESIGN.md``, ``STYLE.md``, ``DOMAIN.md``) or a ``../shared``
folder. A repository path a document names in prose (``exchange/relay/server.py``) must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Folders that hold other projects' documents, or links to folders walked elsewhere.
SKIPPED = {".venv", "node_modules", ".git", "keys", "connectors", "build", "dist"}

#: Names of documents that live outside the repository; no document may point to them.
OUTSIDE_NAMES = re.compile(r"DESIGN\.md|STYLE\.md|DOMAIN\.md|\.\./shared\b")

#: An inline link or image, ``[text](target)`` or ``[text](<target> "title")``.
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")

#: A reference definition, ``[label]: target``.
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)

#: Fenced code blocks and inline code spans, whose brackets are not links.
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


#: A repository path named in prose: a top-level folder of this repository, then a file name
#: with an extension the repository uses. ``exchange/v1/...`` are signing labels, not paths.
NAMED_PATH = re.compile(
    r"(?<![\w./-])((?:docs|exchange|tests|config|bench|web-assets)/(?!v1/)[\w./-]*"
    r"\.(?:py|md|toml|yaml|json|js|html|css|txt|service))\b"
)


def markdown_files(root: Path = ROOT) -> list[Path]:
    """Return every ``*.md`` file under ``root``, skipping virtualenvs and vendored trees."""
    found: list[Path] = []
    for path in sorted(root.rglob("*.md")):
        parts = path.relative_to(root).parts
        if any(part in SKIPPED or part.endswith(".egg-info") for part in parts[:-1]):
            continue
        found.append(path)
    return found


def link_targets(text: str) -> list[str]:
    """Return the link targets of a Markdown text, code blocks and code spans left out."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Return the relative link targets in ``path`` that do not exist inside ``root``."""
    broken: list[str] = []
    for target in link_targets(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue  # an absolute URL (https:, mailto:) or an anchor in the same document
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        if not file_part:
            continue
        resolved = (root / file_part.lstrip("/")) if file_part.startswith("/") else None
        resolved = (resolved or path.parent / file_part).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            broken.append(target)
    return broken


def test_the_walk_finds_the_documents() -> None:
    """The walk sees the README and the docs folder, and nothing from the virtualenv."""
    files = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert {"README.md", "docs/architecture.md", "docs/node.md"} <= files
    assert not [name for name in files if name.startswith((".venv/", "node_modules/"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    """Each relative link in the document names a file or folder in the repository."""
    assert broken_links(path) == []


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_path_a_document_names_exists(path: Path) -> None:
    """A file of the repository named in the text (code spans included) exists."""
    text = path.read_text(encoding="utf-8")
    assert [name for name in NAMED_PATH.findall(text) if not (ROOT / name).exists()] == []


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_document_names_the_outside_design_notes(path: Path) -> None:
    """No document names DESIGN.md, STYLE.md or a ../shared folder."""
    text = path.read_text(encoding="utf-8")
    assert OUTSIDE_NAMES.findall(text) == []


def test_no_code_comment_points_to_the_outside_design_notes() -> None:
    """No docstring or comment in the package, tests or benchmarks names the outside notes."""
    named = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("exchange", "tests", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE_NAMES.search(line)
    ]
    assert named == []


@pytest.mark.parametrize(
    ("text", "broken"),
    [
        ("See [the design](../DESIGN.md#errors).", ["../DESIGN.md#errors"]),
        ("See [vectors](../../shared/vectors/).", ["../../shared/vectors/"]),
        ("[ref]: ../nowhere.md", ["../nowhere.md"]),
        ("See [the node](node.md#start) and [GOV.UK](https://www.gov.uk/).", []),
        ("`[not a link](missing.md)` and [an anchor](#here).", []),
        ("```\n[in a fence](missing.md)\n```\n", []),
    ],
)
def test_the_checker_catches_links_out_of_the_repository(
    tmp_path: Path, text: str, broken: list[str]
) -> None:
    """The checker flags a missing or outside target and lets URLs, anchors and code pass."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "node.md").write_text("# Node\n", encoding="utf-8")
    (tmp_path / "shared" / "vectors").mkdir(parents=True)  # exists, but outside the repository
    document = root / "docs" / "page.md"
    document.write_text(text, encoding="utf-8")
    assert broken_links(document, root) == broken
