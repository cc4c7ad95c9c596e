"""The pure core never reaches I/O, however indirectly (docs/architecture.md §2, the pure layers).

PURE means bytes, values, keys and an injected clock and randomness in, values out: no
sockets, files, threads, databases, wall clocks or async. This module checks the rule
statically, without importing the code it checks. For every module of the pure core it reads
the source with :mod:`ast`, follows each first-party import transitively (absolute and
relative, ``from package import submodule``, imports inside functions, and the package
``__init__`` modules an import executes on the way), and refuses: a first-party module
outside the pure core (the store, service, workers, http, node, relay, demo and cli layers,
the concrete connectors, ``exchange.files``, ``exchange.logs``, ``exchange.config``), a
standard-library or third-party I/O module, a dynamic import, a wall clock, a file opening
and randomness drawn instead of injected. A violation reads as ``module -> import -> ... ->
forbidden thing`` so the chain that brings the I/O in is visible.

Imports inside ``if TYPE_CHECKING:`` are neither followed nor refused: they never execute,
so they cannot do I/O, and a type-only reference to a port is how a pure module names what
it is given. The few places where pure code legitimately draws randomness as a default, or
reads package data, are listed one by one in :data:`ALLOWANCES` with the reason, and a
randomness allowance holds only where the value is a fallback for one the caller did not
inject. New modules in the guarded packages are picked up by walking their folders.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Packages whose every module is pure; their folders are walked, so new modules count.
PURE_PACKAGES = (
    "exchange.envelope",
    "exchange.receipts",
    "exchange.ledger",
    "exchange.records",
    "exchange.policy",
    "exchange.keys",
    "exchange.sharing",
    "exchange.outbox",
    "exchange.peerauth",
    "exchange.auth",
)
#: Single pure modules. ``exchange`` and ``exchange.connectors`` are the package
#: ``__init__`` files that importing anything below them executes; the connector port
#: (``exchange.connectors.base``: a protocol and its outcome values) is pure, the concrete
#: connectors beside it are not.
PURE_MODULES = (
    "exchange",
    "exchange.model",
    "exchange.words",
    "exchange.connectors",
    "exchange.connectors.base",
)
#: Modules inside a pure package that are adapters, not core, with the reason.
NOT_PURE = {
    "exchange.peerauth.aiohttp_glue": "the aiohttp middleware that applies peer authentication",
}

#: First-party packages and modules that do I/O; named in the message when one is reached.
IO_LAYERS = (
    "exchange.cli",
    "exchange.demo",
    "exchange.node",
    "exchange.web",
    "exchange.http",
    "exchange.workers",
    "exchange.relay",
    "exchange.service",
    "exchange.store",
    "exchange.connectors",
    "exchange.files",
    "exchange.logs",
    "exchange.config",
)

#: Standard-library modules that open sockets, files, threads, processes or databases, or
#: log: importing one is a violation whatever is used from it.
IO_MODULES = frozenset(
    {
        "_thread",
        "asyncio",
        "concurrent",
        "dbm",
        "fileinput",
        "ftplib",
        "glob",
        "http.client",
        "http.cookiejar",
        "http.server",
        "imaplib",
        "logging",
        "mmap",
        "multiprocessing",
        "pathlib",
        "poplib",
        "sched",
        "select",
        "selectors",
        "shelve",
        "shutil",
        "signal",
        "smtplib",
        "socket",
        "socketserver",
        "sqlite3",
        "ssl",
        "subprocess",
        "tempfile",
        "threading",
        "urllib.request",
        "urllib.response",
        "webbrowser",
        "wsgiref",
        "xmlrpc",
    }
)
#: Third-party libraries that do I/O: importing one is a violation.
IO_THIRD_PARTY = frozenset(
    {
        "aiohttp",
        "aiosmtpd",
        "aiosmtplib",
        "asyncpg",
        "httpx",
        "jinja2",
        "psycopg",
        "requests",
        "structlog",
    }
)
#: Third-party libraries known to be pure computations (cryptography, parsing, schema
#: checks). Any other third-party import is refused until someone adds it here knowingly.
PURE_THIRD_PARTY = frozenset(
    {
        "cryptography",
        "http_message_signatures",
        "http_sf",
        "jsonschema",
        # JOSE for single sign-on's ID tokens (exchange/auth/oidc.py), which always passes
        # the time in: the claims check reads the wall clock only when given none.
        "joserfc",
        "nacl",
        "typing_extensions",
        # py_webauthn: parses and verifies WebAuthn answers (JSON, CBOR, signatures); its one
        # use of randomness, a default challenge, is never reached (ours is injected).
        "webauthn",
    }
)

WALL_CLOCK = "wall clock"
RANDOMNESS = "randomness not injected"
FILE_OPENING = "file opening"
DYNAMIC_IMPORT = "dynamic import"
OS_IO = "operating-system I/O"
CONSOLE = "console I/O"


@dataclass(frozen=True)
class Members:
    """The members of a harmless module that are not: all but ``allowed``, or just ``only``."""

    what: str
    only: frozenset[str] | None = None
    allowed: frozenset[str] = frozenset()

    def forbids(self, member: str) -> bool:
        """Say whether using ``member`` of the module is a violation."""
        if self.only is not None:
            return member in self.only
        return member not in self.allowed


#: Built-in functions that open files, import or run code dynamically, or use the console.
BUILTIN_NAMES = frozenset({"open", "__import__", "exec", "eval", "print", "input", "breakpoint"})
#: Modules that are fine to import but have members that read a clock, draw randomness,
#: open files or import dynamically; keyed by the module (or class) the member belongs to.
FORBIDDEN_MEMBERS = {
    "time": Members(WALL_CLOCK, allowed=frozenset({"struct_time"})),
    "datetime.datetime": Members(WALL_CLOCK, only=frozenset({"now", "utcnow", "today"})),
    "datetime.date": Members(WALL_CLOCK, only=frozenset({"today"})),
    "random": Members(RANDOMNESS, allowed=frozenset({"Random"})),
    "secrets": Members(RANDOMNESS),
    "uuid": Members(RANDOMNESS, only=frozenset({"uuid1", "uuid4"})),
    "os": Members(OS_IO, allowed=frozenset({"PathLike", "fspath"})),
    "sys": Members(CONSOLE, only=frozenset({"stdin", "stdout", "stderr", "exit"})),
    "io": Members(FILE_OPENING, only=frozenset({"open", "open_code", "FileIO"})),
    "codecs": Members(FILE_OPENING, only=frozenset({"open"})),
    "gzip": Members(FILE_OPENING, only=frozenset({"open"})),
    "bz2": Members(FILE_OPENING, only=frozenset({"open"})),
    "lzma": Members(FILE_OPENING, only=frozenset({"open"})),
    "importlib": Members(
        DYNAMIC_IMPORT, only=frozenset({"import_module", "__import__", "reload", "resources"})
    ),
    "importlib.resources": Members(FILE_OPENING),
    "builtins": Members(DYNAMIC_IMPORT, only=BUILTIN_NAMES),
}
#: What each built-in function is, for the message (``builtins.open`` is a file opening).
BUILTIN_KINDS = {"open": FILE_OPENING, "print": CONSOLE, "input": CONSOLE}
#: Members of ``os`` that are randomness rather than other operating-system I/O.
OS_RANDOMNESS = frozenset({"urandom", "getrandom"})


@dataclass(frozen=True)
class Allowance:
    """One use of a forbidden name that a pure module legitimately needs, with the reason.

    ``fallback_only`` allowances hold only where the value is drawn because the caller
    injected none: a parameter's default, or the branch of ``if x is None`` (or
    ``... if x is None else x``) that fills ``x`` in.
    """

    module: str
    name: str
    reason: str
    fallback_only: bool = True


ALLOWANCES = (
    Allowance(
        "exchange.envelope.seal",
        "os.urandom",
        "sealing takes its random source as a parameter; the operating system's is only the "
        "default, and the test vectors pass their own",
    ),
    Allowance(
        "exchange.keys.keyfile",
        "secrets.token_bytes",
        "the key file's salt and nonce are parameters; fresh bytes are drawn only when the "
        "caller passes none",
    ),
    Allowance(
        "exchange.peerauth.signatures",
        "secrets.token_bytes",
        "the request nonce is a parameter; fresh bytes are drawn only when the caller passes none",
    ),
    Allowance(
        "exchange.records.kinds",
        "importlib.resources",
        "reads the record schemas shipped inside the package: read-only package data fixed "
        "at install time like the code itself, not an input",
        fallback_only=False,
    ),
)


@dataclass
class ModuleFacts:
    """What one module's source says: its runtime imports and its local violations."""

    imports: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    allowances_used: set[Allowance] = field(default_factory=set)


def _is_type_checking(test: ast.expr) -> bool:
    """Say whether an ``if`` test is ``TYPE_CHECKING`` (bare or ``typing.TYPE_CHECKING``)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _is_none_test(test: ast.expr) -> bool:
    """Say whether an expression is ``<something> is None``."""
    return (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Is)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


class Checker:
    """Computes the transitive imports of modules under ``root`` and what they break.

    ``first_party`` is the top-level package name; ``pure`` is the set of dotted module
    names that are allowed to be reached (and are themselves checked).
    """

    def __init__(
        self,
        root: Path,
        first_party: str,
        pure: set[str],
        allowances: tuple[Allowance, ...] = ALLOWANCES,
    ) -> None:
        self.root = root
        self.first_party = first_party
        self.pure = pure
        self.allowances = allowances
        self._facts: dict[str, ModuleFacts] = {}

    # Finding modules.

    def path_of(self, module: str) -> Path | None:
        """Return the source file of a first-party module or package, if there is one."""
        base = self.root.joinpath(*module.split("."))
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
        return None

    def _is_package(self, module: str) -> bool:
        return self.root.joinpath(*module.split("."), "__init__.py").is_file()

    def _is_first_party(self, name: str) -> bool:
        return name.split(".", maxsplit=1)[0] == self.first_party

    # Reading one module.

    def facts(self, module: str) -> ModuleFacts:
        """Return (and cache) the runtime imports and local violations of one module."""
        if module not in self._facts:
            path = self.path_of(module)
            assert path is not None, f"{module} has no source file under {self.root}"
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            self._facts[module] = self._read(module, tree)
        return self._facts[module]

    def _read(self, module: str, tree: ast.Module) -> ModuleFacts:
        facts = ModuleFacts()
        parents: dict[ast.AST, ast.AST] = {}
        type_only: set[ast.AST] = set()
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                for statement in node.body:
                    type_only.update(ast.walk(statement))
        bindings = self._bindings(module, tree)
        defined = self._defined_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                if node not in type_only:
                    self._read_import(module, node, facts)
            elif isinstance(node, ast.Attribute | ast.Name) and isinstance(node.ctx, ast.Load):
                if isinstance(parents.get(node), ast.Attribute):
                    continue  # The outermost attribute of a chain is checked, with its prefixes.
                for qualified in self._qualified_prefixes(node, bindings, defined):
                    self._check_name(module, qualified, node, parents, facts)
        return facts

    def _bindings(self, module: str, tree: ast.Module) -> dict[str, str]:
        """Map each name an import binds (anywhere in the module) to what it refers to."""
        bindings: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        bindings[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        bindings[top] = top
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(module, node)
                for alias in node.names:
                    if alias.name != "*":
                        bindings[alias.asname or alias.name] = f"{source}.{alias.name}"
        return bindings

    @staticmethod
    def _defined_names(tree: ast.Module) -> set[str]:
        """Return names the module defines itself (so a local ``open`` is not the builtin)."""
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
        return names

    def _absolute(self, module: str, node: ast.ImportFrom) -> str:
        """Return the absolute module a ``from ... import`` reads from."""
        if node.level == 0:
            return node.module or ""
        package = module if self._is_package(module) else module.rpartition(".")[0]
        parts = package.split(".")
        base = parts[: len(parts) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def _read_import(
        self, module: str, node: ast.Import | ast.ImportFrom, facts: ModuleFacts
    ) -> None:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            source = self._absolute(module, node)
            targets = [source]
            if self._is_first_party(source):
                # ``from package import name`` imports the submodule ``package.name`` if
                # there is one; otherwise ``name`` is an attribute of the package.
                targets += [
                    f"{source}.{alias.name}"
                    for alias in node.names
                    if self.path_of(f"{source}.{alias.name}") is not None
                ]
        for target in targets:
            if self._is_first_party(target):
                facts.imports.append(target)
            else:
                problem = self._external_problem(target)
                if problem:
                    facts.violations.append(f"{target} ({problem}, line {node.lineno})")

    @staticmethod
    def _external_problem(target: str) -> str | None:
        """Say what is wrong with importing a standard-library or third-party module."""
        top = target.split(".", maxsplit=1)[0]
        parts = target.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if top in sys.stdlib_module_names:
            return "standard-library I/O module" if prefixes & IO_MODULES else None
        if top in IO_THIRD_PARTY:
            return "third-party I/O library"
        if top in PURE_THIRD_PARTY:
            return None
        return "third-party module not known to be pure (see PURE_THIRD_PARTY)"

    # Names used.

    def _qualified_prefixes(
        self, node: ast.Attribute | ast.Name, bindings: dict[str, str], defined: set[str]
    ) -> Iterator[str]:
        """Yield the qualified name of a dotted expression and of each shorter prefix."""
        attributes: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            attributes.insert(0, current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            return
        if current.id in bindings:
            head = bindings[current.id]
        elif current.id not in defined and current.id in BUILTIN_NAMES:
            head = f"builtins.{current.id}"
        else:
            return
        qualified = head
        yield qualified
        for attribute in attributes:
            qualified = f"{qualified}.{attribute}"
            yield qualified

    def _check_name(
        self,
        module: str,
        qualified: str,
        node: ast.AST,
        parents: dict[ast.AST, ast.AST],
        facts: ModuleFacts,
    ) -> None:
        owner, _, member = qualified.rpartition(".")
        rule = FORBIDDEN_MEMBERS.get(owner)
        if rule is None or not rule.forbids(member):
            return
        for allowance in self.allowances:
            if allowance.module != module:
                continue
            if qualified != allowance.name and not qualified.startswith(allowance.name + "."):
                continue
            if allowance.fallback_only and not self._is_fallback(node, parents):
                continue
            facts.allowances_used.add(allowance)
            return
        what = rule.what
        if owner == "os" and member in OS_RANDOMNESS:
            what = RANDOMNESS
        elif owner == "builtins":
            what = BUILTIN_KINDS.get(member, DYNAMIC_IMPORT)
        message = f"{qualified} ({what}, line {getattr(node, 'lineno', '?')})"
        if message not in facts.violations:
            facts.violations.append(message)

    @staticmethod
    def _is_fallback(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
        """Say whether ``node`` is evaluated only when the caller injected no value."""
        child, parent = node, parents.get(node)
        while parent is not None:
            if isinstance(parent, ast.arguments) and (
                child in parent.defaults or child in parent.kw_defaults
            ):
                return True
            if isinstance(parent, ast.IfExp) and child is parent.body:
                return _is_none_test(parent.test)
            if isinstance(parent, ast.If) and child in parent.body:
                return _is_none_test(parent.test)
            child, parent = parent, parents.get(parent)
        return False

    # The transitive walk.

    def _executed(self, module: str) -> list[str]:
        """Return the modules importing ``module`` executes: its parent packages, then it."""
        parts = module.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]

    def violations(self, start: str) -> list[str]:
        """Return every violation reachable from ``start``, each as a chain of imports."""
        found: list[str] = []
        chains: dict[str, list[str]] = {start: [start]}
        queue = deque([start])
        while queue:
            module = queue.popleft()
            chain = chains[module]
            facts = self.facts(module)
            found += [" -> ".join([*chain, violation]) for violation in facts.violations]
            for imported in facts.imports:
                for reached in self._executed(imported):
                    if reached in chains or self.path_of(reached) is None:
                        continue
                    chains[reached] = [*chain, reached]
                    if reached in self.pure:
                        queue.append(reached)
                    else:
                        found.append(" -> ".join([*chain, self._layer_message(reached)]))
        return found

    def _layer_message(self, module: str) -> str:
        for layer in IO_LAYERS:
            if module == layer or module.startswith(layer + "."):
                return f"{module} (first-party I/O layer {layer})"
        return f"{module} (first-party module outside the pure core)"


def _modules_under(root: Path, package: str) -> list[str]:
    """Return the dotted names of every module in a package folder, walked recursively."""
    folder = root.joinpath(*package.split("."))
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def pure_modules() -> list[str]:
    """Return every guarded module of the project, discovered by walking the pure packages."""
    found = set(PURE_MODULES)
    for package in PURE_PACKAGES:
        found.update(_modules_under(ROOT, package))
    return sorted(found - set(NOT_PURE))


PURE = pure_modules()
CHECKER = Checker(ROOT, "exchange", set(PURE))


def test_walk_finds_the_pure_core() -> None:
    """The walk finds modules of every guarded package, so an empty walk cannot pass."""
    for expected in [
        "exchange.envelope.reader",
        "exchange.keys.keypairs",
        "exchange.model",
        "exchange.sharing.prepare",
        "exchange.outbox.routing",
        "exchange.peerauth.signatures",
        "exchange.connectors.base",
    ]:
        assert expected in PURE
    assert "exchange.peerauth.aiohttp_glue" not in PURE


@pytest.mark.parametrize("module", PURE)
def test_pure_module_reaches_no_io(module: str) -> None:
    """A pure module's transitive imports reach no I/O layer, I/O library, clock or file."""
    violations = CHECKER.violations(module)
    assert not violations, "\n".join(violations)


def test_every_allowance_is_still_needed() -> None:
    """Each documented allowance is used by its module, so a stale one cannot linger."""
    for module in PURE:
        CHECKER.violations(module)
    used = set().union(*(CHECKER.facts(module).allowances_used for module in PURE))
    assert set(ALLOWANCES) - used == set()


@pytest.mark.subprocess
def test_importing_the_new_layers_loads_no_io_module() -> None:
    """Importing sharing, outbox and model in a fresh interpreter loads no I/O module."""
    code = (
        "import sys, exchange.sharing, exchange.outbox, exchange.model\n"
        "import exchange.sharing.prepare, exchange.outbox.routing\n"
        "print(sorted(m for m in ('sqlite3', 'asyncio', 'aiohttp', 'ssl', 'socket') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


# The checker's own tests: a synthetic package in tmp_path with one deliberate violation.


def _check(
    tmp_path: Path, files: dict[str, str], also_pure: frozenset[str] = frozenset()
) -> list[str]:
    """Write a synthetic package and return the violations reachable from ``pkg.core.a``."""
    for name, source in {"pkg/__init__.py": "", "pkg/core/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    pure = set(_modules_under(tmp_path, "pkg.core")) | {"pkg"} | also_pure
    return Checker(tmp_path, "pkg", pure, allowances=()).violations("pkg.core.a")


def test_checker_follows_imports_transitively(tmp_path: Path) -> None:
    """A pure module that imports a pure module that imports sqlite3 is refused, with the chain."""
    found = _check(
        tmp_path, {"pkg/core/a.py": "import pkg.core.b", "pkg/core/b.py": "import sqlite3"}
    )
    assert found == ["pkg.core.a -> pkg.core.b -> sqlite3 (standard-library I/O module, line 1)"]


def test_checker_refuses_a_first_party_io_layer(tmp_path: Path) -> None:
    """A first-party module outside the pure set is refused (here: the service layer)."""
    found = _check(
        tmp_path,
        {
            "pkg/core/a.py": "from pkg.service import node_service",
            "pkg/service/node_service.py": "",
        },
    )
    assert found == [
        "pkg.core.a -> pkg.service.node_service (first-party module outside the pure core)"
    ]


def test_checker_resolves_relative_and_submodule_imports(tmp_path: Path) -> None:
    """``from . import b`` and ``from ..io import disk`` resolve to the modules they execute."""
    found = _check(
        tmp_path,
        {
            "pkg/core/a.py": "from . import b",
            "pkg/core/b.py": "from ..io import disk",
            "pkg/io/__init__.py": "",
            "pkg/io/disk.py": "",
        },
    )
    assert found == [
        "pkg.core.a -> pkg.core.b -> pkg.io (first-party module outside the pure core)",
        "pkg.core.a -> pkg.core.b -> pkg.io.disk (first-party module outside the pure core)",
    ]


def test_checker_follows_imports_inside_functions(tmp_path: Path) -> None:
    """An import inside a function executes when called, so it counts."""
    found = _check(tmp_path, {"pkg/core/a.py": "def f():\n    import asyncio\n"})
    assert found == ["pkg.core.a -> asyncio (standard-library I/O module, line 2)"]


def test_checker_skips_type_checking_imports(tmp_path: Path) -> None:
    """An import under ``if TYPE_CHECKING:`` never runs, so it is neither followed nor refused."""
    source = """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import sqlite3
            from pkg.service import Store
        else:
            import ssl
    """
    found = _check(tmp_path, {"pkg/core/a.py": source, "pkg/service.py": ""})
    assert found == ["pkg.core.a -> ssl (standard-library I/O module, line 7)"]


def test_checker_checks_parent_package_inits(tmp_path: Path) -> None:
    """Importing a pure submodule runs its package ``__init__``, whose imports are checked too."""
    found = _check(
        tmp_path,
        {
            "pkg/core/a.py": "import pkg.ports.base",
            "pkg/ports/__init__.py": "import sqlite3",
            "pkg/ports/base.py": "",
        },
        also_pure=frozenset({"pkg.ports", "pkg.ports.base"}),
    )
    assert found == ["pkg.core.a -> pkg.ports -> sqlite3 (standard-library I/O module, line 1)"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import sqlite3", "sqlite3 (standard-library I/O module"),
        ("import socket as s", "socket (standard-library I/O module"),
        ("from ssl import SSLContext", "ssl (standard-library I/O module"),
        ("from urllib.request import urlopen", "urllib.request (standard-library I/O module"),
        ("import http.client", "http.client (standard-library I/O module"),
        ("from pathlib import Path", "pathlib (standard-library I/O module"),
        ("import threading", "threading (standard-library I/O module"),
        ("from aiohttp.web import Application", "aiohttp.web (third-party I/O library"),
        ("import aiosmtplib", "aiosmtplib (third-party I/O library"),
        ("import somelib", "somelib (third-party module not known to be pure"),
        ("import time\nx = time.time()", "time.time (wall clock"),
        ("from time import monotonic\nx = monotonic()", "time.monotonic (wall clock"),
        ("from datetime import datetime\nx = datetime.now()", "datetime.datetime.now (wall clock"),
        ("import datetime\nx = datetime.datetime.utcnow()", "datetime.datetime.utcnow (wall clock"),
        ("from datetime import date\nx = date.today()", "datetime.date.today (wall clock"),
        (
            "import importlib\nm = importlib.import_module('aiohttp')",
            "importlib.import_module (dynamic",
        ),
        ("m = __import__('aiohttp')", "builtins.__import__ (dynamic import"),
        ("data = open('x').read()", "builtins.open (file opening"),
        ("import io\nf = io.open('x')", "io.open (file opening"),
        ("import os\nfd = os.open('x', 0)", "os.open (operating-system I/O"),
        ("import os\nx = os.environ['HOME']", "os.environ (operating-system I/O"),
        ("import os\nx = os.urandom(8)", "os.urandom (randomness not injected"),
        ("import random\nx = random.random()", "random.random (randomness not injected"),
        ("import secrets\nx = secrets.token_bytes(8)", "secrets.token_bytes (randomness not"),
        ("print('hello')", "builtins.print (console I/O"),
    ],
)
def test_checker_catches_each_kind_of_violation(tmp_path: Path, source: str, expected: str) -> None:
    """The checker refuses each kind of impurity, naming the forbidden thing and its kind."""
    found = _check(tmp_path, {"pkg/core/a.py": source})
    assert len(found) >= 1
    assert found[0].startswith(f"pkg.core.a -> {expected}")


def test_checker_allows_pure_code(tmp_path: Path) -> None:
    """Methods named open, injected clocks and seeded generators are not violations."""
    source = """
        import hashlib, random, struct
        from datetime import UTC, datetime
        def f(cipher, now: int, rng: random.Random, open=None):
            cipher.open(0, b"", final=False)
            moment = datetime.fromtimestamp(now, tz=UTC)
            return hashlib.sha256(struct.pack(">Q", rng.getrandbits(64))).digest(), moment
    """
    assert _check(tmp_path, {"pkg/core/a.py": source}) == []


def test_checker_allowance_holds_only_as_a_fallback(tmp_path: Path) -> None:
    """A randomness allowance covers a default for an injected value, not a bare draw."""
    source = """
        import os, secrets
        def seal(random=os.urandom):
            return random(8)
        def nonce(given=None):
            return secrets.token_bytes(8) if given is None else given
        def bare():
            return secrets.token_bytes(8)
    """
    (tmp_path / "pkg/core").mkdir(parents=True)
    for name in ("pkg/__init__.py", "pkg/core/__init__.py"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "pkg/core/a.py").write_text(textwrap.dedent(source), encoding="utf-8")
    allowances = (
        Allowance("pkg.core.a", "os.urandom", "injected with a default"),
        Allowance("pkg.core.a", "secrets.token_bytes", "injected with a default"),
    )
    checker = Checker(tmp_path, "pkg", {"pkg", "pkg.core", "pkg.core.a"}, allowances)
    assert checker.violations("pkg.core.a") == [
        "pkg.core.a -> secrets.token_bytes (randomness not injected, line 8)"
    ]
