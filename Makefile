# The two commands of the README's quick start: `make demo` and `make test`.
# Both build .venv from pyproject.toml on first use, so a fresh machine needs only
# Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench bench-postgresql vectors assets screenshots clean

$(BIN)/.installed-demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

$(BIN)/.installed-test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/.installed-demo $@

# The demo's NHS MESH leg runs against NHS England's MESH sandbox, which pins its own FastAPI
# and so lives in its own virtual environment: the demo installs it there on first use (the
# MESH tests use the same one), and says in one line that it skipped the leg if it cannot.
MESH_SANDBOX := .cache/mesh-sandbox-venv

demo: $(BIN)/.installed-demo
	$(BIN)/exchange demo --mesh-sandbox $(MESH_SANDBOX)

# The single sign-on tests start a real OpenID provider (npm oidc-provider, pinned in
# tests/oidc/package-lock.json) with Node.js; installed again only when the lock changes.
OIDC_PROVIDER := tests/oidc/node_modules/.installed

$(OIDC_PROVIDER): tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund
	touch $@

test: $(BIN)/.installed-test $(OIDC_PROVIDER)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The fast run: no sockets (not even loopback), no processes, no exhaustive property runs.
# tests/conftest.py fails any test that opens a socket or starts a process without the
# marker that says so, so a missing marker cannot slip a slow test into this run.
unit: $(BIN)/.installed-test
	$(BIN)/python -m pytest -m 'not network and not subprocess and not slow'

vectors: $(BIN)/.installed-test
	$(BIN)/python tests/vectors/generate.py
	$(BIN)/python tests/vectors/receipts_generate.py
	$(BIN)/python tests/vectors/records/generate.py

bench: $(BIN)/.installed-test
	$(BIN)/python bench/envelope.py
	$(BIN)/python bench/node.py
	$(BIN)/python bench/mesh.py
	$(BIN)/python bench/sign_in.py
	$(BIN)/python bench/outage.py
	$(BIN)/python bench/web_lists.py
	$(BIN)/python bench/peer_uploads.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/large_hops.py
	$(BIN)/python bench/large_files.py

# The node bench with the school's store on PostgreSQL (one and two serving processes) beside
# SQLite, in one run (docs/performance.md, "Node"): a few minutes, so not part of `make bench`.
# Needs the PostgreSQL server binaries (initdb, pg_ctl), as the tests do.
bench-postgresql: $(BIN)/.installed-test
	$(BIN)/python bench/node.py --store all

# Refresh the pictures of the web pages in docs/ui/ (shown in docs/ui.md): the browser
# tests take them; elsewhere they go to a temporary folder, leaving the checkout alone.
screenshots: $(BIN)/.installed-test
	EXCHANGE_SCREENSHOTS=$(CURDIR)/docs/ui $(BIN)/python -m pytest -q tests/browser

# Refresh the files the web pages serve from the npm packages pinned in
# web-assets/package-lock.json (GOV.UK Frontend, the accessible autocomplete), and rehash our
# own files in exchange/web/static/ into its MANIFEST.json (after editing only those,
# `python3 web-assets/ship.py --own` does that without Node). Needs Node and npm; installing
# the package does not, because the copied files are committed as package data.
assets:
	cd web-assets && npm ci --no-audit --no-fund
	$(PYTHON) web-assets/ship.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
