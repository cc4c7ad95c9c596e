"""The core packages never touch the network, processes or files (STYLE.md: sans-I/O core)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = [
    "exchange/envelope",
    "exchange/keys",
    "exchange/receipts",
    "exchange/ledger",
    "exchange/records",
]
CORE += ["exchange/policy"]
FORBIDDEN_MODULES = {"asyncio", "aiohttp", "aiosmtplib", "socket", "ssl", "subprocess", "pathlib"}
#: Modules whose ``open`` attribute opens a file (``PayloadCipher.open`` and the like are fine).
FILE_OPENERS = {"io", "os", "builtins", "codecs", "gzip", "bz2", "lzma", "tempfile"}


def _core_files() -> list[Path]:
    files: list[Path] = []
    for package in CORE:
        path = ROOT / package
        if path.is_dir():
            files += sorted(path.rglob("*.py"))
        elif path.with_suffix(".py").is_file():
            files.append(path.with_suffix(".py"))
    return files


def _violations(source: str) -> list[str]:
    """Return a description of every forbidden import or file opening in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            names = []
        found += [
            f"line {node.lineno}: imports {name}"
            for name in names
            if name.split(".")[0] in FORBIDDEN_MODULES
        ]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            found.append(f"line {node.lineno}: calls open()")
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in {"open", "fdopen", "NamedTemporaryFile", "TemporaryFile"}
            and isinstance(func.value, ast.Name)
            and func.value.id in FILE_OPENERS
        ):
            found.append(f"line {node.lineno}: calls {func.value.id}.{func.attr}()")
        elif isinstance(func, ast.Name) and func.id in {"__import__", "import_module"}:
            found.append(f"line {node.lineno}: imports dynamically")
    return found


def test_core_files_exist() -> None:
    """The walk finds the envelope and keys packages (so an empty walk cannot pass)."""
    names = {p.relative_to(ROOT).as_posix() for p in _core_files()}
    assert "exchange/envelope/reader.py" in names
    assert "exchange/keys/keypairs.py" in names


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_core_module_is_pure(path: Path) -> None:
    """A core module imports no network, process or path module and opens no file."""
    assert _violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import socket as s",
        "from ssl import SSLContext",
        "from aiohttp.web import Application",
        "import subprocess",
        "from pathlib import Path",
        "open('x')",
        "data = io.open('x', 'rb')",
        "fd = os.open('x', 0)",
    ],
)
def test_checker_catches_impure_code(source: str) -> None:
    """The checker itself flags each kind of impurity it looks for."""
    assert _violations(source)


def test_checker_allows_methods_named_open() -> None:
    """Methods called open (a cipher's, an opener's) are not file openings."""
    source = "cipher.open(0, ct, final=False)\nself.open()\nimport os\nos.urandom(8)"
    assert _violations(source) == []
