# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   - trains a small model under `wattwise run` and prints its footprint
#   make test   - lint, type-check, the documentation site and the whole test suite (the
#                 Debian packages its tests use are installed meanwhile, where missing and root)
#   make docs   - serve the documentation site on http://127.0.0.1:8000
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; an unpinned torch would pull a multi-GB CUDA build. It is installed
# on its own first: in one pip run with the extras, pip picked the CUDA build (6.4 GB venv).
TORCH := torch==2.13.0
# pytest-xdist workers of `make test` (0: none, the suite runs in pytest's own process). The
# tests are grouped by file, one SLURM and one Ray cluster at a time (tests/conftest.py). Two
# workers on CI's two cores: most of the suite waits on subprocesses, servers and clocks.
PYTEST_WORKERS ?= 2
# pip byte-compiles each wheel's files in its one process; compileall does the same on every
# core. Like pip, it skips a file that does not compile (a package's template or sample); and
# whatever it leaves, Python compiles on first import. Without it, the suite took 2 min 23 s
# longer (84 s saved): the processes of one test (4 torchrun ranks, Ray workers) each compiled
# the same large libraries on their first import.
PIP_INSTALL := $(BIN)/pip install -q --no-compile
COMPILE := $(BIN)/python -m compileall -qq -j0 $(VENV)/lib >/dev/null || true

.PHONY: demo test checks lint docs docs-build system-packages browser postgres slurm clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-deps: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) $(TORCH)
	$(PIP_INSTALL) -e '.[torch,optuna]'
	$(COMPILE)
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) $(TORCH)
	$(PIP_INSTALL) -e '.[dev,all]'
	$(COMPILE)
	# amdsmi's source (not installed: without ROCm it breaks 'import ray'), for the check
	# that the fake amdsmi follows the real package's names and signatures.
	$(BIN)/pip download -q --no-deps amdsmi==7.0.2 -d $(VENV)/wheels || \
	  echo "WARNING: could not download amdsmi: the fake-amdsmi signature check will skip"
	touch $@ $(VENV)/.demo-deps $(VENV)/.docs-deps

$(VENV)/.docs-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[docs]'
	touch $@

# `make demo STORE=postgresql://user@host/db` records the demo in that ledger (any store URL;
# the default is the embedded SQLite ledger, offline). The URL reaches every step through
# WATTWISE_STORE; wattwise hands its children the URL without the password, so a password
# in STORE goes to them as PGPASSWORD (better: ~/.pgpass). It is never written to the ledger.
STORE ?=
demo: $(VENV)/.demo-deps
	@case "$(STORE)" in postgres*) $(BIN)/python -c 'import psycopg' 2>/dev/null || \
	  $(BIN)/pip install -q -e '.[postgres]';; esac
	@$(if $(STORE),echo "demo ledger: $$(echo '$(STORE)' | sed -E 's#//([^:@/]*):[^@/]*@#//\1:***@#')" && \
	  export WATTWISE_STORE='$(STORE)' && \
	  pw="$$($(BIN)/python -c 'import sys, urllib.parse as u; print(u.unquote(u.urlsplit(sys.argv[1]).password or ""))' '$(STORE)')" && \
	  if [ -n "$$pw" ]; then export PGPASSWORD="$$pw"; fi && )$(BIN)/python examples/demo.py

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests examples benchmarks scripts/*.py
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site (mkdocs.yml): MkDocs, Material, the API reference from the
# docstrings. Offline: no plugin fetches anything, no web fonts. --strict turns a broken link,
# a page missing from the nav or an unresolved reference into a failure (never add --quiet:
# it hides the warnings that --strict counts).
export NO_MKDOCS_2_WARNING := 1
docs-build: $(VENV)/.docs-deps
	$(BIN)/mkdocs build --strict

docs: $(VENV)/.docs-deps
	$(BIN)/mkdocs serve

# The Debian packages of the three targets below, in one apt-get run (one update, one
# install) for all that are missing; then each target checks its own and says what will skip.
system-packages:
	@missing=""; \
	{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || \
	  missing="$$missing chromium chromium-driver"; \
	{ ls /usr/lib/postgresql/*/bin/initdb || command -v initdb; } >/dev/null 2>&1 || \
	  missing="$$missing postgresql"; \
	{ command -v slurmctld && command -v slurmd && command -v munged && \
	  command -v slurmdbd && command -v mariadbd; } >/dev/null 2>&1 || \
	  missing="$$missing slurm-wlm munge slurmdbd mariadb-server"; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "apt-get install$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    $$missing >/dev/null) || echo "apt-get could not install them all: trying one by one"; \
	fi
	@$(MAKE) --no-print-directory browser && $(MAKE) --no-print-directory postgres && \
	  $(MAKE) --no-print-directory slurm

# Headless Chromium for the HTML report test (Debian packages). Where they cannot be
# installed (no root, no apt), the browser test skips and says why.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver >/dev/null) || \
	  echo "WARNING: could not install chromium and chromium-driver: the browser test will skip"; \
	else echo "WARNING: chromium/chromedriver missing and cannot be installed here (needs root and apt): the browser test will skip"; fi

# PostgreSQL's server (Debian 'postgresql') for the PostgreSQL ledger tests, which start a
# throwaway cluster of their own (initdb/pg_ctl as an unprivileged user, Unix socket in a
# temporary folder). Where it cannot be installed, those tests skip and say why.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    postgresql >/dev/null) || \
	  echo "WARNING: could not install postgresql: the PostgreSQL ledger tests will skip"; \
	else echo "WARNING: PostgreSQL's server is missing and cannot be installed here (needs root and apt): the PostgreSQL ledger tests will skip"; fi

# A single-node SLURM for the SLURM tests (Debian 'slurm-wlm' and 'munge'; 'slurmdbd' and
# 'mariadb-server' for its accounting, sacct): the tests start munged, a throwaway MariaDB,
# slurmdbd, slurmctld and slurmd of their own in a temporary folder, as root, and stop them
# by their own process groups. Nothing is started here (Debian's packages start no service
# without systemd; where one did, the tests do not use it). Where the packages cannot be
# installed, those tests skip and say why.
slurm:
	@if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && \
	  command -v munged >/dev/null 2>&1 && command -v slurmdbd >/dev/null 2>&1 && \
	  command -v mariadbd >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    slurm-wlm munge slurmdbd mariadb-server >/dev/null) || \
	  echo "WARNING: could not install slurm-wlm, munge, slurmdbd and mariadb-server: the SLURM tests will skip (or run without sacct)"; \
	else echo "WARNING: SLURM is missing and cannot be installed here (needs root and apt): the SLURM tests will skip"; fi

# The Python set-up and checks (pip is one process, lint and the docs build follow it) while
# apt-get installs the system packages: two jobs, then the suite on $(PYTEST_WORKERS) workers.
test:
	@$(MAKE) --no-print-directory -j2 checks system-packages
	AMDSMI_WHEEL="$$(ls $(CURDIR)/$(VENV)/wheels/amdsmi-*.whl 2>/dev/null | head -1)" \
	  $(BIN)/python -m pytest -n $(PYTEST_WORKERS)

# lint, then the docs build (one after the other: both may pip install into the venv)
checks: lint
	@$(MAKE) --no-print-directory docs-build

clean:
	rm -rf $(VENV) .wattwise build *.egg-info
